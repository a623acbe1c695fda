from __future__ import annotations

import pytest
import torch

from sparring.attacks.evasion import FGSM, PGD
from sparring.data import Dataset
from sparring.errors import ConfigError
from sparring.metrics import accuracy
from sparring.models import TorchClassifier

N = 150


@pytest.fixture(scope="module")
def batch(digits_split: tuple[Dataset, Dataset]) -> tuple[torch.Tensor, torch.Tensor]:
    _, test = digits_split
    return test.x[:N], test.y[:N]


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.15), ("l2", 1.0)])
def test_pgd_and_fgsm_lower_accuracy(
    digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], norm: str, eps: float
) -> None:
    x, y = batch
    clean = accuracy(digits_mlp, x, y)
    assert clean > 0.85
    fgsm = FGSM(norm, eps=eps).run(digits_mlp, x, y)
    pgd = PGD(norm, eps=eps, steps=20).run(digits_mlp, x, y)
    assert fgsm.robust_accuracy < clean - 0.2
    assert pgd.robust_accuracy <= fgsm.robust_accuracy
    assert pgd.robust_accuracy < 0.2
    # success is exactly "the model misclassifies x_adv"
    assert torch.equal(pgd.success, digits_mlp.predict_labels(pgd.x_adv) != y)
    assert bool((pgd.norms <= eps + 1e-5).all())


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_targeted_pgd_reaches_its_targets(
    digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], norm: str
) -> None:
    x, y = batch
    target = (y + 3) % 10
    result = PGD(norm, eps=0.3 if norm == "linf" else 2.0, steps=30).run(digits_mlp, x, y, target=target)
    assert result.success_rate > 0.9
    pred = digits_mlp.predict_labels(result.x_adv)
    assert torch.equal(result.success, pred == target)


def test_restarts_never_hurt(digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    one = PGD(eps=0.08, steps=2, seed=3).run(digits_mlp, x, y)
    three = PGD(eps=0.08, steps=2, restarts=3, seed=3).run(digits_mlp, x, y)
    assert 0.2 < one.robust_accuracy < 0.95  # a budget where restarts can matter
    assert bool((three.success | ~one.success).all())  # every success of one run is kept
    assert three.robust_accuracy <= one.robust_accuracy
    assert three.queries > one.queries


def test_early_stop_is_no_weaker_and_cheaper(
    digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = batch
    early = PGD(eps=0.08, steps=20).run(digits_mlp, x, y)
    full = PGD(eps=0.08, steps=20, early_stop=False).run(digits_mlp, x, y)
    assert early.robust_accuracy <= full.robust_accuracy
    assert early.queries < full.queries
    assert torch.equal(full.success, digits_mlp.predict_labels(full.x_adv) != y)


def test_batch_size_does_not_change_the_attack(
    digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = batch
    big = PGD(eps=0.08, steps=10, batch_size=500).run(digits_mlp, x, y)
    small = PGD(eps=0.08, steps=10, batch_size=7).run(digits_mlp, x, y)
    assert int((big.success != small.success).sum()) <= 1
    assert big.queries == small.queries


def test_without_early_stop_every_sample_is_perturbed(
    digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = batch
    result = PGD(eps=0.1, steps=3, early_stop=False).run(digits_mlp, x, y)
    assert bool((result.norms > 0).all())  # misclassified inputs too, as adversarial training needs
    assert result.queries == len(x) * (1 + 3 + 1)  # clean pass, 3 gradient steps, final check


def test_inputs_that_require_grad_are_accepted_and_untouched(
    digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = batch
    xg = x.clone().requires_grad_(True)
    result = PGD(eps=0.1, steps=3).run(digits_mlp, xg, y)
    assert xg.grad is None and torch.equal(xg.detach(), x)
    assert not result.x_adv.requires_grad


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 0.8)])
def test_perturb_returns_the_last_iterate_of_every_sample(
    digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], norm: str, eps: float
) -> None:
    x, y = batch
    attack = PGD(norm, eps=eps, steps=3, seed=2)
    q0 = digits_mlp.queries
    x_adv = attack.perturb(digits_mlp, x, y)
    assert digits_mlp.queries - q0 == 3 * len(x)  # one forward/backward per step, nothing else
    assert torch.equal(x_adv, attack.perturb(digits_mlp, x, y))
    n = attack.norm.norm(x_adv - x)
    assert bool((n > 0).all()) and bool((n <= eps + 1e-5).all())
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    # as strong as run() without early stop, which returns the same iterate when it fails
    full = PGD(norm, eps=eps, steps=3, seed=2, early_stop=False).run(digits_mlp, x, y)
    assert accuracy(digits_mlp, x_adv, y) <= full.robust_accuracy + 0.05
    assert torch.equal(attack.perturb(digits_mlp, x[:0], y[:0]), x[:0])


def test_fgsm_takes_one_full_step(digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    result = FGSM(eps=0.1).run(digits_mlp, x, y)
    moved = result.x_adv != x
    delta = (result.x_adv - x)[moved].abs()
    # Every moved coordinate moved by eps unless the [0, 1] bounds cut it short.
    clipped = (result.x_adv[moved] == 0) | (result.x_adv[moved] == 1)
    assert torch.allclose(delta[~clipped], torch.full_like(delta[~clipped], 0.1), atol=1e-6)


def test_default_step_size_follows_eps_and_validation() -> None:
    pgd = PGD(eps=0.4, steps=10)
    assert pgd.step_size is None and pgd.effective_step_size() == pytest.approx(0.1)
    # the default is derived when the attack runs, so a clone at another eps gets its own step
    assert pgd.clone(eps=0.8).effective_step_size() == pytest.approx(0.2)
    assert PGD(eps=0.4, steps=10, step_size=0.05).effective_step_size() == 0.05
    for bad in ({"steps": 0}, {"restarts": 0}, {"batch_size": 0}, {"step_size": -1.0}, {"eps": float("nan")}):
        with pytest.raises(ConfigError):
            PGD(**bad)
    with pytest.raises(ConfigError):
        PGD(norm="l3")
