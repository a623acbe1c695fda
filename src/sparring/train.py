"""The one training loop, used by every attack or defence that trains a model."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError
from sparring.progress import bar

#: ``transform(model, x, y) -> x'``: replaces each training batch's inputs (adversarial
#: training, augmentation). It is called with the model in eval mode.
BatchTransform = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`fit`."""

    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    progress: bool | None = None

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")


@dataclass
class TrainResult:
    """What :func:`fit` returns: the trained model, wall time and per-epoch mean loss."""

    model: nn.Module
    seconds: float
    losses: list[float] = field(default_factory=list)


def fit(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig | None = None,
    transform: BatchTransform | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` on ``data`` with cross-entropy; returns it in eval mode.

    Batches are shuffled by a generator seeded from ``config.seed``, so a run repeats.
    """
    cfg = config or TrainConfig()
    if len(data) == 0:
        raise InputError("cannot train on an empty dataset")
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    start = time.perf_counter()
    n = len(data)
    for _epoch in bar(range(cfg.epochs), desc, total=cfg.epochs, enabled=cfg.progress):
        order = torch.randperm(n, generator=g)
        total = 0.0
        for idx in order.split(cfg.batch_size):
            xb, yb = data.x[idx], data.y[idx]
            if transform is not None:
                model.eval()
                xb = transform(model, xb, yb).detach()
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
    opt.zero_grad(set_to_none=True)  # leave no stale gradients on the returned model
    model.eval()
    return TrainResult(model, time.perf_counter() - start, losses)
