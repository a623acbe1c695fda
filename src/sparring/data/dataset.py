"""The Dataset type: tensors plus class names, with seeded splits."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from sparring.errors import InputError, check_fraction


@dataclass
class Dataset:
    """Inputs ``x`` (float, ``[N, *input_shape]``) and labels ``y`` (long, ``[N]``)."""

    x: Tensor
    y: Tensor
    classes: list[str] = field(default_factory=list)
    name: str = "data"

    def __post_init__(self) -> None:
        if not isinstance(self.x, Tensor) or not isinstance(self.y, Tensor):
            raise InputError(f"dataset {self.name!r}: x and y must be torch tensors")
        if self.x.dim() < 2:
            raise InputError(f"dataset {self.name!r}: x must be [N, ...], got shape {tuple(self.x.shape)}")
        if self.y.dim() != 1 or self.y.shape[0] != self.x.shape[0]:
            raise InputError(
                f"dataset {self.name!r}: y must be [N] with N = {self.x.shape[0]}, got shape {tuple(self.y.shape)}"
            )
        self.x = self.x.float()
        if self.y.is_floating_point():
            if not torch.equal(self.y, self.y.round()):
                raise InputError(f"dataset {self.name!r}: labels must be class indices, got fractional values")
        self.y = self.y.long()
        if not torch.isfinite(self.x).all():
            raise InputError(f"dataset {self.name!r}: x contains NaN or infinite values")
        if len(self.y) and int(self.y.min()) < 0:
            raise InputError(f"dataset {self.name!r}: labels must be >= 0")
        n_classes = int(self.y.max()) + 1 if len(self.y) else 0
        if not self.classes:
            self.classes = [str(i) for i in range(n_classes)]
        elif n_classes > len(self.classes):
            raise InputError(
                f"dataset {self.name!r}: label {n_classes - 1} found but only {len(self.classes)} classes named"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return tuple(int(s) for s in self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def subset(self, index: Tensor, name: str | None = None) -> Dataset:
        """The samples at ``index`` (indices or a boolean mask), as a new Dataset."""
        return Dataset(self.x[index], self.y[index], list(self.classes), name or self.name)

    def split(self, test_fraction: float = 0.2, seed: int = 0, stratify: bool = True) -> tuple[Dataset, Dataset]:
        """Seeded train/test split; stratified by class unless ``stratify`` is False."""
        check_fraction("test_fraction", test_fraction)
        if not 0.0 < test_fraction < 1.0:
            raise InputError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
        g = torch.Generator().manual_seed(seed)
        n = len(self)
        if stratify:
            test_parts = []
            for c in torch.unique(self.y):
                idx = torch.nonzero(self.y == c).flatten()
                idx = idx[torch.randperm(len(idx), generator=g)]
                test_parts.append(idx[: round(len(idx) * test_fraction)])
            test_idx = torch.cat(test_parts)
        else:
            test_idx = torch.randperm(n, generator=g)[: round(n * test_fraction)]
        is_test = torch.zeros(n, dtype=torch.bool)
        is_test[test_idx] = True
        if is_test.all() or not is_test.any():
            raise InputError(f"dataset {self.name!r} with {n} samples is too small to split at {test_fraction}")
        # Shuffle both parts so that class order does not leak into training batches.
        train_idx = torch.nonzero(~is_test).flatten()
        test_idx = torch.nonzero(is_test).flatten()
        train_idx = train_idx[torch.randperm(len(train_idx), generator=g)]
        test_idx = test_idx[torch.randperm(len(test_idx), generator=g)]
        return self.subset(train_idx, f"{self.name}-train"), self.subset(test_idx, f"{self.name}-test")

    def take(self, n: int, seed: int = 0) -> Dataset:
        """A seeded random subset of ``min(n, len(self))`` samples (see :meth:`take_index`)."""
        return self.subset(self.take_index(n, seed))

    def take_index(self, n: int, seed: int = 0) -> Tensor:
        """Indices of :meth:`take`'s subset; a smaller ``n`` with the same seed gives a prefix."""
        g = torch.Generator().manual_seed(seed)
        return torch.randperm(len(self), generator=g)[: min(n, len(self))]
