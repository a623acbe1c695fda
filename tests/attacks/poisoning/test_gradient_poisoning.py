from __future__ import annotations

import numpy as np
import pytest
import torch

from sparring.attacks.poisoning import RandomLabelFlip
from sparring.attacks.poisoning.gradient import (
    LINEAR_MODELS,
    GradientPoisoning,
    RandomFlipCopies,
    _Linear,
    _with_bias,
    fit_linear,
)
from sparring.data import Dataset, PoisonedDataset, breast_cancer
from sparring.errors import ConfigError, InputError
from sparring.metrics import dataset_accuracy


@pytest.fixture(scope="module")
def cancer_split() -> tuple[Dataset, Dataset]:
    return breast_cancer().split(0.25, seed=0)


@pytest.fixture(scope="module")
def lr_poison(cancer_split: tuple[Dataset, Dataset]) -> PoisonedDataset:
    return GradientPoisoning("logistic_regression", fraction=0.2, seed=0).poison(cancer_split[0])


def test_gradient_poisoning_hurts_more_than_random_flips(
    cancer_split: tuple[Dataset, Dataset], lr_poison: PoisonedDataset
) -> None:
    train, test = cancer_split
    model = "logistic_regression"
    clean = dataset_accuracy(fit_linear(train, model), test)
    copies = dataset_accuracy(fit_linear(RandomFlipCopies(0.2, seed=0).poison(train), model), test)
    flips = dataset_accuracy(fit_linear(RandomLabelFlip(0.2, seed=0).poison(train), model), test)
    grad = dataset_accuracy(fit_linear(lr_poison, model), test)
    assert clean > 0.9
    assert grad <= copies - 0.03
    assert grad <= flips - 0.03


def test_poisoned_dataset_marks_added_points(cancer_split: tuple[Dataset, Dataset], lr_poison: PoisonedDataset) -> None:
    train = cancer_split[0]
    n, m = len(train), round(0.2 * len(train))
    p = lr_poison
    assert len(p) == n + m and p.n_poisoned == m
    assert bool(p.poison_mask[n:].all()) and not bool(p.poison_mask[:n].any())
    assert torch.equal(p.x[:n], train.x) and torch.equal(p.y[:n], train.y)
    assert torch.equal(p.original_y[:n], train.y)
    assert bool((p.y[n:] != p.original_y[n:]).all())  # every poison label is flipped
    lo, hi = train.x.min(0).values, train.x.max(0).values
    assert bool(((p.x[n:] >= lo - 1e-6) & (p.x[n:] <= hi + 1e-6)).all())
    start = RandomFlipCopies(0.2, seed=0).poison(train)
    assert torch.equal(start.y, p.y) and torch.equal(start.original_y, p.original_y)
    assert not torch.allclose(start.x[n:], p.x[n:])  # the points moved


def test_seed_repeats(cancer_split: tuple[Dataset, Dataset]) -> None:
    train = cancer_split[0]
    a = GradientPoisoning("linear_svm", fraction=0.05, steps=5, seed=3).poison(train)
    b = GradientPoisoning("linear_svm", fraction=0.05, steps=5, seed=3).poison(train)
    c = GradientPoisoning("linear_svm", fraction=0.05, steps=5, seed=4).poison(train)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


