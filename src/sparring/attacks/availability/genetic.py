"""The genetic sponge attack (Shumailov et al., "Sponge Examples", IEEE EuroS&P 2021).

Black-box: it needs only the cost of each candidate. A real attacker reads that from an
energy meter or a timing side channel (or, for an early-exit network, the latency of the
answer); here the cost model stands in for the meter. A population starts from natural
inputs and uniform noise; each generation keeps the costliest (elitism), breeds the rest
from tournament winners by uniform crossover, and mutates values to random points of the
input domain.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparring.attacks.availability.base import COSTS, SpongeResult, Timer, cost_for
from sparring.errors import check_choice, check_fraction, check_positive_int, check_seed
from sparring.models import Classifier
from sparring.params import Params


class SpongeGA(Params):
    """Genetic algorithm maximising a per-input cost; returns the ``keep`` costliest individuals."""

    def __init__(
        self,
        cost: str = "energy",
        population: int = 100,
        generations: int = 20,
        elite: float = 0.1,
        mutation: float = 0.05,
        keep: int = 10,
        seed: int = 0,
    ) -> None:
        self.cost = check_choice("cost", cost, COSTS)
        self.population = check_positive_int("population", population)
        self.generations = check_positive_int("generations", generations)
        self.elite = check_fraction("elite", elite)
        self.mutation = check_fraction("mutation", mutation)
        self.keep = check_positive_int("keep", keep)
        self.seed = check_seed(seed)

    def run(self, classifier: Classifier, x: Tensor) -> SpongeResult:
        """Evolve sponges seeded with the natural inputs ``x``; ``cost_before`` is their cost."""
        timer = Timer()
        cost = cost_for(classifier, self.cost)
        lo, hi = classifier.bounds
        g = torch.Generator().manual_seed(self.seed)
        before = cost.measure(x)
        n = self.population
        start = x[torch.randint(0, len(x), (n // 2,), generator=g)]
        noise = lo + (hi - lo) * torch.rand((n - len(start), *x.shape[1:]), generator=g, dtype=x.dtype)
        pop = torch.cat([start, noise])
        fit = cost.measure(pop)
        n_elite = max(1, round(self.elite * n))
        for _ in range(self.generations):
            order = fit.argsort(descending=True)
            pop, fit = pop[order], fit[order]
            n_child = n - n_elite
            a = torch.randint(0, n, (n_child, 2), generator=g)
            b = torch.randint(0, n, (n_child, 2), generator=g)
            p1 = pop[a.min(1).values]  # tournament of two: the lower index is the fitter (sorted)
            p2 = pop[b.min(1).values]
            mask = torch.rand(p1.shape, generator=g) < 0.5
            child = torch.where(mask, p1, p2)
            mutate = torch.rand(child.shape, generator=g) < self.mutation
            child = torch.where(mutate, lo + (hi - lo) * torch.rand(child.shape, generator=g, dtype=x.dtype), child)
            pop = torch.cat([pop[:n_elite], child])
            fit = torch.cat([fit[:n_elite], cost.measure(child)])
        best = fit.argsort(descending=True)[: self.keep]
        return SpongeResult(pop[best], before, fit[best], cost.name, cost.unit, cost.queries - len(x), timer.seconds)
