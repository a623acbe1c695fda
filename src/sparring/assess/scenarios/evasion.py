"""Evasion scenarios: security evaluation curves (accuracy vs eps) on one model or defence.

A scenario runs one configured attack over its epsilons against the undefended model or
one defence: a retrained model (adversarial training, dropout, weight decay, augmentation),
an input transformation (evaluated twice: as a naive attacker sees it and adaptively with
BPDA/EOT, Athalye et al., ICML 2018), or the feature-squeezing detector. Every result
keeps, per sample, the smallest eps at which it was broken, so the report can take the
worst case over all attacks run against the same model (AutoAttack's rule).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sparring.assess.config import DETECTORS, TRAINING_DEFENCES, EvasionConfig
from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.attacks.evasion import (
    BPDA,
    EVASION_ATTACKS,
    EvasionAttack,
    EvasionResult,
    SqueezingAwarePGD,
    Transfer,
    success_by_queries,
)
from sparring.attacks.evasion.ensemble import WorstCaseEnsemble, autoattack
from sparring.attacks.evasion.sanity import run_sanity_checks
from sparring.data import Dataset
from sparring.defenses.inference import FeatureSqueezing, parse_transform, transform_defence
from sparring.defenses.training import AdversarialTraining
from sparring.metrics import accuracy
from sparring.models import Access, Classifier, TransformedClassifier, build
from sparring.train import fit

#: Samples used by the classifier-based sanity checks (gradients, randomness, large eps).
SANITY_SAMPLES = 100


def required_access(ev: EvasionConfig) -> Access:
    """What the configured attack needs from the target model."""
    if ev.attack == "autoattack":
        return Access.GRADIENTS | Access.SCORES
    if ev.attack == "transfer":
        return Access.LABELS
    return EVASION_ATTACKS[ev.attack].requires


def single_attack(name: str, ev: EvasionConfig, eps: float, seed: int, randomized: bool = False) -> EvasionAttack:
    """A registered attack built from the entry's settings (those its constructor takes).

    Against a randomised model the attack does not stop at a sample's first success: that
    success may be a lucky draw, and stopping right at the boundary leaves it unreliable.
    """
    cls = EVASION_ATTACKS[name]
    settings: dict[str, Any] = {
        "early_stop": False if randomized else None,
        "norm": ev.norm,
        "eps": eps,
        "steps": ev.steps,
        "step_size": ev.step_size,
        "random_start": ev.random_start,
        "restarts": ev.restarts,
        "loss": ev.loss,
        "max_queries": ev.max_queries,
        "seed": seed,
    }
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in settings.items() if k in accepted and v is not None})


def make_attack(
    ev: EvasionConfig,
    eps: float,
    seed: int,
    surrogate: Classifier | None = None,
    checkpoint: Path | None = None,
    randomized: bool = False,
) -> EvasionAttack:
    """The configured attack at one epsilon; an ensemble saves its progress to ``checkpoint``."""
    if ev.attack == "autoattack":
        return autoattack(ev.norm, eps, seed=seed, version=ev.version, checkpoint=checkpoint)
    if ev.attack == "transfer":
        if surrogate is None:
            raise ValueError("a transfer attack needs its surrogate")
        return Transfer(surrogate, single_attack(ev.base_attack, ev, eps, seed))
    return single_attack(ev.attack, ev, eps, seed, randomized)


@dataclass
class Defended:
    """The model an attack runs against, as the report names it.

    ``kind`` is ``None`` (no defence), ``"training"`` (a retrained model), ``"inference"``
    (an input transformation) or ``"detector"``.
    """

    classifier: Classifier
    model: str
    train_seconds: float
    kind: str | None = None
    detector: FeatureSqueezing | None = None


def _dropout_model(ctx: Context) -> nn.Module:
    """The configured zoo architecture with the generalisation section's dropout."""
    gen = ctx.config.generalisation
    return build(ctx.model_name, ctx.data.input_shape, ctx.data.num_classes, seed=ctx.config.seed, dropout=gen.dropout)


