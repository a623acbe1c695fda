"""STRIP: flag trojaned inputs by how little blending them with clean images changes the prediction.

Gao, Xu, Wang, Chen, Ranasinghe & Nepal ("STRIP: A Defence Against Trojan Attacks on Deep
Neural Networks", ACSAC 2019) superimpose each incoming input with randomly drawn clean
images. A clean input's prediction scatters over the classes when another image is blended
in (high entropy); an input carrying a trigger keeps going to the trigger's target (low
entropy), because the trigger dominates whatever it is blended with. The score is the mean
Shannon entropy of the softmax over the overlays, and the threshold is set on clean inputs
for a chosen false-rejection rate (FRR), as in the paper.

Superimposition is the authors' one by default (``mode="add"``: the two images are summed
and clipped to the classifier's bounds, so a saturated patch trigger survives intact);
``mode="blend"`` mixes them linearly with weight ``alpha`` on the input, as some
re-implementations do (TrojanZoo). On a BadNets-backdoored digits CNN the sum catches far
more triggered inputs at 5 % FRR than a 0.5 blend (0.99 against 0.41 measured).

Like :class:`~sparring.defenses.inference.FeatureSqueezing` this is a detector used in
front of the model (:meth:`STRIP.detect`), not a classifier wrapper. The false-rejection
threshold (:func:`frr_threshold`, :class:`FRRDetector`) is shared with the random-masking
detector (:mod:`sparring.defenses.inference.masking`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

import torch
from torch import Tensor

from sparring.errors import ConfigError, InputError, check_fraction, check_positive_int
from sparring.models import Access, Classifier, check_batch

#: Ways of superimposing an overlay on an input.
MODES = ("add", "blend")


def frr_threshold(clean_scores: Tensor, frr: float) -> float:
    """The threshold below which at most a share ``frr`` of ``clean_scores`` fall.

    It is the ``frr`` lower quantile of the clean scores, so flagging ``score < threshold``
    rejects no more than ``frr`` of the clean inputs it was set on (fewer when scores tie).
    """
    if clean_scores.dim() != 1 or len(clean_scores) == 0:
        raise InputError(f"clean_scores must be a non-empty [N] tensor, got shape {tuple(clean_scores.shape)}")
    return float(torch.quantile(clean_scores.float(), check_fraction("frr", frr), interpolation="lower"))


class FRRDetector(ABC):
    """Base of input detectors whose low scores are suspicious, thresholded at a false-rejection rate.

    Subclasses implement :meth:`_remember` and :meth:`score`; :meth:`fit` checks the clean
    inputs and calibrates on their scores, and :meth:`detect` flags inputs scoring below the
    threshold.
    """

    def __init__(self, frr: float, seed: int) -> None:
        self.frr = check_fraction("frr", frr)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        self.threshold: float | None = None
        self._classifier: Classifier | None = None

    def fit(self, classifier: Classifier, clean_x: Tensor) -> Self:
        """Keep what scoring needs from ``clean_x`` and set the threshold at the FRR on ``clean_x``."""
        name = type(self).__name__
        classifier.require(Access.SCORES, name)
        clean_x = check_batch(clean_x, classifier.input_shape, "clean_x")
        if len(clean_x) < 2:
            raise InputError(f"{name}.fit needs at least 2 clean inputs, got {len(clean_x)}")
        self._classifier = classifier
        self._remember(clean_x)
        self.calibrate(self.score(clean_x))
        return self

    @abstractmethod
    def _remember(self, clean_x: Tensor) -> None:
        """Keep what :meth:`score` needs from the clean inputs (overlay pool, fill value)."""

    @abstractmethod
    def score(self, x: Tensor) -> Tensor:
        """Per-sample score, shape ``[N]``; low means suspicious."""

    def calibrate(self, clean_scores: Tensor) -> None:
        """Set :attr:`threshold` so that a share ``frr`` of ``clean_scores`` would be flagged."""
        self.threshold = frr_threshold(clean_scores, self.frr)

    def detect(self, x: Tensor) -> Tensor:
        """Boolean mask of inputs flagged as triggered (score below the fitted threshold)."""
        scores = self.score(x)
        if self.threshold is None:
            raise InputError(f"{type(self).__name__} is not fitted: call fit(classifier, clean_x) first")
        return scores < self.threshold


class STRIP(FRRDetector):
    """STRIP trojaned-input detector (Gao et al., ACSAC 2019).

    Each input ``x`` is superimposed ``n_overlays`` times with overlays drawn (with ``seed``)
    from the clean inputs given to :meth:`fit`: ``clip(x + overlay)`` (``mode="add"``) or
    ``alpha * x + (1 - alpha) * overlay`` (``mode="blend"``); the
    score is the mean prediction entropy (in nats). Inputs whose score is below the
    threshold are flagged; the threshold flags a share ``frr`` of the clean inputs.
    Needs score access.
    """

    def __init__(
        self, n_overlays: int = 16, mode: str = "add", alpha: float = 0.5, frr: float = 0.05, seed: int = 0
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.n_overlays = check_positive_int("n_overlays", n_overlays)
        alpha = check_fraction("alpha", alpha)
        if not 0.0 < alpha < 1.0:
            raise ConfigError(f"alpha must lie strictly between 0 and 1, got {alpha}")
        self.alpha = alpha
        super().__init__(frr, seed)
        self._pool: Tensor | None = None

    def _remember(self, clean_x: Tensor) -> None:
        """The clean inputs are the overlay pool."""
        self._pool = clean_x

    def score(self, x: Tensor) -> Tensor:
        """Per-sample mean entropy of the predictions on superimposed copies, shape ``[N]`` (low = suspicious)."""
        if self._classifier is None or self._pool is None:
            raise InputError("STRIP is not fitted: call fit(classifier, clean_x) first")
        x = check_batch(x, self._classifier.input_shape)
        if len(x) == 0:
            return torch.zeros(0)
        g = torch.Generator().manual_seed(self.seed)
        total = torch.zeros(len(x))
        low, high = self._classifier.bounds
        for _ in range(self.n_overlays):
            overlay = self._pool[torch.randint(len(self._pool), (len(x),), generator=g)]
            if self.mode == "add":
                blended = (x + overlay).clamp(low, high)
            else:
                blended = self.alpha * x + (1.0 - self.alpha) * overlay
            p = self._classifier.predict_scores(blended)
            total += -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)
        return total / self.n_overlays

    def __repr__(self) -> str:
        return (
            f"STRIP(n_overlays={self.n_overlays}, mode={self.mode!r}, alpha={self.alpha}, "
            f"frr={self.frr}, seed={self.seed})"
        )
