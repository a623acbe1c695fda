"""Gradient attacks: FGSM/FGM and projected gradient descent (PGD).

PGD follows Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
ICLR 2018; FGSM is Goodfellow et al., ICLR 2015 (FGM its L2 form).

With ``early_stop`` (the default) a sample stops spending queries once it is misclassified
(or reaches its target) and keeps the adversarial example found at that point, so the
robust-accuracy figure is the same as running every sample for the full budget and asking
"was it ever misclassified?", at a fraction of the cost. All samples still being attacked
are stepped together and cut into chunks of ``batch_size`` only for the forward/backward
pass, so the batches stay full while samples drop out.
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
    """Projected gradient descent on the cross-entropy loss (Madry et al., ICLR 2018).

    Parameters: ``norm`` ("linf" or "l2"), ``eps`` (radius), ``steps``, ``step_size``
    (default ``2.5 * eps / steps``: the steps add up to more than the ball's diameter),
    ``random_start`` (uniform in the eps-ball), ``restarts`` (further random starts for
    samples still robust), ``early_stop`` (stop a sample once it succeeds), ``batch_size``
    (samples per forward/backward pass) and ``seed``.

    Without ``early_stop`` every sample, including those the model already misclassifies,
    runs all ``steps``; ``x_adv[i]`` is then the latest iterate that succeeded, or the
    final iterate when none did. :meth:`perturb` returns the final iterates alone, at the
    lowest cost (what adversarial training needs).
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
        batch_size: int = 256,
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
        if self.eps == 0.0 or (self.step_size == 0.0 and not self.random_start):
            return x_adv, success  # no point other than x can be reached
        todo = torch.nonzero(~success).flatten() if self.early_stop else torch.arange(len(x))
        for restart in range(self.restarts):
            if restart > 0:
                if not self.random_start:  # a deterministic attack would only repeat itself
                    break
                todo = torch.nonzero(~success).flatten()
            if len(todo) == 0:
                break
            t = None if target is None else target[todo]
            xb, ok = self._attack(classifier, x[todo], y[todo], t, g, self.early_stop)
            # Samples that succeed take the new point; samples that never succeeded take the
            # final iterate; an earlier success (clean misclassification) is never undone.
            take = ok | ~success[todo]
            x_adv[todo[take]] = xb[take]
            success[todo[ok]] = True
        return x_adv, success

    def perturb(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None = None) -> Tensor:
        """The final PGD iterate of every sample: ``steps`` forward/backward passes, nothing more.

        What adversarial training needs: no clean pass, no early stop, no restarts and no
        success check after the last step (about a third cheaper than :meth:`run` at 2 steps).
        """
        x, y, target = self._validate(classifier, x, y, target)
        if len(x) == 0 or self.eps == 0.0 or (self.step_size == 0.0 and not self.random_start):
            return x.clone()
        g = torch.Generator().manual_seed(self.seed)
        x_adv, _ = self._attack(classifier, x, y, target, g, early_stop=False, check_last=False)
        return x_adv

    def _attack(
        self,
        classifier: Classifier,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        g: torch.Generator,
        early_stop: bool,
        check_last: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """One PGD run from one random start per sample; returns ``(x_adv, success)``.

        Without ``check_last`` the last iterate is returned for every sample unevaluated
        (``success`` then covers the earlier iterates only).
        """
        lo, hi = classifier.bounds
        start = self.norm.random(x, self.eps, g) if self.random_start else torch.zeros_like(x)
        xk = (x + start).clamp(lo, hi)  # current iterate, always inside the bounds
        out = xk.clone()
        success = torch.zeros(len(x), dtype=torch.bool)
        goal = y if target is None else target
        sign = 1.0 if target is None else -1.0  # ascend the true-class loss, descend the target's
        active = torch.arange(len(x))
        for step in range(self.steps + 1):
            last = step == self.steps
            if last and not check_last:
                return xk, success
            still: list[Tensor] = []
            for idx in active.split(self.batch_size):
                xa = xk[idx].requires_grad_(not last)
                with torch.set_grad_enabled(not last):
                    logits = classifier.logits(xa)
                done = is_success(logits.detach().argmax(1), y[idx], None if target is None else target[idx])
                # The newest iterate replaces the output unless it would undo a success.
                update = done | ~success[idx]
                out[idx[update]] = xa.detach()[update]
                success[idx[done]] = True
                if last:
                    continue
                keep = ~done if early_stop else torch.ones_like(done)
                if not bool(keep.any()):
                    continue
                moving = idx[keep]
                loss = F.cross_entropy(logits[keep], goal[moving], reduction="sum")
                (grad,) = torch.autograd.grad(sign * loss, xa)
                with torch.no_grad():
                    x0 = x[moving]
                    stepped = xk[moving] + self.step_size * self.norm.direction(grad[keep])
                    xk[moving] = (x0 + self.norm.project(stepped - x0, self.eps)).clamp(lo, hi)
                still.append(moving)
            if last or not still:
                break
            active = torch.cat(still)
        return out, success


class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al., ICLR 2015); with ``norm="l2"``, FGM.

    One step of size ``eps`` from the clean input.
    """

    def __init__(self, norm: str | Norm = "linf", eps: float = 0.3, batch_size: int = 256, seed: int = 0) -> None:
        super().__init__(
            norm=norm, eps=eps, steps=1, step_size=eps, random_start=False, batch_size=batch_size, seed=seed
        )
