"""Feature squeezing: detect adversarial inputs by how much squeezing changes the prediction.

Xu, Evans & Qi ("Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks", NDSS 2018) compare the model's softmax on an input with its softmax on
"squeezed" copies (reduced bit depth, median smoothing). Clean inputs barely move;
adversarial perturbations, tuned to the exact input, often do. The score is the largest
L1 distance over the squeezers, and the threshold is set on clean data for a target
false-positive rate (their MNIST choice: 1-bit depth and 2x2 median, 5 % FPR).

A detector is not a classifier wrapper here: the Classifier interface has no "rejected"
output, and mapping flagged inputs to some class would make accuracy figures mean
something else. Use :meth:`FeatureSqueezing.detect` in front of the model, and
:meth:`FeatureSqueezing.evaluate` with an attack's ``success`` mask to get the share of
adversarial examples that both fool the model and escape detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sparring.defenses.inference.transforms import parse_transform
from sparring.errors import ConfigError, InputError, check_fraction
from sparring.models import Access, Classifier, TransformedClassifier, check_batch


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


class FeatureSqueezing:
    """Feature-squeezing detector (Xu et al., NDSS 2018).

    ``squeezers`` are transform specs (see
    :func:`~sparring.defenses.inference.transforms.parse_transform`); the default is Xu et
    al.'s MNIST pair, 1-bit depth and 2x2 median. ``fpr`` is the false-positive rate the
    threshold is set for on the clean data given to :meth:`fit`. Needs score access.
    """

    def __init__(self, squeezers: Sequence[str] = ("bit_depth:1", "median:2"), fpr: float = 0.05) -> None:
        if isinstance(squeezers, str) or not isinstance(squeezers, Sequence) or not squeezers:
            raise ConfigError(f"squeezers must be a non-empty list of transform specs, got {squeezers!r}")
        for spec in squeezers:
            parse_transform(spec)  # validate early; built again in fit
        self.squeezers = tuple(squeezers)
        self.fpr = check_fraction("fpr", fpr)
        self.threshold: float | None = None
        self._views: list[Classifier] = []
        self._classifier: Classifier | None = None

    def fit(self, classifier: Classifier, clean_x: Tensor) -> FeatureSqueezing:
        """Remember ``classifier`` and set the threshold so that a share ``fpr`` of ``clean_x`` is flagged."""
        classifier.require(Access.SCORES, "FeatureSqueezing")
        clean_x = check_batch(clean_x, classifier.input_shape, "clean_x")
        if len(clean_x) == 0:
            raise InputError("FeatureSqueezing.fit needs at least one clean input")
        self._classifier = classifier
        self._views = [TransformedClassifier(classifier, parse_transform(s)) for s in self.squeezers]
        scores = self.score(clean_x)
        self.threshold = float(torch.quantile(scores, 1.0 - self.fpr, interpolation="higher"))
        return self

    def score(self, x: Tensor) -> Tensor:
        """Per-sample score: max over squeezers of the L1 distance between softmax outputs, shape ``[N]``."""
        if self._classifier is None:
            raise InputError("FeatureSqueezing is not fitted: call fit(classifier, clean_x) first")
        x = check_batch(x, self._classifier.input_shape)
        if len(x) == 0:
            return torch.zeros(0)
        p = self._classifier.predict_scores(x)
        dist = [(p - view.predict_scores(x)).abs().sum(dim=1) for view in self._views]
        return torch.stack(dist).amax(dim=0)

    def detect(self, x: Tensor) -> Tensor:
        """Boolean mask of inputs flagged as adversarial (score above the fitted threshold)."""
        scores = self.score(x)
        assert self.threshold is not None
        return scores > self.threshold

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

    def __repr__(self) -> str:
        return f"FeatureSqueezing(squeezers={self.squeezers!r}, fpr={self.fpr})"
