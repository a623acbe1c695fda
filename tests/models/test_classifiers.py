from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from sparring.data import Dataset
from sparring.errors import AccessError, InputError, QueryBudgetExceeded
from sparring.models import Access, QueryBudget, SklearnClassifier, TorchClassifier, build


def test_torch_classifier_is_accurate_and_counts_queries(
    digits_cnn: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    _, test = digits_split
    digits_cnn.reset_queries()
    acc = float((digits_cnn.predict_labels(test.x) == test.y).float().mean())
    assert acc > 0.9
    assert digits_cnn.queries == len(test)
    scores = digits_cnn.predict_scores(test.x[:5])
    assert torch.allclose(scores.sum(1), torch.ones(5), atol=1e-5)
    assert digits_cnn.queries == len(test) + 5


def test_logits_give_input_gradients_without_touching_weights(digits_cnn: TorchClassifier) -> None:
    x = torch.rand(3, 1, 8, 8, requires_grad=True)
    digits_cnn.logits(x).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in digits_cnn.model.parameters())
    assert not digits_cnn.model.training


def test_features_of_named_layer(digits_cnn: TorchClassifier) -> None:
    f = digits_cnn.features(torch.rand(4, 1, 8, 8), "penultimate")
    assert f.shape == (4, 128)
    with pytest.raises(InputError, match="no layer named"):
        digits_cnn.features(torch.rand(1, 1, 8, 8), "nope")


def test_restrict_removes_access_and_names_what_is_missing(digits_cnn: TorchClassifier) -> None:
    view = digits_cnn.restrict(Access.LABELS)
    assert view.predict_labels(torch.rand(2, 1, 8, 8)).shape == (2,)
    with pytest.raises(AccessError, match="scores"):
        view.predict_scores(torch.rand(2, 1, 8, 8))
    with pytest.raises(AccessError, match="gradients"):
        view.logits(torch.rand(2, 1, 8, 8))
    # a view can never widen access
    assert digits_cnn.restrict(Access.LABELS).restrict(Access.ALL).access == Access.LABELS


def test_query_budget_stops_before_reaching_the_model(digits_cnn: TorchClassifier) -> None:
    budget = QueryBudget(digits_cnn, 10)
    budget.predict_labels(torch.rand(6, 1, 8, 8))
    assert budget.remaining == 4
    before = digits_cnn.queries
    with pytest.raises(QueryBudgetExceeded, match="budget of 10"):
        budget.predict_labels(torch.rand(5, 1, 8, 8))
    assert digits_cnn.queries == before


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(2, 1, 9, 8), "shape"),
        (torch.full((2, 1, 8, 8), float("nan")), "NaN"),
        (np.zeros((2, 1, 8, 8)), "torch.Tensor"),
    ],
)
def test_bad_input_is_rejected(digits_cnn: TorchClassifier, x: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        digits_cnn.predict_labels(x)  # type: ignore[arg-type]


def test_sklearn_classifier_scores_and_labels(digits_split: tuple[Dataset, Dataset]) -> None:
    train, test = digits_split
    est = LogisticRegression(max_iter=300).fit(train.x.flatten(1).numpy(), train.y.numpy())
    clf = SklearnClassifier(est, train.input_shape)
    assert clf.access == Access.LABELS | Access.SCORES
    acc = float((clf.predict_labels(test.x) == test.y).float().mean())
    assert acc > 0.9
    assert clf.predict_scores(test.x[:3]).shape == (3, 10)
    with pytest.raises(AccessError):
        clf.logits(test.x[:1])


def test_sklearn_classifier_rejects_mismatched_shape(digits_split: tuple[Dataset, Dataset]) -> None:
    train, _ = digits_split
    est = LogisticRegression(max_iter=50).fit(train.x.flatten(1).numpy()[:, :10], train.y.numpy())
    with pytest.raises(InputError, match="expects 10 features"):
        SklearnClassifier(est, train.input_shape)


def test_torch_classifier_rejects_wrong_output_width() -> None:
    model = build("mlp", (4,), 3, seed=0)
    clf = TorchClassifier(model, (4,), 5)
    with pytest.raises(InputError, match=r"expected \[N, 5\]"):
        clf.predict_labels(torch.rand(2, 4))


class _ViewNet(torch.nn.Module):
    """A CNN whose ``view`` needs the default memory layout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(torch.relu(self.conv1(x)))
        return self.fc(h.view(len(x), -1))  # view fails on channels-last activations


def test_channels_last_layout_is_exact_and_follows_weight_updates() -> None:
    torch.manual_seed(0)
    model = build("small_cnn", (1, 8, 8), 10, seed=0)
    assert TorchClassifier(model, (1, 8, 8), 10)._channels_last is False  # the module's own layout by default
    clf = TorchClassifier(model, (1, 8, 8), 10, channels_last=True)
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(clf.logits(x), expected, atol=1e-5)
    assert clf._channels_last is True
    xa = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(clf.logits(xa).sum(), xa)
    xb = x.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(model(xb).sum(), xb)
    assert torch.allclose(g, g_ref, atol=1e-5)
    with torch.no_grad():  # an in-place update, as an optimiser step makes it
        next(model.parameters()).add_(0.5)
        updated = model(x)
    assert torch.allclose(clf.logits(x), updated, atol=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_layout_sensitive_model_keeps_its_own_layout() -> None:
    torch.manual_seed(0)
    model = _ViewNet().eval()
    clf = TorchClassifier(model, (1, 8, 8), 10, channels_last=True)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(clf.logits(x), model(x), atol=1e-6)
    assert clf._channels_last is False


def test_first_query_for_features_returns_one_row_per_input() -> None:
    """The layout check on a fresh classifier runs the module too; its activations must not leak into features."""
    model = build("small_cnn", (1, 8, 8), 10, seed=0)
    x = torch.rand(5, 1, 8, 8)
    fresh = TorchClassifier(model, (1, 8, 8), 10, channels_last=True).features(x, "penultimate")
    used = TorchClassifier(model, (1, 8, 8), 10, channels_last=True)
    used.logits(x)
    assert fresh.shape[0] == 5 and torch.allclose(fresh, used.features(x, "penultimate"), atol=1e-5)
