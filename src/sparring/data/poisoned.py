"""Poisoned datasets and triggers: the ground truth every training-time metric reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from sparring.data.dataset import Dataset
from sparring.errors import InputError


@dataclass
class Trigger:
    """A trigger ``apply(x) = (1 - alpha) * x + alpha * pattern``.

    ``pattern`` and ``alpha`` have one sample's shape; an alpha of 0/1 is a patch, a small
    constant alpha a blended trigger.
    """

    pattern: Tensor
    alpha: Tensor

    def __post_init__(self) -> None:
        if self.pattern.shape != self.alpha.shape:
            raise InputError(f"trigger pattern {tuple(self.pattern.shape)} and alpha {tuple(self.alpha.shape)} differ")
        if ((self.alpha < 0) | (self.alpha > 1)).any():
            raise InputError("trigger alpha must lie in [0, 1]")

    def apply(self, x: Tensor) -> Tensor:
        """Stamp the trigger on a batch ``[N, *shape]``."""
        if tuple(x.shape[1:]) != tuple(self.pattern.shape):
            raise InputError(f"trigger of shape {tuple(self.pattern.shape)} does not fit inputs {tuple(x.shape[1:])}")
        return (1 - self.alpha) * x + self.alpha * self.pattern


@dataclass
class PoisonedDataset(Dataset):
    """A Dataset plus ``poison_mask`` (True for poisoned samples) and ``original_y``.

    Backdoor attacks also set ``trigger`` and ``target`` (the class triggered inputs should
    go to; None for all-to-all or untargeted poisoning). An all-to-all backdoor (Gu et al.,
    "BadNets", 2017) sets ``all_to_all`` instead: a triggered input of class ``i`` should go
    to ``(i + 1) % num_classes``; :meth:`target_of` gives each input's backdoor target either way.
    """

    poison_mask: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))
    original_y: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    trigger: Trigger | None = None
    target: int | None = None
    all_to_all: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.all_to_all and self.target is not None:
            raise InputError(f"an all-to-all backdoor has no single target, got target={self.target}")
        n = len(self)
        if self.poison_mask.shape != (n,):
            raise InputError(f"poison_mask must have shape ({n},), got {tuple(self.poison_mask.shape)}")
        if self.original_y.shape != (n,):
            raise InputError(f"original_y must have shape ({n},), got {tuple(self.original_y.shape)}")
        self.poison_mask = self.poison_mask.bool()
        self.original_y = self.original_y.long()

    @property
    def n_poisoned(self) -> int:
        """Number of poisoned samples."""
        return int(self.poison_mask.sum())

    def target_of(self, y: Tensor) -> Tensor:
        """Each input's backdoor target for true labels ``y``: ``target``, or ``(y + 1) % C`` if all-to-all.

        Raises :class:`InputError` when the dataset carries no backdoor mapping.
        """
        if self.all_to_all:
            return (y.long() + 1) % self.num_classes
        if self.target is None:
            raise InputError(f"dataset {self.name!r} carries no backdoor target (neither target nor all_to_all set)")
        return torch.full_like(y, self.target, dtype=torch.long)

    def subset(self, index: Tensor, name: str | None = None) -> PoisonedDataset:
        """The samples at ``index``, keeping poison ground truth."""
        return PoisonedDataset(
            self.x[index],
            self.y[index],
            list(self.classes),
            name or self.name,
            poison_mask=self.poison_mask[index],
            original_y=self.original_y[index],
            trigger=self.trigger,
            target=self.target,
            all_to_all=self.all_to_all,
        )
