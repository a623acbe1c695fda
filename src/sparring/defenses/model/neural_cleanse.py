"""Neural Cleanse: reconstruct a minimal trigger per class and flag outliers; TABOR's regularisers.

Wang, Yao, Shan, Li, Viswanath, Zheng & Zhao ("Neural Cleanse: Identifying and Mitigating
Backdoor Attacks in Neural Networks", IEEE S&P 2019) treat every class as a possible backdoor
target. For each class they optimise a mask ``m`` and a pattern ``p`` so that the stamped
input ``(1 - m) * x + m * p`` goes to that class on clean data, while the L1 norm of ``m`` is
kept small by a weight that adapts to the attack success (raised while the trigger works,
lowered while it does not). A backdoor target needs a far smaller mask than the other
classes; the median absolute deviation (MAD) of the mask norms turns this into an anomaly
index, and a class whose norm lies below the median with an index above 2 is flagged.
Their unlearning repair fine-tunes the model on clean data of which 20 % carry the
reconstructed trigger with their true labels.

Guo, Wang, Xing, Du & Song ("TABOR: A Highly Accurate Approach to Inspecting and Restoring
Trojan Backdoors in AI Systems", arXiv 2019 / ICDM 2020) add four regularisers to the same
optimisation: R1 against overly large triggers (elastic net of the mask and of the pattern
outside it), R2 against scattered triggers (total variation of both), R3 against blocking
triggers (the input with the trigger region removed must keep its true label) and R4
against overlaying triggers (the trigger alone, on a blank input, must reach the class).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from sparring.data import Dataset, Trigger
from sparring.errors import (
    ConfigError,
    InputError,
    check_choice,
    check_fraction,
    check_nonnegative,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
    check_seed,
)
from sparring.models import Access, Classifier, TorchClassifier
from sparring.params import Params
from sparring.progress import bar
from sparring.train import TrainConfig, fit

#: Regularisers :class:`NeuralCleanse` implements.
REGULARISERS = ("neural_cleanse", "tabor")

#: MAD consistency constant for normally distributed data (Wang et al. use it as well).
MAD_CONSTANT = 1.4826

#: TABOR's weights (R1 mask, R1 pattern, R2 mask, R2 pattern, R3 blocking, R4 overlaying). The
#: first four and the last follow TrojanZoo's TABOR defaults; the blocking weight there is 0,
#: here it is the overlay weight so that R3 takes part.
TABOR_WEIGHTS = (1e-6, 1e-5, 1e-7, 1e-8, 1e-2, 1e-2)

_EPS = 1e-7


@dataclass
class InspectionResult:
    """What :meth:`NeuralCleanse.inspect` returns, one entry per class along the first axis.

    ``norms`` are the L1 norms of the reconstructed masks; ``anomaly_index`` is signed,
    ``(median - norm) / MAD`` with ``MAD = 1.4826 * median(|norm - median|)``, so a class whose
    mask is unusually *small* has a large positive index. ``flagged_classes`` have an index
    above the threshold (which implies a norm below the median); ``max_anomaly_index`` is the
    largest index. ``attack_success`` is each reconstructed trigger's success on the clean
    samples of the other classes. ``masks`` are ``[C, 1, H, W]`` for images (one mask shared
    by the channels) and ``[C, *input_shape]`` otherwise; ``patterns`` are ``[C, *input_shape]``.
    """

    norms: Tensor
    anomaly_index: Tensor
    flagged_classes: list[int]
    is_backdoored: bool
    max_anomaly_index: float
    masks: Tensor
    patterns: Tensor
    attack_success: Tensor
    seconds: float
    regulariser: str = "neural_cleanse"
    reached: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))

    def trigger(self, cls: int) -> Trigger:
        """The reconstructed trigger of class ``cls`` as a :class:`~sparring.data.Trigger`."""
        self._check_class(cls)
        pattern = self.patterns[cls]
        return Trigger(pattern.clone(), self.masks[cls].expand_as(pattern).clone())

    def trigger_image(self, cls: int) -> Tensor:
        """``mask * pattern`` of class ``cls`` in the input's shape: the trigger as an image for the report."""
        self._check_class(cls)
        return self.masks[cls] * self.patterns[cls]

    def _check_class(self, cls: int) -> None:
        if isinstance(cls, bool) or not isinstance(cls, int) or not 0 <= cls < len(self.norms):
            raise InputError(f"class must be an integer in [0, {len(self.norms) - 1}], got {cls!r}")


