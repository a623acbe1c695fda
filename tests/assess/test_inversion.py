"""Model inversion: the attacks reconstruct recognisable classes; the family refuses what it cannot run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from sparring.assess import assess, parse_config
from sparring.attacks.privacy.inversion import (
    DeepInversion,
    GradientInversion,
    effective_n,
    gap_interval,
    inversion_split,
    nearest_neighbour_test,
)
from sparring.data.builtin import digits
from sparring.errors import ConfigError, InputError
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit


@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    data = digits()
    train, test = data.split(0.2, seed=0)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=1e-3, seed=0, progress=False)
    target = fit(build("small_cnn", data.input_shape, 10, seed=0), train, cfg).model
    evaluator = fit(build("mlp", data.input_shape, 10, seed=2), test, TrainConfig(epochs=15, seed=2, progress=False))
    wrap = lambda m: TorchClassifier(m, data.input_shape, 10)  # noqa: E731
    return {"train": train, "test": test, "target": wrap(target), "evaluator": wrap(evaluator.model)}


def test_gradient_inversions_are_recognised_by_an_independent_classifier(trained: dict[str, Any]) -> None:
    attack = GradientInversion(n=2, steps=60, seed=0)
    images = attack.invert(trained["target"], list(range(10)))
    assert images.shape == (20, 1, 8, 8) and float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    labels = torch.arange(10).repeat_interleave(2)
    acc = float((trained["evaluator"].predict_labels(images) == labels).float().mean())
    assert acc >= 0.5, acc  # chance is 0.1; an MLP never trained on the target's data recognises them
    noise = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert float((trained["evaluator"].predict_labels(noise) == labels).float().mean()) < 0.3


def test_deep_inversion_needs_batchnorm_and_leaves_no_hooks(trained: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="not applicable") as e:
        DeepInversion(n=1, steps=2).invert(trained["target"], 3)
    assert "\n" not in str(e.value)
    bn = build("small_cnn_bn", (1, 8, 8), 10, seed=0)
    out = DeepInversion(n=2, steps=3).invert(TorchClassifier(bn, (1, 8, 8), 10), [0, 1])
    assert out.shape == (4, 1, 8, 8)
    assert all(not m._forward_hooks for m in bn.modules())


def test_nearest_neighbour_test_counts_copies_of_members_as_leaks(trained: dict[str, Any]) -> None:
    train, test = trained["train"], trained["test"]
    split = inversion_split(train.y, test.y, 10, 5, seed=0)
    members, unseen = train.subset(split.members), test.subset(split.non_members)
    assert nearest_neighbour_test(members.x, members.y, members, unseen).closer_to_member == 1.0
    assert nearest_neighbour_test(unseen.x, unseen.y, members, unseen).closer_to_member == 0.0
    ci = gap_interval(0.8, 50, 0.5, 50)
    assert ci.low < 0.3 < ci.high and ci.low > 0.0


@pytest.mark.parametrize(
    ("entry", "model", "match"),
    [
        ({"attack": "model_inversion"}, {}, "inversion attack"),
        ({"evaluator": "resnet"}, {}, "evaluator architecture"),
        ({"attack": "deep_inversion"}, {"architecture": "small_cnn"}, "no BatchNorm"),
        ({"classes": [3, 12]}, {}, "below 10"),
        ({"defences": ["groupnorm"]}, {}, "unknown inversion defence 'groupnorm'; accepted: group_norm"),
        ({"defences": ["group_norm:8"]}, {}, "takes no argument"),
        ({"defences": ["dp_sgd:-1"]}, {}, "epsilon must be a finite number > 0"),
    ],
)
def test_bad_inversion_entry_gets_a_one_line_error(
    entry: dict[str, Any], model: dict[str, Any], match: str, tmp_path: Path
) -> None:
    cfg = {"data": {"dataset": "digits"}, "model": {"epochs": 1, **model}, "inversion": [entry]}
    with pytest.raises(ConfigError, match=match) as e:
        assess(parse_config(cfg), tmp_path / "out", log=lambda s: None)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_group_norm_retrains_target_and_reference_without_batchnorm_and_deep_inversion_falls_back(
    tmp_path: Path,
) -> None:
    from safetensors.torch import load_file

    cfg = {
        "data": {"dataset": "digits"},
        "model": {"epochs": 1, "architecture": "small_cnn_bn"},
        "inversion": [
            {"attack": "deep_inversion", "per_class": 1, "steps": 3, "samples": 5, "defences": ["group_norm"]}
        ],
    }
    report, failed = assess(parse_config(cfg), tmp_path / "out", log=lambda s: None)
    assert not failed
    base, defended = (
        report["scenarios"]["inversion.deep_inversion"],
        report["scenarios"]["inversion.deep_inversion+group_norm"],
    )
    assert base["attack"] == "deep_inversion" and "replaced_layers" not in base
    assert defended["requested"] == "deep_inversion" and defended["attack"] == "gradient"
    assert "not applicable" in defended["fallback_reason"] and defended["replaced_layers"] == 3
    assert defended["defence_seconds"] > 0
    stored = tmp_path / "out" / ".work" / "artefacts"
    for name in ("model-inversion-target-group_norm", "model-inversion-reference-s5-group_norm"):
        weights = load_file(str(stored / name / "model.safetensors"))
        assert not any("running_mean" in k for k in weights) and "bn1.weight" in weights, name
    assert any(
        "running_mean" in k for k in load_file(str(stored / "model-inversion-reference-s5" / "model.safetensors"))
    )
    (cost,) = [c for c in report["defence_costs"] if c["defence"] == "group_norm"]
    assert "GroupNorm" in cost["seconds_note"] and cost["level_before"] and cost["level_after"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "3 BatchNorm layers replaced by GroupNorm" in page and "gradient inversion ran instead" in page


def test_inversions_of_one_class_that_agree_count_as_one_sample() -> None:
    classes = torch.arange(10).repeat_interleave(5)
    agreeing = (classes % 2).float()  # every inversion of a class lands on the same side
    assert effective_n(agreeing, classes) == pytest.approx(10.0)
    mixed = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0] * 5)  # no class agrees more than chance
    assert effective_n(mixed, classes) == pytest.approx(50.0)
    assert effective_n(agreeing, torch.arange(50)) == 50.0  # one inversion per class: nothing to cluster
    narrow, wide = gap_interval(0.7, 50, 0.4, 50), gap_interval(0.7, 10, 0.4, 10)
    assert wide.low < narrow.low < 0.3 < narrow.high < wide.high and wide.low < 0.0 < narrow.low
