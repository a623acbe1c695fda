"""The transfer-learning case: adversarial examples crafted on a public teacher, tried on its student.

The BSI guidance names it for models fine-tuned from public ones: the attacker owns the
teacher, not the student's data or head. sparring trains a teacher on one part of the
training data, fine-tunes a student from it on the other (copied layers frozen), crafts on
the teacher and queries the student for labels. The defence fine-tunes the student away
from the teacher's internal representation (Wang et al., USENIX Security 2018). The
result has the evasion shape, so the report draws and rates it like any evasion scenario.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from sparring.assess.config import TransferLearningConfig
from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.attacks.evasion import PGD, EvasionAttack, InternalMimicry, Transfer
from sparring.defenses.training.dissimilarity import TeacherDissimilarity
from sparring.metrics import accuracy
from sparring.models import Access, TorchClassifier
from sparring.models.student import TransferSetup, transfer_learning_setup
from sparring.train import TrainConfig, fit


def shared_setup(
    ctx: Context, teacher_fraction: float = 0.5, teacher_epochs: int = 6, student_epochs: int = 4
) -> TransferSetup:
    """A public teacher and its student, built once per run and settings (shared by every family)."""
    key = f"transfer_learning:{teacher_fraction}:{teacher_epochs}:{student_epochs}"
    if key not in ctx.memo:
        ctx.log("  training the public teacher and fine-tuning its student")
        ctx.memo[key] = transfer_learning_setup(
            ctx.train,
            ctx.test,
            architecture=ctx.model_name,
            teacher_fraction=teacher_fraction,
            teacher_epochs=teacher_epochs,
            student_epochs=student_epochs,
            seed=ctx.config.seed,
        )
    result = ctx.memo[key]
    assert isinstance(result, TransferSetup)
    return result


def setup(ctx: Context, tl: TransferLearningConfig) -> TransferSetup:
    """Teacher and student for this entry."""
    return shared_setup(ctx, tl.teacher_fraction, tl.teacher_epochs, tl.student_epochs)


def _attack(tl: TransferLearningConfig, s: TransferSetup, eps: float, seed: int) -> EvasionAttack:
    if tl.attack == "mimicry":
        return InternalMimicry(s.teacher, s.layer, s.teacher_data, norm=tl.norm, eps=eps, steps=tl.steps, seed=seed)
    return Transfer(s.teacher, PGD(norm=tl.norm, eps=eps, steps=tl.steps, seed=seed))


def run(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """Teacher-to-student transfer success over eps, for the student as trained or after the defence."""
    tl = sc.spec
    assert isinstance(tl, TransferLearningConfig)
    seed = ctx.config.seed
    s = setup(ctx, tl)
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
        student = TorchClassifier(trained.model, s.student.input_shape, s.student.num_classes, bounds=s.student.bounds)
        seconds, model = trained.seconds, f"student+{sc.defence}"
    idx = ctx.test.take_index(tl.samples or len(ctx.test), seed)
    test = ctx.test.subset(idx)
    view = student.restrict(Access.LABELS)  # the attacker only ever sees the student's labels
    clean = accuracy(student, test.x, test.y)
    k = ctx.data.num_classes
    target = (test.y + 1) % k if tl.attack == "mimicry" else None
    broken_at = torch.full((len(test),), -1, dtype=torch.long)
    points = []
    for i, eps in enumerate(tl.eps):
        ctx.log(f"    {tl.attack} on the teacher, eps={eps:g}, {len(test)} samples tried on the {model}")
        attack = _attack(tl, s, eps, seed)
        result = attack.run(view, test.x, test.y, target)
        wrong = view.predict_labels(result.x_adv) != test.y
        broken_at[(broken_at < 0) & wrong] = i
        point: dict[str, Any] = {
            "eps": eps,
            "robust_accuracy": float((broken_at < 0).float().mean()),
            "attack_robust_accuracy": 1.0 - float(wrong.float().mean()),
            "transfer_success_rate": result.success_rate,
            "seconds": result.seconds,
            "queries": result.queries,
            "median_norm": float(result.norms.median()) if len(test) else 0.0,
        }
        if isinstance(attack, Transfer):
            point["surrogate_success_rate"] = attack.last_surrogate_success_rate
        points.append(point)
    return {
        "kind": "evasion",
        "case": "transfer_learning",
        "attack": f"teacher-{tl.attack}",
        "norm": tl.norm,
        "model": model,
        "defence": sc.defence,
        "defence_type": "training" if sc.defence else None,
        "params": sc.params(),
        "samples": len(test),
        "clean_accuracy": clean,
        "teacher_accuracy": accuracy(s.teacher, test.x, test.y),
        "train_seconds": seconds,
        "reference_eps": tl.ref_eps,
        "black_box": True,
        "targeted": tl.attack == "mimicry",
        "points": points,
        "sample_index": idx.tolist(),
        "broken_at": broken_at.tolist(),
    }
