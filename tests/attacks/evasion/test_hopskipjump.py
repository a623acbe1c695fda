"""HopSkipJump (labels only): finds small adversarials, shrinks them with queries, keeps its budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier

from sparring.attacks.evasion import HopSkipJump
from sparring.data import Dataset, breast_cancer
from sparring.errors import AccessError, ConfigError
from sparring.metrics import accuracy
from sparring.models import Access, OnnxClassifier, QueryBudget, SklearnClassifier, TorchClassifier, export_onnx

N = 30


@pytest.fixture(scope="module")
def batch(digits_split: tuple[Dataset, Dataset]) -> tuple[torch.Tensor, torch.Tensor]:
    _, test = digits_split
    return test.x[:N], test.y[:N]


def test_norms_shrink_with_more_queries(digits_cnn: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    view = digits_cnn.restrict(Access.LABELS)
    few = HopSkipJump("l2", max_queries=150).run(view, x, y)
    many = HopSkipJump("l2", max_queries=1000).run(view, x, y)
    for r in (few, many):  # minimum-norm attack without eps: every sample gets an adversarial
        assert bool(r.success.all())
        assert torch.equal(digits_cnn.predict_labels(r.x_adv) != y, r.success)
        assert float(r.x_adv.min()) >= 0 and float(r.x_adv.max()) <= 1
    assert float(many.norms.median()) < 0.85 * float(few.norms.median())
    # the same seed makes the same first steps, so more queries never end further away per sample
    assert float((many.norms <= few.norms + 1e-4).float().mean()) > 0.9
    assert many.queries <= N * 1000 and many.sample_queries is not None
    assert int(many.sample_queries.max()) <= 1000


@pytest.mark.parametrize(("norm", "eps"), [("l2", 1.0), ("linf", 0.15)])
def test_with_eps_lowers_accuracy_within_the_ball(
    digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], norm: str, eps: float
) -> None:
    x, y = batch
    view = digits_mlp.restrict(Access.LABELS)
    attack = HopSkipJump(norm, max_queries=500, eps=eps)
    result = attack.run(view, x, y)
    clean = accuracy(digits_mlp, x, y)
    assert result.robust_accuracy < clean - 0.2
    assert bool((result.norms <= eps * (1 + 1e-5) + 1e-6).all())
    assert torch.equal(result.success, digits_mlp.predict_labels(result.x_adv) != y)
    assert bool((result.norms[~result.success] == 0).all())  # failures come back unchanged
    # with eps, a sample stops at its first success: per-sample queries add up to the count
    assert result.sample_queries is not None
    assert int(result.sample_queries.max()) <= 500
    assert int(result.sample_queries.sum()) == result.queries == view.queries


def test_never_exceeds_the_budget(digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    for q in (1, 7, 60, 333):
        for i in range(3):  # one sample at a time under a hard budget of q queries
            budget = QueryBudget(digits_mlp.restrict(Access.LABELS), q)
            HopSkipJump("l2", max_queries=q).run(budget, x[i : i + 1], y[i : i + 1])
            assert budget.queries <= q


def test_targeted(digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    target = (y + 3) % 10
    result = HopSkipJump("l2", max_queries=400).run(digits_mlp.restrict(Access.LABELS), x, y, target=target)
    pred = digits_mlp.predict_labels(result.x_adv)
    assert result.success_rate > 0.9
    assert torch.equal(result.success, pred == target)


def test_seed_repeats(digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    view = digits_mlp.restrict(Access.LABELS)
    a = HopSkipJump("linf", max_queries=200, seed=1).run(view, x, y)
    b = HopSkipJump("linf", max_queries=200, seed=1).run(view, x, y)
    c = HopSkipJump("linf", max_queries=200, seed=2).run(view, x, y)
    assert torch.equal(a.x_adv, b.x_adv) and a.queries == b.queries
    assert not torch.equal(a.x_adv, c.x_adv)


def test_needs_labels_only(digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    blind = digits_mlp.restrict(Access.SCORES)  # scores without labels: not what HSJ declares
    with pytest.raises(AccessError, match="labels"):
        HopSkipJump().run(blind, x, y)
    assert blind.queries == 0
    for kwargs in ({"max_queries": 0}, {"eps": -0.5}, {"init_evals": 0}, {"norm": "l1"}, {"gamma": float("nan")}):
        with pytest.raises(ConfigError):
            HopSkipJump(**kwargs)


def test_runs_on_a_sklearn_model() -> None:
    train, test = breast_cancer().split(0.3, seed=0)
    gb = GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0).fit(train.x.numpy(), train.y.numpy())
    clf = SklearnClassifier(gb, train.input_shape).restrict(Access.LABELS)
    x, y = test.x[:40], test.y[:40]
    result = HopSkipJump("l2", max_queries=300).run(clf, x, y)
    assert bool(result.success.all())
    assert torch.equal(clf.predict_labels(result.x_adv) != y, result.success)
    # trees have axis-aligned boundaries: most samples flip within a small fraction of the cube's diagonal
    assert float(result.norms.median()) < 0.3


def test_runs_on_an_onnx_model(
    digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    x, y = batch
    onnx = OnnxClassifier(export_onnx(digits_mlp.model, (1, 8, 8), tmp_path / "mlp.onnx"), (1, 8, 8), 10)
    result = HopSkipJump("l2", max_queries=300, eps=1.0).run(onnx.restrict(Access.LABELS), x, y)
    assert result.robust_accuracy < accuracy(digits_mlp, x, y) - 0.2
    assert torch.equal(result.success, digits_mlp.predict_labels(result.x_adv) != y)
