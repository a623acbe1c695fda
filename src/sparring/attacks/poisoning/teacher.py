"""A backdoored public teacher, and whether its backdoor survives transfer learning into a student.

The supply-chain threat of Gu, Dolan-Gavitt & Garg, "BadNets", arXiv 2017 (Sec. 5, a
backdoored traffic-sign model re-trained for another task keeps its backdoor), in the
transfer-learning setting of Wang et al., USENIX Security 2018 (the BSI guidance's public
teacher / private student case): the attacker publishes a teacher trained on backdoored
public data; the victim copies it, freezes its first layers, trains a new head on clean
private data (or fine-tunes every layer) and inherits whatever the frozen layers learnt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from sparring.attacks.poisoning.badnets import BadNets
from sparring.data import Dataset, PoisonedDataset
from sparring.errors import ConfigError, InputError, check_choice, check_positive_int, check_seed
from sparring.metrics import accuracy, attack_success_rate
from sparring.models import TorchClassifier
from sparring.models.hooks import param_layers
from sparring.models.zoo import ARCHITECTURES, build
from sparring.params import Params
from sparring.train import TrainConfig, fit
from sparring.transfer import student_from_teacher


class BackdoorAttack(Protocol):
    """Any backdoor whose :meth:`poison` returns a PoisonedDataset with a trigger (BadNets, Blended)."""

    def poison(self, train: Dataset) -> PoisonedDataset: ...


@dataclass
class TeacherBackdoorResult:
    """ASR and clean test accuracy of the teacher and of its two students.

    ``frozen_*``: the student with the teacher's first layers frozen and a new head trained on
    clean private data; ``finetuned_*``: the student with every layer fine-tuned on it.
    ``control_*`` are the same students of a teacher trained on clean public data (NaN when
    the control is off), so an ASR can be read against what the trigger does by itself.
    ``student`` is the frozen student (the BSI case), ``data`` the poisoned public data.
    """

    teacher_asr: float
    teacher_accuracy: float
    frozen_asr: float
    frozen_accuracy: float
    finetuned_asr: float
    finetuned_accuracy: float
    control_teacher_asr: float
    control_frozen_asr: float
    control_finetuned_asr: float
    frozen_layers: list[str]
    n_poisoned: int
    seconds: float
    teacher: TorchClassifier
    student: TorchClassifier
    finetuned_student: TorchClassifier
    data: PoisonedDataset


class TeacherBackdoor(Params):
    """Backdoor a public teacher with ``attack`` and measure the backdoor in students fine-tuned from it.

    :meth:`run` splits ``train`` by ``seed`` into a public part (``teacher_fraction``) and a
    private part, poisons the public part with ``attack`` and trains the teacher on it. Two
    students copy the teacher and get a new head (:func:`student_from_teacher`): one freezes
    the first ``frozen`` parameter layers (-1: all but the head) and trains the head on the
    clean private part, the other fine-tunes every layer on it. ASR (per sample target from
    :meth:`PoisonedDataset.target_of`, so all-to-all works too) and clean accuracy are
    measured on ``test``. With ``control=True`` the same is done with a clean teacher.
    """

    def __init__(
        self,
        attack: BackdoorAttack,
        architecture: str = "small_cnn",
        teacher_fraction: float = 0.5,
        teacher_epochs: int = 10,
        student_epochs: int = 6,
        frozen: int = -1,
        control: bool = True,
        seed: int = 0,
        progress: bool | None = False,
    ) -> None:
        if not callable(getattr(attack, "poison", None)):
            raise ConfigError(f"attack must have a poison(train) method, got {type(attack).__name__}")
        check_choice("architecture", architecture, list(ARCHITECTURES))
        if not 0.0 < float(teacher_fraction) < 1.0:
            raise ConfigError(f"teacher_fraction must be strictly between 0 and 1, got {teacher_fraction}")
        if isinstance(frozen, bool) or not isinstance(frozen, int) or (frozen < 1 and frozen != -1):
            raise ConfigError(f"frozen must be >= 1 (or -1 for all but the head), got {frozen!r}")
        self.attack = attack
        self.architecture = architecture
        self.teacher_fraction = float(teacher_fraction)
        self.teacher_epochs = check_positive_int("teacher_epochs", teacher_epochs)
        self.student_epochs = check_positive_int("student_epochs", student_epochs)
        self.frozen = frozen
        self.control = bool(control)
        self.seed = check_seed(seed)
        self.progress = progress

    def run(self, train: Dataset, test: Dataset) -> TeacherBackdoorResult:
        """Train the backdoored teacher (and the clean control), derive the students, measure them on ``test``."""
        if train.input_shape != test.input_shape:
            raise InputError(f"train inputs have shape {train.input_shape} but test inputs {test.input_shape}")
        start = time.perf_counter()
        public, private = train.split(1.0 - self.teacher_fraction, seed=self.seed)
        poisoned = self.attack.poison(public)
        if poisoned.trigger is None:
            raise InputError(f"{type(self.attack).__name__} set no trigger: it is not a backdoor attack")
        trigger = poisoned.trigger
        targets = poisoned.target_of(test.y)
        k = train.num_classes
        shape = train.input_shape

        def measure(data: Dataset) -> tuple[list[float], list[str], list[TorchClassifier]]:
            teacher = build(self.architecture, shape, k, seed=self.seed)
            fit(
                teacher,
                data,
                TrainConfig(epochs=self.teacher_epochs, seed=self.seed, progress=self.progress),
                desc="teacher",
            )
            layers = param_layers(teacher)
            count = len(layers) - 1 if self.frozen == -1 else self.frozen
            if count >= len(layers):
                raise ConfigError(
                    f"frozen must be below {len(layers)} for {self.architecture} (the head stays trainable)"
                )
            out: list[float] = []
            models = [teacher]
            for n_frozen in (count, 0):
                student = student_from_teacher(teacher, k, n_frozen, seed=self.seed + 1)
                cfg = TrainConfig(epochs=self.student_epochs, seed=self.seed + 1, progress=self.progress)
                fit(student, private, cfg, desc="student")
                models.append(student)
            clfs = [TorchClassifier(m, shape, k) for m in models]
            for clf in clfs:
                out += [attack_success_rate(clf, test.x, test.y, trigger, targets), accuracy(clf, test.x, test.y)]
            return out, layers[:count], clfs

        figs, frozen_layers, clfs = measure(poisoned)
        nan = float("nan")
        ctrl = measure(public)[0] if self.control else [nan] * 6
        return TeacherBackdoorResult(
            teacher_asr=figs[0],
            teacher_accuracy=figs[1],
            frozen_asr=figs[2],
            frozen_accuracy=figs[3],
            finetuned_asr=figs[4],
            finetuned_accuracy=figs[5],
            control_teacher_asr=ctrl[0],
            control_frozen_asr=ctrl[2],
            control_finetuned_asr=ctrl[4],
            frozen_layers=frozen_layers,
            n_poisoned=poisoned.n_poisoned,
            seconds=time.perf_counter() - start,
            teacher=clfs[0],
            student=clfs[1],
            finetuned_student=clfs[2],
            data=poisoned,
        )


def backdoored_teacher(
    train: Dataset,
    test: Dataset,
    architecture: str = "small_cnn",
    target: int = 0,
    poison_fraction: float = 0.1,
    patch_size: int = 3,
    all_to_all: bool = False,
    teacher_fraction: float = 0.5,
    teacher_epochs: int = 10,
    student_epochs: int = 6,
    frozen: int = -1,
    control: bool = False,
    seed: int = 0,
) -> TeacherBackdoorResult:
    """A teacher backdoored by BadNets (Gu et al., 2017) on its public data, and its students.

    Shorthand for ``TeacherBackdoor(BadNets(...), ...).run(train, test)``; the clean-teacher
    control is off by default here (it doubles the cost).
    """
    attack = BadNets(target, poison_fraction, patch_size, seed=seed, all_to_all=all_to_all)
    runner = TeacherBackdoor(
        attack, architecture, teacher_fraction, teacher_epochs, student_epochs, frozen, control, seed=seed
    )
    return runner.run(train, test)