def _train_with(ctx: Context, option: str) -> tuple[nn.Module, float]:
    """A fresh model trained like the standard one with one generalisation option changed."""
    gen = ctx.config.generalisation
    cfg = ctx.train_config()
    if option == "dropout":
        module = _dropout_model(ctx)
    else:
        module = ctx.build_model()
        if option == "weight_decay":
            cfg.weight_decay = gen.weight_decay
        elif option == "augmentation":
            cfg.augment = gen.augment
    result = fit(module, ctx.train, cfg, desc=option)
    return result.model, result.seconds


def adversarially_trained(ctx: Context) -> tuple[nn.Module, float]:
    """Train a fresh model with PGD adversarial training as configured."""
    at = ctx.config.adversarial_training
    defence = AdversarialTraining(
        norm=at.norm, eps=at.eps, steps=at.steps, step_size=at.step_size, seed=ctx.config.seed
    )
    result = defence.fit(ctx.build_model(), ctx.train, ctx.train_config(at.epochs))
    return result.model, result.seconds


def defended(ctx: Context, defence: str | None) -> Defended:
    """The target model, or the model or wrapper a defence makes of it."""
    target, seconds = ctx.target()
    if defence is None:
        return Defended(target, "standard", seconds)
    if defence == "adversarial_training":
        at = ctx.config.adversarial_training
        clf, secs = ctx.cached_model(defence, at.model_dump(), lambda: adversarially_trained(ctx))
        return Defended(clf, defence, secs, "training")
    if defence in TRAINING_DEFENCES:
        settings = ctx.config.generalisation.model_dump()
        make = (lambda: _dropout_model(ctx)) if defence == "dropout" else None
        clf, secs = ctx.cached_model(defence, settings, lambda: _train_with(ctx, defence), make)
        return Defended(clf, defence, secs, "training")
    if defence in DETECTORS:
        fs = ctx.config.feature_squeezing
        detector = FeatureSqueezing(fs.squeezers or default_squeezers(ctx.data.input_shape), fpr=fs.fpr)
        calibration = ctx.train.take(1000, ctx.config.seed)
        detector.fit(target, calibration.x)
        return Defended(target, defence, seconds, "detector", detector)
    return Defended(transform_defence(target, defence, seed=ctx.config.seed), defence, seconds, "inference")


def default_squeezers(input_shape: tuple[int, ...]) -> list[str]:
    """Squeezers by data shape (see :class:`~sparring.assess.config.FeatureSqueezingConfig`)."""
    if len(input_shape) != 3:
        return ["bit_depth:2"]
    return ["bit_depth:1", "median:2"] if min(input_shape[1:]) >= 16 else ["bit_depth:2", "jpeg:50"]


def evaluation_set(ctx: Context, ev: EvasionConfig) -> tuple[Dataset, Tensor]:
    """The test samples an entry attacks, and their indices in the test set."""
    idx = ctx.test.take_index(ev.samples or len(ctx.test), ctx.config.seed)
    return ctx.test.subset(idx), idx


def _median_norm(result: EvasionResult) -> float:
    return float(result.norms[result.success].median()) if bool(result.success.any()) else 0.0


def _budgets(max_queries: int) -> list[int]:
    """Query budgets for a success-vs-queries curve: roughly 1-2-5 steps up to ``max_queries``."""
    out = [b for k in range(7) for b in (10**k, 2 * 10**k, 5 * 10**k) if b < max_queries]
    return [*out, max_queries]


