"""Random label flipping: availability poisoning that degrades a model's accuracy.

The baseline of the label-flip family studied by Biggio, Nelson & Laskov, "Support Vector
Machines Under Adversarial Label Noise", ACML 2011, and Xiao, Xiao & Eckert, "Adversarial
Label Flips Attack on Support Vector Machines", ECAI 2012: flipped labels are chosen at
random rather than optimised, which is what an attacker without access to the model can do.
"""

from __future__ import annotations

import torch

from sparring.data import Dataset, PoisonedDataset
from sparring.errors import InputError, check_fraction


class RandomLabelFlip:
    """Flip ``round(fraction * N)`` seeded-random labels, each to a uniformly random other class."""

    def __init__(self, fraction: float = 0.1, seed: int = 0) -> None:
        self.fraction = check_fraction("fraction", fraction)
        self.seed = int(seed)

    def poison(self, train: Dataset) -> PoisonedDataset:
        """Return ``train`` with the chosen labels flipped (``target`` and ``trigger`` are None)."""
        k = train.num_classes
        if k < 2:
            raise InputError(f"label flipping needs at least 2 classes, {train.name!r} has {k}")
        n = len(train)
        n_flip = round(self.fraction * n)
        g = torch.Generator().manual_seed(self.seed)
        chosen = torch.randperm(n, generator=g)[:n_flip]
        # Adding an offset in 1..k-1 (mod k) gives every other class the same probability.
        offset = torch.randint(1, k, (n_flip,), generator=g)
        y = train.y.clone()
        y[chosen] = (y[chosen] + offset) % k
        mask = torch.zeros(n, dtype=torch.bool)
        mask[chosen] = True
        return PoisonedDataset(
            train.x.clone(),
            y,
            list(train.classes),
            f"{train.name}-labelflip",
            poison_mask=mask,
            original_y=train.y.clone(),
        )

    def __repr__(self) -> str:
        return f"RandomLabelFlip(fraction={self.fraction}, seed={self.seed})"
