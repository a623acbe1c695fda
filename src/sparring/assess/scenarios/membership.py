"""Membership-inference scenarios on a balanced member / non-member set."""

from __future__ import annotations

from typing import Any

import numpy as np

from sparring.assess.config import MembershipConfig
from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.attacks.privacy import evaluate_membership
from sparring.defenses.inference import harden
from sparring.metrics import accuracy


def _thin(fpr: np.ndarray, tpr: np.ndarray, n: int = 400) -> tuple[list[float], list[float]]:
    """At most ``n`` ROC points, spaced evenly in log-FPR so the log-log plot keeps its shape."""
    if len(fpr) <= n:
        return fpr.tolist(), tpr.tolist()
    grid = np.unique(np.r_[0.0, np.logspace(np.log10(max(fpr[fpr > 0].min(), 1e-6)), 0, n)])
    idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
    return fpr[idx].tolist(), tpr[idx].tolist()


def run(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """Run the attack on the model as deployed (optionally behind an output-hardening wrapper)."""
    mc = sc.spec
    assert isinstance(mc, MembershipConfig)
    clf, _ = ctx.target()
    if sc.defence is not None:
        clf = harden(clf, sc.defence)
    r = evaluate_membership(clf, ctx.train, ctx.test, attack=mc.attack, n=mc.samples, seed=ctx.config.seed)
    fpr, tpr = _thin(r.roc.fpr, r.roc.tpr)
    return {
        "kind": "membership",
        "attack": r.attack,
        "requested": r.requested,
        "fallback_reason": r.fallback_reason,
        "defence": sc.defence,
        "params": sc.params(),
        "clean_accuracy": accuracy(clf, ctx.test.x, ctx.test.y),
        "n_members": r.n_members,
        "n_non_members": r.n_non_members,
        "seconds": r.seconds,
        "queries": r.queries,
        **r.roc.as_dict(),
        "fpr": fpr,
        "tpr": tpr,
    }
