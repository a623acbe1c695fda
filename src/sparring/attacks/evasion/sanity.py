"""Checks that flag an evaluation whose robust accuracy cannot be trusted.

The warning signs of gradient masking and of weak attacks listed by Athalye, Carlini &
Wagner, "Obfuscated Gradients Give a False Sense of Security" (ICML 2018) and Carlini et
al., "On Evaluating Adversarial Robustness" (arXiv 1902.06705, 2019): zero or non-finite
input gradients (shattered gradients), outputs that change between identical queries
(randomised models, which need expectation over transformation), robust accuracy that
rises with the budget or differs from clean accuracy at budget 0, a black-box attack that
beats every white-box one, and an attack with an unbounded budget that fails to reach
about 0 % accuracy.

Every check returns a list of :class:`Flag` (empty: nothing suspicious).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence, Set
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from sparring.attacks.evasion.gradient import PGD
from sparring.attacks.evasion.norms import Norm, get_norm
from sparring.metrics import paired_p_value
from sparring.models import Access, Classifier, check_batch, check_labels

Severity = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Flag:
    """One finding: a stable ``code``, a ``severity`` and a one-line ``message`` for the report."""

    code: str
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, str]:
        """The flag as a JSON-ready dict."""
        return asdict(self)


def _skip(check: str, needed: str) -> Flag:
    return Flag("check-skipped", "info", f"{check} check skipped: the classifier does not expose {needed}")


def gradient_flags(
    classifier: Classifier, x: Tensor, y: Tensor, max_share: float = 0.01, batch_size: int = 256
) -> list[Flag]:
    """Flag zero or non-finite input gradients of the cross-entropy loss.

    A differentiable model almost never has an input gradient that is exactly zero (the
    softmax does not underflow that far), so more than ``max_share`` of samples with one
    points at a non-differentiable or quantising layer (shattered gradients, Athalye et
    al., ICML 2018). Non-finite gradients are always flagged.
    """
    if Access.GRADIENTS not in classifier.access:
        return [_skip("gradient", "gradients")]
    x = check_batch(x, classifier.input_shape)
    y = check_labels(y, len(x), classifier.num_classes)
    if len(x) == 0:
        return []
    zero, bad = [], []
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        xa = xb.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(classifier.logits(xa), yb, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa, allow_unused=True)
        if grad is None:  # the output does not depend on the input at all
            grad = torch.zeros_like(xa)
        flat = grad.detach().flatten(1)
        finite = torch.isfinite(flat).all(1)
        bad.append(~finite)
        zero.append(finite & (flat.abs().amax(1) == 0))
    zero_share = float(torch.cat(zero).float().mean())
    bad_share = float(torch.cat(bad).float().mean())
    flags = []
    if bad_share > 0:
        flags.append(
            Flag(
                "nonfinite-gradients",
                "error",
                f"{bad_share:.0%} of samples have NaN or infinite input gradients; gradient attacks on them are void",
            )
        )
    if zero_share > max_share:
        flags.append(
            Flag(
                "zero-gradients",
                "error",
                f"{zero_share:.0%} of samples have an input gradient of exactly zero (gradient masking); "
                "white-box results overstate robustness: use BPDA or a black-box attack",
            )
        )
    return flags


def randomness_flags(classifier: Classifier, x: Tensor, tol: float = 1e-5) -> list[Flag]:
    """Flag a model whose output changes between two identical queries (a randomised model).

    Single-sample gradients and single-query successes of such a model are noisy; attacks
    must average over its randomness (expectation over transformation, Athalye et al., ICML 2018).
    """
    x = check_batch(x, classifier.input_shape)
    if len(x) == 0:
        return []
    if Access.SCORES in classifier.access:
        change = float((classifier.predict_scores(x) - classifier.predict_scores(x)).abs().max())
        differs = change > tol
        what = f"scores moved by up to {change:.3g}"
    elif Access.LABELS in classifier.access:
        moved = float((classifier.predict_labels(x) != classifier.predict_labels(x)).float().mean())
        differs = moved > 0
        what = f"{moved:.0%} of labels changed"
    else:
        return [_skip("randomness", "labels or scores")]
    if not differs:
        return []
    return [
        Flag(
            "randomised-model",
            "warning",
            f"two identical queries gave different outputs ({what}); attack it with EOT, not single gradients",
        )
    ]


def curve_flags(
    clean_accuracy: float,
    curves: Mapping[str, Sequence[tuple[float, float]]],
    black_box: Set[str] = frozenset(),
    tol: float = 0.01,
    broken: Mapping[str, Mapping[float, Set[int]]] | None = None,
    alpha: float = 0.05,
) -> list[Flag]:
    """Flag robustness curves that contradict each other.

    ``curves`` maps an attack's name to ``(eps, robust accuracy)`` points; ``black_box`` names
    the attacks without gradient access. Flags: accuracy at eps 0 differs from
    ``clean_accuracy``; accuracy above clean accuracy or rising with eps; at some eps a
    black-box attack beats every white-box one (a sign the gradients mislead; Carlini et al.
    2019). Differences up to ``tol`` are ignored. With ``broken`` (per attack and eps, the
    ids of the samples it broke, on the same samples) the black-box finding is an error only
    when an exact McNemar test on the samples one attack broke and the other did not is
    significant at ``alpha``; otherwise it is a warning asking for a stronger white-box run.
    """
    flags: list[Flag] = []
    best: dict[float, dict[bool, float]] = {}
    for name, points in curves.items():
        pts = sorted((float(e), float(a)) for e, a in points)
        for eps, acc in pts:
            if not (math.isfinite(eps) and math.isfinite(acc)):
                flags.append(Flag("invalid-curve", "error", f"{name}: non-finite point ({eps}, {acc})"))
                continue
            if eps == 0 and abs(acc - clean_accuracy) > tol:
                flags.append(
                    Flag(
                        "eps0-mismatch",
                        "error",
                        f"{name}: accuracy at eps 0 is {acc:.1%} but clean accuracy is {clean_accuracy:.1%}",
                    )
                )
            elif acc > clean_accuracy + tol:
                flags.append(
                    Flag(
                        "above-clean",
                        "error",
                        f"{name}: robust accuracy {acc:.1%} at eps {eps:g} exceeds clean accuracy {clean_accuracy:.1%}",
                    )
                )
            slot = best.setdefault(eps, {})
            bb = name in black_box
            slot[bb] = min(slot.get(bb, math.inf), acc)
        for (e0, a0), (e1, a1) in itertools.pairwise(pts):
            if e1 > e0 and a1 > a0 + tol:
                flags.append(
                    Flag(
                        "non-monotone",
                        "warning",
                        f"{name}: robust accuracy rises from {a0:.1%} at eps {e0:g} to {a1:.1%} at eps {e1:g}",
                    )
                )
    for eps in sorted(best):
        slot = best[eps]
        if True in slot and False in slot and slot[True] < slot[False] - tol:
            what = (
                f"at eps {eps:g} a black-box attack reaches {slot[True]:.1%} robust accuracy, below every "
                f"white-box attack ({slot[False]:.1%})"
            )
            p = _paired(curves, black_box, broken, eps) if broken is not None else None
            if p is None or p < alpha:
                sig = f" (exact McNemar p = {p:.2g})" if p is not None else ""
                flags.append(Flag("black-box-stronger", "error", f"{what}{sig}: the gradients are likely masked"))
            else:
                flags.append(
                    Flag(
                        "black-box-stronger-not-significant",
                        "warning",
                        f"{what}, but the difference is not significant on these samples (exact McNemar p = {p:.2g}): "
                        "rerun the white-box attack with more steps or restarts before ruling out gradient masking",
                    )
                )
    return flags


def _paired(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    black_box: Set[str],
    broken: Mapping[str, Mapping[float, Set[int]]],
    eps: float,
) -> float | None:
    """Exact McNemar p-value of the strongest black-box against the strongest white-box attack at ``eps``."""

    def strongest(names: list[str]) -> str | None:
        at = {n: a for n in names for e, a in curves[n] if e == eps and eps in broken.get(n, {})}
        return min(at, key=lambda n: at[n]) if at else None

    bb = strongest([n for n in curves if n in black_box])
    wb = strongest([n for n in curves if n not in black_box])
    if bb is None or wb is None:
        return None
    b, w = broken[bb][eps], broken[wb][eps]
    return paired_p_value(len(b - w), len(w - b))


def large_eps_flags(
    classifier: Classifier,
    x: Tensor,
    y: Tensor,
    norm: str | Norm = "linf",
    max_accuracy: float = 0.02,
    steps: int = 20,
    seed: int = 0,
) -> list[Flag]:
    """Flag a model that stays accurate under PGD with a budget that covers the whole input domain.

    At Linf eps equal to the width of the bounds (L2: that width times sqrt(input size)) any
    input is reachable, so a working gradient attack must bring accuracy to about 0; more than
    ``max_accuracy`` means the attack, not the model, is failing (Carlini et al. 2019).
    """
    if Access.GRADIENTS not in classifier.access:
        return [_skip("large-eps", "gradients")]
    x = check_batch(x, classifier.input_shape)
    y = check_labels(y, len(x), classifier.num_classes)
    if len(x) == 0:
        return []
    geometry = get_norm(norm)
    lo, hi = classifier.bounds
    eps = hi - lo if geometry.name == "linf" else (hi - lo) * math.sqrt(math.prod(classifier.input_shape))
    result = PGD(geometry, eps=eps, steps=steps, seed=seed).run(classifier, x, y)
    if result.robust_accuracy <= max_accuracy:
        return []
    return [
        Flag(
            "large-eps-robust",
            "error",
            f"PGD-{steps} with an unbounded {geometry.name} budget (eps {eps:g}) leaves {result.robust_accuracy:.1%} "
            "accuracy; it should reach about 0 %, so gradient attacks on this model are unreliable",
        )
    ]


def run_sanity_checks(
    classifier: Classifier, x: Tensor, y: Tensor, norm: str | Norm = "linf", seed: int = 0
) -> list[Flag]:
    """Run the classifier-based checks: randomness, gradients and the unbounded-budget attack."""
    return [
        *randomness_flags(classifier, x),
        *gradient_flags(classifier, x, y),
        *large_eps_flags(classifier, x, y, norm=norm, seed=seed),
    ]
