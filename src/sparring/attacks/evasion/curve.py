"""Security evaluation curves: robust accuracy as the attacker's budget grows.

Biggio & Roli ("Wild Patterns: Ten Years After the Rise of Adversarial Machine Learning",
Pattern Recognition 2018) recommend reporting a defence by its whole curve of accuracy
against the perturbation budget, not by one point. :func:`security_curve` runs an attack at
each eps and keeps, per sample, the smallest eps at which it was broken: a sample broken at a
smaller eps counts as broken at every larger one, so the curve never rises and two curves of
the same samples combine into their per-sample worst case (AutoAttack's rule, Croce & Hein,
ICML 2020; see :func:`worst_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sparring.attacks.evasion.base import EvasionAttack, EvasionResult, success_by_queries
from sparring.errors import ConfigError
from sparring.models import Classifier


@dataclass
class CurvePoint:
    """One eps of a curve.

    ``robust_accuracy`` is cumulative (broken at this eps or a smaller one);
    ``attack_robust_accuracy`` is this eps's attack alone. ``details`` hold what the attack
    reports about its run (ensemble members, a transfer attack's success on its surrogate).
    """

    eps: float
    robust_accuracy: float
    attack_robust_accuracy: float
    seconds: float
    queries: int
    median_norm: float
    query_budgets: list[int] | None = None
    query_success: list[float] | None = None
    median_queries: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SecurityCurve:
    """A curve over ``eps``: its points, each sample's first breaking eps index (-1: never), the raw results."""

    points: list[CurvePoint]
    broken_at: Tensor
    results: list[EvasionResult]

    @property
    def eps(self) -> list[float]:
        """The budgets, in order."""
        return [p.eps for p in self.points]

    def robust_at(self, i: int) -> float:
        """Robust accuracy at the ``i``-th eps: samples not broken at it or any smaller one."""
        return robust_at(self.broken_at, i)


def robust_at(broken_at: Tensor, i: int) -> float:
    """Share of samples not broken at the ``i``-th eps or any smaller one (``broken_at``: first eps index, -1 never)."""
    return float(((broken_at < 0) | (broken_at > i)).float().mean()) if len(broken_at) else 0.0


def query_budgets(max_queries: int) -> list[int]:
    """Query budgets for a success-vs-queries curve: roughly 1-2-5 steps up to ``max_queries``."""
    out = [b for k in range(7) for b in (10**k, 2 * 10**k, 5 * 10**k) if b < max_queries]
    return [*out, max_queries]


def _median_norm(result: EvasionResult) -> float:
    return float(result.norms[result.success].median()) if bool(result.success.any()) else 0.0


def security_curve(
    attack_at: Callable[[float], EvasionAttack],
    classifier: Classifier,
    x: Tensor,
    y: Tensor,
    eps: Sequence[float],
    target: Tensor | None = None,
    judge: Callable[[EvasionResult], Tensor] | None = None,
    log: Callable[[str], None] | None = None,
) -> SecurityCurve:
    """Run ``attack_at(e)`` on ``(x, y)`` for each ``e`` in ``eps`` (ascending) and return the curve.

    ``judge(result)``, when given, decides success instead of the attack's own verdict (e.g.
    a fresh draw of a randomised defence, so a lucky draw is not counted). ``log`` gets one
    line per eps.
    """
    budgets = [float(e) for e in eps]
    if budgets != sorted(budgets):
        raise ConfigError(f"eps must be ascending, got {list(eps)}")
    broken_at = torch.full((len(x),), -1, dtype=torch.long)
    points: list[CurvePoint] = []
    results: list[EvasionResult] = []
    for i, e in enumerate(budgets):
        attack = attack_at(e)
        if log is not None:
            log(f"    {type(attack).__name__} {attack.norm.name} eps={e:g} on {len(x)} samples")
        result = attack.run(classifier, x, y, target)
        if judge is not None:
            result.success = judge(result)
        broken_at[(broken_at < 0) & result.success] = i
        point = CurvePoint(
            eps=e,
            robust_accuracy=robust_at(broken_at, i),
            attack_robust_accuracy=result.robust_accuracy,
            seconds=result.seconds,
            queries=result.queries,
            median_norm=_median_norm(result),
            details=attack.run_details(),
        )
        if result.sample_queries is not None:
            point.query_budgets = query_budgets(int(result.sample_queries.max()) if len(x) else 1)
            point.query_success = success_by_queries(result, point.query_budgets)
            ok = result.success
            point.median_queries = float(result.sample_queries[ok].float().median()) if bool(ok.any()) else None
        points.append(point)
        results.append(result)
    return SecurityCurve(points, broken_at, results)


def worst_of(*broken_at: Tensor) -> Tensor:
    """Per sample, the earliest eps index at which any of the curves broke it (-1: none did)."""
    never = torch.iinfo(torch.long).max
    first = torch.stack([b.where(b >= 0, never) for b in broken_at]).amin(0)
    return first.where(first < never, -1)
