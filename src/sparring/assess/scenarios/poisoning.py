"""Availability poisoning scenarios: accuracy as the share of flipped labels grows."""

from __future__ import annotations

from typing import Any

from sparring.assess.config import PoisoningConfig
from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.attacks.poisoning import RandomLabelFlip
from sparring.metrics import accuracy


def run(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """Train on label-flipped copies of the training set and measure test accuracy."""
    pc = sc.spec
    assert isinstance(pc, PoisoningConfig)
    clean_clf, _ = ctx.target()
    points = []
    for f in pc.fraction:
        data = RandomLabelFlip(fraction=f, seed=ctx.config.seed).poison(ctx.train)
        clf, seconds = ctx.cached_model(
            f"label_flip-{sc.index}-{f:g}",
            {"fraction": f},
            lambda data=data: ctx.train_standard(data),  # type: ignore[misc]
        )
        points.append({"fraction": f, "accuracy": accuracy(clf, ctx.test.x, ctx.test.y), "train_seconds": seconds})
    return {
        "kind": "poisoning",
        "attack": pc.attack,
        "defence": None,
        "params": sc.params(),
        "clean_accuracy": accuracy(clean_clf, ctx.test.x, ctx.test.y),
        "points": points,
    }
