"""Empirical lower bounds on ε from a membership test: the threshold audit of Jagielski et al.

Jagielski, Ullman and Oprea, "Auditing Differentially Private Machine Learning: How Private
is Private SGD?", NeurIPS 2020.

An (ε, δ)-DP training algorithm bounds every membership test: ``TPR <= e^ε FPR + δ`` and
``TNR <= e^ε FNR + δ``. A test that is better than that refutes ε, so
``ε̂ = max(ln((TPR - δ) / FPR), ln((TNR - δ) / FNR))`` with the rates replaced by their
one-sided Clopper–Pearson bounds (lower for TPR and TNR, upper for FPR and FNR) is a lower
bound on ε that holds with the stated confidence. The threshold is chosen on one random half
of the scored samples (the one maximising the bound there) and the bound is computed on the
other half, so that choosing it does not inflate the bound. The four one-sided bounds share
the error budget (Bonferroni).

ε̂ is only a lower bound: with a few hundred samples it cannot exceed a few units, whatever the
model, and a loose ε̂ is not evidence of more privacy than the accountant's ε. An ε̂ above the
accountant's ε is a bug (in the training, the accounting or the audit) or a rare event of
probability below ``1 - confidence``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sparring.errors import InputError
from sparring.metrics import clopper_pearson


@dataclass(frozen=True)
class Audit:
    """An audited lower bound ``epsilon`` on ε at ``delta``, with the rates' bounds behind it."""

    epsilon: float
    delta: float
    confidence: float
    threshold: float
    tpr_low: float
    fpr_high: float
    n_members: int
    n_non_members: int

    def as_dict(self) -> dict[str, float | int]:
        """The figures for a report."""
        return {
            "epsilon_lower_bound": self.epsilon,
            "audit_delta": self.delta,
            "audit_confidence": self.confidence,
            "audit_tpr_low": self.tpr_low,
            "audit_fpr_high": self.fpr_high,
            "audit_members": self.n_members,
            "audit_non_members": self.n_non_members,
        }


def _bound(tp: int, n_pos: int, fp: int, n_neg: int, delta: float, confidence: float) -> tuple[float, float, float]:
    """``(ε̂, TPR lower, FPR upper)`` at one threshold, both directions of the test, each bound one-sided."""
    two_sided = 1.0 - 2.0 * (1.0 - confidence) / 4.0  # a two-sided interval at this level is one-sided at 1 - α/4
    tpr = clopper_pearson(tp, n_pos, two_sided)
    fpr = clopper_pearson(fp, n_neg, two_sided)
    best = 0.0
    if tpr.low - delta > 0 and fpr.high > 0:
        best = max(best, math.log((tpr.low - delta) / fpr.high))
    tnr_low, fnr_high = 1.0 - fpr.high, 1.0 - tpr.low
    if tnr_low - delta > 0 and fnr_high > 0:
        best = max(best, math.log((tnr_low - delta) / fnr_high))
    return best, tpr.low, fpr.high


def _best_threshold(scores: np.ndarray, member: np.ndarray, delta: float, confidence: float) -> float:
    """The threshold (``score >= t`` is a member) maximising the bound on these samples (vectorised :func:`_bound`)."""
    from scipy.stats import beta

    pos, neg = np.sort(scores[member]), np.sort(scores[~member])
    ts = np.unique(scores)
    tp = len(pos) - np.searchsorted(pos, ts, side="left")
    fp = len(neg) - np.searchsorted(neg, ts, side="left")
    a = (1.0 - confidence) / 4.0
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr_low = np.where(tp == 0, 0.0, beta.ppf(a, tp, len(pos) - tp + 1))
        fpr_high = np.where(fp == len(neg), 1.0, beta.ppf(1.0 - a, fp + 1, len(neg) - fp))
        forward = np.log(np.clip(tpr_low - delta, 0, None) / fpr_high)
        backward = np.log(np.clip(1.0 - fpr_high - delta, 0, None) / (1.0 - tpr_low))
    bound = np.nan_to_num(np.maximum(forward, backward), nan=-np.inf, posinf=-np.inf)
    return float(ts[int(np.argmax(bound))])


def threshold_audit(
    scores: Tensor | np.ndarray, is_member: Tensor | np.ndarray, delta: float, confidence: float = 0.95, seed: int = 0
) -> Audit:
    """ε̂ (Jagielski et al., NeurIPS 2020) from membership ``scores`` (higher = member), at ``delta``.

    The samples are split at random (``seed``) into a half that picks the threshold and a
    half that bounds the rates; needs at least two members and two non-members.
    """
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(is_member, dtype=bool)
    if len(s) != len(m) or int(m.sum()) < 2 or int((~m).sum()) < 2:
        raise InputError("the audit needs scores for at least two members and two non-members")
    if not 0 <= delta < 1 or not 0 < confidence < 1:
        raise InputError(f"the audit needs 0 <= delta < 1 and 0 < confidence < 1, got {delta} and {confidence}")
    order = torch.randperm(len(s), generator=torch.Generator().manual_seed(seed)).numpy()
    pick = np.zeros(len(s), dtype=bool)
    for cls in (True, False):  # each half holds half of the members and half of the non-members
        idx = order[m[order] == cls]
        pick[idx[: len(idx) // 2]] = True
    t = _best_threshold(s[pick], m[pick], delta, confidence)
    pos, neg = s[~pick & m], s[~pick & ~m]
    eps, tpr_low, fpr_high = _bound(int((pos >= t).sum()), len(pos), int((neg >= t).sum()), len(neg), delta, confidence)
    return Audit(eps, delta, confidence, t, tpr_low, fpr_high, len(pos), len(neg))
