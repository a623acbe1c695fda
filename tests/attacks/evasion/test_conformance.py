"""Conformance: every registered evasion attack keeps the contract in DESIGN.md ("Habits").

Like scikit-learn's ``check_estimator``: a new attack is covered once it is in
``EVASION_ATTACKS``. ``FAST`` holds per-attack settings that keep the checks quick.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

from sparring.attacks.evasion import EVASION_ATTACKS, EvasionAttack
from sparring.data import Dataset
from sparring.errors import AccessError, ConfigError, InputError, SparringError
from sparring.models import Access, Classifier, TorchClassifier

N = 40
FAST: dict[str, dict[str, Any]] = {
    "pgd": {"steps": 5},
    "apgd": {"steps": 10},
    "cw-l2": {"steps": 30, "binary_search_steps": 4},
    "square": {"max_queries": 100},
    "hopskipjump": {"max_queries": 200},
}
NAMES = sorted(EVASION_ATTACKS)


def make(name: str, eps: float, seed: int = 0, norm: str | None = None) -> EvasionAttack:
    """Build a registered attack with the parameters its constructor accepts."""
    cls = EVASION_ATTACKS[name]
    accepted = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {"eps": eps, "seed": seed, **FAST.get(name, {})}
    if norm is not None:
        kwargs["norm"] = norm
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


def norms_of(name: str) -> list[str]:
    return ["linf", "l2"] if "norm" in inspect.signature(EVASION_ATTACKS[name]).parameters else [""]


CASES = [(name, norm) for name in NAMES for norm in norms_of(name)]
EPS = {"linf": 0.1, "l2": 0.8, "": 0.1}


def view(clf: TorchClassifier, name: str) -> Classifier:
    """The classifier an attack may use: full access for white-box, its declared access otherwise."""
    needed = EVASION_ATTACKS[name].requires
    return clf if Access.GRADIENTS in needed else clf.restrict(needed)


@pytest.fixture(scope="module")
def model(digits_mlp: TorchClassifier) -> TorchClassifier:
    return digits_mlp


@pytest.fixture(scope="module")
def batch(digits_split: tuple[Dataset, Dataset]) -> tuple[torch.Tensor, torch.Tensor]:
    _, test = digits_split
    return test.x[:N], test.y[:N]


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_eps_zero_keeps_clean_accuracy(
    model: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], name: str, norm: str
) -> None:
    x, y = batch
    clf = view(model, name)
    result = make(name, 0.0, norm=norm or None).run(clf, x, y)
    assert torch.equal(result.x_adv, x)
    assert torch.equal(result.success, model.predict_labels(x) != y)
    assert bool((result.norms == 0).all())


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_outputs_in_bounds_and_in_the_ball(
    model: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], name: str, norm: str
) -> None:
    x, y = batch
    eps = EPS[norm]
    attack = make(name, eps, norm=norm or None)
    clf = view(model, name)
    q0 = clf.queries
    result = attack.run(clf, x, y)
    assert result.queries == clf.queries - q0 > 0
    lo, hi = model.bounds
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype
    assert float(result.x_adv.min()) >= lo and float(result.x_adv.max()) <= hi
    assert bool((attack.norm.norm(result.x_adv - x) <= eps * (1 + 1e-5) + 1e-6).all())
    assert torch.allclose(result.norms, attack.norm.norm(result.x_adv - x))
    # success means exactly "misclassified", and the attack lowered accuracy
    assert torch.equal(result.success, model.predict_labels(result.x_adv) != y)
    assert result.robust_accuracy < float((model.predict_labels(x) == y).float().mean())
    assert result.seconds >= 0


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_fixed_seed_repeats_exactly(
    model: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], name: str, norm: str
) -> None:
    x, y = batch
    clf = view(model, name)
    a = make(name, EPS[norm], seed=5, norm=norm or None).run(clf, x, y)
    b = make(name, EPS[norm], seed=5, norm=norm or None).run(clf, x, y)
    assert torch.equal(a.x_adv, b.x_adv)
    assert torch.equal(a.success, b.success)
    assert a.queries == b.queries


@pytest.mark.parametrize("name", NAMES)
def test_model_mode_weights_and_gradients_untouched(
    model: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], name: str
) -> None:
    x, y = batch
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    assert not model.model.training
    make(name, 0.1).run(view(model, name), x, y)
    assert not model.model.training
    after = model.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.model.parameters())
    assert not x.requires_grad


@pytest.mark.parametrize("name", NAMES)
def test_access_is_checked_before_any_query(
    model: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], name: str
) -> None:
    x, y = batch
    attack = make(name, 0.1)
    if Access.GRADIENTS in attack.requires:
        blind = model.restrict(Access.LABELS | Access.SCORES)
        with pytest.raises(AccessError, match="gradients"):
            attack.run(blind, x, y)
        assert blind.queries == 0
    else:  # a black-box attack works on a view with exactly the access it declares
        result = attack.run(model.restrict(attack.requires), x, y)
        assert result.robust_accuracy <= float((model.predict_labels(x) == y).float().mean())


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_sparring_errors(
    model: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], name: str
) -> None:
    x, y = batch
    clf = view(model, name)
    attack = make(name, 0.1)
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    bad_inputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = [
        (nan, y, None),  # NaN
        (x[:, :, :4], y, None),  # wrong shape
        (x.flatten(1), y, None),  # wrong rank
        (x, y[:-1], None),  # label count
        (x, y + 10, None),  # label out of range
        (x * 3 - 1, y, None),  # outside the bounds
        (x, y, y[:-1]),  # target count
    ]
    for bx, by, target in bad_inputs:
        with pytest.raises(InputError):
            attack.run(clf, bx, by, target=target)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ConfigError):
            make(name, bad)
    assert issubclass(InputError, SparringError) and issubclass(ConfigError, SparringError)


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch(model: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], name: str) -> None:
    x, y = batch
    result = make(name, 0.1).run(view(model, name), x[:0], y[:0])
    assert result.x_adv.shape == (0, *x.shape[1:])
    assert result.success.shape == (0,)
    assert result.queries == 0
