"""Output hardening (confidence masking): release less of what the model computes.

Each defence's :meth:`~OutputHardening.wrap` takes a classifier and returns a classifier with
the same interface and less access. A hardened deployment exposes only its outputs, so no
wrapper grants gradients or internals. Labels always come from the inner classifier
unchanged, so hardening costs no accuracy; what it removes is the score detail that
membership inference and model extraction feed on. The measures are those Shokri et al.
evaluate against membership inference ("Membership Inference Attacks Against Machine
Learning Models", IEEE S&P 2017: restrict the prediction vector to the top k classes,
coarsen its precision, return labels only) and the BSI lists as output hardening for AI
systems.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor

from sparring.defenses.inference.reverse_sigmoid import reverse_sigmoid
from sparring.errors import ConfigError, check_nonnegative_int, check_positive, check_positive_int
from sparring.models import Access, Classifier, ClassifierWrapper
from sparring.params import Params, Registry

_OUTPUT_ACCESS = Access.LABELS | Access.SCORES


class HardenedClassifier(ClassifierWrapper):
    """A classifier that releases labels and ``harden(scores)`` of an inner one with score access."""

    def __init__(self, inner: Classifier, harden: Callable[[Tensor], Tensor], by: str) -> None:
        inner.require(Access.SCORES, by)
        super().__init__(inner, access=_OUTPUT_ACCESS)
        self.harden = harden

    def _labels(self, x: Tensor) -> Tensor:
        if Access.LABELS in self.inner.access:
            return self.inner.predict_labels(x)
        return self.inner.predict_scores(x).argmax(dim=1)

    def _scores(self, x: Tensor) -> Tensor:
        return self.harden(self.inner.predict_scores(x))


class OutputHardening(Params, ABC):
    """An inference defence that releases less: :meth:`wrap` returns the hardened classifier."""

    @abstractmethod
    def wrap(self, classifier: Classifier) -> Classifier:
        """``classifier`` behind this hardening."""


class RoundScores(OutputHardening):
    """Release class probabilities rounded to ``decimals`` decimal places.

    Coarsening the precision of the prediction vector is one of Shokri et al.'s mitigations
    (IEEE S&P 2017). Rounded rows need not sum to one, and small probabilities become 0.
    Labels are the inner classifier's (a rounded tie does not change them). Needs an inner
    classifier with score access; grants labels and scores only.
    """

    def __init__(self, decimals: int = 2) -> None:
        self.decimals = check_nonnegative_int("decimals", decimals)

    def wrap(self, classifier: Classifier) -> Classifier:
        return HardenedClassifier(classifier, lambda s: torch.round(s, decimals=self.decimals), type(self).__name__)


class TopKScores(OutputHardening):
    """Release only the ``k`` largest class probabilities; all others are set to 0.

    The kept probabilities are not renormalised: they are the model's own values, so a row
    sums to at most one (Shokri et al.'s top-k restriction, IEEE S&P 2017). Labels are the
    inner classifier's. Needs an inner classifier with score access; grants labels and
    scores only.
    """

    def __init__(self, k: int = 1) -> None:
        self.k = check_positive_int("k", k)

    def wrap(self, classifier: Classifier) -> Classifier:
        if self.k > classifier.num_classes:
            raise ConfigError(f"k must be an integer in [1, {classifier.num_classes}], got {self.k}")

        def top(scores: Tensor) -> Tensor:
            kept = scores.topk(self.k, dim=1)
            return torch.zeros_like(scores).scatter(1, kept.indices, kept.values)

        return HardenedClassifier(classifier, top, type(self).__name__)


class LabelOnly(OutputHardening):
    """Release the predicted label only (Shokri et al.'s extreme case, IEEE S&P 2017).

    Score-based attacks can no longer run (they get an :class:`~sparring.errors.AccessError`);
    label-only attacks still can. Needs an inner classifier with label access.
    """

    def __init__(self) -> None:
        pass

    def wrap(self, classifier: Classifier) -> Classifier:
        classifier.require(Access.LABELS, type(self).__name__)
        return ClassifierWrapper(classifier, access=Access.LABELS)


class ReverseSigmoid(OutputHardening):
    """Release reverse-sigmoid-perturbed probabilities (Lee et al., 2019) with the victim's own labels.

    ``beta`` scales the perturbation and ``gamma`` the logit inside the sigmoid; the defaults
    are ART's. Labels are the inner classifier's; the largest score stays on the victim's top
    class. Needs an inner classifier with score access; grants labels and scores only.
    """

    def __init__(self, beta: float = 1.0, gamma: float = 0.1) -> None:
        self.beta = check_positive("beta", beta)
        self.gamma = check_positive("gamma", gamma)

    def wrap(self, classifier: Classifier) -> Classifier:
        return HardenedClassifier(classifier, lambda s: reverse_sigmoid(s, self.beta, self.gamma), type(self).__name__)


#: Output hardenings by the name a config uses: ``round[:DECIMALS]``, ``top_k[:K]``, ``label_only``,
#: ``reverse_sigmoid[:BETA]``.
HARDENING: Registry[OutputHardening] = Registry("output hardening")
HARDENING.add("round", RoundScores, arg="decimals")
HARDENING.add("top_k", TopKScores, arg="k")
HARDENING.add("label_only", LabelOnly)
HARDENING.add("reverse_sigmoid", ReverseSigmoid, arg="beta")
HARDENING_NAMES = tuple(HARDENING)


def harden(classifier: Classifier, spec: str) -> Classifier:
    """Wrap ``classifier`` in the output hardening that ``spec`` names (see :data:`HARDENING`)."""
    return HARDENING.build(spec).wrap(classifier)
