"""Evasion scenarios: a security evaluation curve (accuracy vs eps) on one model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sparring.assess.config import EvasionConfig
from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.attacks.evasion import FGSM, PGD, EvasionAttack
from sparring.defenses.training import AdversarialTraining
from sparring.metrics import accuracy


def make_attack(ev: EvasionConfig, eps: float, seed: int) -> EvasionAttack:
    """The configured attack at one epsilon."""
    if ev.attack == "fgsm":
        return FGSM(norm=ev.norm, eps=eps, seed=seed)
    return PGD(
        norm=ev.norm,
        eps=eps,
        steps=ev.steps,
        step_size=ev.step_size,
        random_start=ev.random_start,
        restarts=ev.restarts,
        seed=seed,
    )


def adversarially_trained(ctx: Context) -> tuple[nn.Module, float]:
    """Train a fresh model with PGD adversarial training as configured."""
    at = ctx.config.adversarial_training
    defence = AdversarialTraining(
        norm=at.norm, eps=at.eps, steps=at.steps, step_size=at.step_size, seed=ctx.config.seed
    )
    result = defence.fit(ctx.build_model(), ctx.train, ctx.train_config(at.epochs))
    return result.model, result.seconds


def run(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """Sweep the attack over its epsilons; robust accuracy is the worst case per sample.

    A perturbation found at a smaller eps also lies in every larger ball, so a sample
    broken at eps counts as broken at every larger eps too.
    """
    ev = sc.spec
    assert isinstance(ev, EvasionConfig)
    seed = ctx.config.seed
    if sc.defence is None:
        clf, train_seconds = ctx.target()
        model = "standard"
    else:
        at = ctx.config.adversarial_training
        clf, train_seconds = ctx.cached_model(
            "adversarial_training", at.model_dump(), lambda: adversarially_trained(ctx)
        )
        model = "adversarial_training"
    test = ctx.test.take(ev.samples, seed) if ev.samples else ctx.test
    clean = accuracy(clf, test.x, test.y)
    broken = torch.zeros(len(test), dtype=torch.bool)
    points = []
    for eps in ev.eps:
        ctx.log(f"    {ev.attack} {ev.norm} eps={eps:g} on {len(test)} samples")
        result = make_attack(ev, eps, seed).run(clf, test.x, test.y)
        broken |= result.success
        points.append(
            {
                "eps": eps,
                "robust_accuracy": 1.0 - float(broken.float().mean()),
                "attack_robust_accuracy": result.robust_accuracy,
                "seconds": result.seconds,
                "queries": result.queries,
                "median_norm": float(result.norms[result.success].median()) if bool(result.success.any()) else 0.0,
            }
        )
    return {
        "kind": "evasion",
        "attack": ev.attack,
        "norm": ev.norm,
        "model": model,
        "defence": sc.defence,
        "params": sc.params(),
        "samples": len(test),
        "clean_accuracy": clean,
        "train_seconds": train_seconds,
        "reference_eps": ev.ref_eps,
        "points": points,
    }
