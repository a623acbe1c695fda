"""The one projected-gradient loop; attacks differ only by the objective they give it.

Projected gradient ascent in an Lp ball (Madry et al., "Towards Deep Learning Models
Resistant to Adversarial Attacks", ICLR 2018), with the loss and the success criterion as
parameters: foolbox's lesson (Rauber et al., JOSS 2020) that an attack is a loss, a
criterion and a geometry, not a copied loop. PGD ascends the cross-entropy and succeeds on
misclassification; the detector-aware attack adds "and below the detector's threshold";
internal-representation mimicry and hidden-trigger poisoning descend a feature distance and
keep the closest point. Samples still being optimised are stepped together and cut into
chunks of ``batch_size`` only for the forward/backward pass, so batches stay full while
samples drop out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from sparring.attacks.evasion.norms import Norm
from sparring.progress import bar


@dataclass
class Step:
    """What an objective says about one chunk of iterates.

    ``loss`` (``[n]``) is ascended; ``success`` (``[n]`` bool) marks iterates that achieve the
    goal (with early stop they leave the loop); ``quality`` (``[n]``, higher is better), when
    given, makes the loop keep each sample's best iterate instead of its first success.
    """

    loss: Tensor
    success: Tensor
    quality: Tensor | None = None


#: ``objective(x_chunk, index, step) -> Step``: ``x_chunk`` requires grad except at the final
#: check; ``index`` holds the chunk's positions in the batch given to :func:`gradient_loop`.
Objective = Callable[[Tensor, Tensor, int], Step]


@dataclass
class LoopResult:
    """Per sample: the iterate kept, whether it ever succeeded, and the best quality (-inf: untracked)."""

    x: Tensor
    success: Tensor
    quality: Tensor


def gradient_loop(
    x: Tensor,
    objective: Objective,
    norm: Norm,
    eps: float | Tensor,
    steps: int,
    step_size: float | Callable[[int], float],
    bounds: tuple[float, float],
    start: Tensor | None = None,
    early_stop: bool = True,
    check_last: bool = True,
    batch_size: int = 256,
    desc: str | None = None,
    progress: bool | None = False,
) -> LoopResult:
    """Ascend ``objective`` from ``x + start`` for ``steps`` projected steepest-ascent steps.

    Each step moves the iterate by ``step_size`` (a number, or a function of the step index)
    along ``norm.direction`` of the loss gradient, projects it onto the ``eps`` ball around
    ``x`` and into ``bounds``. The objective is evaluated ``steps + 1`` times (the last time
    without gradient, to judge the final iterate) unless ``check_last`` is False, in which
    case the final iterates are returned unevaluated. Kept per sample: with ``quality``, the
    best iterate; otherwise the newest iterate unless it would undo an earlier success, so a
    sample that never succeeds ends on its final iterate. With ``early_stop`` a sample leaves
    once it succeeds.
    """
    lo, hi = bounds
    n = len(x)
    xk = (x + start).clamp(lo, hi) if start is not None else x.clone()
    out = xk.clone()
    success = torch.zeros(n, dtype=torch.bool)
    best = torch.full((n,), -torch.inf)
    active = torch.arange(n)
    tracked = False  # whether the objective gives a quality (keep the best iterate)
    size = step_size if callable(step_size) else (lambda _step: float(step_size))
    per_sample_eps = isinstance(eps, Tensor) and eps.dim() > 0
    for k in bar(range(steps + 1), desc or "gradient loop", total=steps + 1, enabled=progress if desc else False):
        last = k == steps
        if last and not check_last:
            return LoopResult(xk, success, best)
        still: list[Tensor] = []
        for idx in active.split(batch_size):
            rows = _rows(idx)
            xa = xk[rows].clone().requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                s = objective(xa, idx, k)
            done = s.success.detach()
            if s.quality is None:
                # Keep each success as it happens; a sample that never succeeds ends on its
                # final iterate (copied once, after the loop).
                out[idx[done]] = xa.detach()[done]
            else:
                tracked = True
                q = s.quality.detach()
                update = q > best[rows]
                best[idx[update]] = q[update]
                out[idx[update]] = xa.detach()[update]
            success[idx[done]] = True
            if last:
                continue
            everyone = not early_stop or not bool(done.any())
            keep = None if everyone else ~done
            if keep is not None and not bool(keep.any()):
                continue
            moving = idx if keep is None else idx[keep]
            loss = s.loss if keep is None else s.loss[keep]
            (grad,) = torch.autograd.grad(loss.sum(), xa)
            with torch.no_grad():
                at = rows if keep is None else moving
                x0 = x[at]
                e = eps[moving] if per_sample_eps else eps  # type: ignore[index]
                g = grad if keep is None else grad[keep]
                stepped = xk[at] + size(k) * norm.direction(g)
                xk[at] = (x0 + norm.project(stepped - x0, e)).clamp(lo, hi)
            still.append(moving)
        if last or not still:
            break
        active = torch.cat(still)
    if not tracked:
        never = ~success
        out[never] = xk[never]
    return LoopResult(out, success, best)


def _rows(idx: Tensor) -> Tensor | slice:
    """``idx`` as a slice when it is a run of consecutive rows (a view: no gather, writes in place)."""
    if len(idx) and int(idx[-1]) - int(idx[0]) == len(idx) - 1 and bool((idx.diff() == 1).all()):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx
