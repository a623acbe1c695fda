"""Gradient attacks: FGSM/FGM and projected gradient descent (PGD).

PGD follows Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
ICLR 2018; FGSM is Goodfellow et al., ICLR 2015 (FGM its L2 form). Both run the one
projected-gradient loop (:func:`~sparring.attacks.evasion.loop.gradient_loop`) with the
cross-entropy as the loss and misclassification (or reaching the target) as the criterion.

With ``early_stop`` (the default) a sample stops spending queries once it is misclassified
(or reaches its target) and keeps the adversarial example found at that point, so the
robust-accuracy figure is the same as running every sample for the full budget and asking
"was it ever misclassified?", at a fraction of the cost.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from sparring.attacks.evasion.base import EvasionAttack, is_success
from sparring.attacks.evasion.loop import LoopResult, Objective, Step, gradient_loop
from sparring.attacks.evasion.norms import Norm, get_norm
from sparring.errors import check_nonnegative, check_positive_int, check_seed
from sparring.models import Classifier


def cross_entropy_step(logits: Tensor, y: Tensor, target: Tensor | None) -> Step:
    """Ascend the true class's cross-entropy (or descend the target's); success: misclassified (or on target)."""
    done = is_success(logits.detach().argmax(1), y, target)
    if target is None:
        return Step(F.cross_entropy(logits, y, reduction="none"), done)
    return Step(-F.cross_entropy(logits, target, reduction="none"), done)


def cross_entropy_objective(classifier: Classifier, y: Tensor, target: Tensor | None) -> Objective:
    """:func:`cross_entropy_step` on ``classifier``'s logits, for the loop."""

    def objective(xa: Tensor, idx: Tensor, _step: int) -> Step:
        return cross_entropy_step(classifier.logits(xa), y[idx], None if target is None else target[idx])

    return objective


def default_step_size(eps: float, steps: int, step_size: float | None) -> float:
    """``step_size``, or ``2.5 * eps / steps`` when None: the steps then add up to more than the ball's diameter."""
    return 2.5 * eps / steps if step_size is None else step_size


class PGD(EvasionAttack):
    """Projected gradient descent on the cross-entropy loss (Madry et al., ICLR 2018).

    Parameters: ``norm`` ("linf" or "l2"), ``eps`` (radius), ``steps``, ``step_size``
    (None: ``2.5 * eps / steps``, so the steps add up to more than the ball's diameter),
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
        self.step_size = None if step_size is None else check_nonnegative("step_size", step_size)
        self.random_start = bool(random_start)
        self.restarts = check_positive_int("restarts", restarts)
        self.early_stop = bool(early_stop)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_seed(seed)

    def effective_step_size(self) -> float:
        """The step size used: ``step_size``, or ``2.5 * eps / steps`` when it is None."""
        return default_step_size(self.eps, self.steps, self.step_size)

    def _static(self) -> bool:
        """True when no point other than the input can be reached."""
        return self.eps == 0.0 or (self.effective_step_size() == 0.0 and not self.random_start)

    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            clean_pred = torch.cat([classifier.logits(b).argmax(1) for b in x.split(self.batch_size)]) if len(x) else y
        success = is_success(clean_pred, y, target)
        x_adv = x.clone()
        if self._static():
            return x_adv, success
        todo = torch.nonzero(~success).flatten() if self.early_stop else torch.arange(len(x))
        for restart in range(self.restarts):
            if restart > 0:
                if not self.random_start:  # a deterministic attack would only repeat itself
                    break
                todo = torch.nonzero(~success).flatten()
            if len(todo) == 0:
                break
            t = None if target is None else target[todo]
            r = self._attack(classifier, x[todo], y[todo], t, g, self.early_stop)
            # Samples that succeed take the new point; samples that never succeeded take the
            # final iterate; an earlier success (clean misclassification) is never undone.
            take = r.success | ~success[todo]
            x_adv[todo[take]] = r.x[take]
            success[todo[r.success]] = True
        return x_adv, success

    def perturb(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None = None) -> Tensor:
        """The final PGD iterate of every sample: ``steps`` forward/backward passes, nothing more.

        What adversarial training needs: no clean pass, no early stop, no restarts and no
        success check after the last step (about a third cheaper than :meth:`run` at 2 steps).
        """
        x, y, target = self._validate(classifier, x, y, target)
        if len(x) == 0 or self._static():
            return x.clone()
        g = torch.Generator().manual_seed(self.seed)
        return self._attack(classifier, x, y, target, g, early_stop=False, check_last=False).x

    def _attack(
        self,
        classifier: Classifier,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        g: torch.Generator,
        early_stop: bool,
        check_last: bool = True,
    ) -> LoopResult:
        """One PGD run from one random start per sample."""
        start = self.norm.random(x, self.eps, g) if self.random_start else None
        return gradient_loop(
            x,
            cross_entropy_objective(classifier, y, target),
            self.norm,
            self.eps,
            self.steps,
            self.effective_step_size(),
            classifier.bounds,
            start=start,
            early_stop=early_stop,
            check_last=check_last,
            batch_size=self.batch_size,
        )


class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al., ICLR 2015); with ``norm="l2"``, FGM.

    One step of size ``eps`` from the clean input.
    """

    def __init__(self, norm: str | Norm = "linf", eps: float = 0.3, batch_size: int = 256, seed: int = 0) -> None:
        super().__init__(
            norm=norm, eps=eps, steps=1, step_size=eps, random_start=False, batch_size=batch_size, seed=seed
        )
