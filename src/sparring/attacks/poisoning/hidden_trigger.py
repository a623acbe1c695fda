"""Hidden-trigger backdoor: clean-label poisons that carry no visible trigger.

Saha, Subramanya & Pirsiavash, "Hidden Trigger Backdoor Attacks", AAAI 2020. In the
transfer-learning setting (a public feature extractor, the victim fine-tunes the head on its
own data) the attacker perturbs correctly labelled target-class images, within an Linf ball
of radius ``eps``, so that their features at ``layer`` sit on those of source-class images
with a patch pasted at random locations. The poisons look like ordinary target images and
keep their labels; the head trained on them learns "patched source features -> target", so
at test time the patch sends source images to the target class.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sparring.attacks.evasion.loop import Step, gradient_loop
from sparring.attacks.evasion.norms import Linf
from sparring.data import Dataset, PoisonedDataset, Trigger
from sparring.errors import ConfigError, InputError, check_class, check_fraction, check_positive_int, check_seed
from sparring.metrics import accuracy, attack_success_rate
from sparring.models import Access, Classifier, TorchClassifier
from sparring.models.hooks import layer_features, param_layers
from sparring.params import Params
from sparring.train import TrainConfig, fit
from sparring.transfer import TransferSetup, student_from_teacher

#: How :func:`evaluate_hidden_trigger` fine-tunes the victim: head only, or every layer.
TRAINING = ("frozen", "full")


def paste_patches(x: Tensor, patch: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Paste ``patch`` ``[C, k, k]`` into each image of ``x`` ``[N, C, H, W]``, top-left corner at (rows, cols)."""
    n, _, h, w = x.shape
    k = patch.shape[-1]
    ii = torch.arange(h).view(1, h) - rows.view(n, 1)  # [N, H] row inside the patch
    jj = torch.arange(w).view(1, w) - cols.view(n, 1)  # [N, W]
    inside = ((ii >= 0) & (ii < k)).view(n, 1, h, 1) & ((jj >= 0) & (jj < k)).view(n, 1, 1, w)
    gathered = patch[:, ii.clamp(0, k - 1).view(n, h, 1), jj.clamp(0, k - 1).view(n, 1, w)]  # [C, N, H, W]
    return torch.where(inside, gathered.permute(1, 0, 2, 3).to(x.dtype), x)


def _greedy_match(dist: Tensor) -> Tensor:
    """One-to-one assignment, greedily by smallest distance: ``match[i]`` is the column given to row ``i``."""
    d = dist.detach().clone()
    n, m = d.shape
    match = torch.empty(n, dtype=torch.long)
    for _ in range(min(n, m)):
        flat = int(torch.argmin(d))
        i, j = divmod(flat, m)
        match[i] = j
        d[i, :] = float("inf")
        d[:, j] = float("inf")
    return match


