"""Availability poisoning scenarios: test accuracy as the poisoned share of the training set grows.

The victim is the assessed model (retrained on each poisoned copy) or a linear model on
flattened inputs (``model = "logistic_regression" | "linear_svm"``, the setting of gradient
poisoning). Attacks other than random flips are shown beside random flips of the same
number of points, the baseline they must beat. The k-NN label-consistency defence flags
and drops suspicious samples before training; its cost is measured on the clean set.
"""

from __future__ import annotations

import time
from typing import Any

from sparring.assess.config import PoisoningConfig
from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.data import Dataset, PoisonedDataset
from sparring.metrics import accuracy, detection_rates
from sparring.models import Classifier


def _spec(sc: Scenario) -> PoisoningConfig:
    assert isinstance(sc.spec, PoisoningConfig)
    return sc.spec


def _poison(ctx: Context, pc: PoisoningConfig, fraction: float, attack: str | None = None) -> PoisonedDataset:
    from sparring.attacks.poisoning import LossLabelFlip, RandomLabelFlip, TargetedLabelFlip
    from sparring.attacks.poisoning.gradient import GradientPoisoning

    seed = ctx.config.seed
    name = attack or pc.attack
    if name == "gradient":
        return GradientPoisoning(model=pc.victim, fraction=fraction, steps=pc.steps, seed=seed).poison(ctx.train)
    if name == "loss_label_flip":
        return LossLabelFlip(fraction=fraction, seed=seed).poison(ctx.train)
    if name == "targeted_label_flip":
        return TargetedLabelFlip(source=pc.source, target=pc.target, fraction=fraction, seed=seed).poison(ctx.train)
    return RandomLabelFlip(fraction=fraction, seed=seed).poison(ctx.train)


def _random_like(ctx: Context, pc: PoisonedDataset) -> PoisonedDataset:
    """Random label flips of as many points as ``pc`` poisoned (added points are added as flipped copies)."""
    from sparring.attacks.poisoning import RandomLabelFlip
    from sparring.attacks.poisoning.gradient import RandomFlipCopies

    n_train, seed = len(ctx.train), ctx.config.seed
    if len(pc) > n_train:  # the attack added points: the baseline adds as many flipped copies
        return RandomFlipCopies(fraction=pc.n_poisoned / n_train, seed=seed).poison(ctx.train)
    return RandomLabelFlip(fraction=pc.n_poisoned / n_train, seed=seed).poison(ctx.train)


def _trainer(ctx: Context, sc: Scenario) -> Any:
    """``train(data, name) -> (classifier, seconds)`` for the scenario's victim."""
    pc = _spec(sc)
    if pc.victim == "target":

        def train_target(data: Dataset, name: str) -> tuple[Classifier, float]:
            if name == "clean":
                return ctx.target()
            return ctx.cached_model(f"poisoning-{sc.index}-{name}", {"name": name}, lambda: ctx.train_standard(data))

        return train_target
    from sparring.attacks.poisoning.gradient import fit_linear

    def train_linear(data: Dataset, name: str) -> tuple[Classifier, float]:
        start = time.perf_counter()
        clf = fit_linear(data, pc.victim, seed=ctx.config.seed)
        return clf, time.perf_counter() - start

    return train_linear


def _sanitised(data: Dataset, classifier: Classifier) -> tuple[Dataset, Any]:
    """``data`` without the samples k-NN label consistency flags (searched in input space)."""
    from sparring.defenses.data import KNNLabelConsistency

    det = KNNLabelConsistency().detect(data, classifier)
    return data.subset((~det.flagged).nonzero().flatten()), det


def run(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """Train on poisoned copies of the training set (sanitised first under a defence) and measure."""
    pc = _spec(sc)
    train = _trainer(ctx, sc)
    clean_clf, clean_seconds = train(ctx.train, "clean")
    clean = accuracy(clean_clf, ctx.test.x, ctx.test.y)
    out: dict[str, Any] = {
        "kind": "poisoning",
        "attack": pc.attack,
        "victim": pc.victim,
        "defence": sc.defence,
        "params": sc.params(),
        "clean_accuracy": clean,
    }
    points = []
    seconds = 0.0
    for f in pc.fraction:
        data = _poison(ctx, pc, f)
        point: dict[str, Any] = {"fraction": f, "n_poisoned": data.n_poisoned}
        if sc.defence is not None:
            start = time.perf_counter()
            kept, det = _sanitised(data, clean_clf)
            point.update({f"detector_{k}": v for k, v in detection_rates(det.flagged, data.poison_mask).items()})
            clf, s = train(kept, f"{pc.attack}-{f:g}+{sc.defence}")
            seconds += time.perf_counter() - start
        else:
            clf, s = train(data, f"{pc.attack}-{f:g}")
            if pc.attack != "label_flip":
                baseline = _random_like(ctx, data)
                base_clf, _ = train(baseline, f"random-{baseline.n_poisoned}")
                point["random_accuracy"] = accuracy(base_clf, ctx.test.x, ctx.test.y)
        point.update({"accuracy": accuracy(clf, ctx.test.x, ctx.test.y), "train_seconds": s})
        points.append(point)
    out["points"] = points
    if sc.defence is not None:  # the defence's price when nobody attacks: sanitise the clean set
        kept, det = _sanitised(ctx.train, clean_clf)
        clf, _ = train(kept, f"clean+{sc.defence}")
        out.update(
            {
                "before": {"clean_accuracy": clean},
                "clean_accuracy": accuracy(clf, ctx.test.x, ctx.test.y),
                "defence_type": "data",
                "defence_seconds": seconds / len(pc.fraction),
                "cost_note": f"drops {det.n_flagged / len(ctx.train):.1%} of the clean training set "
                f"(clean training: {clean_seconds:.1f} s)",
            }
        )
    return out