@dataclass
class UnlearningResult:
    """What :meth:`NeuralCleanse.repair` returns: the repaired classifier and how it was made.

    ``unlearned`` is False when the inspection flagged no class (the model is then returned
    unchanged, as a copy); accuracies are on the clean data given to ``repair``.
    """

    classifier: TorchClassifier
    inspection: InspectionResult
    unlearned: bool
    clean_accuracy_before: float
    clean_accuracy_after: float
    seconds: float
    losses: list[float] = field(default_factory=list)


class NeuralCleanse(Params):
    """Neural Cleanse trigger reconstruction and MAD outlier test (Wang et al., IEEE S&P 2019).

    With ``regulariser="tabor"`` the optimisation adds TABOR's regularisers (Guo et al.,
    arXiv 2019 / ICDM 2020) weighted by ``tabor_weights`` (see :data:`TABOR_WEIGHTS`).

    All classes are optimised at once: each step stamps the ``C`` candidate triggers on one
    mini-batch of ``batch_size`` clean samples and sends the ``C * batch_size`` inputs through
    the model together; the classes' variables and costs stay independent. Masks and patterns
    are tanh-parameterised (so they stay in [0, 1] and in the model's bounds) and optimised by
    Adam (``lr``, betas 0.5 / 0.9 as in the paper's code). Every pass over the ``samples``
    clean samples (drawn with ``seed``) ends an "epoch" at which each class's cost follows
    Neural Cleanse's schedule: after ``patience`` epochs at or above ``success_threshold``
    attack success it is multiplied by ``cost_multiplier``, after ``patience`` below it divided
    by ``cost_multiplier ** 1.5``. The smallest mask reaching the threshold is kept; a class
    stops early once its cost went both up and down and its best norm has not shrunk by 1 %
    for ``early_stop_patience`` epochs. ``steps`` bounds the mini-batch updates in total.
    """

    def __init__(
        self,
        steps: int = 1000,
        lr: float = 0.1,
        init_cost: float = 1e-3,
        regulariser: str = "neural_cleanse",
        batch_size: int = 32,
        samples: int = 1000,
        threshold: float = 2.0,
        success_threshold: float = 0.99,
        patience: int = 5,
        cost_multiplier: float = 1.5,
        early_stop_patience: int = 10,
        tabor_weights: Sequence[float] = TABOR_WEIGHTS,
        unlearn_fraction: float = 0.2,
        unlearn_epochs: int = 5,
        unlearn_lr: float = 1e-3,
        seed: int = 0,
        progress: bool | None = None,
    ) -> None:
        self.steps = check_positive_int("steps", steps)
        self.lr = check_positive("lr", lr)
        self.init_cost = check_nonnegative("init_cost", init_cost)
        self.regulariser = check_choice("regulariser", regulariser, REGULARISERS)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.samples = check_positive_int("samples", samples)
        self.threshold = check_positive("threshold", threshold)
        if not 0.0 < float(success_threshold) <= 1.0:
            raise ConfigError(f"success_threshold must be in (0, 1], got {success_threshold}")
        self.success_threshold = float(success_threshold)
        self.patience = check_positive_int("patience", patience)
        if not 1.0 < float(cost_multiplier) < float("inf"):
            raise ConfigError(f"cost_multiplier must be a finite number > 1, got {cost_multiplier}")
        self.cost_multiplier = float(cost_multiplier)
        self.early_stop_patience = check_positive_int("early_stop_patience", early_stop_patience)
        weights = tuple(tabor_weights)
        if len(weights) != 6:
            raise ConfigError(
                f"tabor_weights must hold 6 numbers >= 0 (R1 mask, R1 pattern, R2 mask, "
                f"R2 pattern, R3, R4), got {len(weights)}"
            )
        self.tabor_weights = tuple(check_nonnegative("tabor_weights", w) for w in weights)
        self.unlearn_fraction = check_fraction("unlearn_fraction", unlearn_fraction)
        self.unlearn_epochs = check_nonnegative_int("unlearn_epochs", unlearn_epochs)
        self.unlearn_lr = check_positive("unlearn_lr", unlearn_lr)
        self.seed = check_seed(seed)
        self.progress = progress

    # -- inspection ----------------------------------------------------------------------
    def inspect(self, classifier: Classifier, clean: Dataset) -> InspectionResult:
        """Reconstruct one trigger per class on ``clean`` and run the MAD outlier test."""
        classifier.require(Access.GRADIENTS | Access.LABELS, "NeuralCleanse")
        _check_data(classifier, clean, "NeuralCleanse.inspect")
        start = time.perf_counter()
        g = torch.Generator().manual_seed(self.seed)
        n = min(self.samples, len(clean))
        pick = torch.randperm(len(clean), generator=g)[:n]
        x, y = clean.x[pick].float(), clean.y[pick]
        n_classes = classifier.num_classes
        shape = classifier.input_shape
        mask_shape = (1, *shape[1:]) if len(shape) == 3 else shape
        lo, hi = classifier.bounds

        def init(size: tuple[int, ...]) -> Tensor:
            u = torch.rand(size, generator=g)
            return torch.atanh((u - 0.5) * (2 - _EPS))

        mask_raw = init((n_classes, *mask_shape)).requires_grad_(True)
        pattern_raw = init((n_classes, *shape)).requires_grad_(True)
        opt = torch.optim.Adam([mask_raw, pattern_raw], lr=self.lr, betas=(0.5, 0.9))

        state = [_Schedule(self.init_cost) for _ in range(n_classes)]
        best_mask = torch.full((n_classes, *mask_shape), float("nan"))
        best_pattern = torch.full((n_classes, *shape), float("nan"))
        per_epoch = math.ceil(n / self.batch_size)
        acc_sum = torch.zeros(n_classes)
        reg_sum = torch.zeros(n_classes)
        batches = 0
        order = torch.randperm(n, generator=g)
        tabor = self.regulariser == "tabor"
        w = self.tabor_weights

        for step in bar(range(self.steps), "neural cleanse", total=self.steps, enabled=self.progress):
            active = torch.tensor([c for c in range(n_classes) if not state[c].done], dtype=torch.long)
            if len(active) == 0:
                break
            k = step % per_epoch
            if k == 0 and step > 0:
                order = torch.randperm(n, generator=g)
            idx = order[k * self.batch_size : (k + 1) * self.batch_size]
            xb, yb = x[idx], y[idx]
            b, a = len(idx), len(active)
            mask = _squash(mask_raw[active])
            pattern = lo + (hi - lo) * _squash(pattern_raw[active])
            stamp = mask * pattern
            x_adv = (1 - mask).unsqueeze(1) * xb.unsqueeze(0) + stamp.unsqueeze(1)
            targets = active.repeat_interleave(b)
            logits = classifier.logits(x_adv.reshape(a * b, *shape))
            ce = F.cross_entropy(logits, targets, reduction="none").view(a, b).mean(dim=1)
            with torch.no_grad():
                acc = (logits.argmax(dim=1) == targets).float().view(a, b).mean(dim=1)
            l1 = mask.flatten(1).sum(dim=1)
            costs = torch.tensor([state[c].cost for c in active.tolist()])
            loss = ce + costs * l1
            if tabor:
                outside = (1 - mask) * pattern
                loss = loss + w[0] * (l1 + mask.pow(2).flatten(1).sum(dim=1))
                loss = loss + w[1] * (outside.abs().flatten(1).sum(dim=1) + outside.pow(2).flatten(1).sum(dim=1))
                loss = loss + w[2] * _total_variation(mask) + w[3] * _total_variation(outside)
                if w[4] > 0:
                    blocked = ((1 - mask).unsqueeze(1) * xb.unsqueeze(0)).reshape(a * b, *shape)
                    ce_block = F.cross_entropy(classifier.logits(blocked), yb.repeat(a), reduction="none")
                    loss = loss + w[4] * ce_block.view(a, b).mean(dim=1)
                if w[5] > 0:  # the trigger alone, on a blank (lower-bound) input
                    alone = classifier.logits(lo + stamp - mask * lo)
                    loss = loss + w[5] * F.cross_entropy(alone, active, reduction="none")
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            acc_sum[active] += acc * b
            reg_sum[active] += l1.detach() * b
            batches += b
            if k == per_epoch - 1:  # end of an epoch: NC's per-class bookkeeping
                with torch.no_grad():
                    for j, c in enumerate(active.tolist()):
                        if state[c].end_epoch(float(acc_sum[c]) / batches, float(reg_sum[c]) / batches, self):
                            best_mask[c] = mask[j].detach()
                            best_pattern[c] = pattern[j].detach()
                acc_sum.zero_()
                reg_sum.zero_()
                batches = 0

        with torch.no_grad():
            final_mask = _squash(mask_raw.detach())
            final_pattern = lo + (hi - lo) * _squash(pattern_raw.detach())
            reached = torch.tensor([s.best_reg < float("inf") for s in state])
            masks = torch.where(reached.view(-1, *[1] * len(mask_shape)), best_mask, final_mask)
            patterns = torch.where(reached.view(-1, *[1] * len(shape)), best_pattern, final_pattern)
            norms = masks.flatten(1).sum(dim=1)
            success = torch.zeros(n_classes)
            for c in range(n_classes):
                keep = y != c
                if bool(keep.any()):
                    stamped = (1 - masks[c]) * x[keep] + masks[c] * patterns[c]
                    success[c] = (classifier.predict_labels(stamped) == c).float().mean()
        index = anomaly_index(norms)
        flagged = [c for c in range(n_classes) if float(index[c]) > self.threshold]
        return InspectionResult(
            norms=norms,
            anomaly_index=index,
            flagged_classes=flagged,
            is_backdoored=bool(flagged),
            max_anomaly_index=float(index.max()),
            masks=masks,
            patterns=patterns,
            attack_success=success,
            seconds=time.perf_counter() - start,
            regulariser=self.regulariser,
            reached=reached,
        )

    # -- repair ---------------------------------------------------------------------------
    def repair(
        self, classifier: Classifier, clean: Dataset, inspection: InspectionResult | None = None
    ) -> UnlearningResult:
        """Unlearning (Wang et al., S&P 2019): fine-tune a copy on ``clean`` with reversed triggers.

        ``unlearn_fraction`` of the clean samples (seeded) get the reconstructed trigger of a
        flagged class (chosen at random among the flagged ones) and keep their true labels;
        the copy is trained for ``unlearn_epochs`` with Adam at ``unlearn_lr``. Runs
        :meth:`inspect` first unless ``inspection`` is given; a model with no flagged class is
        returned unchanged.
        """
        if not isinstance(classifier, TorchClassifier):
            raise InputError(
                f"NeuralCleanse.repair needs a TorchClassifier (it edits the weights), got {type(classifier).__name__}"
            )
        classifier.require(Access.GRADIENTS | Access.LABELS, "NeuralCleanse")
        _check_data(classifier, clean, "NeuralCleanse.repair")
        start = time.perf_counter()
        result = inspection if inspection is not None else self.inspect(classifier, clean)
        if len(result.norms) != classifier.num_classes:
            raise InputError(f"inspection covers {len(result.norms)} classes, the model {classifier.num_classes}")
        model = copy.deepcopy(classifier.model).eval()
        x, y = clean.x.float(), clean.y
        with torch.no_grad():
            before = float((torch.cat([model(b).argmax(1) for b in x.split(512)]) == y).float().mean())
        losses: list[float] = []
        unlearned = bool(result.flagged_classes) and self.unlearn_epochs > 0
        if unlearned:
            g = torch.Generator().manual_seed(self.seed + 1)
            n_stamp = round(self.unlearn_fraction * len(clean))
            chosen = torch.randperm(len(clean), generator=g)[:n_stamp]
            flagged = torch.tensor(result.flagged_classes)
            which = flagged[torch.randint(len(flagged), (n_stamp,), generator=g)]
            x_un = x.clone()
            m, p = result.masks[which], result.patterns[which]
            x_un[chosen] = (1 - m) * x[chosen] + m * p
            data = Dataset(x_un, y.clone(), list(clean.classes), f"{clean.name}-unlearn")
            config = TrainConfig(epochs=self.unlearn_epochs, lr=self.unlearn_lr, seed=self.seed, progress=False)
            losses = fit(model, data, config, desc="unlearn").losses
        model.eval()
        with torch.no_grad():
            after = float((torch.cat([model(b).argmax(1) for b in x.split(512)]) == y).float().mean())
        repaired = TorchClassifier(
            model, classifier.input_shape, classifier.num_classes, bounds=classifier.bounds, access=classifier.access
        )
        return UnlearningResult(repaired, result, unlearned, before, after, time.perf_counter() - start, losses)


