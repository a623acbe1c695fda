"""The transfer-learning case: adversarial examples crafted on a public teacher, tried on its student.

The BSI guidance names it for models fine-tuned from public ones: the attacker owns the
teacher, not the student's data or head. sparring trains a teacher on one part of the
training data, fine-tunes a student from it on the other (copied layers frozen), crafts on
the teacher and queries the student for labels. The defences fine-tune the student away
from the teacher's representation (Wang et al., USENIX Security 2018) or its input-gradient
directions (Demontis et al., USENIX Security 2019). The result has the evasion shape; it is
drawn in the evasion section but not rated in the matrix, since it attacks a teacher and
student sparring built, not the model under assessment. The teacher and student are a
shared artefact that the backdoor and clean-label families use too.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from torch import Tensor

from sparring.assess.artefacts import load_tensors, save_json, save_tensors
from sparring.assess.context import Artefact, Context
from sparring.assess.families.evasion import (
    RULE,
    EvasionCurveResult,
    curve_cost,
    curve_figures,
    curve_intervals,
    curves_html,
    evaluation_set,
    expected_curve_figures,
    points_of,
    rate_curve,
)
from sparring.assess.family import TEST_INTEGRITY, CostRow, Defences, Family, Rating, Scenario
from sparring.assess.spec import Entry, WithDefences, defences_field, listify, sorted_nonnegative
from sparring.attacks.evasion import PGD, EvasionAttack, EvasionResult, InternalMimicry, Transfer, security_curve
from sparring.defenses.training.dissimilarity import TeacherDissimilarity
from sparring.metrics import Interval, accuracy
from sparring.models import Access, TorchClassifier
from sparring.train import TrainConfig, fit
from sparring.transfer import SetupWeights, TransferSetup, transfer_learning_setup


class TransferLearningSpec(Entry, WithDefences):
    """The transfer-learning case (BSI): adversarial examples crafted on a public teacher, tried on its student.

    sparring trains the teacher on one part of the training data and fine-tunes a student
    from it (copied layers frozen) on the other; ``attack`` is ``"pgd"`` (untargeted PGD on
    the teacher) or ``"mimicry"`` (Wang et al., USENIX Security 2018: match the teacher's
    internal representation of an image of another class). Defences: ``"dissimilarity"``
    fine-tunes every student layer away from the teacher's representation (Wang et al.);
    ``"gradient_dissimilarity"`` away from the teacher's input-gradient directions (Demontis
    et al., USENIX Security 2019); ``"fine_tune"`` fine-tunes every layer without a penalty
    (the control that shows what a penalty adds).
    """

    attack: Literal["pgd", "mimicry"] = "pgd"
    norm: Literal["linf", "l2"] = "linf"
    eps: list[float] = Field([0.1, 0.2], min_length=1)
    steps: int = Field(40, ge=1)
    teacher_fraction: float = Field(0.5, gt=0, lt=1)
    teacher_epochs: int = Field(6, ge=1)
    student_epochs: int = Field(4, ge=1)
    samples: int | None = Field(500, ge=1)
    reference_eps: float | None = Field(None, ge=0)
    defences: list[str] = defences_field()

    _listify = field_validator("eps", mode="before")(listify)
    _nonnegative = field_validator("eps")(sorted_nonnegative)

    @property
    def ref_eps(self) -> float:
        """The epsilon the curve is rated at (default: the largest swept)."""
        return self.reference_eps if self.reference_eps is not None else max(self.eps)


def setup_artefact(
    ctx: Context, teacher_fraction: float = 0.5, teacher_epochs: int = 6, student_epochs: int = 4
) -> Artefact[TransferSetup]:
    """A public teacher and its student, built once per run and settings (shared by every family)."""
    params = {"teacher_fraction": teacher_fraction, "teacher_epochs": teacher_epochs, "student_epochs": student_epochs}

    def setup(weights: SetupWeights | None) -> TransferSetup:
        return transfer_learning_setup(
            ctx.train,
            ctx.test,
            architecture=ctx.model_name,
            teacher_fraction=teacher_fraction,
            teacher_epochs=teacher_epochs,
            student_epochs=student_epochs,
            seed=ctx.seed,
            weights=weights,
        )

    def save(value: TransferSetup, folder: Path) -> None:
        w = SetupWeights.of(value)
        save_tensors(folder / "teacher.safetensors", w.teacher)
        save_tensors(folder / "student.safetensors", w.student)
        save_json(folder / "seconds.json", w.seconds)

    def load(_ctx: Context, folder: Path) -> TransferSetup:
        seconds = float(json.loads((folder / "seconds.json").read_text()))
        teacher, student = load_tensors(folder / "teacher.safetensors"), load_tensors(folder / "student.safetensors")
        return setup(SetupWeights(teacher, student, seconds))

    name = f"transfer-setup-{teacher_fraction:g}-{teacher_epochs}-{student_epochs}"
    return Artefact(name, params, lambda _ctx: setup(None), save, load)


def entry_setup(ctx: Context, tl: TransferLearningSpec) -> Artefact[TransferSetup]:
    """The teacher and student of one entry."""
    return setup_artefact(ctx, tl.teacher_fraction, tl.teacher_epochs, tl.student_epochs)


def _attack(tl: TransferLearningSpec, s: TransferSetup, eps: float, seed: int) -> EvasionAttack:
    """The entry's attack at ``eps``, crafted on the teacher."""
    if tl.attack == "mimicry":
        return InternalMimicry(s.teacher, s.layer, s.teacher_data, norm=tl.norm, eps=eps, steps=tl.steps, seed=seed)
    return Transfer(s.teacher, PGD(norm=tl.norm, eps=eps, steps=tl.steps, seed=seed))


