"""Classifiers that transform every input before the model sees it.

Input transformations (bit-depth reduction, median smoothing, JPEG compression, random
noise) are a family of inference-time defences (Guo et al., "Countering Adversarial Images
using Input Transformations", ICLR 2018). The transforms themselves live in
:mod:`sparring.defenses.inference.transforms`; this module holds the interface they
implement and the wrapper that applies them, so that attacks (which may not import
defences) can recognise a transformed classifier and attack it adaptively.

The gradient a :class:`TransformedClassifier` gives is the honest one: autograd through
the transform. For a quantising transform it is zero almost everywhere, which is what
makes these defences look strong against a naive white-box attack (gradient masking,
Athalye, Carlini & Wagner, ICML 2018). :meth:`TransformedClassifier.straight_through`
switches to the backward-pass approximation (BPDA) and expectation over transformation
(EOT) that an adaptive attacker uses.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import Tensor

from sparring.errors import check_positive_int
from sparring.models.base import Classifier, ClassifierWrapper
from sparring.params import Params


class InputTransform(Params, ABC):
    """A map from a batch of inputs in ``[0, 1]`` to a batch of the same shape; an inference defence.

    ``randomized`` transforms draw from the ``generator`` they are given (the global
    generator when it is None) and take a ``seed`` parameter. ``name`` is the spec that
    rebuilds the transform, e.g. ``"jpeg:75"``. :meth:`wrap` puts it in front of a
    classifier, the shape every inference defence has.
    """

    randomized: ClassVar[bool] = False

    @property
    @abstractmethod
    def name(self) -> str:
        """The spec that rebuilds this transform, e.g. ``"jpeg:75"``."""

    @abstractmethod
    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Transform ``x`` (``[N, *input_shape]``, values in ``[0, 1]``)."""

    def check_input_shape(self, input_shape: Sequence[int]) -> None:
        """Raise :class:`~sparring.errors.ConfigError` if the transform cannot handle inputs of this shape."""
        return None  # element-wise transforms handle any shape

    def wrap(self, classifier: Classifier) -> TransformedClassifier:
        """``classifier`` behind this transform: same interface, every query transformed first."""
        return TransformedClassifier(classifier, self, seed=int(getattr(self, "seed", 0)))


class TransformedClassifier(ClassifierWrapper):
    """A classifier whose every query applies ``transform`` to the input first.

    Inputs are rescaled from the inner classifier's bounds to ``[0, 1]`` for the transform
    and back. Randomized transforms draw from a generator seeded with ``seed``, so a run
    repeats. Access is the inner classifier's; :meth:`logits` differentiates through the
    transform as it is (zero gradient for quantisers: no BPDA unless asked for, see
    :meth:`straight_through`), and :meth:`features` reads the transformed input's features.
    """

    def __init__(self, inner: Classifier, transform: InputTransform, seed: int = 0) -> None:
        transform.check_input_shape(inner.input_shape)
        super().__init__(inner)
        self.transform = transform
        self.seed = int(seed)
        self._generator = torch.Generator().manual_seed(self.seed)
        self._eot_samples = 0  # 0: honest gradient; k >= 1: straight-through with k EOT draws

    def apply(self, x: Tensor) -> Tensor:
        """The transformed input, in the classifier's bounds (draws from this classifier's generator)."""
        lo, hi = self.bounds
        scale = hi - lo
        if scale == 1.0 and lo == 0.0:
            return self.transform(x, self._generator)
        return self.transform((x - lo) / scale, self._generator) * scale + lo

    @contextmanager
    def straight_through(self, eot_samples: int = 1) -> Iterator[TransformedClassifier]:
        """Within this context, :meth:`logits` uses BPDA and EOT (Athalye et al., ICML 2018).

        The forward pass applies the real transform, the backward pass treats it as the
        identity (``x + (T(x) - x).detach()``); with ``eot_samples`` > 1 the logits are
        ``log`` of the class probabilities averaged over that many draws of a randomized
        transform (each draw is a counted query). Labels and scores are unaffected.
        """
        k = check_positive_int("eot_samples", eot_samples)
        previous, self._eot_samples = self._eot_samples, k
        try:
            yield self
        finally:
            self._eot_samples = previous

    def _labels(self, x: Tensor) -> Tensor:
        return self.inner.predict_labels(self.apply(x))

    def _scores(self, x: Tensor) -> Tensor:
        return self.inner.predict_scores(self.apply(x))

    def _logits(self, x: Tensor) -> Tensor:
        k = self._eot_samples
        if k == 0:
            return self.inner.logits(self.apply(x))
        if k == 1:
            return self.inner.logits(x + (self.apply(x.detach()) - x).detach())
        self._count((k - 1) * len(x))  # k draws per sample, one counted by the public call
        xs = x.repeat(k, *([1] * (x.dim() - 1)))
        logits = self.inner.logits(xs + (self.apply(xs.detach()) - xs).detach())
        log_p = torch.log_softmax(logits, dim=1).reshape(k, len(x), -1)
        return torch.logsumexp(log_p, dim=0) - math.log(k)

    def _features(self, x: Tensor, layer: str) -> Tensor:
        return self.inner.features(self.apply(x), layer)

    def __repr__(self) -> str:
        return f"TransformedClassifier({self.inner!r}, {self.transform!r}, seed={self.seed})"
