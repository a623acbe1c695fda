"""Backdoor learning curves: how fast a model learns a backdoor as the poison's weight grows.

Cinà, Grosse, Vascon, Demontis, Biggio, Roli & Pelillo, "Backdoor Learning Curves: Explaining
Backdoor Poisoning Beyond Influence Functions", arXiv:2106.07214, 2021. The model is
trained on ``L(clean) + beta * L(poison)`` for ``beta`` from 0 (poison ignored) to 1 (plain
poisoned training), and the backdoor's effect on test data (attack success rate and the
backdoor loss, the cross-entropy of triggered test inputs towards the target) is read at each
``beta``. A steep curve (the paper's "backdoor learning slope") means a few poisoned samples
suffice; the paper shows that stronger regularisation flattens the curve, so the curve is run
once per ``weight_decay``. Here the slope is read off the curve by finite differences; the
paper derives it in closed form for the trained model (an implicit-gradient argument).

The weighted loss is :func:`sparring.train.fit` with ``sample_weight`` = 1 on clean samples and
``beta`` on poisoned ones (poisoned samples are known from ``PoisonedDataset.poison_mask``).
Every point starts from the same initial weights (``build_model`` is called under ``seed``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from sparring.data import Dataset, PoisonedDataset
from sparring.errors import ConfigError, InputError
from sparring.metrics import attack_success_rate, dataset_accuracy
from sparring.models import TorchClassifier
from sparring.progress import bar
from sparring.train import TrainConfig, fit

#: The default grid of poison weights.
BETAS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))


@dataclass
class CurvePoint:
    """One trained model of a learning curve."""

    beta: float
    weight_decay: float
    asr: float  # attack success rate on triggered non-target test inputs
    backdoor_loss: float  # mean cross-entropy of those inputs towards the target
    clean_accuracy: float  # accuracy on the clean test set
    seconds: float  # training time


@dataclass
class LearningCurve:
    """The points of :func:`backdoor_learning_curve`, one per (weight decay, beta)."""

    points: list[CurvePoint]

    def curve(self, weight_decay: float) -> list[CurvePoint]:
        """The points trained with ``weight_decay``, by increasing beta."""
        found = sorted((p for p in self.points if p.weight_decay == weight_decay), key=lambda p: p.beta)
        if not found:
            known = sorted({p.weight_decay for p in self.points})
            raise InputError(f"no points with weight_decay {weight_decay}; the curve has {known}")
        return found

    def slope(self, weight_decay: float) -> float:
        """Initial slope of ASR over beta: ``(ASR(beta_1) - ASR(beta_0)) / (beta_1 - beta_0)``.

        The finite-difference reading of the paper's backdoor learning slope at the smallest
        two betas of the curve (NaN with fewer than two).
        """
        pts = self.curve(weight_decay)
        if len(pts) < 2:
            return math.nan
        return (pts[1].asr - pts[0].asr) / (pts[1].beta - pts[0].beta)

    def area(self, weight_decay: float) -> float:
        """Mean ASR over the beta range (trapezoid area divided by its width; NaN for one point)."""
        pts = self.curve(weight_decay)
        if len(pts) < 2:
            return math.nan
        area = sum((b.beta - a.beta) * (a.asr + b.asr) / 2 for a, b in itertools.pairwise(pts))
        return area / (pts[-1].beta - pts[0].beta)

    def as_rows(self) -> list[dict[str, float]]:
        """Every point as a plain dict (for JSON reports)."""
        return [vars(p).copy() for p in self.points]


def backdoor_learning_curve(
    data: PoisonedDataset,
    build_model: Callable[[], nn.Module],
    config: TrainConfig,
    test: Dataset,
    betas: Sequence[float] = BETAS,
    weight_decays: Sequence[float] = (0.0, 1e-2),
    seed: int = 0,
    progress: bool | None = None,
) -> LearningCurve:
    """Train one model per (weight decay, beta) and measure the backdoor (Cinà et al. 2021).

    ``data`` must be a backdoor (``trigger`` and ``target`` set) with at least one poisoned
    sample; ``test`` is clean test data on which ASR and clean accuracy are measured.
    ``build_model()`` returns a fresh model; it is called with torch's global generator seeded
    from ``seed`` (and restored afterwards), so every point starts from the same weights.
    ``config`` is used as given except ``weight_decay`` and ``seed`` (set from the arguments).
    ``weight_decays`` default to none and a strong 1e-2 (Adam's L2 term).
    """
    if data.trigger is None or data.target is None:
        raise InputError("a backdoor learning curve needs a backdoor PoisonedDataset (trigger and target set)")
    if data.n_poisoned == 0:
        raise InputError("the dataset holds no poisoned samples")
    betas = [float(b) for b in betas]
    wds = [float(w) for w in weight_decays]
    if not betas or any(not 0.0 <= b < math.inf for b in betas):
        raise ConfigError(f"betas must be a non-empty list of finite numbers >= 0, got {betas}")
    if not wds or any(not 0.0 <= w < math.inf for w in wds):
        raise ConfigError(f"weight_decays must be a non-empty list of finite numbers >= 0, got {wds}")
    if tuple(test.input_shape) != tuple(data.input_shape):
        raise InputError(f"test inputs have shape {test.input_shape}, training inputs {data.input_shape}")
    poison = data.poison_mask
    keep = test.y != data.target
    triggered = data.trigger.apply(test.x[keep])
    target = torch.full((len(triggered),), data.target, dtype=torch.long)
    grid = [(w, b) for w in wds for b in betas]
    points: list[CurvePoint] = []
    for wd, beta in bar(grid, "learning curve", total=len(grid), enabled=progress):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = build_model()
        weights = torch.where(poison, torch.tensor(beta), torch.tensor(1.0))
        cfg = replace(config, weight_decay=wd, seed=seed)
        result = fit(model, data, cfg, desc=f"beta={beta}", sample_weight=weights)
        clf = TorchClassifier(result.model, data.input_shape, data.num_classes)
        asr = attack_success_rate(clf, test.x, test.y, data.trigger, data.target)
        with torch.no_grad():
            bd_loss = float(nn.functional.cross_entropy(clf.logits(triggered), target)) if len(target) else math.nan
        points.append(CurvePoint(beta, wd, asr, bd_loss, dataset_accuracy(clf, test), result.seconds))
    return LearningCurve(points)
