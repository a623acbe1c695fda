"""Mixup and CutMix in the training loop (``TrainConfig.mix``).

On 8x8 digits neither mixup nor CutMix lowers the BadNets ASR of a small model (the small CNN
keeps ASR 1.0 / 0.96, see benchmarks/backdoor_training.py), so these tests check the mechanism:
mixed inputs, mixed labels and the loss against a hand computation, seeding, and bad specs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError
from sparring.models import build
from sparring.train import TrainConfig, fit, mix_batch


def test_mixup_interpolates_inputs_and_the_loss_matches_a_hand_computation(
    digits_split: tuple[Dataset, Dataset],
) -> None:
    train, _ = digits_split
    small = train.take(64, seed=0)
    cfg = TrainConfig(epochs=1, batch_size=64, seed=5, mix="mixup:1.0", progress=False, lr=1e-12)
    seen: list[Tensor] = []

    def record(model: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        seen.append(x.detach().clone())
        return torch.zeros(())

    model = build("mlp", small.input_shape, 10, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, small, cfg, penalty=record)
    # Reproduce the batch: the shuffle, then lam and the partner order from the mix generators.
    order = torch.randperm(64, generator=torch.Generator().manual_seed(5))
    xb, yb = small.x[order], small.y[order]
    g, rng = torch.Generator().manual_seed(7), np.random.default_rng(7)
    mixed, partner, lam = mix_batch(xb, "mixup:1.0", g, rng)
    assert 0.0 < lam < 1.0 and not torch.equal(partner, torch.arange(64))
    assert torch.allclose(seen[0], mixed)
    assert torch.allclose(mixed, lam * xb + (1 - lam) * xb[partner])
    fresh = build("mlp", small.input_shape, 10, seed=0)
    fresh.load_state_dict(before)
    fresh.train()
    with torch.no_grad():
        logits = fresh(mixed)
    ce = nn.functional.cross_entropy
    expected = lam * ce(logits, yb) + (1 - lam) * ce(logits, yb[partner])
    assert result.losses[0] == pytest.approx(float(expected), rel=1e-5)
    plain = nn.functional.cross_entropy(logits, yb)
    assert abs(float(expected) - float(plain)) > 1e-3  # the label mix changes the loss


def test_cutmix_pastes_a_box_whose_area_sets_lam() -> None:
    x = torch.zeros(32, 1, 8, 8)
    x[16:] = 1.0  # half the batch black, half white
    for seed in range(5):
        mixed, partner, lam = mix_batch(
            x, "cutmix:1.0", torch.Generator().manual_seed(seed), np.random.default_rng(seed)
        )
        pasted = (mixed != x).float().flatten(1).mean(1)  # share of each image replaced
        differs = (x[partner] != x).flatten(1).any(1)
        assert torch.allclose(pasted[differs], torch.full((int(differs.sum()),), 1 - lam))
        assert bool((pasted[~differs] == 0).all())
        box = (mixed[differs][0, 0] != x[differs][0, 0]).nonzero()
        h, w = box[:, 0].max() - box[:, 0].min() + 1, box[:, 1].max() - box[:, 1].min() + 1
        assert int(h * w) == len(box)  # one rectangle


def test_mixing_is_seeded_and_changes_training(digits_split: tuple[Dataset, Dataset]) -> None:
    train, _ = digits_split
    small = train.take(200, seed=0)
    plain = fit(build("mlp", small.input_shape, 10, seed=0), small, TrainConfig(epochs=3, progress=False))
    for spec in ("mixup:0.4", "cutmix:1"):
        cfg = TrainConfig(epochs=3, mix=spec, progress=False)
        a = fit(build("mlp", small.input_shape, 10, seed=0), small, cfg)
        b = fit(build("mlp", small.input_shape, 10, seed=0), small, cfg)
        assert a.losses == b.losses
        assert a.losses != plain.losses


def test_bad_mix_specs() -> None:
    for spec, match in [
        ("mixit:1", "unknown mix"),
        ("mixup", "needs its argument ALPHA"),
        ("cutmix:abc", "ALPHA in mix .cutmix:abc. must be a number"),
        ("mixup:0", "> 0"),
        ("cutmix:-1", "> 0"),
        ("mixup:inf", "> 0"),
    ]:
        with pytest.raises(ConfigError, match=match):
            TrainConfig(mix=spec)
    with pytest.raises(ConfigError, match="mix must be a string"):
        TrainConfig(mix=1.0)  # type: ignore[arg-type]
    flat = Dataset(torch.rand(20, 4), torch.randint(0, 2, (20,)), ["a", "b"])
    with pytest.raises(InputError, match="image inputs"):
        fit(build("mlp", (4,), 2), flat, TrainConfig(epochs=1, mix="cutmix:1", progress=False))
    fit(build("mlp", (4,), 2), flat, TrainConfig(epochs=1, mix="mixup:1", progress=False))  # mixup works on flat data
