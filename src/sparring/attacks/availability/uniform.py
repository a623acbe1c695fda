"""The uniform baseline: flat-colour inputs, which every sponge attack is set beside.

Müller & Quiring ("The Impact of Uniform Inputs on Activation Sparsity and Energy-Latency
Attacks in Computer Vision", IEEE S&P Workshops 2024) found that constant images reach the
activation density of genetic and L-BFGS sponges at a fraction of the cost, so a report
must never credit an attack with what a constant image achieves.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparring.attacks.availability.base import SpongeResult, Timer, cost_for
from sparring.errors import check_choice, check_positive_int
from sparring.models import Classifier
from sparring.params import Params


class UniformBaseline(Params):
    """``levels`` constant inputs spread evenly over the input domain; ``run`` keeps them all."""

    def __init__(self, cost: str = "energy", levels: int = 11) -> None:
        self.cost = check_choice("cost", cost, ("energy", "exits"))
        self.levels = check_positive_int("levels", levels)

    def run(self, classifier: Classifier, x: Tensor) -> SpongeResult:
        """Constant inputs of the shape of ``x``, their cost, and the natural inputs' cost."""
        timer = Timer()
        cost = cost_for(classifier, self.cost)
        lo, hi = classifier.bounds
        values = torch.linspace(lo, hi, self.levels, dtype=x.dtype) if self.levels > 1 else torch.tensor([hi])
        flat = values.reshape(-1, *([1] * (x.dim() - 1))).expand(len(values), *x.shape[1:]).clone()
        before = cost.measure(x)
        after = cost.measure(flat)
        return SpongeResult(flat, before, after, cost.name, cost.unit, cost.queries - len(x), timer.seconds)
