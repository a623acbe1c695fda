"""Auto-PGD (APGD), after Croce & Hein, ICML 2020.

"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks".

PGD without a step size to tune: the step starts at ``2 * eps`` and is halved at
checkpoints (after 22 %, then ever shorter windows of the budget, never shorter than 6 %)
when the loss rose in too few steps of the last window (share <= ``rho``) or the best loss
did not improve since the previous checkpoint without a halving there; after a halving the
iterate restarts from the best point found. Steps carry momentum 0.75. The loss is the
cross-entropy or the difference of logits ratio (DLR), which is invariant to shifting and
scaling the logits and so does not saturate the way cross-entropy does. With
``targeted_classes=k`` the attack becomes APGD-T: the targeted DLR loss against each of the
``k`` most likely wrong classes in turn, on the samples still robust.

As PGD in this package, a sample stops spending queries once it is misclassified (or reaches
its target) and keeps that adversarial example.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from sparring.attacks.evasion.base import EvasionAttack, is_success
from sparring.attacks.evasion.norms import Norm, get_norm
from sparring.errors import (
    check_choice,
    check_fraction,
    check_nonnegative,
    check_nonnegative_int,
    check_positive_int,
    check_seed,
)
from sparring.models import Classifier
from sparring.progress import bar

LOSSES = ("ce", "dlr")
MOMENTUM = 0.75
_EPS_DLR = 1e-12


def checkpoints(steps: int) -> list[int]:
    """Iterations after which APGD may halve its step (Croce & Hein 2020, Sec. 3.2).

    The first window is 22 % of ``steps``; each next one is 3 % shorter, down to 6 %.
    """
    first, shrink, least = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, at, window = [], 0, first
    while at + window <= steps:
        at += window
        out.append(at)
        window = max(window - shrink, least)
    return out


def dlr_loss(logits: Tensor, y: Tensor, target: Tensor | None = None) -> Tensor:
    """Per-sample DLR loss to maximise; targeted form when ``target`` is given.

    Untargeted: ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``; targeted:
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``, with ``z_pi`` the sorted logits.
    """
    ordered = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    if target is None:
        other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
        return -(z_y - other) / (ordered[:, 0] - ordered[:, 2] + _EPS_DLR)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + _EPS_DLR)


class APGD(EvasionAttack):
    """Auto-PGD (Croce & Hein, ICML 2020): step-size-free PGD with momentum and checkpoints.

    Parameters: ``norm`` ("linf" or "l2"), ``eps``, ``steps`` (iterations per run, 100 in the
    paper), ``loss`` ("ce" or "dlr"), ``targeted_classes`` (``k > 0``: APGD-T, one run per each
    of the ``k`` highest-scoring wrong classes, using the targeted form of ``loss``; AutoAttack
    uses ``loss="dlr"`` with 9 classes), ``restarts`` (random starts per run, on samples still
    robust), ``rho`` (the checkpoint's share of loss increases below which the step is halved),
    ``batch_size`` (samples per forward/backward pass) and ``seed``.

    When :meth:`run` gets ``target``, the attack aims for those classes (the targeted form of
    ``loss``) and ``targeted_classes`` is ignored. DLR needs 3 classes (targeted DLR 4); with
    fewer the cross-entropy is used instead.
    """

    def __init__(
        self,
        norm: str | Norm = "linf",
        eps: float = 0.3,
        steps: int = 100,
        loss: Literal["ce", "dlr"] = "ce",
        targeted_classes: int = 0,
        restarts: int = 1,
        rho: float = 0.75,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        self.norm = get_norm(norm)
        self.eps = check_nonnegative("eps", eps)
        self.steps = check_positive_int("steps", steps)
        self.loss: Literal["ce", "dlr"] = check_choice("loss", loss, LOSSES)  # type: ignore[assignment]
        self.targeted_classes = check_nonnegative_int("targeted_classes", targeted_classes)
        self.restarts = check_positive_int("restarts", restarts)
        self.rho = check_fraction("rho", rho)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_seed(seed)

    @property
    def label(self) -> str:
        """Short name as in the AutoAttack paper: APGD-CE, APGD-DLR, APGD-T."""
        return "APGD-T" if self.targeted_classes else f"APGD-{self.loss.upper()}"

    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            clean = torch.cat([classifier.logits(b) for b in x.split(self.batch_size)]) if len(x) else None
        success = is_success(clean.argmax(1), y, target) if clean is not None else torch.zeros(0, dtype=torch.bool)
        x_adv = x.clone()
        if self.eps == 0.0 or clean is None:
            return x_adv, success
        # One entry per run: the class the loss aims at (None: untargeted).
        runs: list[Tensor | None]
        if target is not None:
            runs = [target]
        elif self.targeted_classes:
            k = min(self.targeted_classes, classifier.num_classes - 1)
            ranked = clean.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
            runs = [ranked[:, j] for j in range(k)]
        else:
            runs = [None]
        plan = [(aim, r) for aim in runs for r in range(self.restarts)]
        for aim, _ in bar(plan, desc=self.label, total=len(plan)):
            todo = torch.nonzero(~success).flatten()
            if len(todo) == 0:
                break
            t = None if target is None else target[todo]
            a = None if aim is None else aim[todo]
            xb, ok = self._attack(classifier, x[todo], y[todo], t, a, g)
            x_adv[todo[ok]] = xb[ok]
            success[todo[ok]] = True
        return x_adv, success

    def _loss(self, logits: Tensor, y: Tensor, aim: Tensor | None, num_classes: int) -> Tensor:
        """Per-sample loss to maximise (aim: the class a targeted loss pulls towards)."""
        use_dlr = self.loss == "dlr" and num_classes >= (3 if aim is None else 4)
        if use_dlr:
            return dlr_loss(logits, y, aim)
        if aim is None:
            return F.cross_entropy(logits, y, reduction="none")
        return -F.cross_entropy(logits, aim, reduction="none")

    def _attack(
        self,
        classifier: Classifier,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        aim: Tensor | None,
        g: torch.Generator,
    ) -> tuple[Tensor, Tensor]:
        """One APGD run from a random start; returns ``(x_adv, success)`` per sample.

        ``target`` decides success (None: misclassification); ``aim`` is the class the loss
        pulls towards (None: the untargeted loss). A sample leaves the run once it succeeds.
        """
        lo, hi = classifier.bounds
        n = len(x)
        aim = target if target is not None else aim

        def project(v: Tensor, x0: Tensor) -> Tensor:
            return (x0 + self.norm.project(v - x0, self.eps)).clamp(lo, hi)

        xk = project(x + self.norm.random(x, self.eps, g), x)
        xprev = xk.clone()
        out = xk.clone()
        success = torch.zeros(n, dtype=torch.bool)
        grad = torch.zeros_like(x)
        loss_now = torch.zeros(n)
        eta = torch.full((n,), 2.0 * self.eps)
        active = torch.arange(n)

        def evaluate(idx_all: Tensor, need_grad: bool) -> Tensor:
            """Loss (and gradient) at ``xk`` for ``idx_all``; records successes; returns the samples left."""
            left: list[Tensor] = []
            for idx in idx_all.split(self.batch_size):
                xa = xk[idx].requires_grad_(need_grad)
                with torch.set_grad_enabled(need_grad):
                    logits = classifier.logits(xa)
                    loss = self._loss(logits, y[idx], None if aim is None else aim[idx], classifier.num_classes)
                done = is_success(logits.detach().argmax(1), y[idx], None if target is None else target[idx])
                out[idx[done]] = xa.detach()[done]
                success[idx[done]] = True
                loss_now[idx] = loss.detach()
                if need_grad:
                    (grad[idx],) = torch.autograd.grad(loss.sum(), xa)
                left.append(idx[~done])
            return torch.cat(left) if left else idx_all

        active = evaluate(active, need_grad=True)
        x_best, grad_best = xk.clone(), grad.clone()
        loss_best, loss_prev, loss_best_at_check = loss_now.clone(), loss_now.clone(), loss_now.clone()
        rises = torch.zeros(n)
        halved_at_check = torch.zeros(n, dtype=torch.bool)
        marks = set(checkpoints(self.steps))
        since = 0
        for i in range(self.steps):
            if len(active) == 0:
                break
            with torch.no_grad():
                a, x0 = active, x[active]
                step = eta[a].reshape(-1, *([1] * (x.dim() - 1))) * self.norm.direction(grad[a])
                z = project(xk[a] + step, x0)
                if i > 0:  # momentum: a convex mix of the new step and the last move
                    z = project(xk[a] + MOMENTUM * (z - xk[a]) + (1 - MOMENTUM) * (xk[a] - xprev[a]), x0)
                xprev[a] = xk[a]
                xk[a] = z
            active = evaluate(active, need_grad=i < self.steps - 1)
            a = active
            rises[a] += (loss_now[a] > loss_prev[a]).float()
            loss_prev[a] = loss_now[a]
            better = a[loss_now[a] > loss_best[a]]
            x_best[better], grad_best[better], loss_best[better] = xk[better], grad[better], loss_now[better]
            since += 1
            if i + 1 in marks:
                # Halve where the loss rose too rarely, or where the best loss stalled and the
                # step was not halved at the previous checkpoint (Croce & Hein 2020, Eq. 3-4).
                stalled = ~halved_at_check[a] & (loss_best[a] <= loss_best_at_check[a])
                halve = a[(rises[a] <= self.rho * since) | stalled]
                eta[halve] /= 2.0
                xk[halve], xprev[halve], grad[halve] = x_best[halve], x_best[halve], grad_best[halve]
                halved_at_check[a] = False
                halved_at_check[halve] = True
                loss_best_at_check[a] = loss_best[a]
                rises[a] = 0.0
                since = 0
        return out, success
