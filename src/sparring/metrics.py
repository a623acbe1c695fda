"""Metric definitions that hold everywhere in sparring (see DESIGN.md, "Metrics")."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sparring.data import Dataset, Trigger
from sparring.errors import InputError
from sparring.models import Classifier


def accuracy(classifier: Classifier, x: Tensor, y: Tensor) -> float:
    """Share of samples whose predicted label equals ``y``."""
    if len(x) == 0:
        return float("nan")
    return float((classifier.predict_labels(x) == y).float().mean())


def dataset_accuracy(classifier: Classifier, data: Dataset) -> float:
    """:func:`accuracy` on a Dataset."""
    return accuracy(classifier, data.x, data.y)


def robust_accuracy(successes: list[Tensor]) -> float:
    """Worst case per sample over several attacks: robust only if no attack succeeded.

    Each tensor in ``successes`` is one attack's boolean success vector over the same
    samples (AutoAttack's rule, Croce & Hein, ICML 2020).
    """
    if not successes:
        raise InputError("robust_accuracy needs at least one attack result")
    any_success = torch.zeros_like(successes[0], dtype=torch.bool)
    for s in successes:
        if s.shape != any_success.shape:
            raise InputError("attack results cover different numbers of samples")
        any_success |= s.bool()
    return 1.0 - float(any_success.float().mean()) if len(any_success) else float("nan")


def attack_success_rate(classifier: Classifier, x: Tensor, y: Tensor, trigger: Trigger, target: int | Tensor) -> float:
    """Backdoor ASR: share of triggered inputs whose true class is not their target classified as that target.

    ``target`` is one class (all-to-one) or a tensor of per-sample targets ``[N]``, e.g.
    ``PoisonedDataset.target_of(y)`` for an all-to-all backdoor. NaN when no input qualifies.
    """
    if isinstance(target, Tensor):
        if target.shape != y.shape:
            raise InputError(f"per-sample targets have shape {tuple(target.shape)}, expected {tuple(y.shape)}")
        targets = target.long()
    else:
        targets = torch.full_like(y, int(target), dtype=torch.long)
    keep = y != targets
    if not bool(keep.any()):
        return float("nan")
    pred = classifier.predict_labels(trigger.apply(x[keep]))
    return float((pred == targets[keep]).float().mean())


@dataclass
class ROC:
    """A ROC curve with the figures DESIGN.md asks for (LiRA's protocol, Carlini et al., S&P 2022)."""

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    tpr_at_0_1_fpr: float
    tpr_at_1_fpr: float

    @property
    def balanced_accuracy(self) -> float:
        """Best balanced accuracy over thresholds: ``max(1 - (fpr + 1 - tpr) / 2)``."""
        return float(np.max(1 - (self.fpr + (1 - self.tpr)) / 2))

    def as_dict(self) -> dict[str, float]:
        return {
            "auc": self.auc,
            "tpr_at_0.1%_fpr": self.tpr_at_0_1_fpr,
            "tpr_at_1%_fpr": self.tpr_at_1_fpr,
            "balanced_accuracy": self.balanced_accuracy,
        }


def roc(scores: Tensor | np.ndarray, is_member: Tensor | np.ndarray) -> ROC:
    """ROC of ``scores`` (higher = more likely positive) against boolean ``is_member``.

    Ties share a threshold, so a score that cannot separate samples (e.g. a label-only
    attack's 0/1 output) gives a curve with few points and no made-up resolution.
    TPR at a given FPR is the largest TPR reachable with FPR at most that value.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    m = np.asarray(is_member, dtype=bool).ravel()
    if s.shape != m.shape:
        raise InputError(f"scores ({s.shape[0]}) and membership labels ({m.shape[0]}) differ in length")
    if not np.isfinite(s).all():
        raise InputError("membership scores contain NaN or infinite values")
    n_pos, n_neg = int(m.sum()), int((~m).sum())
    if n_pos == 0 or n_neg == 0:
        raise InputError("ROC needs both members and non-members")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, m_sorted = s[order], m[order]
    tp = np.cumsum(m_sorted)
    fp = np.cumsum(~m_sorted)
    last_of_tie = np.r_[np.diff(s_sorted) != 0, True]
    tpr = np.r_[0.0, tp[last_of_tie] / n_pos]
    fpr = np.r_[0.0, fp[last_of_tie] / n_neg]
    auc = float(np.trapezoid(tpr, fpr))

    def tpr_at(limit: float) -> float:
        return float(tpr[fpr <= limit + 1e-12].max())

    return ROC(fpr, tpr, auc, tpr_at(0.001), tpr_at(0.01))


def detection_rates(flagged: Tensor, truth: Tensor) -> dict[str, float]:
    """Recall (TPR) and false-positive rate of a boolean ``flagged`` mask against ``truth``."""
    f, t = flagged.bool(), truth.bool()
    if f.shape != t.shape:
        raise InputError("flagged mask and ground truth differ in length")
    pos, neg = int(t.sum()), int((~t).sum())
    return {
        "recall": float((f & t).sum()) / pos if pos else float("nan"),
        "fpr": float((f & ~t).sum()) / neg if neg else float("nan"),
        "flagged": int(f.sum()),
    }


# -- uncertainty ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval of a figure measured on ``n`` samples, and how it was computed."""

    low: float
    high: float
    n: int
    method: str
    confidence: float = 0.95

    def as_dict(self) -> dict[str, float | int | str]:
        """The interval as ``report.json`` holds it."""
        return {"low": self.low, "high": self.high, "n": self.n, "method": self.method, "confidence": self.confidence}


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """The exact (Clopper & Pearson, Biometrika 1934) interval of a proportion ``k / n``."""
    from scipy.stats import beta

    if n <= 0 or not 0 <= k <= n:
        raise InputError(f"a proportion needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    a = (1.0 - confidence) / 2.0
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return Interval(low, high, n, "clopper-pearson", confidence)


def rate_interval(rate: float, n: int, confidence: float = 0.95) -> Interval:
    """:func:`clopper_pearson` of a rate measured on ``n`` samples (``k = round(rate * n)``)."""
    return clopper_pearson(min(n, max(0, round(rate * n))), n, confidence)


def auc_interval(auc: float, n_pos: int, n_neg: int, confidence: float = 0.95) -> Interval:
    """A normal interval of a ROC AUC with the Hanley & McNeil (Radiology 1982) standard error."""
    from scipy.stats import norm

    if n_pos <= 0 or n_neg <= 0:
        raise InputError(f"an AUC needs positives and negatives, got {n_pos} and {n_neg}")
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    half = float(norm.ppf(0.5 + confidence / 2.0)) * float(np.sqrt(max(var, 0.0)))
    return Interval(max(0.0, auc - half), min(1.0, auc + half), n_pos + n_neg, "hanley-mcneil", confidence)


def paired_p_value(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value: ``only_first`` samples one method got and the other did not, and back."""
    from scipy.stats import binomtest

    n = only_first + only_second
    return 1.0 if n == 0 else float(binomtest(only_first, n, 0.5).pvalue)


def median_seconds(fn: Callable[[], object], repeats: int = 7) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call (damps scheduler noise)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_query_ms(classifier: Classifier, x: Tensor, repeats: int = 7, batch: int = 64) -> float:
    """Median wall time per input of ``classifier.predict_labels`` on ``x[:batch]`` in ms, after one warm-up call."""
    x = x[:batch]
    if len(x) == 0:
        raise InputError("per_query_ms needs at least one input")
    return 1000.0 * median_seconds(lambda: classifier.predict_labels(x), repeats) / len(x)


def paired_difference_interval(only_first: int, only_second: int, n: int, confidence: float = 0.95) -> Interval:
    """Interval of the difference of two accuracies measured on the same ``n`` samples.

    ``only_first`` samples only the first method got right, ``only_second`` only the second;
    the difference is ``(only_first - only_second) / n``. Agresti & Min's (Biometrics 2005)
    adjusted Wald interval (half a count added to each cell of the 2x2 table), widened to
    hold the observed difference.
    """
    from scipy.stats import norm

    if n <= 0:
        raise InputError(f"a paired interval needs samples, got n = {n}")
    b, c, m = only_first + 0.5, only_second + 0.5, n + 2.0
    centre = (b - c) / m
    se = float(np.sqrt(max((b + c) - (b - c) ** 2 / m, 0.0))) / m
    half = float(norm.ppf(0.5 + confidence / 2.0)) * se
    diff = (only_first - only_second) / n
    low, high = min(max(-1.0, centre - half), diff), max(min(1.0, centre + half), diff)
    return Interval(low, high, n, "agresti-min", confidence)
