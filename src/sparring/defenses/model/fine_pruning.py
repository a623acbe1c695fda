"""Fine-pruning: remove a backdoor by pruning dormant channels, then fine-tuning on clean data.

Liu, Dolan-Gavitt & Garg ("Fine-Pruning: Defending Against Backdooring Attacks on Deep
Neural Networks", RAID 2018) observe that a backdoor often lives in neurons of the last
convolutional layer that clean inputs leave dormant. They prune that layer's channels in
increasing order of mean activation on clean data until clean (validation) accuracy drops
by more than a limit (4 % in the paper), then fine-tune the pruned network on the clean data,
which also weakens a backdoor hidden in channels that stayed. The fine-tuning step is
:func:`~sparring.defenses.model.fine_tuning.fine_tune`, the code of the plain fine-tuning repair
(:class:`~sparring.defenses.model.FineTuning`), and the result extends its :class:`RepairResult`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from sparring.data import Dataset
from sparring.defenses.model.fine_tuning import RepairResult, check_repair_input, fine_tune, model_accuracy
from sparring.errors import (
    ConfigError,
    InputError,
    check_fraction,
    check_nonnegative_int,
    check_positive,
    check_seed,
)
from sparring.models import Classifier, TorchClassifier, capture
from sparring.params import Params


@dataclass(kw_only=True)
class FinePruningResult(RepairResult):
    """What :meth:`FinePruning.repair` returns: a :class:`RepairResult` plus what pruning did.

    ``pruned`` holds the pruned channel indices of the layer in pruning order;
    ``clean_accuracy_pruned`` is the clean accuracy after pruning, before fine-tuning (all
    accuracies are measured on the clean data given to ``repair``).
    """

    pruned: list[int]
    n_channels: int
    clean_accuracy_pruned: float

    @property
    def pruned_fraction(self) -> float:
        """Share of the layer's channels that were pruned."""
        return len(self.pruned) / self.n_channels


class FinePruning(Params):
    """Fine-pruning model repair (Liu, Dolan-Gavitt & Garg, RAID 2018).

    :meth:`repair` follows DESIGN.md's model-defence verb: it takes a
    :class:`~sparring.models.TorchClassifier` and clean data and returns a repaired copy
    (the input model is never changed). Channels of ``layer`` (a ``Conv2d``, or a
    ``Linear`` for MLPs) are masked in increasing order of mean rectified activation on the
    clean data, stopping before clean accuracy would fall more than ``max_accuracy_drop``
    below its starting value or once ``max_prune_fraction`` of them are pruned. The pruned
    network is then fine-tuned for ``fine_tune_epochs`` on the clean data (Adam, ``lr``,
    shuffled with ``seed``) with the pruned channels held at zero.
    """

    def __init__(
        self,
        layer: str = "conv2",
        max_prune_fraction: float = 0.9,
        max_accuracy_drop: float = 0.04,
        fine_tune_epochs: int = 10,
        lr: float = 3e-3,
        seed: int = 0,
    ) -> None:
        if not isinstance(layer, str) or not layer:
            raise ConfigError(f"layer must be a non-empty layer name, got {layer!r}")
        self.layer = layer
        self.max_prune_fraction = check_fraction("max_prune_fraction", max_prune_fraction)
        self.max_accuracy_drop = check_fraction("max_accuracy_drop", max_accuracy_drop)
        self.fine_tune_epochs = check_nonnegative_int("fine_tune_epochs", fine_tune_epochs)
        self.lr = check_positive("lr", lr)
        self.seed = check_seed(seed)

    def repair(self, classifier: Classifier, clean: Dataset) -> FinePruningResult:
        """Prune and fine-tune a copy of ``classifier``'s model on ``clean``; see the class docstring."""
        classifier = check_repair_input(classifier, clean, "FinePruning")
        start = time.perf_counter()
        model = copy.deepcopy(classifier.model).eval()
        modules = dict(model.named_modules())
        module = modules.get(self.layer)
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            names = ", ".join(n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear)))
            raise InputError(f"layer {self.layer!r} is not a Conv2d or Linear layer of the model; candidates: {names}")
        x, y = clean.x.float(), clean.y
        n_channels = module.weight.shape[0]
        keep = torch.ones(n_channels)

        def masked(out: Tensor) -> Tensor:
            return out * keep.view(1, -1, *([1] * (out.dim() - 2)))

        with capture(model, self.layer, masked) as captured:
            with torch.no_grad():
                acc_before = model_accuracy(model, x, y)
                act = torch.cat(captured).clamp_min(0)
                mean_act = act.transpose(0, 1).reshape(n_channels, -1).mean(dim=1)
                order = torch.argsort(mean_act, stable=True).tolist()
                pruned: list[int] = []
                acc_pruned = acc_before
                for channel in order[: int(self.max_prune_fraction * n_channels)]:
                    keep[channel] = 0.0
                    captured.clear()
                    acc = model_accuracy(model, x, y)
                    if acc_before - acc > self.max_accuracy_drop:
                        keep[channel] = 1.0
                        break
                    pruned.append(channel)
                    acc_pruned = acc

        # Hold the pruned channels at zero through fine-tuning, then make the pruning permanent.
        weight_mask = keep.view(-1, *([1] * (module.weight.dim() - 1))).expand_as(module.weight).clone()
        prune.custom_from_mask(module, "weight", weight_mask)
        if module.bias is not None:
            prune.custom_from_mask(module, "bias", keep.clone())
        losses = fine_tune(model, clean, self.fine_tune_epochs, self.lr, self.seed, desc="fine-prune")
        prune.remove(module, "weight")
        if hasattr(module, "bias_orig"):
            prune.remove(module, "bias")
        model.eval()
        acc_after = model_accuracy(model, x, y)
        repaired = TorchClassifier(
            model, classifier.input_shape, classifier.num_classes, bounds=classifier.bounds, access=classifier.access
        )
        return FinePruningResult(
            classifier=repaired,
            pruned=pruned,
            n_channels=n_channels,
            clean_accuracy_before=acc_before,
            clean_accuracy_pruned=acc_pruned,
            clean_accuracy_after=acc_after,
            seconds=time.perf_counter() - start,
            losses=losses,
            details={"pruned_fraction": len(pruned) / n_channels},
        )
