"""Sanitise a training set with a data detector and retrain a fresh model on what is kept.

The repair step of Chen et al., "Detecting Backdoor Attacks on Deep Neural Networks by
Activation Clustering", AAAI SafeAI 2019: remove the samples found to be poison and train
again. Poison the first pass misses may still stand out once most of it is gone, so the
detector runs again on the retrained model until it finds nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.defenses.data.base import DataDetector
from sparring.errors import ConfigError, check_positive_int
from sparring.models import TorchClassifier
from sparring.train import TrainConfig, fit


@dataclass
class SanitiseResult:
    """The retrained classifier and what sanitisation removed."""

    classifier: TorchClassifier  # retrained on what was kept (the input classifier if nothing was removed)
    flagged: Tensor  # bool over the original training set: everything removed in any pass
    passes: int  # detector runs
    seconds: float  # detection plus retraining time


def sanitise_and_retrain(
    detector: DataDetector,
    train: Dataset,
    classifier: TorchClassifier,
    build: Callable[[], nn.Module],
    config: TrainConfig,
    max_passes: int = 2,
) -> SanitiseResult:
    """Detect, remove, retrain a fresh ``build()`` with :func:`sparring.train.fit`; repeat.

    Pass 1 runs ``detector`` on ``classifier`` (the model trained on the possibly poisoned
    ``train``). Each later pass runs it on the model retrained in the previous pass, over
    the samples still kept. The loop stops after ``max_passes`` detector runs or as soon as
    a run flags nothing; a run that flags nothing costs no retraining.
    """
    check_positive_int("max_passes", max_passes)
    start = time.perf_counter()
    kept = torch.arange(len(train))
    current = classifier
    passes = 0
    while passes < max_passes:
        passes += 1
        detection = detector.detect(train.subset(kept), current)
        if not bool(detection.flagged.any()):
            break
        kept = kept[~detection.flagged]
        if len(kept) == 0:
            raise ConfigError("the detector flagged every training sample; nothing is left to retrain on")
        model = fit(build(), train.subset(kept), config, desc=f"retrain (pass {passes})").model
        current = TorchClassifier(
            model,
            classifier.input_shape,
            classifier.num_classes,
            bounds=classifier.bounds,
            access=classifier.access,
            batch_size=classifier.batch_size,
        )
    flagged = torch.ones(len(train), dtype=torch.bool)
    flagged[kept] = False
    return SanitiseResult(current, flagged, passes, time.perf_counter() - start)
