"""The Classifier interface: what an attack may do to a model, made explicit.

A classifier exposes some subset of :class:`Access` (labels, scores, gradients, internals).
Every public query method checks the access it needs, validates its input and counts one
query per sample, so black-box attacks provably touch nothing they should not and their
query use is measured, not estimated.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import torch
from torch import Tensor

from sparring.errors import AccessError, InputError, QueryBudgetExceeded


class Access(enum.Flag):
    """What a caller may ask of a classifier."""

    NONE = 0
    LABELS = enum.auto()
    SCORES = enum.auto()
    GRADIENTS = enum.auto()
    INTERNALS = enum.auto()
    ALL = LABELS | SCORES | GRADIENTS | INTERNALS


def describe_access(access: Access) -> str:
    """Human-readable list of flags, e.g. ``"labels, scores"``."""
    names = [f.name.lower() for f in Access if f.name and f in access and f not in (Access.NONE, Access.ALL)]
    return ", ".join(names) if names else "nothing"


def check_batch(x: Tensor, input_shape: Sequence[int], what: str = "input") -> Tensor:
    """Validate a batch ``[N, *input_shape]`` of finite floats and return it as float32."""
    if not isinstance(x, Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[1:]) != tuple(input_shape) or x.dim() != len(input_shape) + 1:
        raise InputError(
            f"{what} has shape {tuple(x.shape)}, but the model expects [N, {', '.join(map(str, input_shape))}]"
        )
    if not x.is_floating_point():
        x = x.float()
    if not torch.isfinite(x).all():
        raise InputError(f"{what} contains NaN or infinite values")
    return x


def check_labels(y: Tensor, n: int, num_classes: int, what: str = "y") -> Tensor:
    """Validate a ``[N]`` vector of class indices in ``[0, num_classes)`` and return it as long."""
    if not isinstance(y, Tensor) or tuple(y.shape) != (n,):
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise InputError(f"{what} must be a tensor of shape ({n},), got {shape}")
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise InputError(f"{what} must hold class indices, got fractional values")
    y = y.long()
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise InputError(f"{what} must hold class indices in [0, {num_classes - 1}]")
    return y


class Classifier:
    """A model seen through what an attacker may do to it.

    Subclasses implement the private ``_labels``, ``_scores``, ``_logits`` and ``_features``
    hooks that their access allows; the public methods add access checks, input validation
    and query counting.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        access: Access,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        if num_classes < 2:
            raise InputError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.input_shape: tuple[int, ...] = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.access = access
        self.bounds = (float(bounds[0]), float(bounds[1]))
        self._queries = 0

    # -- bookkeeping -------------------------------------------------------------------
    @property
    def queries(self) -> int:
        """Number of samples this classifier has been queried on so far."""
        return self._queries

    def reset_queries(self) -> None:
        """Set the query counter back to zero."""
        self._queries = 0

    def _count(self, n: int) -> None:
        self._queries += n

    def require(self, needed: Access, by: str) -> None:
        """Raise :class:`AccessError` unless this classifier grants ``needed``."""
        missing = needed & ~self.access
        if missing:
            raise AccessError(
                f"{by} needs {describe_access(missing)} access, but this classifier "
                f"only exposes {describe_access(self.access)}"
            )

    def _prepare(self, x: Tensor, needed: Access, by: str) -> Tensor:
        self.require(needed, by)
        x = check_batch(x, self.input_shape)
        self._count(int(x.shape[0]))
        return x

    # -- public queries ----------------------------------------------------------------
    def predict_labels(self, x: Tensor) -> Tensor:
        """Predicted class index per sample, shape ``[N]``."""
        return self._labels(self._prepare(x, Access.LABELS, "predict_labels"))

    def predict_scores(self, x: Tensor) -> Tensor:
        """Class probabilities per sample, shape ``[N, num_classes]``."""
        return self._scores(self._prepare(x, Access.SCORES, "predict_scores"))

    def logits(self, x: Tensor) -> Tensor:
        """Differentiable logits, shape ``[N, num_classes]`` (needs gradient access)."""
        return self._logits(self._prepare(x, Access.GRADIENTS, "logits"))

    def features(self, x: Tensor, layer: str) -> Tensor:
        """Activations of the named layer, flattened to ``[N, D]`` (needs internals)."""
        return self._features(self._prepare(x, Access.INTERNALS, "features"), layer)

    def restrict(self, access: Access) -> Classifier:
        """A view of this classifier that grants only ``access`` (intersected with ours)."""
        return RestrictedClassifier(self, access & self.access)

    # -- hooks for subclasses ----------------------------------------------------------
    def _labels(self, x: Tensor) -> Tensor:
        return self._scores(x).argmax(dim=1)

    def _scores(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.softmax(self._logits(x), dim=1)

    def _logits(self, x: Tensor) -> Tensor:
        raise AccessError(f"{type(self).__name__} cannot compute logits")

    def _features(self, x: Tensor, layer: str) -> Tensor:
        raise AccessError(f"{type(self).__name__} cannot expose layer features")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"access={describe_access(self.access)})"
        )


class ClassifierWrapper(Classifier):
    """Base of classifiers that forward to an inner classifier (views, budgets, defences).

    Forwarding goes through the inner classifier's public methods, so the inner one counts
    its queries too and its own access still applies.
    """

    def __init__(self, inner: Classifier, access: Access | None = None) -> None:
        super().__init__(
            input_shape=inner.input_shape,
            num_classes=inner.num_classes,
            access=inner.access if access is None else access,
            bounds=inner.bounds,
        )
        self.inner = inner

    def _labels(self, x: Tensor) -> Tensor:
        return self.inner.predict_labels(x)

    def _scores(self, x: Tensor) -> Tensor:
        return self.inner.predict_scores(x)

    def _logits(self, x: Tensor) -> Tensor:
        return self.inner.logits(x)

    def _features(self, x: Tensor, layer: str) -> Tensor:
        return self.inner.features(x, layer)


class RestrictedClassifier(ClassifierWrapper):
    """A view with less access; built by :meth:`Classifier.restrict`."""


class QueryBudget(ClassifierWrapper):
    """Wrap a classifier so that at most ``budget`` samples can be queried through it.

    A call that would go over the budget raises :class:`QueryBudgetExceeded` before it
    reaches the model.
    """

    def __init__(self, classifier: Classifier, budget: int) -> None:
        if budget < 0:
            raise InputError(f"query budget must be >= 0, got {budget}")
        super().__init__(classifier)
        self.budget = int(budget)

    @property
    def remaining(self) -> int:
        """Queries left in the budget."""
        return self.budget - self.queries

    def _count(self, n: int) -> None:
        if self.queries + n > self.budget:
            raise QueryBudgetExceeded(f"query budget of {self.budget} spent: {self.queries} used, {n} more requested")
        super()._count(n)
