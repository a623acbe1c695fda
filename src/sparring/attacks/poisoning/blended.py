"""Blended backdoor: a full-image noise pattern mixed faintly into poisoned training samples.

Chen, Liu, Li, Lu & Song, "Targeted Backdoor Attacks on Deep Learning Systems Using Data
Poisoning", arXiv 2017. The "blended injection" strategy: ``x' = (1 - alpha) * x + alpha * k``
with a key pattern ``k`` (here seeded uniform noise) over the whole input; poisoned samples
are relabelled to ``target`` (all-to-one), so at test time the blend sends inputs to ``target``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sparring.attacks.poisoning.all_to_one import poison_all_to_all, poison_all_to_one
from sparring.data import Dataset, PoisonedDataset, Trigger
from sparring.errors import (
    ConfigError,
    InputError,
    check_choice,
    check_class,
    check_flag,
    check_fraction,
    check_seed,
)
from sparring.params import Params

#: Key patterns :class:`Blended` can draw.
PATTERNS = ("noise",)


class Blended(Params):
    """All-to-one blended backdoor (Chen et al. 2017) with a seeded uniform-noise key.

    The trigger's pattern is uniform noise in [0, 1] of one sample's shape drawn from ``seed``
    and its alpha the constant ``alpha`` everywhere. :meth:`poison` blends it into
    ``round(poison_fraction * N)`` seeded-random samples whose label is not ``target`` and
    relabels them to ``target``; with ``all_to_all=True`` it blends into any sample and
    relabels class i to i + 1 (the all-to-all variant of Gu et al. 2017). Chen et al. poison
    with alpha 0.2; on digits a small CNN learns
    the default 0.1 blend too (ASR 0.96 after 20 epochs, 0.38 after 10).
    """

    def __init__(
        self,
        target: int = 0,
        poison_fraction: float = 0.05,
        alpha: float = 0.1,
        pattern: str = "noise",
        seed: int = 0,
        all_to_all: bool = False,
    ) -> None:
        self.target = check_class("target", target)
        self.poison_fraction = check_fraction("poison_fraction", poison_fraction)
        self.alpha = check_fraction("alpha", alpha)
        if self.alpha == 0.0:
            raise ConfigError(f"alpha must be in (0, 1], got {alpha}")
        self.pattern = check_choice("pattern", pattern, PATTERNS)
        self.seed = check_seed(seed)
        self.all_to_all = check_flag("all_to_all", all_to_all)

    def trigger(self, input_shape: Sequence[int]) -> Trigger:
        """The blended trigger for inputs of one sample's shape ``input_shape``."""
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == 0 or min(shape) < 1:
            raise InputError(f"Blended needs inputs with at least one non-empty dimension, got shape {shape}")
        g = torch.Generator().manual_seed(self.seed)
        key = torch.rand(shape, generator=g)
        return Trigger(key, torch.full(shape, self.alpha))

    def poison(self, train: Dataset) -> PoisonedDataset:
        """Blend the trigger into a seeded choice of non-target samples and relabel them to ``target``."""
        # Offset the selection stream from the key stream so the two are not correlated.
        trigger = self.trigger(train.input_shape)
        if self.all_to_all:
            return poison_all_to_all(train, trigger, self.poison_fraction, self.seed + 1_000_003, "blended-all2all")
        return poison_all_to_one(train, trigger, self.target, self.poison_fraction, self.seed + 1_000_003, "blended")