class HiddenTrigger(Params):
    """Hidden-trigger backdoor (Saha et al., AAAI 2020) against a fixed feature extractor.

    :meth:`poison` takes ``round(poison_fraction * n_target)`` seeded-random target-class
    samples of ``train`` and, for ``steps`` iterations, pastes the patch at random locations
    on ``batch_size`` random source-class samples of ``train``, matches each poison one-to-one
    to its nearest patched source in feature space (greedily) and moves the poisons down the
    summed squared feature distance. Steps follow the gradient's sign (Linf steepest
    descent, an adaptation: the paper uses the raw gradient) with a size decaying linearly
    from ``lr`` to ``lr / 10``; each step is projected onto the ``eps`` ball around the
    original image and into the classifier's bounds. Labels are left untouched.

    The test-time trigger (:meth:`trigger`, also ``PoisonedDataset.trigger``) is the patch at
    a fixed place, the bottom-right corner; the paper pastes it at a random place, which
    :func:`paste_patches` allows. The patch is a seeded random binary pattern, ``patch_size``
    pixels square, the same on every channel.
    """

    requires = Access.GRADIENTS | Access.INTERNALS

    def __init__(
        self,
        target: int = 0,
        source: int = 1,
        eps: float = 16 / 255,
        steps: int = 200,
        lr: float = 0.01,
        poison_fraction: float = 1.0,
        patch_size: int = 3,
        layer: str | None = None,
        batch_size: int = 100,
        seed: int = 0,
        progress: bool | None = None,
    ) -> None:
        self.target = check_class("target", target)
        self.source = check_class("source", source)
        if self.source == self.target:
            raise ConfigError(f"source and target must differ, both are {target}")
        if not 0.0 < float(eps) <= 1.0:
            raise ConfigError(f"eps must be in (0, 1], got {eps}")
        if not 0.0 < float(lr) <= 1.0:
            raise ConfigError(f"lr must be in (0, 1], got {lr}")
        self.eps = float(eps)
        self.steps = check_positive_int("steps", steps)
        self.lr = float(lr)
        self.poison_fraction = check_fraction("poison_fraction", poison_fraction)
        if self.poison_fraction == 0.0:
            raise ConfigError("poison_fraction must be in (0, 1], got 0.0")
        self.patch_size = check_positive_int("patch_size", patch_size)
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise ConfigError(f"layer must be a layer name or None, got {layer!r}")
        self.layer = layer
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_seed(seed)
        self.progress = progress

    def _patch(self, channels: int) -> Tensor:
        g = torch.Generator().manual_seed(self.seed)
        board = (torch.rand(self.patch_size, self.patch_size, generator=g) > 0.5).float()
        return board.expand(channels, -1, -1).clone()

    def trigger(self, input_shape: Sequence[int]) -> Trigger:
        """The test-time trigger: the patch in the bottom-right corner of inputs ``[C, H, W]``."""
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 3:
            raise InputError(f"HiddenTrigger needs image inputs [C, H, W], got input shape {shape}")
        c, h, w = shape
        k = self.patch_size
        if k > h or k > w:
            raise InputError(f"patch_size {k} is larger than the {h}x{w} image")
        pattern = torch.zeros(shape)
        alpha = torch.zeros(shape)
        pattern[:, h - k :, w - k :] = self._patch(c)
        alpha[:, h - k :, w - k :] = 1.0
        return Trigger(pattern, alpha)

    def poison(self, train: Dataset, classifier: Classifier, layer: str | None = None) -> PoisonedDataset:
        """Perturb target-class samples of ``train`` so their ``layer`` features mimic patched source samples.

        ``classifier`` is the attacker's copy of the feature extractor (a :class:`TorchClassifier`
        with gradient and internals access); ``layer`` overrides the constructor's layer (one of
        the two must be given). Returns ``train`` with the poisons in place, labels unchanged.
        """
        classifier.require(self.requires, type(self).__name__)
        if not isinstance(classifier, TorchClassifier):
            raise InputError(f"HiddenTrigger needs a TorchClassifier, got {type(classifier).__name__}")
        name = layer or self.layer
        if name is None:
            raise ConfigError("layer must be given (to the constructor or to poison): the feature layer to match")
        trigger = self.trigger(train.input_shape)
        for cls, what in ((self.target, "target"), (self.source, "source")):
            if cls >= train.num_classes:
                raise InputError(f"{what} class {cls} is not one of the {train.num_classes} classes of {train.name!r}")
        target_idx = torch.nonzero(train.y == self.target).flatten()
        source_idx = torch.nonzero(train.y == self.source).flatten()
        if len(source_idx) == 0:
            raise InputError(f"{train.name!r} has no samples of source class {self.source}")
        n_poison = round(self.poison_fraction * len(target_idx))
        if n_poison == 0:
            raise InputError(f"{train.name!r} has no samples of target class {self.target} to turn into poisons")
        features = layer_features(classifier.model, name)
        g = torch.Generator().manual_seed(self.seed + 1)
        chosen = target_idx[torch.randperm(len(target_idx), generator=g)[:n_poison]]
        originals = train.x[chosen]
        sources = train.x[source_idx]
        patch = self._patch(train.input_shape[0])
        _, _, h, w = originals.shape
        k = self.patch_size

        def objective(z: Tensor, idx: Tensor, _step: int) -> Step:
            """Minus the squared distance of each poison's features to its matched patched source."""
            pick = torch.randint(len(sources), (len(idx),), generator=g)
            rows = torch.randint(h - k + 1, (len(idx),), generator=g)
            cols = torch.randint(w - k + 1, (len(idx),), generator=g)
            with torch.no_grad():
                feat_src = features(paste_patches(sources[pick], patch, rows, cols))
            feat = features(z)
            match = _greedy_match(torch.cdist(feat.detach(), feat_src))
            return Step(-(feat - feat_src[match]).pow(2).sum(1), torch.zeros(len(idx), dtype=torch.bool))

        poisons = gradient_loop(
            originals,
            objective,
            Linf(),
            self.eps,
            self.steps,
            lambda step: self.lr * (1.0 - 0.9 * step / max(1, self.steps - 1)),
            classifier.bounds,
            early_stop=False,
            check_last=False,
            batch_size=self.batch_size,
            desc="hidden trigger",
            progress=self.progress,
        ).x
        x = train.x.clone()
        x[chosen] = poisons.to(x.dtype)
        mask = torch.zeros(len(train), dtype=torch.bool)
        mask[chosen] = True
        return PoisonedDataset(
            x,
            train.y.clone(),
            list(train.classes),
            f"{train.name}-hiddentrigger",
            poison_mask=mask,
            original_y=train.y.clone(),
            trigger=trigger,
            target=self.target,
        )

    def evaluate(
        self, setup: TransferSetup, training: str = "frozen", epochs: int = 4, seed: int = 0
    ) -> HiddenTriggerResult:
        """Shorthand for :func:`evaluate_hidden_trigger` with this attack."""
        return evaluate_hidden_trigger(self, setup, training, epochs, seed, progress=self.progress)