def sweep(
    ctx: Context,
    ev: EvasionConfig,
    clf: Classifier,
    test: Dataset,
    surrogate: Classifier | None = None,
    adaptive: bool = False,
    eot_samples: int = 1,
    key: str = "evasion",
) -> tuple[list[dict[str, Any]], Tensor, list[EvasionResult]]:
    """Run the attack at each eps; returns points, the eps index each sample broke at (-1: never), results.

    With ``adaptive`` the attack is wrapped in BPDA (and EOT over ``eot_samples`` draws).
    """
    seed = ctx.config.seed
    broken_at = torch.full((len(test),), -1, dtype=torch.long)
    points: list[dict[str, Any]] = []
    results = []
    for i, eps in enumerate(ev.eps):
        checkpoint = None
        if ctx.workdir is not None and ev.attack == "autoattack":
            (ctx.workdir / "checkpoints").mkdir(parents=True, exist_ok=True)
            checkpoint = ctx.workdir / "checkpoints" / f"{key}{'-adaptive' if adaptive else ''}-{eps:g}.pt"
        randomized = isinstance(clf, TransformedClassifier) and clf.transform.randomized
        attack = make_attack(ev, eps, seed, surrogate, checkpoint, randomized)
        if adaptive:
            attack = BPDA(attack, eot_samples=eot_samples)
        how = " (BPDA" + (f"+EOT x{eot_samples}" if eot_samples > 1 else "") + ")" if adaptive else ""
        ctx.log(f"    {ev.attack}{how} {ev.norm} eps={eps:g} on {len(test)} samples")
        result = attack.run(clf, test.x, test.y)
        if randomized and not adaptive:  # BPDA already judges its success on a fresh draw
            # An attack that stops at the first lucky draw would overclaim; a fresh draw
            # estimates the expected robust accuracy without that bias.
            result.success = clf.predict_labels(result.x_adv) != test.y
        broken_at[(broken_at < 0) & result.success] = i
        point: dict[str, Any] = {
            "eps": eps,
            "robust_accuracy": float((broken_at < 0).float().mean()),
            "attack_robust_accuracy": result.robust_accuracy,
            "seconds": result.seconds,
            "queries": result.queries,
            "median_norm": _median_norm(result),
        }
        if result.sample_queries is not None:
            budgets = _budgets(int(result.sample_queries.max()) if len(test) else 1)
            point["query_curve"] = {"budgets": budgets, "success": success_by_queries(result, budgets)}
            point["median_queries"] = (
                float(result.sample_queries[result.success].float().median()) if bool(result.success.any()) else 0.0
            )
        if isinstance(attack, WorstCaseEnsemble):
            point["members"] = attack.last_report
        if isinstance(attack, Transfer):
            point["surrogate_success_rate"] = attack.last_surrogate_success_rate
        points.append(point)
        results.append(result)
    return points, broken_at, results


def _detection(
    ctx: Context, ev: EvasionConfig, clf: Classifier, detector: FeatureSqueezing, test: Dataset,
    results: list[EvasionResult],
) -> dict[str, Any]:
    """The detector against each eps's adversarial examples, non-adaptive and, with gradients, adaptive.

    A sample is defended when the naive attack's example is flagged or not misclassified,
    and the detector-aware attack (:class:`SqueezingAwarePGD`, which only counts a success
    that is misclassified *and* below the threshold) fails on it.
    """
    assert detector.threshold is not None
    clean_flag = detector.detect(test.x)
    adaptive = Access.GRADIENTS in clf.access and ev.attack in ("fgsm", "pgd", "apgd")
    points: list[dict[str, float]] = []
    for e, r in zip(ev.eps, results, strict=True):
        flagged = detector.detect(r.x_adv)
        ok = flagged | ~r.success
        point = {
            "eps": e,
            "detection_rate": float(flagged[r.success].float().mean()) if bool(r.success.any()) else 1.0,
            "naive_robust_accuracy_with_detector": float(ok.float().mean()),
        }
        if adaptive:
            ctx.log(f"    detector-aware PGD {ev.norm} eps={e:g} on {len(test)} samples")
            aware = SqueezingAwarePGD(
                [parse_transform(spec) for spec in detector.squeezers],
                detector.threshold,
                norm=ev.norm,
                eps=e,
                steps=ev.steps or 100,
                seed=ctx.config.seed,
            ).run(clf, test.x, test.y)
            ok &= ~aware.success
            point["adaptive_undetected_success"] = aware.success_rate
        point["robust_accuracy_with_detector"] = float(ok.float().mean())
        points.append(point)
    return {
        "fpr": float(clean_flag.float().mean()),
        "threshold": detector.threshold,
        "squeezers": list(detector.squeezers),
        "adaptive": adaptive,
        "points": points,
    }