def anomaly_index(norms: Tensor) -> Tensor:
    """Signed MAD anomaly index ``(median - norm) / (1.4826 * median(|norm - median|))`` per class.

    Positive values mean a smaller norm than the median (Wang et al., S&P 2019). When the MAD
    is zero, classes at the median get 0 and the others +-inf.
    """
    if norms.dim() != 1 or len(norms) < 2:
        raise InputError(f"anomaly_index needs a vector of at least 2 norms, got shape {tuple(norms.shape)}")
    norms = norms.float()
    median = torch.quantile(norms, 0.5)
    dev = median - norms
    mad = MAD_CONSTANT * torch.quantile(dev.abs(), 0.5)
    if float(mad) == 0.0:
        return torch.where(dev == 0, torch.zeros_like(dev), dev.sign() * float("inf"))
    return dev / mad


class _Schedule:
    """One class's Neural Cleanse cost schedule, best norm and early-stop state."""

    def __init__(self, init_cost: float) -> None:
        self.cost = init_cost
        self.best_reg = float("inf")
        self.early_best = float("inf")
        self.set_count = self.up_count = self.down_count = self.early_count = 0
        self.up_flag = self.down_flag = False
        self.done = False

    def end_epoch(self, acc: float, reg: float, nc: NeuralCleanse) -> bool:
        """Update the schedule after one epoch; True when this epoch's mask is the new best."""
        success = acc >= nc.success_threshold
        improved = success and reg < self.best_reg
        if improved:
            self.best_reg = reg
        if self.best_reg < float("inf"):
            self.early_count = self.early_count + 1 if self.best_reg >= 0.99 * self.early_best else 0
        self.early_best = min(self.early_best, self.best_reg)
        if self.up_flag and self.down_flag and self.early_count >= nc.early_stop_patience:
            self.done = True
        if self.cost == 0 and success:  # a zero cost is switched on once the trigger works
            self.set_count += 1
            if self.set_count >= nc.patience:
                self.cost, self.set_count = nc.init_cost, 0
                self.up_count = self.down_count = 0
                self.up_flag = self.down_flag = False
            return improved
        self.set_count = 0
        if success:
            self.up_count, self.down_count = self.up_count + 1, 0
        else:
            self.up_count, self.down_count = 0, self.down_count + 1
        if self.up_count >= nc.patience:
            self.up_count, self.up_flag = 0, True
            self.cost *= nc.cost_multiplier
        elif self.down_count >= nc.patience:
            self.down_count, self.down_flag = 0, True
            self.cost /= nc.cost_multiplier**1.5
        return improved


def _squash(raw: Tensor) -> Tensor:
    """Neural Cleanse's tanh map of an unbounded variable into [0, 1]."""
    return torch.tanh(raw) / (2 - _EPS) + 0.5


def _total_variation(t: Tensor) -> Tensor:
    """Anisotropic total variation per item of a batch ``[A, ...]`` over its last one or two axes."""
    tv = (t[..., 1:] - t[..., :-1]).abs().flatten(1).sum(dim=1)
    if t.dim() >= 3:
        tv = tv + (t[..., 1:, :] - t[..., :-1, :]).abs().flatten(1).sum(dim=1)
    return tv


def _check_data(classifier: Classifier, clean: Dataset, by: str) -> None:
    if len(clean) == 0:
        raise InputError(f"{by} needs clean data, got an empty dataset")
    if clean.input_shape != classifier.input_shape:
        raise InputError(f"clean data has inputs {clean.input_shape}, the model expects {classifier.input_shape}")
    if clean.num_classes > classifier.num_classes:
        raise InputError(f"clean data has {clean.num_classes} classes, the model {classifier.num_classes}")
