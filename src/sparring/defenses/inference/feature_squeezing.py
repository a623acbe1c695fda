"""Feature squeezing: detect adversarial inputs by how much squeezing changes the prediction.

Xu, Evans & Qi ("Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks", NDSS 2018) compare the model's softmax on an input with its softmax on
"squeezed" copies (reduced bit depth, median smoothing). Clean inputs barely move;
adversarial perturbations, tuned to the exact input, often do. The score is the largest
L1 distance over the squeezers, and the threshold is set on clean data for a target
false-positive rate (their MNIST choice: 1-bit depth and 2x2 median, 5 % FPR).

Like every :class:`~sparring.defenses.inference.detector.Detector` it is used in front of
the model (:meth:`FeatureSqueezing.detect`), not as a classifier wrapper;
:meth:`FeatureSqueezing.evaluate` with an attack's ``success`` mask gives the share of
adversarial examples that both fool the model and escape detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sparring.defenses.inference.detector import Detector
from sparring.defenses.inference.transforms import parse_transform
from sparring.errors import ConfigError, InputError, check_fraction
from sparring.models import Classifier, check_batch


@dataclass
class SqueezingResult:
    """Detection figures of a fitted :class:`FeatureSqueezing` on adversarial and clean inputs.

    ``detection_rate`` is the share of adversarial inputs flagged, ``false_positive_rate``
    the share of clean inputs flagged; ``undetected_success_rate`` (when the attack's
    ``success`` mask was given) the share of adversarial inputs that fool the model and are
    not flagged, and ``detection_rate_successful`` the detection rate among those that fool
    the model (Xu et al. report this one).
    """

    threshold: float
    detection_rate: float
    false_positive_rate: float
    adv_scores: Tensor
    clean_scores: Tensor
    undetected_success_rate: float | None = None
    detection_rate_successful: float | None = None


class FeatureSqueezing(Detector):
    """Feature-squeezing detector (Xu et al., NDSS 2018).

    ``squeezers`` are transform specs (see
    :func:`~sparring.defenses.inference.transforms.parse_transform`); the default is Xu et
    al.'s MNIST pair, 1-bit depth and 2x2 median. ``fpr`` is the false-positive rate the
    threshold is set for on the clean data given to :meth:`fit`. Needs score access.
    """

    _views: list[Classifier] = []  # noqa: RUF012 - replaced, never mutated

    def __init__(self, squeezers: Sequence[str] = ("bit_depth:1", "median:2"), fpr: float = 0.05) -> None:
        if isinstance(squeezers, str) or not isinstance(squeezers, Sequence) or not squeezers:
            raise ConfigError(f"squeezers must be a non-empty list of transform specs, got {squeezers!r}")
        for spec in squeezers:
            parse_transform(spec)  # validate early; built again in fit
        self.squeezers = tuple(squeezers)
        self.fpr = check_fraction("fpr", fpr)

    def _remember(self, clean_x: Tensor) -> None:
        """One view of the classifier per squeezer."""
        self._views = [parse_transform(s).wrap(self._fitted()) for s in self.squeezers]

    def score(self, x: Tensor) -> Tensor:
        """Per-sample score: max over squeezers of the L1 distance between softmax outputs, shape ``[N]``."""
        classifier = self._fitted()
        x = check_batch(x, classifier.input_shape)
        if len(x) == 0:
            return torch.zeros(0)
        p = classifier.predict_scores(x)
        dist = [(p - view.predict_scores(x)).abs().sum(dim=1) for view in self._views]
        return torch.stack(dist).amax(dim=0)

    def evaluate(self, x_adv: Tensor, x_clean: Tensor, success: Tensor | None = None) -> SqueezingResult:
        """Detection rate on ``x_adv`` and false-positive rate on ``x_clean`` (held out from :meth:`fit`).

        ``success`` (an attack's per-sample success mask for ``x_adv``) adds the rate of
        undetected successful adversarial examples and the detection rate among successful ones.
        """
        adv, clean = self.score(x_adv), self.score(x_clean)
        assert self.threshold is not None
        flagged, false_pos = adv > self.threshold, clean > self.threshold
        result = SqueezingResult(
            threshold=self.threshold,
            detection_rate=float(flagged.float().mean()) if len(adv) else 0.0,
            false_positive_rate=float(false_pos.float().mean()) if len(clean) else 0.0,
            adv_scores=adv,
            clean_scores=clean,
        )
        if success is not None:
            if not isinstance(success, Tensor) or tuple(success.shape) != (len(adv),):
                raise InputError(f"success must be a bool tensor of shape ({len(adv)},)")
            fooled = success.bool()
            result.undetected_success_rate = float((fooled & ~flagged).float().mean()) if len(adv) else 0.0
            n_fooled = int(fooled.sum())
            result.detection_rate_successful = float(flagged[fooled].float().mean()) if n_fooled else 0.0
        return result
