"""Clean-label targeted poisoning of a student fine-tuned from a public teacher.

Every entry with the same classes and seed attacks the same target images from the same
base images, so feature collision, convex and bullseye polytope compare on equal terms.
Gray-box attackers craft on surrogate teachers trained here with other seeds (shared by
the entries of a run); the control inserts the unperturbed bases.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sparring.assess.config import CleanLabelConfig
from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.assess.scenarios.transfer_learning import shared_setup
from sparring.attacks.poisoning.clean_label import (
    BullseyePolytope,
    CleanLabelResult,
    ConvexPolytope,
    FeatureCollision,
    evaluate_clean_label,
    train_surrogates,
)

ATTACKS = {
    "feature_collision": FeatureCollision,
    "convex_polytope": ConvexPolytope,
    "bullseye_polytope": BullseyePolytope,
}


def _surrogates(ctx: Context, cl: CleanLabelConfig) -> list[nn.Module]:
    key = f"clean_label-surrogates:{cl.teacher_fraction}"
    if key not in ctx.memo:
        ctx.log("    training two gray-box surrogate teachers on the public data")
        ctx.memo[key] = train_surrogates(shared_setup(ctx, cl.teacher_fraction), seed=ctx.config.seed + 1000)
    models = ctx.memo[key]
    assert isinstance(models, list)
    return models


def _evaluate(ctx: Context, cl: CleanLabelConfig, attack: Any) -> CleanLabelResult:
    setup = shared_setup(ctx, cl.teacher_fraction)
    return evaluate_clean_label(
        attack,
        setup,
        target_class=cl.target_class,
        base_class=cl.base_class,
        n_targets=cl.targets,
        n_poisons=cl.n_poisons,
        training=cl.training,
        knowledge=cl.knowledge,
        surrogates=_surrogates(ctx, cl) if cl.knowledge == "gray_box" else None,
        # the victim retrains: a fresh head to convergence (cheap on cached features), or every layer briefly
        epochs=60 if cl.training == "frozen" else 3,
        lr=0.01 if cl.training == "frozen" else 1e-3,
        seed=ctx.config.seed,
        progress=False,
    )


def run(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """Craft poisons per target, retrain the student per target, count the targets it misclassifies."""
    cl = sc.spec
    assert isinstance(cl, CleanLabelConfig)
    ctx.log(f"    {cl.attack} ({cl.knowledge}, {cl.training}) on {cl.targets} targets")
    attack = ATTACKS[cl.attack](n_poisons=cl.n_poisons, eps=cl.eps, seed=ctx.config.seed)
    r = _evaluate(ctx, cl, attack)
    key = f"clean_label-control:{cl.model_dump(exclude={'attack', 'knowledge'})}"
    if key not in ctx.memo:
        ctx.memo[key] = _evaluate(ctx, cl.model_copy(update={"knowledge": "white_box"}), None).success_rate
    return {
        "kind": "clean_label",
        "attack": cl.attack,
        "defence": None,
        "params": sc.params(),
        "model": "student of a public teacher",
        "n_targets": len(r.success),
        "success_rate": r.success_rate,
        "control_success_rate": float(ctx.memo[key]),
        "success": r.success.tolist(),
        "clean_accuracy_before": r.clean_accuracy_before,
        "clean_accuracy": r.clean_accuracy_after,
        "max_linf": r.max_linf,
        "seconds_per_target": r.seconds_per_target,
        "seconds": r.seconds,
    }
