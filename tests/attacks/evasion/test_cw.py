from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from sparring.attacks.evasion import PGD, CarliniWagnerL2
from sparring.attacks.evasion.cw import margin
from sparring.data import Dataset
from sparring.errors import ConfigError
from sparring.models import TorchClassifier

N = 60
SETTINGS = {"steps": 100, "binary_search_steps": 9}


class FromSymmetric(nn.Module):
    """A model for inputs in [-1, 1] built on one for [0, 1]."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner((x + 1) / 2)


@pytest.fixture(scope="module")
def batch(digits_split: tuple[Dataset, Dataset]) -> tuple[Tensor, Tensor]:
    _, test = digits_split
    return test.x[:N], test.y[:N]


@pytest.fixture(scope="module")
def unbounded(digits_mlp: TorchClassifier, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    x, y = batch
    r = CarliniWagnerL2(**SETTINGS).run(digits_mlp, x, y)  # type: ignore[arg-type]
    return r.x_adv, r.success, r.norms


def test_finds_small_adversarial_examples(
    digits_mlp: TorchClassifier, batch: tuple[Tensor, Tensor], unbounded: tuple[Tensor, Tensor, Tensor]
) -> None:
    x, y = batch
    x_adv, success, norms = unbounded
    assert float(success.float().mean()) > 0.95
    assert torch.equal(success, digits_mlp.predict_labels(x_adv) != y)
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    # minimum-norm: at each radius at least as strong as PGD-L2 with 40 steps (within one sample)
    for eps in (0.5, 1.0):
        cw_robust = float((~success | (norms > eps)).float().mean())
        pgd = PGD("l2", eps=eps, steps=40).run(digits_mlp, x, y)
        assert cw_robust <= pgd.robust_accuracy + 1 / N


def test_eps_turns_it_into_a_robust_accuracy(
    digits_mlp: TorchClassifier, batch: tuple[Tensor, Tensor], unbounded: tuple[Tensor, Tensor, Tensor]
) -> None:
    x, y = batch
    _, success, norms = unbounded
    eps = 0.5
    result = CarliniWagnerL2(eps=eps, **SETTINGS).run(digits_mlp, x, y)  # type: ignore[arg-type]
    assert bool((result.norms <= eps + 1e-6).all())
    assert torch.equal(result.success, success & (norms <= eps))
    too_far = success & (norms > eps)
    assert bool(too_far.any())
    assert torch.equal(result.x_adv[too_far], x[too_far])  # unchanged, counted as robust
    assert 0.1 < result.robust_accuracy < 0.9


def test_binary_search_shrinks_the_perturbation(
    digits_mlp: TorchClassifier, batch: tuple[Tensor, Tensor], unbounded: tuple[Tensor, Tensor, Tensor]
) -> None:
    x, y = batch
    _, success, norms = unbounded
    short = CarliniWagnerL2(steps=50, binary_search_steps=2, c_init=1.0).run(digits_mlp, x, y)
    both = short.success & success & (norms > 0)
    assert int(both.sum()) > N // 2
    assert float(norms[both].median()) < 0.9 * float(short.norms[both].median())


def test_targets_and_confidence(digits_mlp: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    target = (y + 1) % 10
    result = CarliniWagnerL2(confidence=2.0, **SETTINGS).run(digits_mlp, x, y, target=target)  # type: ignore[arg-type]
    assert result.success_rate > 0.9
    assert torch.equal(result.success, digits_mlp.predict_labels(result.x_adv) == target)
    with torch.no_grad():
        m = margin(digits_mlp.logits(result.x_adv), y, target)
    assert bool((m[result.success] <= -2.0 + 1e-4).all())  # the target wins by the confidence margin


def test_respects_other_bounds(digits_mlp: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    clf = TorchClassifier(FromSymmetric(digits_mlp.model), (1, 8, 8), 10, bounds=(-1.0, 1.0))
    result = CarliniWagnerL2(**SETTINGS).run(clf, x * 2 - 1, y)  # type: ignore[arg-type]
    assert result.success_rate > 0.9
    assert float(result.x_adv.min()) >= -1 and float(result.x_adv.max()) <= 1


@pytest.mark.parametrize(
    "kwargs",
    [{"confidence": -1.0}, {"c_init": float("nan")}, {"binary_search_steps": 0}, {"steps": 2.5}, {"eps": -0.1}],
)
def test_bad_parameters_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        CarliniWagnerL2(**kwargs)  # type: ignore[arg-type]
