"""Square Attack (scores only): lowers accuracy, respects its budget, runs on any score model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier

from sparring.attacks.evasion import Square, success_by_queries
from sparring.attacks.evasion.square import p_schedule
from sparring.data import Dataset, breast_cancer
from sparring.errors import AccessError, ConfigError
from sparring.metrics import accuracy
from sparring.models import Access, OnnxClassifier, SklearnClassifier, TorchClassifier, export_onnx

N = 60


@pytest.fixture(scope="module")
def batch(digits_split: tuple[Dataset, Dataset]) -> tuple[torch.Tensor, torch.Tensor]:
    _, test = digits_split
    return test.x[:N], test.y[:N]


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.15), ("l2", 1.2)])
def test_lowers_accuracy_on_a_scores_only_view(
    digits_cnn: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], norm: str, eps: float
) -> None:
    x, y = batch
    view = digits_cnn.restrict(Access.SCORES)
    result = Square(norm, eps, max_queries=300, seed=0).run(view, x, y)
    clean = accuracy(digits_cnn, x, y)
    assert clean > 0.9
    assert result.robust_accuracy < clean - 0.4
    assert accuracy(digits_cnn, result.x_adv, y) == pytest.approx(result.robust_accuracy)
    assert bool((result.norms <= eps * (1 + 1e-5) + 1e-6).all())
    assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0
    # per-sample queries: within the budget and adding up to what the model counted
    assert result.sample_queries is not None
    assert int(result.sample_queries.max()) <= 300
    assert int(result.sample_queries.sum()) == result.queries == view.queries
    # early stop: successful samples spent fewer than the full budget on average
    assert float(result.sample_queries[result.success].float().mean()) < 150


def test_success_by_queries_curve(digits_cnn: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    result = Square("linf", 0.12, max_queries=200).run(digits_cnn.restrict(Access.SCORES), x, y)
    curve = success_by_queries(result, [1, 10, 50, 200])
    assert curve == sorted(curve)
    assert curve[0] == pytest.approx(1 - accuracy(digits_cnn, x, y))  # only clean mistakes at 1 query
    assert curve[-1] == pytest.approx(result.success_rate) and curve[-1] > curve[0] + 0.3


def test_targeted(digits_cnn: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    target = (y + 1) % 10
    result = Square("linf", 0.25, max_queries=300).run(digits_cnn.restrict(Access.SCORES), x, y, target=target)
    pred = digits_cnn.predict_labels(result.x_adv)
    assert torch.equal(result.success, pred == target)
    assert result.success_rate > 0.5


def test_seed_repeats_and_matters(digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    view = digits_mlp.restrict(Access.SCORES)
    a = Square("l2", 1.0, max_queries=100, seed=3).run(view, x, y)
    b = Square("l2", 1.0, max_queries=100, seed=3).run(view, x, y)
    c = Square("l2", 1.0, max_queries=100, seed=4).run(view, x, y)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.sample_queries, b.sample_queries)  # type: ignore[arg-type]
    assert not torch.equal(a.x_adv, c.x_adv)


def test_needs_scores(digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    labels_only = digits_mlp.restrict(Access.LABELS)
    with pytest.raises(AccessError, match="scores"):
        Square().run(labels_only, x, y)
    assert labels_only.queries == 0


def test_runs_on_a_sklearn_model() -> None:
    data = breast_cancer()
    train, test = data.split(0.3, seed=0)
    gb = GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0).fit(train.x.numpy(), train.y.numpy())
    clf = SklearnClassifier(gb, train.input_shape)
    x, y = test.x[:50], test.y[:50]
    assert float(x.min()) >= 0 and float(x.max()) <= 1  # min-max scaled, so bounds (0, 1) hold
    clean = float((clf.predict_labels(x) == y).float().mean())
    result = Square("linf", 0.1, max_queries=200).run(clf, x, y)
    assert clean > 0.85
    assert result.robust_accuracy < clean - 0.3
    assert torch.equal(result.success, clf.predict_labels(result.x_adv) != y)


def test_runs_on_an_onnx_model(
    digits_mlp: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    x, y = batch
    path = export_onnx(digits_mlp.model, (1, 8, 8), tmp_path / "mlp.onnx")
    onnx = OnnxClassifier(path, (1, 8, 8), 10)
    torch_result = Square("linf", 0.15, max_queries=150).run(digits_mlp.restrict(Access.SCORES), x, y)
    onnx_result = Square("linf", 0.15, max_queries=150).run(onnx, x, y)
    assert onnx_result.robust_accuracy < accuracy(digits_mlp, x, y) - 0.4
    assert abs(onnx_result.robust_accuracy - torch_result.robust_accuracy) <= 0.05  # same model, float noise


def test_p_schedule_and_config_errors() -> None:
    assert p_schedule(0.8, 0, 1000) == 0.8
    assert p_schedule(0.8, 3, 1000) == 0.4  # after 0.1 % of the budget: halved
    assert p_schedule(0.8, 6, 1000) == 0.2  # after 0.5 %: quartered
    assert p_schedule(0.8, 1000, 1000) == pytest.approx(0.8 / 512)
    values = [p_schedule(0.8, i, 1000) for i in range(1001)]
    assert values == sorted(values, reverse=True)
    for kwargs in ({"p_init": 0.0}, {"p_init": 1.5}, {"loss": "ce"}, {"max_queries": 0}, {"eps": -1.0}):
        with pytest.raises(ConfigError):
            Square(**kwargs)


def test_median_queries_is_absent_when_nothing_succeeded(
    digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    from sparring.attacks.evasion.curve import security_curve

    _, test = digits_split
    right = digits_mlp.predict_labels(test.x[:40]) == test.y[:40]
    x, y = test.x[:40][right][:10], test.y[:40][right][:10]  # nothing is broken before the attack starts
    curve = security_curve(lambda e: Square(eps=e, max_queries=20, seed=0), digits_mlp, x, y, [1e-6])
    assert curve.points[0].robust_accuracy == 1.0
    assert curve.points[0].median_queries is None  # "—" in the report, never "0 queries"
