"""The one training loop, used by every attack or defence that trains a model.

Generalisation defences are options of the loop: ``weight_decay``, random input
augmentation (``augment``: Gaussian noise, Zantedeschi et al., "Efficient Defenses Against
Adversarial Attacks", AISec 2017; random translations, the classic image augmentation of
Simard et al., ICDAR 2003), sample mixing (``mix``: mixup, Zhang et al., ICLR 2018; CutMix,
Yun et al., ICCV 2019; proposed against backdoors by Borgnia et al., "Strong Data
Augmentation Sanitizes Poisoning and Backdoor Attacks Without an Accuracy Tradeoff", ICASSP
2021; on the small zoo models they leave BadNets largely intact, see
benchmarks/backdoor_training.py) and dropout in the zoo models (:func:`sparring.models.build`). ``fit`` also takes
per-sample loss weights (``sample_weight``), e.g. to weight poisoned samples by beta as in
Cinà et al.'s backdoor learning curves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError
from sparring.progress import bar
from sparring.specs import Form, parse_spec, positive

#: ``transform(model, x, y) -> x'``: replaces each training batch's inputs (adversarial
#: training, augmentation). It is called with the model in eval mode.
BatchTransform = Callable[[nn.Module, Tensor, Tensor], Tensor]

#: Augmentations :attr:`TrainConfig.augment` accepts: Gaussian noise, random translation.
AUGMENTS = (
    Form("noise", "SIGMA", float, None, positive, "a finite number > 0"),
    Form("shift", "PIXELS", int, None, lambda v: v >= 1, "an integer >= 1"),
)
AUGMENT_NAMES = tuple(f.name for f in AUGMENTS)


def parse_augment(spec: str) -> tuple[str, float]:
    """Split an augmentation spec into name and argument: ``"noise:0.1"`` -> ``("noise", 0.1)``.

    ``"shift:2"`` -> ``("shift", 2.0)``. A bad spec raises :class:`ConfigError` naming the forms.
    """
    name, value = parse_spec(spec, AUGMENTS, "augmentation")
    return name, float(value or 0.0)


def augment_batch(x: Tensor, spec: str, generator: torch.Generator, bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Apply the random augmentation ``spec`` (see :func:`parse_augment`) to a batch.

    ``noise:SIGMA`` adds N(0, SIGMA^2) noise and clips to ``bounds``; ``shift:K`` moves each
    image ``[N, C, H, W]`` by its own random offset of up to K pixels along each axis, filling
    with ``bounds[0]`` (the background).
    """
    name, value = parse_augment(spec)
    if name == "noise":
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return (x + value * noise).clamp(*bounds)
    if x.dim() != 4:
        raise InputError(f"augment {spec!r} needs image inputs [N, C, H, W], got shape {tuple(x.shape)}")
    k = int(value)
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (k, k, k, k), value=bounds[0])
    dy, dx = (torch.randint(0, 2 * k + 1, (n,), generator=generator) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


#: Sample-mixing schemes :attr:`TrainConfig.mix` accepts; ALPHA is the Beta(ALPHA, ALPHA) parameter.
MIXES = tuple(Form(name, "ALPHA", float, None, positive, "a finite number > 0") for name in ("mixup", "cutmix"))
MIX_NAMES = tuple(f.name for f in MIXES)


def parse_mix(spec: str) -> tuple[str, float]:
    """Split a mixing spec into name and Beta parameter: ``"mixup:0.2"`` -> ``("mixup", 0.2)``.

    A bad spec raises :class:`ConfigError` naming the valid forms.
    """
    name, value = parse_spec(spec, MIXES, "mix")
    return name, float(value or 0.0)


def mix_batch(
    x: Tensor, spec: str, generator: torch.Generator, rng: np.random.Generator
) -> tuple[Tensor, Tensor, float]:
    """Mix a batch with a shuffled copy of itself; returns ``(mixed x, partner index, lam)``.

    ``lam ~ Beta(ALPHA, ALPHA)`` (drawn from ``rng``; one scalar per batch, as in both papers)
    and the partner order from ``generator``. The loss of the mixed batch is
    ``lam * CE(logits, y) + (1 - lam) * CE(logits, y[partner])``. ``mixup`` (Zhang et al.,
    ICLR 2018) interpolates whole inputs: ``lam * x + (1 - lam) * x[partner]``. ``cutmix``
    (Yun et al., ICCV 2019) pastes a box of ``x[partner]`` covering a ``1 - lam`` share of each
    image ``[N, C, H, W]`` at a random centre (clipped at the border), and returns the exact
    share of pixels kept as ``lam``.
    """
    name, alpha = parse_mix(spec)
    lam = float(rng.beta(alpha, alpha))
    partner = torch.randperm(len(x), generator=generator)
    if name == "mixup":
        return lam * x + (1.0 - lam) * x[partner], partner, lam
    if x.dim() != 4:
        raise InputError(f"mix {spec!r} needs image inputs [N, C, H, W], got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    cut = (1.0 - lam) ** 0.5
    ch, cw = round(h * cut), round(w * cut)
    cy, cx = (int(torch.randint(0, size, (1,), generator=generator)) for size in (h, w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
    mixed = x.clone()
    mixed[..., y0:y1, x0:x1] = x[partner][..., y0:y1, x0:x1]
    return mixed, partner, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


#: ``penalty(model, x, y, logits) -> scalar``: a term added to a batch's training loss.
Penalty = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]


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
    augment: str | None = None
    mix: str | None = None
    #: Cross-entropy against labels smoothed by this much (Szegedy et al., CVPR 2016); 0: none.
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.augment is not None:
            parse_augment(self.augment)
        if self.mix is not None:
            parse_mix(self.mix)


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
    penalty: Penalty | None = None,
    sample_weight: Tensor | None = None,
    soft_targets: Tensor | None = None,
    on_epoch: Callable[[nn.Module, int], bool] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` with cross-entropy (plus ``penalty``); returns it in eval mode.

    Batches are shuffled by a generator seeded from ``config.seed``, and layers that draw from
    torch's global generator (dropout) draw from one seeded from it too (the caller's global
    state is left as it was), so a run repeats whatever ran before it.
    ``penalty(model, x, y, logits)``, called in training mode right after the forward pass,
    returns a scalar added to each batch's loss (the recorded losses include it).
    ``config.augment`` augments each batch (with its own generator seeded from
    ``config.seed``, so shuffling is the same with or without it) before ``transform`` sees
    it; noise is clipped to the range of ``data.x``.

    ``config.mix`` mixes each batch after ``transform`` (see :func:`mix_batch`; generators
    seeded from ``config.seed``); ``penalty`` then sees the mixed inputs and the first labels.
    ``sample_weight`` (float ``[N]``, >= 0, aligned with ``data``) weights each sample's loss:
    a batch's loss is ``sum(w_i * CE_i) / batch size``, so weight 0 removes a sample and
    weight 1 everywhere trains as without weights. With mixing a sample's two parts keep
    their own weights: ``lam * w_a * CE(y_a) + (1 - lam) * w_b * CE(y_b)``.
    ``soft_targets`` (float ``[N, num_classes]``, rows of probabilities aligned with ``data``)
    replaces the labels in the loss by cross-entropy against those rows (distillation, as a
    model-stealing attacker trains on a victim's scores); ``penalty`` still sees ``data.y``.
    ``on_epoch(model, epochs_done)``, called in eval mode after each epoch, stops training
    when it returns True (early stopping on a held-out slice).
    """
    cfg = config or TrainConfig()
    if len(data) == 0:
        raise InputError("cannot train on an empty dataset")
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    aug_g = torch.Generator().manual_seed(cfg.seed + 1)
    if cfg.augment is not None:
        name, _ = parse_augment(cfg.augment)
        if name == "shift" and data.x.dim() != 4:
            raise InputError(f"augment {cfg.augment!r} needs image inputs [N, C, H, W], got {tuple(data.x.shape[1:])}")
        data_range = (float(data.x.min()), float(data.x.max()))
    if cfg.mix is not None and parse_mix(cfg.mix)[0] == "cutmix" and data.x.dim() != 4:
        raise InputError(f"mix {cfg.mix!r} needs image inputs [N, C, H, W], got {tuple(data.x.shape[1:])}")
    weights = _check_weights(sample_weight, len(data))
    soft = _check_soft_targets(soft_targets, len(data))
    mix_g = torch.Generator().manual_seed(cfg.seed + 2)
    mix_rng = np.random.default_rng(cfg.seed + 2)
    per_sample = nn.CrossEntropyLoss(reduction="none", label_smoothing=cfg.label_smoothing)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    losses: list[float] = []
    start = time.perf_counter()
    n = len(data)
    # Layers that draw from torch's global generator (dropout) draw from one seeded from the
    # config, so a model trains the same whatever ran before it in the process.
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed + 3)
        for _epoch in bar(range(cfg.epochs), desc, total=cfg.epochs, enabled=cfg.progress):
            order = torch.randperm(n, generator=g)
            total = 0.0
            for idx in order.split(cfg.batch_size):
                xb, yb = data.x[idx], data.y[idx]
                tb = yb if soft is None else soft[idx]
                if cfg.augment is not None:
                    xb = augment_batch(xb, cfg.augment, aug_g, data_range)
                if transform is not None:
                    model.eval()
                    xb = transform(model, xb, yb).detach()
                model.train()
                opt.zero_grad(set_to_none=True)
                if cfg.mix is None and weights is None:
                    logits = model(xb)
                    loss = loss_fn(logits, tb)
                else:
                    wb = torch.ones(len(idx)) if weights is None else weights[idx]
                    partner, lam = torch.arange(len(idx)), 1.0
                    if cfg.mix is not None:
                        xb, partner, lam = mix_batch(xb, cfg.mix, mix_g, mix_rng)
                    logits = model(xb)
                    losses_b = lam * wb * per_sample(logits, tb)
                    if lam < 1.0:
                        losses_b = losses_b + (1.0 - lam) * wb[partner] * per_sample(logits, tb[partner])
                    loss = losses_b.mean()
                if penalty is not None:
                    loss = loss + penalty(model, xb, yb, logits)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / n)
            if on_epoch is not None:
                model.eval()
                with torch.no_grad():
                    stop = on_epoch(model, _epoch + 1)
                if stop:
                    break
    opt.zero_grad(set_to_none=True)  # leave no stale gradients on the returned model
    model.eval()
    return TrainResult(model, time.perf_counter() - start, losses)


def _check_weights(sample_weight: Tensor | None, n: int) -> Tensor | None:
    """Validate ``sample_weight`` (float ``[n]``, finite, >= 0) and return it as float32."""
    if sample_weight is None:
        return None
    if not isinstance(sample_weight, Tensor) or sample_weight.shape != (n,):
        shape = tuple(sample_weight.shape) if isinstance(sample_weight, Tensor) else type(sample_weight).__name__
        raise InputError(f"sample_weight must be a tensor of shape ({n},) aligned with the data, got {shape}")
    w = sample_weight.detach().float()
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise InputError("sample_weight must hold finite values >= 0")
    return w


def _check_soft_targets(targets: Tensor | None, n: int) -> Tensor | None:
    """Validate ``targets`` (float ``[n, C]``, finite, >= 0) and return them as float32."""
    if targets is None:
        return None
    if not isinstance(targets, Tensor) or targets.dim() != 2 or targets.shape[0] != n:
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise InputError(f"soft_targets must be a tensor of shape ({n}, classes) aligned with the data, got {shape}")
    t = targets.detach().float()
    if not torch.isfinite(t).all() or bool((t < 0).any()):
        raise InputError("soft_targets must be finite and >= 0")
    return t
