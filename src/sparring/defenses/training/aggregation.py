"""Robust aggregation for federated learning: coordinate-wise median, trimmed mean, norm clipping.

Each class implements :class:`sparring.federated.Aggregator` and replaces FedAvg's mean in
:func:`sparring.federated.run_fedavg`.

- :class:`CoordinateMedian` and :class:`TrimmedMean`: Yin, Chen, Ramchandran & Bartlett,
  "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates", ICML 2018.
- :class:`NormClipping`: Sun, Kairouz, Suresh & McMahan, "Can You Really Backdoor Federated
  Learning?", arXiv 2019 (NeurIPS FL workshop): clip every update's L2 norm, average, and
  optionally add weak Gaussian noise ("weak differential privacy").
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparring.errors import ConfigError, check_fraction, check_nonnegative, check_positive, check_seed
from sparring.federated import check_updates
from sparring.params import Params, Registry


class CoordinateMedian(Params):
    """Coordinate-wise median of the updates (Yin et al., ICML 2018); ignores client weights.

    With an even number of updates it takes the mean of the two middle values.
    """

    def __call__(self, updates: Tensor, weights: Tensor, round_index: int) -> Tensor:
        check_updates(updates, weights)
        return updates.quantile(0.5, dim=0) if updates.shape[0] % 2 == 0 else updates.median(dim=0).values


class TrimmedMean(Params):
    """Coordinate-wise ``beta``-trimmed mean (Yin et al., ICML 2018); ignores client weights.

    For every coordinate the ``floor(beta * K)`` largest and smallest of the K values are
    dropped and the rest averaged; ``beta`` in [0, 0.5) (0 is the plain mean). Yin et al. set
    ``beta`` at or above the share of Byzantine clients.
    """

    def __init__(self, beta: float = 0.1) -> None:
        self.beta = check_fraction("beta", beta)
        if self.beta >= 0.5:
            raise ConfigError(f"beta must be in [0, 0.5), got {beta}")

    def __call__(self, updates: Tensor, weights: Tensor, round_index: int) -> Tensor:
        check_updates(updates, weights)
        k = updates.shape[0]
        cut = int(self.beta * k)  # beta < 0.5 always leaves k - 2 * cut >= 1 values
        ordered = updates.sort(dim=0).values
        return ordered[cut : k - cut].mean(dim=0)


class NormClipping(Params):
    """Norm clipping with optional weak-DP noise (Sun et al., 2019).

    Every update is scaled to L2 norm at most ``bound`` (``u * min(1, bound / ||u||)``), the
    clipped updates are averaged with the server's weights, and Gaussian noise with standard
    deviation ``noise_sigma`` per coordinate is added to the average (0 disables it). The
    noise of round r comes from a generator seeded with ``(seed, r)``, so a run repeats.
    """

    def __init__(self, bound: float = 1.0, noise_sigma: float = 0.0, seed: int = 0) -> None:
        self.bound = check_positive("bound", bound)
        self.noise_sigma = check_nonnegative("noise_sigma", noise_sigma)
        self.seed = check_seed(seed)

    def clip(self, updates: Tensor) -> Tensor:
        """Each row of ``updates`` scaled down to L2 norm at most ``bound``."""
        norms = updates.norm(dim=1, keepdim=True)
        return updates * (self.bound / norms.clamp_min(1e-12)).clamp(max=1.0)

    def __call__(self, updates: Tensor, weights: Tensor, round_index: int) -> Tensor:
        check_updates(updates, weights)
        mean = weights.to(updates.dtype) @ self.clip(updates)
        if self.noise_sigma == 0.0:
            return mean
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(round_index))
        return mean + self.noise_sigma * torch.randn(mean.shape, generator=g, dtype=mean.dtype)


#: Robust aggregators by the name an assessment config uses (``clipping:SIGMA`` adds noise).
AGGREGATORS: Registry[Params] = Registry("aggregator")
AGGREGATORS.add("median", CoordinateMedian)
AGGREGATORS.add("trimmed_mean", TrimmedMean)
AGGREGATORS.add("clipping", NormClipping, arg="noise_sigma")
