"""Watermarks: the watermarked model proves ownership, a clean model does not, and the task barely pays."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from sparring.data import Dataset, load_builtin
from sparring.defenses.training.watermark import (
    EntangledWatermark,
    TriggerSetWatermark,
    Watermark,
    binomial_p,
)
from sparring.errors import ConfigError, InputError
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit

EPOCHS = 15


@dataclass
class Case:
    train: Dataset
    test: Dataset
    clean: list[TorchClassifier]


@pytest.fixture(scope="module")
def case() -> Case:
    train, test = load_builtin("digits").split(0.2, seed=0)

    def clean(seed: int) -> TorchClassifier:
        model = fit(build("mlp", train.input_shape, 10, seed=seed), train, TrainConfig(epochs=EPOCHS, seed=seed)).model
        return TorchClassifier(model, train.input_shape, 10)

    # model 0 shares the watermarked models' seed: the cost's reference; 1-3 set the base rate; 4 is held out
    return Case(train, test, [clean(s) for s in range(5)])


def _acc(clf: TorchClassifier, case: Case) -> float:
    return float((clf.predict_labels(case.test.x) == case.test.y).float().mean())


@pytest.mark.parametrize("wm", [TriggerSetWatermark(size=50), EntangledWatermark(size=50)], ids=["trigger", "ewe"])
def test_watermark_proves_ownership_and_not_on_a_clean_model(wm: Watermark, case: Case) -> None:
    train, clean = case.train, case.clean
    result = wm.embed(build("mlp", train.input_shape, 10, seed=0), train, TrainConfig(epochs=EPOCHS, seed=0))
    marked = TorchClassifier(result.model, train.input_shape, 10)
    base = wm.calibrate(clean[1:4])
    assert 0.0 < base < 0.5
    own = wm.verify(marked)
    assert own.queries == 50 and own.p_value < 1e-6 and own.claimed(0.01), own
    held_out = wm.verify(clean[4])
    assert held_out.p_value > 0.01 and not held_out.claimed(0.01), held_out
    assert _acc(marked, case) >= _acc(clean[0], case) - 0.05


def test_ewe_refinement_stops_the_model_naming_the_target(case: Case) -> None:
    # watermarks the model already answers as the target (the target's own inputs) must be stepped away from it
    model = case.clean[0].model
    target = 9
    tgt = case.train.x[case.train.y == target]
    with torch.no_grad():
        assert float((model(tgt).argmax(1) == target).float().mean()) > 0.8
    wm = EntangledWatermark(steps=2, step=0.05)
    refined = wm._refine(model, tgt.clone(), tgt, target, torch.tensor(wm.temperature))
    with torch.no_grad():
        named = float((model(refined).argmax(1) == target).float().mean())
    assert named <= wm.threshold, named
    assert refined.min() >= 0.0 and refined.max() <= 1.0


def test_binomial_test_and_verification_order() -> None:
    assert binomial_p(0, 10, 0.1) == 1.0
    assert binomial_p(10, 10, 0.5) == pytest.approx(2**-10)
    assert binomial_p(3, 10, 0.3) > binomial_p(6, 10, 0.3)
    wm = TriggerSetWatermark(size=10)
    with pytest.raises(InputError, match="embed first"):
        wm.hits(TorchClassifier(torch.nn.Flatten(), (4,), 4))
    wm.verification_x, wm.verification_y = torch.rand(10, 4), torch.zeros(10, dtype=torch.long)
    with pytest.raises(InputError, match="calibrate"):
        wm.verify(TorchClassifier(torch.nn.Flatten(), (4,), 4))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TriggerSetWatermark(size=0), "size"),
        (lambda: TriggerSetWatermark(share=1.5), "share"),
        (lambda: EntangledWatermark(source=3, target=3), "differ"),
        (lambda: EntangledWatermark(temperature=0), "temperature"),
        (lambda: EntangledWatermark(threshold=1.0), "threshold"),
    ],
)
def test_bad_watermark_settings_get_a_one_line_error(make: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        make()  # type: ignore[operator]
    assert "\n" not in str(e.value)
