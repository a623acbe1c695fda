"""Gradient attacks: FGSM/FGM and projected gradient descent (PGD).

PGD follows Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
ICLR 2018; FGSM is Goodfellow et al., ICLR 2015 (FGM its L2 form). Both stop spending on a
sample once it is misclassified (or reaches its target), which keeps the adversarial
example found at that point: the robust-accuracy figure can only get lower, never higher.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from sparring.attacks.evasion.base import EvasionAttack, is_success
from sparring.attacks.evasion.norms import Norm, get_norm
from sparring.errors import check_nonnegative, check_positive_int
from sparring.models import Classifier


class PGD(EvasionAttack):
    """Projected gradient descent on the cross-entropy loss.

    Parameters: ``norm`` ("linf" or "l2"), ``eps`` (radius), ``steps``, ``step_size``
    (default ``2.5 * eps / steps``), ``random_start``, ``restarts`` (extra random starts for
    samples still robust), ``early_stop`` (stop a sample once it succeeds), ``batch_size``
    and ``seed``.
    """

    def __init__(
        self,
        norm: str | Norm = "linf",
        eps: float = 0.3,
        steps: int = 40,
        step_size: float | None = None,
        random_start: bool = True,
        restarts: int = 1,
        early_stop: bool = True,
        batch_size: int = 500,
        seed: int = 0,
    ) -> None:
        self.norm = get_norm(norm)
        self.eps = check_nonnegative("eps", eps)
        self.steps = check_positive_int("steps", steps)
        self.step_size = 2.5 * self.eps / self.steps if step_size is None else check_nonnegative("step_size", step_size)
        self.random_start = bool(random_start)
        self.restarts = check_positive_int("restarts", restarts)
        self.early_stop = bool(early_stop)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = int(seed)

    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            clean_pred = torch.cat([classifier.logits(b).argmax(1) for b in x.split(self.batch_size)]) if len(x) else y
        success = is_success(clean_pred, y, target)
        x_adv = x.clone()
        for _restart in range(self.restarts):
            todo = torch.nonzero(~success).flatten()
            for idx in todo.split(self.batch_size):
                t = None if target is None else target[idx]
                xb, ok = self._attack_batch(classifier, x[idx], y[idx], t, g)
                x_adv[idx] = xb
                success[idx] = ok
            if bool(success.all()):
                break
        return x_adv, success

    def _attack_batch(
        self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None, g: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        lo, hi = classifier.bounds
        delta = self.norm.random(x, self.eps, g) if self.random_start and self.eps > 0 else torch.zeros_like(x)
        delta = (x + delta).clamp(lo, hi) - x
        out = x.clone()
        success = torch.zeros(len(x), dtype=torch.bool)
        active = torch.arange(len(x))
        goal = y if target is None else target
        sign = 1.0 if target is None else -1.0  # ascend the true-class loss, descend the target's
        for step in range(self.steps + 1):
            xa = (x[active] + delta).requires_grad_(True)
            logits = classifier.logits(xa)
            done = is_success(logits.argmax(1), y[active], None if target is None else target[active]).detach()
            # Keep the newest iterate, except that a sample which already succeeded keeps
            # its adversarial example (relevant only without early stopping).
            update = done | ~success[active]
            out[active[update]] = xa.detach()[update]
            success[active[done]] = True
            if step == self.steps:
                break
            if self.early_stop and bool(done.any()):
                keep = ~done
                active, delta = active[keep], delta[keep]
                if len(active) == 0:
                    break
                loss = F.cross_entropy(logits[keep], goal[active], reduction="sum")
            else:
                loss = F.cross_entropy(logits, goal[active], reduction="sum")
            (grad,) = torch.autograd.grad(sign * loss, xa)
            if self.early_stop and bool(done.any()):
                grad = grad[~done]
            with torch.no_grad():
                delta = self.norm.project(delta + self.step_size * self.norm.direction(grad), self.eps)
                delta = (x[active] + delta).clamp(lo, hi) - x[active]
        return out, success


class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al., ICLR 2015); with ``norm="l2"``, FGM.

    One step of size ``eps`` from the clean input.
    """

    def __init__(self, norm: str | Norm = "linf", eps: float = 0.3, batch_size: int = 500, seed: int = 0) -> None:
        super().__init__(
            norm=norm, eps=eps, steps=1, step_size=eps, random_start=False, batch_size=batch_size, seed=seed
        )
