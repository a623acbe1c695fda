"""The evasion verb: ``attack.run(classifier, x, y, target=None) -> EvasionResult``."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from sparring.attacks.evasion.norms import Norm
from sparring.errors import InputError
from sparring.models import Access, Classifier, check_batch, check_labels
from sparring.params import Params


@dataclass
class EvasionResult:
    """Outcome of an evasion attack on a batch.

    ``success[i]`` is True when ``x_adv[i]`` is misclassified (untargeted) or classified as
    ``target[i]`` (targeted); a sample the model already gets wrong counts as a success
    (attacks that stop early return it unchanged). ``queries`` counts samples sent to the
    model, ``norms`` the perturbation size per sample in the attack's norm.
    ``sample_queries[i]``, when the attack tracks it (black-box attacks do), is the number
    of queries spent on sample ``i`` up to its first success (or in all, if it never
    succeeded); :func:`success_by_queries` turns it into a success-vs-queries curve.
    """

    x_adv: Tensor
    success: Tensor
    queries: int
    norms: Tensor
    seconds: float
    sample_queries: Tensor | None = None

    @property
    def success_rate(self) -> float:
        """Share of samples on which the attack succeeded."""
        return float(self.success.float().mean()) if len(self.success) else 0.0

    @property
    def robust_accuracy(self) -> float:
        """Share of samples still classified correctly (untargeted attacks)."""
        return 1.0 - self.success_rate


class EvasionAttack(Params, ABC):
    """Base of evasion attacks; subclasses implement :meth:`_run`.

    ``requires`` names the access an attack needs; :meth:`run` checks it before the first
    query and raises :class:`~sparring.errors.AccessError` naming what is missing. Parameters,
    ``repr`` and ``clone`` come from the constructor (:class:`~sparring.params.Params`).
    """

    requires: ClassVar[Access] = Access.GRADIENTS
    norm: Norm

    def run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None = None) -> EvasionResult:
        """Attack ``x`` (true labels ``y``); if ``target`` is given, aim for those classes."""
        x, y, target = self._validate(classifier, x, y, target)
        q0, t0 = classifier.queries, time.perf_counter()
        self._sample_queries: Tensor | None = None
        x_adv, success = self._run(classifier, x, y, target)
        sample_queries, self._sample_queries = self._sample_queries, None
        return EvasionResult(
            x_adv=x_adv.detach(),
            success=success,
            queries=classifier.queries - q0,
            norms=self.norm.norm((x_adv - x).detach()),
            seconds=time.perf_counter() - t0,
            sample_queries=sample_queries,
        )

    def _validate(
        self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Check access first (before any query), then shapes, labels and bounds."""
        classifier.require(self.requires, type(self).__name__)
        x = check_batch(x, classifier.input_shape).detach()
        y = check_labels(y, len(x), classifier.num_classes)
        if target is not None:
            target = check_labels(target, len(x), classifier.num_classes, "target")
        lo, hi = classifier.bounds
        if len(x) and (float(x.min()) < lo - 1e-6 or float(x.max()) > hi + 1e-6):
            raise InputError(f"inputs lie outside the classifier's bounds [{lo}, {hi}]")
        return x, y, target

    def run_details(self) -> dict[str, Any]:
        """What the attack reports about its last run beyond the result (default: nothing)."""
        return {}

    @abstractmethod
    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        """Return ``(x_adv, success)`` for validated inputs.

        An attack that counts queries per sample stores them in ``self._sample_queries``
        (a ``[N]`` long tensor) before returning; :meth:`run` moves them into the result.
        """


def is_success(pred: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
    """Untargeted: ``pred != y``; targeted: ``pred == target``."""
    return pred != y if target is None else pred == target


def success_by_queries(result: EvasionResult, budgets: list[int]) -> list[float]:
    """Success rate when each sample may use at most ``b`` queries, for each ``b`` in ``budgets``.

    Needs ``result.sample_queries``; a sample counts as broken within ``b`` when it
    succeeded and its first success came after at most ``b`` queries.
    """
    if result.sample_queries is None:
        raise InputError("this attack did not record queries per sample")
    n = max(1, len(result.success))
    return [float((result.success & (result.sample_queries <= b)).sum()) / n for b in budgets]
