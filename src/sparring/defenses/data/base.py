"""The data-defence verb: ``defence.detect(train, classifier) -> Detection``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from sparring.data import Dataset
from sparring.errors import InputError
from sparring.models import Classifier


@dataclass
class Detection:
    """Suspicion per training sample and the samples a data defence flags.

    ``scores`` (float ``[N]``) is higher for more suspicious samples; ``flagged`` (bool
    ``[N]``) is the defence's decision, which need not be a plain threshold on ``scores``.
    ``details`` holds defence-specific figures for the report (e.g. per-class analysis).
    """

    scores: Tensor
    flagged: Tensor
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scores.dim() != 1 or self.flagged.shape != self.scores.shape:
            raise InputError(
                f"scores and flagged must both have shape [N], got {tuple(self.scores.shape)} "
                f"and {tuple(self.flagged.shape)}"
            )
        self.scores = self.scores.float()
        self.flagged = self.flagged.bool()

    @property
    def n_flagged(self) -> int:
        """Number of flagged samples."""
        return int(self.flagged.sum())

    @classmethod
    def nothing(cls, n: int) -> Detection:
        """A detection that suspects none of ``n`` samples."""
        return cls(torch.zeros(n), torch.zeros(n, dtype=torch.bool))


class DataDetector(Protocol):
    """Anything with the data-defence verb (activation clustering, spectral signatures, ...)."""

    def detect(self, train: Dataset, classifier: Classifier) -> Detection:
        """Score and flag the samples of ``train`` using ``classifier`` (trained on it)."""
        ...