def sanity(ctx: Context, clf: Classifier, model: str, test: Dataset, ev: EvasionConfig) -> list[dict[str, Any]]:
    """Classifier-based checks for an unreliable evaluation (gradient masking, randomness, large eps)."""
    key = f"sanity:{model}:{ev.norm}:{len(test)}"  # the same model and samples give the same findings
    if key not in ctx.memo:
        sub = test.take(SANITY_SAMPLES, ctx.config.seed)
        ctx.memo[key] = [f.to_dict() for f in run_sanity_checks(clf, sub.x, sub.y, ev.norm, seed=ctx.config.seed)]
    out: list[dict[str, Any]] = [dict(f) for f in ctx.memo[key]]
    if isinstance(clf, TransformedClassifier):  # the transformation is what masks the gradients: say so
        for f in out:
            if f["severity"] != "info":
                f["message"] += " (through the input transformation; trust the adaptive BPDA figure)"
    return out


def run(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """Sweep the attack over its epsilons against the model or defence of this scenario."""
    ev = sc.spec
    assert isinstance(ev, EvasionConfig)
    d = defended(ctx, sc.defence)
    test, idx = evaluation_set(ctx, ev)
    surrogate = None
    if ev.attack == "transfer":
        arch = ev.surrogate or ("mlp" if ctx.model_name == "small_cnn" else "small_cnn")
        if len(ctx.data.input_shape) != 3 and arch == "small_cnn":
            arch = "mlp"
        surrogate, _ = ctx.cached_model(
            f"surrogate-{arch}",
            {"surrogate": arch},
            lambda: _train_surrogate(ctx, arch),
            lambda: build(arch, ctx.data.input_shape, ctx.data.num_classes, seed=ctx.config.seed + 1),
        )
    clean = accuracy(d.classifier, test.x, test.y)
    points, broken_at, results = sweep(ctx, ev, d.classifier, test, surrogate, key=sc.key)
    out: dict[str, Any] = {
        "kind": "evasion",
        "attack": ev.attack,
        "norm": ev.norm,
        "model": d.model,
        "defence": sc.defence,
        "defence_type": d.kind,
        "params": sc.params(),
        "samples": len(test),
        "clean_accuracy": clean,
        "train_seconds": d.train_seconds,
        "reference_eps": ev.ref_eps,
        "black_box": not bool(required_access(ev) & Access.GRADIENTS),
        "points": points,
        "sample_index": idx.tolist(),
    }
    if isinstance(d.classifier, TransformedClassifier):
        adaptive_possible = bool(required_access(ev) & Access.GRADIENTS)
        if adaptive_possible:
            eot = ev.eot_samples if d.classifier.transform.randomized else 1
            naive = points
            adaptive_points, adaptive_broken, _ = sweep(
                ctx, ev, d.classifier, test, surrogate, adaptive=True, eot_samples=eot, key=sc.key
            )
            # Honest figure: per sample, the worst case of the naive and the adaptive attack.
            never = torch.iinfo(torch.long).max
            first = torch.minimum(
                broken_at.where(broken_at >= 0, never), adaptive_broken.where(adaptive_broken >= 0, never)
            )
            both = first.where(first < never, -1)
            for i, p in enumerate(points):
                p["naive_robust_accuracy"] = naive[i]["robust_accuracy"]
                p["adaptive_robust_accuracy"] = adaptive_points[i]["robust_accuracy"]
                p["adaptive_seconds"] = adaptive_points[i]["seconds"]
                p["robust_accuracy"] = float(((both < 0) | (both > i)).float().mean())
            broken_at = both
            out["adaptive"] = f"BPDA{' + EOT x' + str(eot) if eot > 1 else ''}"
        else:
            out["adaptive"] = "not needed: the attack only queries the defended pipeline"
    if d.detector is not None:
        out["detection"] = _detection(ctx, ev, d.classifier, d.detector, test, results)
        out["adaptive"] = (
            "detector-aware PGD with BPDA through the squeezers"
            if out["detection"]["adaptive"]
            else "none: only gradient attacks (fgsm, pgd, apgd) get a detector-aware variant"
        )
    out["broken_at"] = broken_at.tolist()
    if ev.sanity_checks:
        out["flags"] = sanity(ctx, d.classifier, d.model, test, ev)
    return out


def _train_surrogate(ctx: Context, arch: str) -> tuple[nn.Module, float]:
    """An independently initialised surrogate trained on the same training data (seed + 1)."""
    module = build(arch, ctx.data.input_shape, ctx.data.num_classes, seed=ctx.config.seed + 1)
    result = fit(module, ctx.train, ctx.train_config(), desc=f"surrogate {arch}")
    return result.model, result.seconds
