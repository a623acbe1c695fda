"""The white-box sponge attack: gradient ascent (L-BFGS or Adam) on a differentiable stand-in of the cost.

Shumailov et al. ("Sponge Examples", IEEE EuroS&P 2021) maximise activation density with
L-BFGS when the attacker has the weights; for an early-exit network the stand-in is
DeepSloth's (Hong et al., ICLR 2021): the internal exits' closeness to uniform. The input
stays in the domain by construction (``lo + (hi - lo) * sigmoid(w)``); with ``eps`` it
stays within an L-infinity ball around the natural input (``x0 + eps * tanh(w)``, clipped),
so the sponge still looks benign.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparring.attacks.availability.base import COSTS, SpongeResult, Timer, cost_for
from sparring.errors import check_choice, check_positive, check_positive_int
from sparring.models import Classifier
from sparring.params import Params

OPTIMIZERS = ("lbfgs", "adam")


class SpongeGradient(Params):
    """Maximise the cost's surrogate from each natural input, ``steps`` iterations of ``optimizer``."""

    def __init__(
        self,
        cost: str = "energy",
        optimizer: str = "lbfgs",
        steps: int = 30,
        lr: float = 0.1,
        eps: float | None = None,
    ) -> None:
        self.cost = check_choice("cost", cost, COSTS)
        self.optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
        self.steps = check_positive_int("steps", steps)
        self.lr = check_positive("lr", lr)
        self.eps = None if eps is None else check_positive("eps", eps)

    def run(self, classifier: Classifier, x: Tensor) -> SpongeResult:
        """One sponge per natural input of ``x``."""
        timer = Timer()
        cost = cost_for(classifier, self.cost)
        lo, hi = classifier.bounds
        before = cost.measure(x)
        x0 = x.detach()
        if self.eps is None:
            u = ((x0 - lo) / (hi - lo)).clamp(0.01, 0.99)
            w0 = torch.log(u / (1 - u))
        else:
            w0 = torch.zeros_like(x0)
        w = w0.clone().requires_grad_(True)
        eps = self.eps

        def image(w: Tensor) -> Tensor:
            if eps is None:
                return lo + (hi - lo) * torch.sigmoid(w)
            return (x0 + eps * torch.tanh(w)).clamp(lo, hi)

        forward = 0

        def loss_and_grad() -> Tensor:
            nonlocal forward
            loss = -cost.surrogate(image(w)).sum()
            (grad,) = torch.autograd.grad(loss, w)
            w.grad = grad
            forward += len(x)
            return loss.detach()

        if self.optimizer == "lbfgs":
            opt: torch.optim.Optimizer = torch.optim.LBFGS(
                [w], lr=1.0, max_iter=self.steps, line_search_fn="strong_wolfe"
            )
            opt.step(loss_and_grad)  # type: ignore[arg-type]
        else:
            opt = torch.optim.Adam([w], lr=self.lr)
            for _ in range(self.steps):
                opt.zero_grad(set_to_none=True)
                loss_and_grad()
                opt.step()
        x_sponge = image(w).detach()
        after = cost.measure(x_sponge)
        return SpongeResult(x_sponge, before, after, cost.name, cost.unit, forward, timer.seconds)