@dataclass
class HiddenTriggerResult:
    """What :func:`evaluate_hidden_trigger` measures: the victim fine-tuned on poisons vs on clean data.

    ``asr``: share of patched source-class test images the poisoned victim labels ``target``;
    ``control_asr`` the same for a victim fine-tuned on the unperturbed images. Accuracies are
    on the whole clean test set. ``max_linf`` is the largest poison perturbation; ``seconds``
    the crafting time. ``student`` is the victim fine-tuned on the poisons.
    """

    asr: float
    control_asr: float
    clean_accuracy: float
    control_accuracy: float
    n_poisons: int
    max_linf: float
    training: str
    seconds: float
    train_seconds: float
    poisoned: PoisonedDataset
    student: TorchClassifier

    @property
    def data(self) -> PoisonedDataset:
        """The victim's poisoned fine-tuning data (same as ``poisoned``)."""
        return self.poisoned


def evaluate_hidden_trigger(
    attack: HiddenTrigger,
    setup: TransferSetup,
    training: str = "frozen",
    epochs: int = 4,
    seed: int = 0,
    progress: bool | None = False,
) -> HiddenTriggerResult:
    """Poison the victim's fine-tuning data with ``attack`` against the public teacher, fine-tune, measure ASR.

    The attacker crafts the poisons on ``setup.teacher`` at ``attack.layer`` (or
    ``setup.layer``) and they replace their originals in ``setup.student_data``. The victim
    is a fresh student of the teacher (:func:`student_from_teacher`): ``training="frozen"``
    freezes every layer up to ``setup.layer`` and trains the new head (the paper's setting),
    ``"full"`` fine-tunes all layers. A control victim is trained the same way on the clean
    data; both are evaluated on ``setup.test`` (ASR on its source-class images).
    """
    if training not in TRAINING:
        raise ConfigError(f"training must be one of {', '.join(TRAINING)}, got {training!r}")
    check_positive_int("epochs", epochs)
    teacher = setup.teacher
    layers = param_layers(teacher.model)
    if setup.layer not in layers:
        raise InputError(f"setup.layer {setup.layer!r} is not a parameter layer: {', '.join(layers)}")
    frozen = layers.index(setup.layer) + 1 if training == "frozen" else 0
    start = time.perf_counter()
    poisoned = attack.poison(setup.student_data, teacher, attack.layer or setup.layer)
    seconds = time.perf_counter() - start
    assert poisoned.trigger is not None
    k = setup.student_data.num_classes
    test = setup.test
    src = test.y == attack.source
    figures: list[tuple[float, float]] = []
    victims: list[TorchClassifier] = []
    train_seconds = 0.0
    for data in (poisoned, setup.student_data):
        student = student_from_teacher(teacher.model, k, frozen, seed=seed)
        res = fit(student, data, TrainConfig(epochs=epochs, seed=seed, progress=progress), desc="victim")
        train_seconds += res.seconds
        clf = TorchClassifier(student, test.input_shape, k)
        victims.append(clf)
        asr = attack_success_rate(clf, test.x[src], test.y[src], poisoned.trigger, attack.target)
        figures.append((asr, accuracy(clf, test.x, test.y)))
    delta = (poisoned.x - setup.student_data.x)[poisoned.poison_mask]
    return HiddenTriggerResult(
        asr=figures[0][0],
        control_asr=figures[1][0],
        clean_accuracy=figures[0][1],
        control_accuracy=figures[1][1],
        n_poisons=poisoned.n_poisoned,
        max_linf=float(delta.abs().max()) if len(delta) else 0.0,
        training=training,
        seconds=seconds,
        train_seconds=train_seconds,
        poisoned=poisoned,
        student=victims[0],
    )
