"""The one shape of an input detector: fit on clean inputs, score, flag at a chosen clean rejection rate.

Feature squeezing (Xu et al., NDSS 2018) flags adversarial examples, STRIP (Gao et al.,
ACSAC 2019) and random masking flag inputs that carry a backdoor trigger; the gateway's
query monitors will flag query streams. All of them score an input, and all set their
threshold on clean data so that a chosen share of clean inputs is flagged: the
false-positive rate of an adversarial-example detector, the false-rejection rate (FRR) of a
trigger filter. A detector is used in front of a model, not as a classifier wrapper: the
Classifier interface has no "rejected" output, and mapping a flagged input to some class
would make accuracy figures mean something else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Self

import torch
from torch import Tensor

from sparring.errors import InputError, check_fraction
from sparring.models import Access, Classifier, check_batch
from sparring.params import Params


def threshold_at(clean_scores: Tensor, rate: float, low_is_suspicious: bool) -> float:
    """The threshold that flags at most a share ``rate`` of ``clean_scores``.

    Low-is-suspicious detectors flag ``score < threshold`` with the ``rate`` lower quantile;
    high-is-suspicious ones flag ``score > threshold`` with the ``1 - rate`` upper quantile.
    Either way no more than ``rate`` of the clean inputs are flagged (fewer when scores tie).
    """
    if clean_scores.dim() != 1 or len(clean_scores) == 0:
        raise InputError(f"clean_scores must be a non-empty [N] tensor, got shape {tuple(clean_scores.shape)}")
    rate = check_fraction("rate", rate)
    scores = clean_scores.float()
    if low_is_suspicious:
        return float(torch.quantile(scores, rate, interpolation="lower"))
    return float(torch.quantile(scores, 1.0 - rate, interpolation="higher"))


class Detector(Params, ABC):
    """Base of input detectors: :meth:`fit`, :meth:`score`, :meth:`detect`.

    Subclasses implement :meth:`score` (and :meth:`_remember`, to keep what scoring needs
    from the clean inputs); they name the constructor parameter that holds the clean
    rejection rate in ``rate_param`` (``"fpr"`` or ``"frr"``) and say whether low scores are
    the suspicious ones. ``threshold`` is set by :meth:`fit` (or :meth:`calibrate`).
    """

    requires: ClassVar[Access] = Access.SCORES
    rate_param: ClassVar[str] = "fpr"
    low_is_suspicious: ClassVar[bool] = False
    min_clean: ClassVar[int] = 1
    threshold: float | None = None
    _classifier: Classifier | None = None

    @property
    def rate(self) -> float:
        """The share of clean inputs the threshold flags (the detector's FPR or FRR parameter)."""
        return float(getattr(self, self.rate_param))

    def fit(self, classifier: Classifier, clean_x: Tensor) -> Self:
        """Keep ``classifier`` and what scoring needs from ``clean_x``; set the threshold on ``clean_x``."""
        name = type(self).__name__
        classifier.require(self.requires, name)
        clean_x = check_batch(clean_x, classifier.input_shape, "clean_x")
        if len(clean_x) < self.min_clean:
            raise InputError(f"{name}.fit needs at least {self.min_clean} clean input(s), got {len(clean_x)}")
        self._classifier = classifier
        self._remember(clean_x)
        self.calibrate(self.score(clean_x))
        return self

    def _remember(self, clean_x: Tensor) -> None:
        """Keep what :meth:`score` needs from the clean inputs (an overlay pool, a fill value)."""

    def _fitted(self) -> Classifier:
        if self._classifier is None:
            raise InputError(f"{type(self).__name__} is not fitted: call fit(classifier, clean_x) first")
        return self._classifier

    @abstractmethod
    def score(self, x: Tensor) -> Tensor:
        """Per-sample score, shape ``[N]``."""

    def calibrate(self, clean_scores: Tensor) -> None:
        """Set :attr:`threshold` so that a share :attr:`rate` of ``clean_scores`` would be flagged."""
        self.threshold = threshold_at(clean_scores, self.rate, self.low_is_suspicious)

    def detect(self, x: Tensor) -> Tensor:
        """Boolean mask of flagged inputs."""
        scores = self.score(x)
        if self.threshold is None:
            raise InputError(f"{type(self).__name__} is not fitted: call fit(classifier, clean_x) first")
        return scores < self.threshold if self.low_is_suspicious else scores > self.threshold
