from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

from sparring.data import Dataset
from sparring.errors import ConfigError
from sparring.models import Access, Classifier, InputTransform, TorchClassifier, TransformedClassifier, build


class Round(InputTransform):
    """Quantise to 0/1: zero gradient almost everywhere."""

    name = "round"

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.round(x)


class Shift(InputTransform):
    """Add uniform noise from the generator (randomized)."""

    name = "shift"
    randomized = True

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return x + 0.1 * torch.rand(x.shape, generator=generator)


class ImagesOnly(InputTransform):
    name = "images_only"

    def check_input_shape(self, input_shape: Sequence[int]) -> None:
        if len(input_shape) != 3:
            raise ConfigError("images only")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return x


def _grad(clf: Classifier, x: Tensor, y: Tensor) -> Tensor:
    xa = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(clf.logits(xa), y)
    (g,) = torch.autograd.grad(loss, xa)
    return g


def test_every_query_sees_the_transform_and_is_counted(
    digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    _, test = digits_split
    x = test.x[:50]
    wrapped = TransformedClassifier(digits_mlp, Round())
    before = digits_mlp.queries
    assert torch.equal(wrapped.predict_labels(x), digits_mlp.predict_labels(torch.round(x)))
    assert torch.allclose(wrapped.predict_scores(x), digits_mlp.predict_scores(torch.round(x)))
    assert torch.equal(wrapped.features(x, "penultimate"), digits_mlp.features(torch.round(x), "penultimate"))
    assert wrapped.queries == 150
    assert digits_mlp.queries - before == 300  # the inner model counted the wrapped queries and the direct ones
    assert wrapped.access == digits_mlp.access


def test_naive_gradient_is_honest_and_straight_through_is_identity(
    digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    _, test = digits_split
    x, y = test.x[:20], test.y[:20]
    wrapped = TransformedClassifier(digits_mlp, Round())
    assert float(_grad(wrapped, x, y).abs().max()) == 0.0  # rounding masks the gradient
    with wrapped.straight_through():
        bpda = _grad(wrapped, x, y)
        assert torch.equal(wrapped.logits(x), digits_mlp.logits(torch.round(x)))  # forward stays real
    assert torch.allclose(bpda, _grad(digits_mlp, torch.round(x), y))  # gradient at T(x), passed as-is
    assert float(bpda.abs().max()) > 0
    assert float(_grad(wrapped, x, y).abs().max()) == 0.0  # the context is left


def test_eot_averages_draws_and_counts_them(digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]) -> None:
    _, test = digits_split
    x = test.x[:10]
    wrapped = TransformedClassifier(digits_mlp, Shift(), seed=3)
    with wrapped.straight_through(eot_samples=4):
        logits = wrapped.logits(x)
    assert wrapped.queries == 40
    probs = torch.exp(logits)
    assert torch.allclose(probs.sum(1), torch.ones(10), atol=1e-5)  # log of averaged probabilities
    with pytest.raises(ConfigError, match="eot_samples"):
        with wrapped.straight_through(eot_samples=0):
            pass


def test_randomized_transform_repeats_with_its_seed(
    digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    _, test = digits_split
    x = test.x[:30]
    a, b = (TransformedClassifier(digits_mlp, Shift(), seed=1) for _ in range(2))
    first = a.predict_scores(x)
    assert torch.equal(first, b.predict_scores(x))
    assert not torch.equal(first, a.predict_scores(x))  # a fresh draw per query


def test_transform_sees_unit_range_whatever_the_bounds() -> None:
    model = build("mlp", (4,), 2, seed=0)
    inner = TorchClassifier(model, (4,), 2, bounds=(-1.0, 1.0))
    wrapped = TransformedClassifier(inner, Round())
    x = torch.tensor([[-1.0, -0.2, 0.2, 1.0]])
    assert torch.equal(wrapped.apply(x), torch.tensor([[-1.0, -1.0, 1.0, 1.0]]))


def test_transform_rejects_inputs_it_cannot_handle() -> None:
    inner = TorchClassifier(build("mlp", (4,), 2, seed=0), (4,), 2)
    with pytest.raises(ConfigError, match="images only"):
        TransformedClassifier(inner, ImagesOnly())
    labels_only = TransformedClassifier(inner.restrict(Access.LABELS), Round())
    assert labels_only.access == Access.LABELS