class TransferLearningFamily(Family[TransferLearningSpec, EvasionCurveResult]):
    """``[[transfer_learning]]``: teacher-to-student transfer over eps, for the student as trained or defended."""

    key = "transfer_learning"
    title = "transfer learning"
    section = "Evasion (test-time integrity)"
    order = 20
    spec = TransferLearningSpec
    result = EvasionCurveResult
    threats = {TEST_INTEGRITY: "evasion"}
    rules = {TEST_INTEGRITY: RULE}
    rated_in_matrix = False
    defences = (Defences("training", ("fine_tune", "dissimilarity", "gradient_dissimilarity")),)
    attacks = ("pgd", "mimicry")
    smoke = {
        "transfer_learning": [
            {
                "eps": [0.1],
                "steps": 5,
                "samples": 40,
                "teacher_epochs": 2,
                "student_epochs": 1,
                "defences": ["fine_tune"],
            }
        ]
    }

    def label(self, entry: TransferLearningSpec) -> str:
        return f"{entry.attack}-{entry.norm}"

    def check_config(self, config: Any, entries: Any) -> None:
        if entries and not config.model.zoo:
            raise ValueError(
                "transfer_learning trains a zoo teacher and student: [model] needs 'architecture' (or nothing)"
            )

    def artefacts(self, ctx: Context, sc: Scenario) -> list[Artefact[Any]]:
        tl = sc.spec
        assert isinstance(tl, TransferLearningSpec)
        return [entry_setup(ctx, tl)]

    def run(self, ctx: Context, sc: Scenario) -> EvasionCurveResult:
        tl = sc.spec
        assert isinstance(tl, TransferLearningSpec)
        seed = ctx.seed
        s = ctx.artefact(entry_setup(ctx, tl))
        student, seconds, model = s.student, s.seconds, "student"
        if sc.defence is not None:
            module, cfg = copy.deepcopy(s.student.model), TrainConfig(epochs=tl.student_epochs, seed=seed)
            if sc.defence in ("dissimilarity", "gradient_dissimilarity"):
                measure = "gradient" if sc.defence == "gradient_dissimilarity" else "representation"
                weight = 1.0 if measure == "gradient" else 10.0
                defence = TeacherDissimilarity(s.teacher.model, s.layer, weight=weight, measure=measure)
                trained = defence.fit(module, s.student_data, cfg)
            else:  # fine_tune: the same unfrozen fine-tuning without the penalty
                for p in module.parameters():
                    p.requires_grad_(True)
                trained = fit(module, s.student_data, cfg, desc="fine-tune student")
            student = TorchClassifier(
                trained.model, s.student.input_shape, s.student.num_classes, bounds=s.student.bounds
            )
            seconds, model = trained.seconds, f"student+{sc.defence}"
        test, idx = evaluation_set(ctx, tl.samples)
        view = student.restrict(Access.LABELS)  # the attacker only ever sees the student's labels
        clean = accuracy(student, test.x, test.y)
        target = (test.y + 1) % ctx.data.num_classes if tl.attack == "mimicry" else None
        own: list[float] = []  # the attack's own success (targeted for mimicry) at each eps

        def misclassified(result: EvasionResult) -> Tensor:
            own.append(result.success_rate)
            return view.predict_labels(result.x_adv) != test.y

        ctx.log(f"    {tl.attack} on the teacher, {len(test)} samples tried on the {model}")
        attack_at = partial(_attack, tl, s, seed=seed)
        curve = security_curve(attack_at, view, test.x, test.y, tl.eps, target=target, judge=misclassified)
        points = points_of(curve)
        for point, rate in zip(points, own, strict=True):
            point.transfer_success_rate = rate
        return EvasionCurveResult(
            kind=self.key,
            attack=f"teacher-{tl.attack}",
            norm=tl.norm,
            model=model,
            defence=sc.defence,
            defence_type="training" if sc.defence else None,
            params=sc.params(),
            samples=len(test),
            clean_accuracy=clean,
            teacher_accuracy=accuracy(s.teacher, test.x, test.y),
            train_seconds=seconds,
            reference_eps=tl.ref_eps,
            black_box=True,
            targeted=tl.attack == "mimicry",
            points=points,
            sample_index=idx.tolist(),
            broken_at=curve.broken_at.tolist(),
        )

    def rate(self, result: EvasionCurveResult) -> Rating:
        return rate_curve(result)

    def figures(self, key: str, result: EvasionCurveResult) -> dict[str, float]:
        return curve_figures(key, result)

    def intervals(self, key: str, result: EvasionCurveResult) -> dict[str, Interval]:
        return curve_intervals(key, result)

    def expected_figures(self, sc: Scenario) -> list[str]:
        assert isinstance(sc.spec, TransferLearningSpec)
        return expected_curve_figures(sc.key, sc.spec.eps)

    def cost(self, key: str, result: EvasionCurveResult, base: EvasionCurveResult) -> CostRow:
        return curve_cost(key, result, base)

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        if not results:
            return ""
        return (
            "<h3>Transfer learning: crafted on a public teacher, tried on its student</h3>"
            '<p class="muted">Not rated in the threat matrix: the teacher and student are models sparring built '
            "from the training data (the BSI transfer-learning case), not the model under assessment.</p>"
            + curves_html(list(results.values()))
        )


FAMILY = TransferLearningFamily()