@pytest.mark.parametrize("model", LINEAR_MODELS)
@pytest.mark.parametrize("k", [2, 3])
def test_implicit_gradient_matches_finite_differences(model: str, k: int) -> None:
    g = torch.Generator().manual_seed(0)
    # float32 values: a Dataset stores float32, and the reference below must see the same data.
    x = torch.randn(40, 3, generator=g).double()
    y = torch.randint(0, k, (40,), generator=g)
    x_val, y_val = torch.randn(20, 3, generator=g).double(), torch.randint(0, k, (20,), generator=g)
    train, val = Dataset(x, y, [str(i) for i in range(k)]), Dataset(x_val, y_val, [str(i) for i in range(k)])
    lin = _Linear(model, k, 0.05)
    xp = torch.rand(2, 3, generator=g).double()
    yp = torch.randint(0, k, (2,), generator=g)

    def val_loss(points: torch.Tensor) -> float:
        w0 = torch.zeros(4, lin.outputs, dtype=torch.float64)
        w, _ = lin.solve(_with_bias(torch.cat([x, points])), torch.cat([y, yp]), w0)
        return float(lin.terms(_with_bias(x_val) @ w, y_val)[0].mean())

    # One step of size h from xp moves each point along its normalised gradient; compare the
    # change in validation loss with the directional derivative predicted by finite differences.
    attack = GradientPoisoning(model, fraction=0.05, steps=1, step_size=1e-4, reg=0.05)
    moved = attack._optimise(train, val, xp.float(), yp, k)
    assert val_loss(moved) > val_loss(xp)
    eps = 1e-6
    fd = torch.zeros_like(xp)
    for i in range(2):
        for j in range(3):
            e = torch.zeros_like(xp)
            e[i, j] = eps
            fd[i, j] = (val_loss(xp + e) - val_loss(xp - e)) / (2 * eps)
    step = (moved.double() - xp.double()) / 1e-4
    expected = fd / fd.norm(dim=1, keepdim=True)
    assert torch.allclose(step, expected, atol=1e-3)


@pytest.mark.parametrize("model", LINEAR_MODELS)
def test_inner_solution_is_the_victims(cancer_split: tuple[Dataset, Dataset], model: str) -> None:
    train = cancer_split[0]
    lin = _Linear(model, 2, 1e-3)
    xt = _with_bias(train.x.double())
    w, _ = lin.solve(xt, train.y, torch.zeros(31, 1, dtype=torch.float64))
    est = fit_linear(train, model).estimator
    ref = np.concatenate([est.coef_[0], est.intercept_])
    assert np.allclose(w[:, 0].numpy(), ref, atol=1e-3 * np.abs(ref).max())


def test_multiclass_digits(digits_split: tuple[Dataset, Dataset]) -> None:
    train = digits_split[0].subset(torch.arange(300))
    p = GradientPoisoning("logistic_regression", fraction=0.05, steps=3, seed=0).poison(train)
    assert p.n_poisoned == 15 and p.input_shape == (1, 8, 8)
    assert bool((p.y[p.poison_mask] != p.original_y[p.poison_mask]).all())
    assert float(p.x.min()) >= 0.0 and float(p.x.max()) <= 1.0
    assert isinstance(fit_linear(p, "linear_svm").predict_labels(p.x[:5]), torch.Tensor)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"model": "mlp"}, "model"),
        ({"fraction": 1.5}, "fraction"),
        ({"steps": 0}, "steps"),
        ({"step_size": 0.0}, "step_size"),
        ({"reg": -1.0}, "reg"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
    ],
)
def test_bad_params_raise(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        GradientPoisoning(**kwargs)  # type: ignore[arg-type]


def test_fit_linear_rejects_other_models(cancer_split: tuple[Dataset, Dataset]) -> None:
    with pytest.raises(ConfigError, match="'logistic_regression', 'linear_svm'"):
        fit_linear(cancer_split[0], "rbf_svm")
    with pytest.raises(ConfigError, match="reg"):
        fit_linear(cancer_split[0], "linear_svm", reg=0.0)


def test_bad_data_raises(cancer_split: tuple[Dataset, Dataset]) -> None:
    train = cancer_split[0]
    wrong = Dataset(torch.rand(10, 5), torch.zeros(10, dtype=torch.long), list(train.classes))
    with pytest.raises(InputError, match="shape"):
        GradientPoisoning().poison(train, wrong)
    one_class = Dataset(torch.rand(10, 3), torch.zeros(10, dtype=torch.long))
    with pytest.raises(InputError, match="2 classes"):
        GradientPoisoning().poison(one_class)
    with pytest.raises(InputError, match="2 classes"):
        RandomFlipCopies().poison(one_class)
