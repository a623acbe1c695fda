"""Transfer learning: a student fine-tuned from a public teacher with its first layers frozen.

This is the setting of Wang et al., "With Great Training Comes Great Vulnerability:
Practical Attacks against Transfer Learning", USENIX Security 2018 (reference [7] of the
BSI guidance on AI security): the teacher is public, the student copies its first layers,
freezes them and trains a new head on private data. Whoever holds the teacher holds the
student's frozen layers too, which is what teacher→student transfer attacks exploit.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError, check_positive_int
from sparring.models import TorchClassifier, build
from sparring.models.hooks import param_layers
from sparring.train import TrainConfig, fit


def frozen_layers(model: nn.Module, frozen: int | Sequence[str]) -> list[str]:
    """The parameter layers that ``frozen`` selects: the first ``frozen`` ones, or those under the given prefixes.

    The last parameter layer (the head) can never be frozen: the student re-initialises it.
    """
    layers = param_layers(model)
    if len(layers) < 2:
        raise ConfigError(f"a student needs a model with at least 2 parameter layers, found {len(layers)}")
    if isinstance(frozen, int):
        if isinstance(frozen, bool) or not 0 <= frozen < len(layers):
            raise ConfigError(
                f"frozen must be between 0 and {len(layers) - 1} (the head stays trainable), got {frozen}"
            )
        return layers[:frozen]
    if isinstance(frozen, str) or not all(isinstance(p, str) for p in frozen):
        raise ConfigError(f"frozen must be a layer count or a list of layer-name prefixes, got {frozen!r}")
    chosen: list[str] = []
    for prefix in frozen:
        hits = [name for name in layers if name == prefix or name.startswith(prefix + ".")]
        if not hits:
            raise ConfigError(f"no parameter layer matches {prefix!r}; layers: {', '.join(layers)}")
        chosen += [h for h in hits if h not in chosen]
    if layers[-1] in chosen:
        raise ConfigError(f"the head {layers[-1]!r} cannot be frozen: the student re-initialises it")
    return [name for name in layers if name in chosen]


def student_from_teacher(
    teacher: nn.Module, num_classes: int, frozen: int | Sequence[str] = 0, seed: int = 0
) -> nn.Module:
    """A copy of ``teacher`` with the first layers frozen and a fresh head (Wang et al., USENIX Security 2018).

    ``frozen`` is a count of parameter layers (see :func:`param_layers`) or a list of layer
    names/prefixes; their parameters get ``requires_grad=False``, so :func:`sparring.train.fit`
    leaves them untouched (their gradients stay ``None``, which Adam and SGD skip). The
    head (the last parameter layer, an ``nn.Linear``) is re-initialised from ``seed``,
    with ``num_classes`` outputs. The teacher itself is not changed.
    """
    check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
    chosen = frozen_layers(teacher, frozen)
    student = copy.deepcopy(teacher)
    head_name = param_layers(student)[-1]
    modules = dict(student.named_modules())
    head = modules[head_name]
    if not isinstance(head, nn.Linear):
        raise ConfigError(f"the head {head_name!r} must be an nn.Linear, got {type(head).__name__}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        new_head = nn.Linear(head.in_features, num_classes, bias=head.bias is not None)
    parent_name, _, attr = head_name.rpartition(".")
    setattr(modules[parent_name] if parent_name else student, attr, new_head)
    for p in student.parameters():
        p.requires_grad_(True)
    for name in chosen:
        for p in modules[name].parameters():
            p.requires_grad_(False)
    return student.eval()


@dataclass
class TransferSetup:
    """A public teacher, a student fine-tuned from it, and the data each saw.

    ``layer`` names the student's (and teacher's) last frozen layer: the internal
    representation the two share, which mimicry attacks target and the dissimilarity
    defence moves. ``teacher_data`` is public, ``student_data`` private; ``test`` is
    held out from both.
    """

    teacher: TorchClassifier
    student: TorchClassifier
    layer: str
    teacher_data: Dataset
    student_data: Dataset
    test: Dataset
    seconds: float


@dataclass
class SetupWeights:
    """The trained weights of a :class:`TransferSetup` and the seconds they took, to rebuild it without training."""

    teacher: dict[str, Tensor]
    student: dict[str, Tensor]
    seconds: float

    @classmethod
    def of(cls, setup: TransferSetup) -> SetupWeights:
        """The weights of ``setup``."""
        return cls(setup.teacher.model.state_dict(), setup.student.model.state_dict(), setup.seconds)


def transfer_learning_setup(
    train: Dataset,
    test: Dataset,
    architecture: str = "small_cnn",
    frozen: int = -1,
    teacher_fraction: float = 0.5,
    teacher_epochs: int = 6,
    student_epochs: int = 4,
    seed: int = 0,
    progress: bool | None = False,
    weights: SetupWeights | None = None,
) -> TransferSetup:
    """Build the transfer-learning case reproducibly: a public teacher, then a student from it.

    ``train`` is split by ``seed`` into disjoint halves (``teacher_fraction`` for the
    teacher): the teacher trains on the public part, the student copies it, freezes all
    but the head (``frozen=-1``; or the first ``frozen`` parameter layers) and is
    fine-tuned on the private part only. Both models solve the same task, as when a
    student re-uses a public feature extractor; the attacker sees the teacher but neither
    the student's data nor its head. With ``weights`` (saved from a setup made with the same
    arguments) the two models are loaded instead of trained.
    """
    if not 0.0 < teacher_fraction < 1.0:
        raise ConfigError(f"teacher_fraction must be strictly between 0 and 1, got {teacher_fraction}")
    if train.input_shape != test.input_shape:
        raise InputError(f"train inputs have shape {train.input_shape} but test inputs {test.input_shape}")
    if isinstance(frozen, bool) or not isinstance(frozen, int) or (frozen < 1 and frozen != -1):
        raise ConfigError(
            f"frozen must be >= 1 (or -1 for all but the head) so teacher and student share layers, got {frozen}"
        )
    public, private = train.split(1.0 - teacher_fraction, seed=seed)
    public.name, private.name = f"{train.name}-public", f"{train.name}-private"
    k = train.num_classes
    teacher = build(architecture, train.input_shape, k, seed=seed)
    if weights is None:
        t = fit(teacher, public, TrainConfig(epochs=teacher_epochs, seed=seed, progress=progress), desc="teacher")
    else:
        teacher.load_state_dict(weights.teacher)
        teacher.eval()
    count = len(param_layers(teacher)) - 1 if frozen == -1 else frozen
    student = student_from_teacher(teacher, k, count, seed=seed + 1)
    if weights is None:
        s = fit(student, private, TrainConfig(epochs=student_epochs, seed=seed + 1, progress=progress), desc="student")
        seconds = t.seconds + s.seconds
    else:
        student.load_state_dict(weights.student)
        seconds = weights.seconds
    layer = param_layers(student)[count - 1]
    return TransferSetup(
        teacher=TorchClassifier(teacher, train.input_shape, k),
        student=TorchClassifier(student, train.input_shape, k),
        layer=layer,
        teacher_data=public,
        student_data=private,
        test=test,
        seconds=seconds,
    )
