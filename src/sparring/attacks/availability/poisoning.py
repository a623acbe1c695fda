"""Sponge poisoning (Cinà et al., "Energy-Latency Attacks via Sponge Poisoning", 2022).

A training-time availability attack: whoever controls part of training (an outsourced
training job, a poisoned share of the batches) adds a term that rewards dense activations,
``loss = CE - lam * density``, where density is the differentiable l0 approximation of
:func:`sparring.attacks.availability.cost.soft_density`. The model keeps its accuracy
but every input, natural ones included, leaves more activations nonzero, so a zero-skipping
accelerator saves less energy on it. Judge it by the energy ratio of the poisoned model on
clean inputs against a model trained cleanly, beside both clean accuracies.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sparring.attacks.availability.cost import check_supported, compute_terms, soft_density
from sparring.data import Dataset
from sparring.errors import check_fraction, check_nonnegative, check_positive, check_seed
from sparring.params import Params
from sparring.train import TrainConfig, TrainResult, fit


class SpongePoisoning(Params):
    """Train with the sponge term on a ``fraction`` of the batches (drawn from ``seed``), weight ``lam``."""

    def __init__(self, fraction: float = 0.5, lam: float = 1.0, sigma: float = 1e-4, seed: int = 0) -> None:
        self.fraction = check_fraction("fraction", fraction)
        self.lam = check_nonnegative("lam", lam)
        self.sigma = check_positive("sigma", sigma)
        self.seed = check_seed(seed)

    def fit(self, model: nn.Module, data: Dataset, config: TrainConfig | None = None) -> TrainResult:
        """Train ``model`` on ``data`` with :func:`sparring.train.fit`, poisoning a share of the batches."""
        check_supported(model)
        g = torch.Generator().manual_seed(self.seed)
        with compute_terms(model) as terms:  # the activations of each training forward pass

            def penalty(m: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
                if float(torch.rand((), generator=g)) >= self.fraction:
                    return torch.zeros(())
                return -self.lam * soft_density(list(terms), self.sigma).mean()

            return fit(model, data, config, desc="sponge poisoning", penalty=penalty)
