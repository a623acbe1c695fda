"""Output hardening (confidence masking): release less of what the model computes.

Each wrapper takes a classifier and returns a classifier with the same interface and less
access. A hardened deployment exposes only its outputs, so no wrapper grants gradients or
internals. Labels always come from the inner classifier unchanged, so hardening costs no
accuracy; what it removes is the score detail that membership inference and model
extraction feed on. The measures are those Shokri et al. evaluate against membership
inference ("Membership Inference Attacks Against Machine Learning Models", IEEE S&P 2017:
restrict the prediction vector to the top k classes, coarsen its precision, return labels
only) and the BSI lists as output hardening for AI systems.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparring.errors import ConfigError
from sparring.models import Access, Classifier, ClassifierWrapper

#: Names accepted by :func:`harden` (each optionally followed by ``:ARG``, see there).
HARDENING_NAMES = ("round", "top_k", "label_only")

_OUTPUT_ACCESS = Access.LABELS | Access.SCORES
_VALID_FORMS = "'round[:DECIMALS]' (default 2), 'top_k[:K]' (default 1), 'label_only'"


class _ScoreHardening(ClassifierWrapper):
    """Shared part of wrappers that release altered scores: labels and scores, nothing else."""

    def __init__(self, inner: Classifier) -> None:
        inner.require(Access.SCORES, type(self).__name__)
        super().__init__(inner, access=_OUTPUT_ACCESS)

    def _labels(self, x: Tensor) -> Tensor:
        if Access.LABELS in self.inner.access:
            return self.inner.predict_labels(x)
        return self.inner.predict_scores(x).argmax(dim=1)

    def _scores(self, x: Tensor) -> Tensor:
        return self._harden(self.inner.predict_scores(x))

    def _harden(self, scores: Tensor) -> Tensor:
        raise NotImplementedError


class RoundScores(_ScoreHardening):
    """Release class probabilities rounded to ``decimals`` decimal places.

    Coarsening the precision of the prediction vector is one of Shokri et al.'s mitigations
    (IEEE S&P 2017). Rounded rows need not sum to one, and small probabilities become 0.
    Labels are the inner classifier's (a rounded tie does not change them). Needs an inner
    classifier with score access; grants labels and scores only.
    """

    def __init__(self, inner: Classifier, decimals: int = 2) -> None:
        if isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0:
            raise ConfigError(f"decimals must be an integer >= 0, got {decimals!r}")
        super().__init__(inner)
        self.decimals = decimals

    def _harden(self, scores: Tensor) -> Tensor:
        return torch.round(scores, decimals=self.decimals)


class TopKScores(_ScoreHardening):
    """Release only the ``k`` largest class probabilities; all others are set to 0.

    The kept probabilities are not renormalised: they are the model's own values, so a row
    sums to at most one (Shokri et al.'s top-k restriction, IEEE S&P 2017). Labels are the
    inner classifier's. Needs an inner classifier with score access; grants labels and
    scores only.
    """

    def __init__(self, inner: Classifier, k: int = 1) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= inner.num_classes:
            raise ConfigError(f"k must be an integer in [1, {inner.num_classes}], got {k!r}")
        super().__init__(inner)
        self.k = k

    def _harden(self, scores: Tensor) -> Tensor:
        top = scores.topk(self.k, dim=1)
        return torch.zeros_like(scores).scatter(1, top.indices, top.values)


class LabelOnly(ClassifierWrapper):
    """Release the predicted label only (Shokri et al.'s extreme case, IEEE S&P 2017).

    Score-based attacks can no longer run (they get an :class:`~sparring.errors.AccessError`);
    label-only attacks still can. Needs an inner classifier with label access.
    """

    def __init__(self, inner: Classifier) -> None:
        inner.require(Access.LABELS, type(self).__name__)
        super().__init__(inner, access=Access.LABELS)


def _int_arg(name: str, text: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} in hardening spec {spec!r} must be an integer, got {text!r}") from None


def parse_hardening(spec: str) -> tuple[str, int | None]:
    """Split a hardening spec into its name and integer argument, checking both.

    ``"round:3"`` gives ``("round", 3)``, ``"round"`` gives ``("round", 2)``, ``"top_k"``
    gives ``("top_k", 1)``, ``"label_only"`` gives ``("label_only", None)``. Needs no
    classifier, so a config can be validated before any model exists; only the upper bound
    of ``k`` (the number of classes) is left to :func:`harden`. A bad spec raises
    :class:`~sparring.errors.ConfigError` naming the valid forms.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"hardening spec must be a string, got {type(spec).__name__}; valid forms: {_VALID_FORMS}")
    name, sep, arg = spec.strip().partition(":")
    name, arg = name.strip(), arg.strip()
    if name not in HARDENING_NAMES:
        raise ConfigError(f"unknown hardening {spec!r}; valid forms: {_VALID_FORMS}")
    if sep and not arg:
        raise ConfigError(f"hardening spec {spec!r} has an empty argument; valid forms: {_VALID_FORMS}")
    if name == "label_only":
        if sep:
            raise ConfigError(f"hardening 'label_only' takes no argument, got {spec!r}; valid forms: {_VALID_FORMS}")
        return name, None
    if name == "round":
        decimals = _int_arg("decimals", arg, spec) if sep else 2
        if decimals < 0:
            raise ConfigError(f"decimals in hardening spec {spec!r} must be >= 0")
        return name, decimals
    k = _int_arg("k", arg, spec) if sep else 1
    if k < 1:
        raise ConfigError(f"k in hardening spec {spec!r} must be >= 1")
    return name, k


def harden(classifier: Classifier, spec: str) -> Classifier:
    """Wrap ``classifier`` in the output hardening that ``spec`` names.

    Forms: ``"round:2"`` or ``"round"`` (:class:`RoundScores`, default 2 decimals),
    ``"top_k:3"`` or ``"top_k"`` (:class:`TopKScores`, default k = 1), ``"label_only"``
    (:class:`LabelOnly`). Anything else raises :class:`~sparring.errors.ConfigError` naming
    the valid forms (see :func:`parse_hardening`).
    """
    name, arg = parse_hardening(spec)
    if name == "round":
        assert arg is not None
        return RoundScores(classifier, arg)
    if name == "top_k":
        assert arg is not None
        return TopKScores(classifier, arg)
    return LabelOnly(classifier)
