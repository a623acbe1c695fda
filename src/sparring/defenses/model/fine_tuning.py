"""Fine-tuning: weaken a backdoor by training the model further on a small clean set.

Liu, Dolan-Gavitt & Garg ("Fine-Pruning: Defending Against Backdooring Attacks on Deep
Neural Networks", RAID 2018) evaluate plain fine-tuning as the baseline repair: the
defender retrains the suspect network on the clean data it holds, so that weights serving
only the trigger drift under gradient updates that never see it. It is cheap and keeps
clean accuracy, but a backdoor in neurons that clean inputs leave dormant can survive it,
which is why they prune first (:class:`~sparring.defenses.model.FinePruning`, which runs
this module's :func:`fine_tune` as its second step).

This module also holds what every model repair shares: :class:`RepairResult` and the
validation of a repair's inputs.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import InputError, check_positive, check_positive_int, check_seed
from sparring.models import Access, Classifier, TorchClassifier
from sparring.params import Params
from sparring.train import TrainConfig, fit


@dataclass
class RepairResult:
    """What a model repair returns: the repaired classifier and what the repair cost.

    The accuracies are measured on the clean data given to ``repair``, before and after;
    ``losses`` are the fine-tuning epochs' mean losses, ``details`` holds repair-specific
    figures.
    """

    classifier: TorchClassifier
    clean_accuracy_before: float
    clean_accuracy_after: float
    seconds: float
    losses: list[float] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def check_repair_input(classifier: Classifier, clean: Dataset, by: str) -> TorchClassifier:
    """Check that ``classifier`` can be repaired by ``by`` with ``clean`` data; return it as a TorchClassifier."""
    if not isinstance(classifier, TorchClassifier):
        raise InputError(f"{by} needs a TorchClassifier (it edits the weights), got {type(classifier).__name__}")
    classifier.require(Access.INTERNALS, by)
    if len(clean) == 0:
        raise InputError(f"{by}.repair needs clean data, got an empty dataset")
    if clean.input_shape != classifier.input_shape:
        raise InputError(f"clean data has inputs {clean.input_shape}, the model expects {classifier.input_shape}")
    if clean.num_classes != classifier.num_classes:
        raise InputError(f"clean data has {clean.num_classes} classes, the model {classifier.num_classes}")
    return classifier


def fine_tune(
    model: nn.Module, clean: Dataset, epochs: int, lr: float, seed: int, batch_size: int = 64, desc: str = "fine-tune"
) -> list[float]:
    """Train ``model`` in place on ``clean`` (Adam, cross-entropy, shuffled with ``seed``); return the epoch losses."""
    if epochs == 0:
        model.eval()
        return []
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, progress=None)
    return fit(model, clean, config, desc=desc).losses


def model_accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Share of ``x`` that ``model`` (in its current mode, without gradients) labels ``y``."""
    with torch.no_grad():
        preds = torch.cat([model(b).argmax(dim=1) for b in x.split(512)])
    return float((preds == y).float().mean())


class FineTuning(Params):
    """Fine-tuning model repair (the baseline of Liu, Dolan-Gavitt & Garg, RAID 2018).

    :meth:`repair` copies the classifier's model and trains the copy for ``epochs`` on the
    clean data (Adam, ``lr``, mini-batches of ``batch_size`` shuffled with ``seed``); the
    input model is never changed.
    """

    def __init__(self, epochs: int = 10, lr: float = 3e-3, batch_size: int = 64, seed: int = 0) -> None:
        self.epochs = check_positive_int("epochs", epochs)
        self.lr = check_positive("lr", lr)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_seed(seed)

    def repair(self, classifier: Classifier, clean: Dataset) -> RepairResult:
        """Fine-tune a copy of ``classifier``'s model on ``clean``; see the class docstring."""
        clf = check_repair_input(classifier, clean, "FineTuning")
        start = time.perf_counter()
        model = copy.deepcopy(clf.model).eval()
        x, y = clean.x.float(), clean.y
        acc_before = model_accuracy(model, x, y)
        losses = fine_tune(model, clean, self.epochs, self.lr, self.seed, self.batch_size)
        acc_after = model_accuracy(model, x, y)
        repaired = TorchClassifier(model, clf.input_shape, clf.num_classes, bounds=clf.bounds, access=clf.access)
        return RepairResult(
            classifier=repaired,
            clean_accuracy_before=acc_before,
            clean_accuracy_after=acc_after,
            seconds=time.perf_counter() - start,
            losses=losses,
            details={"epochs": self.epochs, "n_clean": len(clean)},
        )
