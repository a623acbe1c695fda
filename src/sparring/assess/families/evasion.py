"""Evasion: security evaluation curves (accuracy vs eps) of the model and of each defence.

A scenario runs one configured attack over its epsilons against the undefended model or
one defence: a retrained model (adversarial training, dropout, weight decay, augmentation),
an input transformation (evaluated twice: as a naive attacker sees it and adaptively with
BPDA/EOT, Athalye et al., ICML 2018), or the feature-squeezing detector (with a
detector-aware attack). Every result keeps, per sample, the smallest eps at which it was
broken, so the report takes the worst case over all attacks run against the same model
(AutoAttack's rule, Croce & Hein, ICML 2020), and sanity checks flag an unreliable
evaluation (Carlini et al. 2019).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import matplotlib.pyplot as plt
from pydantic import Field, field_validator, model_validator
from torch import Tensor, nn

from sparring.assess.context import Artefact, Context, model_artefact
from sparring.assess.family import (
    TEST_INTEGRITY,
    CostRow,
    Defences,
    Extras,
    Family,
    Rating,
    Row,
    Rule,
    Scenario,
    ScenarioResult,
    rated,
)
from sparring.assess.htmlkit import curve_plot, esc, pct, png, table, tag
from sparring.assess.spec import (
    Entry,
    Strict,
    WithDefences,
    defences_field,
    listify,
    one_of,
    parses,
    sorted_nonnegative,
)
from sparring.attacks.evasion import (
    BPDA,
    EVASION_ATTACKS,
    EvasionAttack,
    EvasionResult,
    SecurityCurve,
    SqueezingAwarePGD,
    Transfer,
    robust_at,
    security_curve,
    worst_of,
)
from sparring.attacks.evasion.ensemble import autoattack
from sparring.attacks.evasion.sanity import curve_flags, run_sanity_checks
from sparring.data import Dataset
from sparring.defenses.inference import TRANSFORMS, FeatureSqueezing, parse_transform
from sparring.defenses.training import AdversarialTraining
from sparring.errors import ConfigError
from sparring.metrics import Interval, accuracy, per_query_ms, rate_interval
from sparring.models import (
    ARCHITECTURES,
    Access,
    Classifier,
    TorchClassifier,
    TransformedClassifier,
    build,
    describe_access,
)
from sparring.train import fit

#: Samples used by the classifier-based sanity checks (gradients, randomness, large eps).
SANITY_SAMPLES = 100
#: Attacks an entry may name besides the registered single attacks.
COMPOSITE_ATTACKS = ("autoattack", "transfer")
RULE = Rule("share of clean accuracy lost at the reference eps", medium=0.2, high=0.5)


# -- config -----------------------------------------------------------------------------------


class AdversarialTrainingConfig(Strict):
    """Settings of the adversarial-training defence (Madry et al., ICLR 2018)."""

    norm: Literal["linf", "l2"] = "linf"
    eps: float = Field(0.15, ge=0)
    steps: int = Field(2, ge=1)
    step_size: float | None = Field(None, ge=0)
    epochs: int | None = Field(4, ge=1)


class GeneralisationConfig(Strict):
    """Settings of the generalisation defences: each trains a fresh model with one option changed."""

    dropout: float = Field(0.3, gt=0, lt=1)
    weight_decay: float = Field(5e-4, gt=0)
    augment: str = "noise:0.1"

    @field_validator("augment")
    @classmethod
    def _known_augment(cls, v: str) -> str:
        from sparring.train import parse_augment

        return parses(parse_augment, v)


class FeatureSqueezingConfig(Strict):
    """Settings of the feature-squeezing detector (Xu et al., NDSS 2018).

    ``squeezers`` default by data shape: 1-bit depth and 2x2 median for images of 16 pixels
    or more a side (the paper's MNIST pair), 2-bit depth and JPEG 50 for smaller images
    (a 2x2 median destroys 8x8 digits), 2-bit depth for tabular data.
    """

    squeezers: list[str] | None = None
    fpr: float = Field(0.05, gt=0, lt=1)

    @field_validator("squeezers")
    @classmethod
    def _known_squeezers(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError('give at least one squeezer, e.g. ["bit_depth:1", "median:2"]')
        for spec in v or []:
            parses(TRANSFORMS.check, spec)
        return v


class EvasionSpec(Entry, WithDefences):
    """One evasion attack swept over epsilons, against the model and each listed defence."""

    attack: str
    norm: Literal["linf", "l2"] = "linf"
    eps: list[float] = Field(min_length=1)
    steps: int | None = Field(None, ge=1)
    step_size: float | None = Field(None, ge=0)
    restarts: int = Field(1, ge=1)
    random_start: bool = True
    loss: Literal["ce", "dlr"] | None = None
    max_queries: int = Field(1000, ge=1)
    version: Literal["standard", "fast"] = "standard"
    surrogate: str | None = None
    base_attack: str = "pgd"
    eot_samples: int = Field(10, ge=1)
    samples: int | None = Field(None, ge=1)
    reference_eps: float | None = Field(None, ge=0)
    sanity_checks: bool = True
    defences: list[str] = defences_field()

    _listify = field_validator("eps", mode="before")(listify)
    _nonnegative = field_validator("eps")(sorted_nonnegative)

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, [*EVASION_ATTACKS, *COMPOSITE_ATTACKS], "evasion attack")

    @field_validator("base_attack")
    @classmethod
    def _known_base(cls, v: str) -> str:
        return one_of(v, list(EVASION_ATTACKS), "transfer base_attack")

    @field_validator("surrogate")
    @classmethod
    def _known_surrogate(cls, v: str | None) -> str | None:
        return None if v is None else one_of(v, list(ARCHITECTURES), "surrogate architecture")

    @model_validator(mode="after")
    def _consistent(self) -> EvasionSpec:
        if self.attack == "cw-l2" and self.norm != "l2":
            raise ValueError('cw-l2 is an L2 attack: set norm = "l2"')
        if self.attack == "transfer" and self.base_attack == "cw-l2" and self.norm != "l2":
            raise ValueError('base_attack cw-l2 is an L2 attack: set norm = "l2"')
        if len(set(self.defences)) != len(self.defences):
            raise ValueError("a defence is listed twice")
        return self

    @property
    def ref_eps(self) -> float:
        """The epsilon the threat matrix rates risk at (default: the largest swept)."""
        return self.reference_eps if self.reference_eps is not None else max(self.eps)


# -- result -----------------------------------------------------------------------------------


class QueryCurve(Row):
    """Success rate when each sample may use at most ``budgets[i]`` queries."""

    budgets: list[int]
    success: list[float]


class EvasionPoint(Row):
    """One eps of a security evaluation curve (see :class:`~sparring.attacks.evasion.CurvePoint`).

    For an input transformation ``robust_accuracy`` is the per-sample worst of the naive and
    the adaptive attack, both given beside it.
    """

    eps: float
    robust_accuracy: float
    attack_robust_accuracy: float
    seconds: float
    queries: int
    median_norm: float
    query_curve: QueryCurve | None = None
    median_queries: float | None = None
    members: list[dict[str, Any]] | None = None
    surrogate_success_rate: float | None = None
    transfer_success_rate: float | None = None
    naive_robust_accuracy: float | None = None
    adaptive_robust_accuracy: float | None = None
    adaptive_seconds: float | None = None


class DetectionPoint(Row):
    """The detector against one eps's adversarial examples."""

    eps: float
    detection_rate: float
    naive_robust_accuracy_with_detector: float
    adaptive_undetected_success: float | None = None
    robust_accuracy_with_detector: float


class DetectionFigures(Row):
    """A detector's clean false-positive rate, threshold and figures per eps."""

    fpr: float
    threshold: float
    squeezers: list[str]
    adaptive: bool
    points: list[DetectionPoint]


class SanityFlag(Row):
    """A sanity check's finding (:class:`~sparring.attacks.evasion.sanity.Flag`)."""

    code: str
    severity: str
    message: str


class EvasionCurveResult(ScenarioResult):
    """A security evaluation curve of one attack against one model (the transfer-learning family's too)."""

    norm: str
    model: str
    samples: int
    clean_accuracy: float
    train_seconds: float
    reference_eps: float
    black_box: bool
    points: list[EvasionPoint]
    sample_index: list[int]
    broken_at: list[int]
    adaptive: str | None = None
    detection: DetectionFigures | None = None
    flags: list[SanityFlag] | None = None
    teacher_accuracy: float | None = None
    targeted: bool | None = None
    #: Wall time an inference-time defence adds per query, in ms (median of repeated timings).
    query_ms: float | None = None


# -- running ----------------------------------------------------------------------------------


def required_access(ev: EvasionSpec) -> Access:
    """What the configured attack needs from the target model."""
    if ev.attack == "autoattack":
        return Access.GRADIENTS | Access.SCORES
    if ev.attack == "transfer":
        return Access.LABELS
    return EVASION_ATTACKS[ev.attack].requires


def single_attack(name: str, ev: EvasionSpec, eps: float, seed: int, randomized: bool = False) -> EvasionAttack:
    """A registered attack built from the entry's settings (those its constructor takes).

    Against a randomised model the attack does not stop at a sample's first success: that
    success may be a lucky draw, and stopping right at the boundary leaves it unreliable.
    """
    settings = ev.model_dump(include={"norm", "steps", "step_size", "random_start", "restarts", "loss", "max_queries"})
    return EVASION_ATTACKS.build(name, **settings, eps=eps, seed=seed, early_stop=False if randomized else None)


def make_attack(
    ev: EvasionSpec,
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


def _dropout_model(ctx: Context) -> nn.Module:
    """The configured zoo architecture with the generalisation section's dropout."""
    gen = ctx.config.section("generalisation")
    assert isinstance(gen, GeneralisationConfig)
    return build(ctx.model_name, ctx.data.input_shape, ctx.data.num_classes, seed=ctx.seed, dropout=gen.dropout)


def _train_with(ctx: Context, option: str) -> tuple[nn.Module, float]:
    """A fresh model trained like the standard one with one generalisation option changed."""
    gen = ctx.config.section("generalisation")
    assert isinstance(gen, GeneralisationConfig)
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


def _adversarially_trained(ctx: Context) -> tuple[nn.Module, float]:
    """A fresh model trained with PGD adversarial training as configured."""
    at = ctx.config.section("adversarial_training")
    assert isinstance(at, AdversarialTrainingConfig)
    defence = AdversarialTraining(norm=at.norm, eps=at.eps, steps=at.steps, step_size=at.step_size, seed=ctx.seed)
    result = defence.fit(ctx.build_model(), ctx.train, ctx.train_config(at.epochs))
    return result.model, result.seconds


def trained_defence(ctx: Context, defence: str) -> Artefact[tuple[TorchClassifier, float]]:
    """The artefact of a model a training defence retrains."""
    section = "adversarial_training" if defence == "adversarial_training" else "generalisation"
    settings = ctx.config.section(section).model_dump()
    if defence == "adversarial_training":
        return model_artefact(defence, settings, lambda: _adversarially_trained(ctx), ctx.build_model)
    build_fn = (lambda: _dropout_model(ctx)) if defence == "dropout" else ctx.build_model
    return model_artefact(defence, settings, lambda: _train_with(ctx, defence), build_fn)


def surrogate_artefact(ctx: Context, ev: EvasionSpec) -> Artefact[tuple[TorchClassifier, float]]:
    """The transfer attack's surrogate: another zoo architecture trained on the same data (seed + 1)."""
    arch = ev.surrogate or ("mlp" if ctx.model_name == "small_cnn" else "small_cnn")
    if len(ctx.data.input_shape) != 3 and arch == "small_cnn":
        arch = "mlp"

    def make() -> nn.Module:
        return build(arch, ctx.data.input_shape, ctx.data.num_classes, seed=ctx.seed + 1)

    def train() -> tuple[nn.Module, float]:
        result = fit(make(), ctx.train, ctx.train_config(), desc=f"surrogate {arch}")
        return result.model, result.seconds

    return model_artefact(f"surrogate-{arch}", {"surrogate": arch}, train, make)


@dataclass
class Defended:
    """The model an attack runs against, as the report names it.

    ``kind`` is None (no defence), ``"training"`` (a retrained model), ``"inference"`` (an
    input transformation) or ``"detector"``.
    """

    classifier: Classifier
    model: str
    train_seconds: float
    kind: str | None = None
    detector: FeatureSqueezing | None = None


def default_squeezers(input_shape: tuple[int, ...]) -> list[str]:
    """Squeezers by data shape (see :class:`FeatureSqueezingConfig`)."""
    if len(input_shape) != 3:
        return ["bit_depth:2"]
    return ["bit_depth:1", "median:2"] if min(input_shape[1:]) >= 16 else ["bit_depth:2", "jpeg:50"]


def defended(ctx: Context, defence: str | None) -> Defended:
    """The target model, or the model or wrapper a defence makes of it."""
    target, seconds = ctx.target()
    if defence is None:
        return Defended(target, "standard", seconds)
    kind = FAMILY.defence_kind(defence)
    if kind == "training":
        clf, secs = ctx.artefact(trained_defence(ctx, defence))
        return Defended(clf, defence, secs, "training")
    if kind == "detector":
        fs = ctx.config.section("feature_squeezing")
        assert isinstance(fs, FeatureSqueezingConfig)
        detector = FeatureSqueezing(fs.squeezers or default_squeezers(ctx.data.input_shape), fpr=fs.fpr)
        detector.fit(target, ctx.train.take(1000, ctx.seed).x)
        return Defended(target, defence, seconds, "detector", detector)
    return Defended(TRANSFORMS.build(defence, seed=ctx.seed).wrap(target), defence, seconds, "inference")


def evaluation_set(ctx: Context, samples: int | None) -> tuple[Dataset, Tensor]:
    """The test samples an entry attacks, and their indices in the test set."""
    idx = ctx.test.take_index(samples or len(ctx.test), ctx.seed)
    return ctx.test.subset(idx), idx


def points_of(curve: SecurityCurve) -> list[EvasionPoint]:
    """The curve's points as report rows."""
    out = []
    for p in curve.points:
        point = EvasionPoint(
            eps=p.eps,
            robust_accuracy=p.robust_accuracy,
            attack_robust_accuracy=p.attack_robust_accuracy,
            seconds=p.seconds,
            queries=p.queries,
            median_norm=p.median_norm,
            median_queries=p.median_queries,
            members=p.details.get("members"),
            surrogate_success_rate=p.details.get("surrogate_success_rate"),
        )
        if p.query_budgets is not None and p.query_success is not None:
            point.query_curve = QueryCurve(budgets=p.query_budgets, success=p.query_success)
        out.append(point)
    return out


def sweep(
    ctx: Context,
    ev: EvasionSpec,
    clf: Classifier,
    test: Dataset,
    surrogate: Classifier | None = None,
    adaptive: bool = False,
    eot_samples: int = 1,
    key: str = "evasion",
) -> SecurityCurve:
    """The entry's security curve on ``clf``; with ``adaptive`` the attack runs through BPDA (EOT over draws)."""
    randomized = isinstance(clf, TransformedClassifier) and clf.transform.randomized

    def checkpoint(eps: float) -> Path | None:
        if ctx.workdir is None or ev.attack != "autoattack":
            return None
        return ctx.workdir / "checkpoints" / f"{key}{'-adaptive' if adaptive else ''}-{eps:g}.pt"

    def attack_at(eps: float) -> EvasionAttack:
        attack = make_attack(ev, eps, ctx.seed, surrogate, checkpoint(eps), randomized)
        return BPDA(attack, eot_samples=eot_samples) if adaptive else attack

    def fresh_draw(result: EvasionResult) -> Tensor:
        # An attack that stops at the first lucky draw would overclaim; a fresh draw
        # estimates the expected robust accuracy without that bias.
        return clf.predict_labels(result.x_adv) != test.y

    judge = fresh_draw if randomized and not adaptive else None  # BPDA judges on a fresh draw itself
    curve = security_curve(attack_at, clf, test.x, test.y, ev.eps, judge=judge, log=ctx.log)
    for eps in ev.eps:  # the curve is complete: its checkpoints have served (the result store keeps it)
        if (path := checkpoint(eps)) is not None:
            path.unlink(missing_ok=True)
    return curve


def _detection(
    ctx: Context, ev: EvasionSpec, clf: Classifier, detector: FeatureSqueezing, test: Dataset, curve: SecurityCurve
) -> DetectionFigures:
    """The detector against each eps's adversarial examples, non-adaptive and, with gradients, adaptive.

    A sample is defended when the naive attack's example is flagged or not misclassified,
    and the detector-aware attack (:class:`SqueezingAwarePGD`, which only counts a success
    that is misclassified *and* below the threshold) fails on it.
    """
    assert detector.threshold is not None
    clean_flag = detector.detect(test.x)
    adaptive = Access.GRADIENTS in clf.access and ev.attack in ("fgsm", "pgd", "apgd")
    points: list[DetectionPoint] = []
    for e, r in zip(ev.eps, curve.results, strict=True):
        flagged = detector.detect(r.x_adv)
        ok = flagged | ~r.success
        undetected = None
        naive = float(ok.float().mean())
        if adaptive:
            ctx.log(f"    detector-aware PGD {ev.norm} eps={e:g} on {len(test)} samples")
            aware = SqueezingAwarePGD(
                [parse_transform(spec) for spec in detector.squeezers],
                detector.threshold,
                norm=ev.norm,
                eps=e,
                steps=ev.steps or 100,
                seed=ctx.seed,
            ).run(clf, test.x, test.y)
            ok &= ~aware.success
            undetected = aware.success_rate
        points.append(
            DetectionPoint(
                eps=e,
                detection_rate=float(flagged[r.success].float().mean()) if bool(r.success.any()) else 1.0,
                naive_robust_accuracy_with_detector=naive,
                adaptive_undetected_success=undetected,
                robust_accuracy_with_detector=float(ok.float().mean()),
            )
        )
    return DetectionFigures(
        fpr=float(clean_flag.float().mean()),
        threshold=detector.threshold,
        squeezers=list(detector.squeezers),
        adaptive=adaptive,
        points=points,
    )


def sanity(ctx: Context, clf: Classifier, model: str, test: Dataset, norm: str) -> list[SanityFlag]:
    """Classifier-based checks for an unreliable evaluation (gradient masking, randomness, large eps)."""
    key = f"sanity:{model}:{norm}:{len(test)}"  # the same model and samples give the same findings
    if key not in ctx.memo:
        sub = test.take(SANITY_SAMPLES, ctx.seed)
        ctx.memo[key] = [f.to_dict() for f in run_sanity_checks(clf, sub.x, sub.y, norm, seed=ctx.seed)]
    out = [SanityFlag(**f) for f in ctx.memo[key]]
    if isinstance(clf, TransformedClassifier):  # the transformation is what masks the gradients: say so
        for f in out:
            if f.severity != "info":
                f.message += " (through the input transformation; trust the adaptive BPDA figure)"
    return out


# -- report helpers (shared with the transfer-learning family) -------------------------------


def rate_curve(result: EvasionCurveResult) -> Rating:
    """Share of clean accuracy lost at the reference eps (with a detector: flagged examples count as defended)."""
    eps = result.reference_eps
    at = min(range(len(result.points)), key=lambda i: abs(result.points[i].eps - eps))
    robust = result.points[at].robust_accuracy
    what = "robust accuracy"
    if result.detection is not None:
        robust = result.detection.points[at].robust_accuracy_with_detector
        what = "robust accuracy with the detector"
    clean = result.clean_accuracy
    loss = max(0.0, 1.0 - robust / clean) if clean > 0 else 1.0
    ci = rate_interval(robust, result.samples) if result.samples > 0 and clean > 0 else None
    lost = (  # the robust-accuracy interval mapped through 1 - robust / clean (clean held at its value)
        Interval(max(0.0, 1 - ci.high / clean), max(0.0, 1 - ci.low / clean), ci.n, ci.method) if ci else None
    )
    return rated(RULE, loss, f"{what} {robust:.1%} at eps {eps:g} (clean {clean:.1%})", lost)


def curve_intervals(key: str, r: EvasionCurveResult) -> dict[str, Interval]:
    """Clopper-Pearson intervals of the clean and robust accuracies (``samples`` inputs each)."""
    if r.samples <= 0:
        return {}
    out = {f"{key}.clean_accuracy": rate_interval(r.clean_accuracy, r.samples)}
    for p in r.points:
        out[f"{key}.robust_accuracy@{p.eps:g}"] = rate_interval(p.robust_accuracy, r.samples)
    return out


def curve_figures(key: str, r: EvasionCurveResult) -> dict[str, float]:
    """Clean accuracy and robust accuracy per eps (naive and adaptive, detection rate where they exist)."""
    out = {f"{key}.clean_accuracy": r.clean_accuracy}
    for p in r.points:
        out[f"{key}.robust_accuracy@{p.eps:g}"] = p.robust_accuracy
        if p.naive_robust_accuracy is not None and p.adaptive_robust_accuracy is not None:
            out[f"{key}.naive_robust_accuracy@{p.eps:g}"] = p.naive_robust_accuracy
            out[f"{key}.adaptive_robust_accuracy@{p.eps:g}"] = p.adaptive_robust_accuracy
    for d in r.detection.points if r.detection is not None else []:
        out[f"{key}.detection_rate@{d.eps:g}"] = d.detection_rate
    return out


def expected_curve_figures(key: str, eps: Sequence[float]) -> list[str]:
    """The figure keys :func:`curve_figures` can give for a sweep over ``eps``."""
    names = ("robust_accuracy", "naive_robust_accuracy", "adaptive_robust_accuracy", "detection_rate")
    return [f"{key}.clean_accuracy", *(f"{key}.{n}@{e:g}" for e in eps for n in names)]


def curve_cost(key: str, r: EvasionCurveResult, base: EvasionCurveResult) -> CostRow:
    """Clean accuracy before and after; training time for a retrained model."""
    if r.defence_type == "training":
        seconds, note = r.train_seconds, f"training time (standard training: {base.train_seconds:.1f} s)"
    else:
        seconds, note = 0.0, "inference-time wrapper; no training cost"
    if r.detection is not None:
        note += f"; flags {r.detection.fpr:.1%} of clean inputs"
    before, after = rate_curve(base), rate_curve(r)
    return CostRow(
        key, str(r.defence), before, after, base.clean_accuracy, r.clean_accuracy, seconds, note, r.query_ms
    )


def worst_case(results: Sequence[EvasionCurveResult]) -> list[dict[str, Any]]:
    """Per model and norm, robust accuracy as the worst case per sample over every attack run on it.

    AutoAttack's rule (Croce & Hein, ICML 2020): a sample counts as robust at eps only if
    no attack of that norm found an adversarial example within eps. Only samples every
    attack of the group was run on are counted.
    """
    groups: dict[tuple[str, str], list[EvasionCurveResult]] = {}
    for r in results:
        groups.setdefault((r.model, r.norm), []).append(r)
    out = []
    for (model, norm), rs in groups.items():
        common = set(rs[0].sample_index)
        for r in rs[1:]:
            common &= set(r.sample_index)
        if not common:
            continue
        grid = sorted({p.eps for r in rs for p in r.points})
        first: dict[int, float] = {}  # sample -> smallest eps at which any attack broke it
        for r in rs:
            for sample, at in zip(r.sample_index, r.broken_at, strict=True):
                if sample in common and at >= 0:
                    eps = r.points[at].eps
                    first[sample] = min(eps, first.get(sample, eps))
        n = len(common)
        points = [{"eps": e, "robust_accuracy": 1.0 - sum(v <= e for v in first.values()) / n} for e in grid]
        attacks = sorted({r.attack for r in rs})
        out.append({"model": model, "norm": norm, "samples": n, "attacks": attacks, "points": points})
    return out


def evaluation_flags(results: Mapping[str, EvasionCurveResult]) -> list[dict[str, Any]]:
    """Every sanity-check flag: those the scenarios raised, and those read off the curves.

    Curve checks (Carlini et al., "On Evaluating Adversarial Robustness", 2019): eps 0 must
    give clean accuracy, robust accuracy must not rise with eps, and a black-box attack
    beating every white-box one at the same eps points to gradient masking.
    """
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    by_model: dict[tuple[str, str], list[tuple[str, EvasionCurveResult]]] = {}
    for key, r in results.items():
        for f in r.flags or []:  # the same finding on the same model is listed once
            same = seen.get((r.model, f.code, f.message))
            if same is None:
                seen[(r.model, f.code, f.message)] = {"scenario": key, "model": r.model, **f.model_dump()}
                out.append(seen[(r.model, f.code, f.message)])
            else:
                same["scenario"] += f", {key}"
        by_model.setdefault((r.model, r.norm), []).append((key, r))
    for (model, _norm), items in by_model.items():
        curves = {key: [(p.eps, p.attack_robust_accuracy) for p in r.points] for key, r in items}
        black_box = {key for key, r in items if r.black_box}
        clean = items[0][1].clean_accuracy
        common = set.intersection(*(set(r.sample_index) for _, r in items))
        broken = {  # per attack and eps, the shared samples it broke (for the paired test)
            key: {
                p.eps: {s for s, at in zip(r.sample_index, r.broken_at, strict=True) if 0 <= at <= i and s in common}
                for i, p in enumerate(r.points)
            }
            for key, r in items
        }
        for found in curve_flags(clean, curves, black_box, broken=broken):
            out.append({"scenario": ", ".join(k for k, _ in items), "model": model, **asdict(found)})
    return out


# -- HTML -----------------------------------------------------------------------------------------


def _worst_case_html(worst: list[dict[str, Any]]) -> str:
    if not worst:
        return ""
    out = ["<h3>Worst case over every attack</h3>"]
    for norm in sorted({w["norm"] for w in worst}):
        ws = [w for w in worst if w["norm"] == norm]
        lines = []
        for i, w in enumerate(ws):
            eps, acc = [p["eps"] for p in w["points"]], [p["robust_accuracy"] for p in w["points"]]
            lines.append((w["model"].replace("_", " "), eps, acc, "-", i))
        out.append(curve_plot(f"Worst-case robust accuracy ({norm})", f"epsilon ({norm})", lines))
        rows = [
            [esc(w["model"]), f"{p['eps']:g}", pct(p["robust_accuracy"]), esc(", ".join(w["attacks"])), w["samples"]]
            for w in ws
            for p in w["points"]
        ]
        out.append(table(["model / defence", "eps", "worst-case robust acc.", "attacks", "samples"], rows))
    out.append(
        '<p class="muted">Per sample, the worst case over every attack of that norm run against the model: a sample '
        "counts as robust at eps only if no attack broke it within eps (the AutoAttack rule).</p>"
    )
    return "".join(out)


def _query_curves(rs: list[dict[str, Any]], label: str) -> str:
    with_curves = [(r, p) for r in rs for p in r["points"] if "query_curve" in p]
    if not with_curves:
        return ""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for r, p in with_curves:
        qc = p["query_curve"]
        ax.plot(qc["budgets"], qc["success"], marker=".", label=f"{r['model']} eps {p['eps']:g}")
    ax.set_xscale("log")
    ax.set_xlabel("queries per sample")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Black-box query curve: {label}")
    return png(fig)


def _members(rs: list[dict[str, Any]]) -> str:
    rows = [
        [
            esc(r["model"]),
            f"{p['eps']:g}",
            esc(m["name"]),
            m["newly_broken"],
            pct(m["robust_accuracy_after"]),
            f"{m['seconds']:.1f}",
            f"{m['queries']:,}",
        ]
        for r in rs
        for p in r["points"]
        for m in p.get("members", [])
    ]
    if not rows:
        return ""
    return "<p>Ensemble members, in the order they ran (each only on samples still robust):</p>" + table(
        ["model", "eps", "attack", "newly broken", "robust acc. after", "s", "queries"], rows
    )


def _detections(rs: list[dict[str, Any]]) -> str:
    rows = [
        [
            esc(f"{r['defence']} ({', '.join(r['detection']['squeezers'])})"),
            f"{p['eps']:g}",
            pct(r["detection"]["fpr"]),
            pct(p["detection_rate"]),
            pct(p.get("adaptive_undetected_success")),
            pct(r["points"][i]["robust_accuracy"]),
            pct(p["naive_robust_accuracy_with_detector"]),
            pct(p["robust_accuracy_with_detector"]),
        ]
        for r in rs
        if "detection" in r
        for i, p in enumerate(r["detection"]["points"])
    ]
    if not rows:
        return ""
    header = [
        "detector",
        "eps",
        "clean FPR",
        "naive adv. detected",
        "aware attack: undetected success",
        "robust acc. (no detector)",
        "with detector, naive",
        "with detector, worst case",
    ]
    return (
        "<p>Detector (threshold set on clean training inputs; false positives measured on the clean test inputs). "
        "A sample counts as defended when the naive attack's example is flagged or harmless and the "
        "detector-aware attack fails on it:</p>"
        + table(header, rows)
        + '<p class="muted">The detector-aware attack (PGD with BPDA through the squeezers, continued until the '
        "detector is evaded) is a lower bound on what an adaptive attacker achieves: He et al. (WOOT 2017) "
        "defeat feature squeezing with stronger joint attacks. The threat matrix therefore never credits a "
        "detector as the best defence.</p>"
    )


def curves_html(results: Sequence[dict[str, Any]]) -> str:
    """One block per attack and norm: the curve of every model it ran against, its table and notes."""
    out: list[str] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(f"{r['attack']}-{r['norm']}", []).append(r)
    for label, rs in groups.items():
        out.append(f"<h3>{esc(label)}</h3>")
        lines = []
        for i, r in enumerate(rs):
            eps = [0.0] + [p["eps"] for p in r["points"]]
            name = r["model"].replace("_", " ")
            if "detection" in r:  # a detector's figure counts flagged adversarial examples as defended
                det = r["detection"]["points"]
                worst = [r["clean_accuracy"]] + [p["robust_accuracy_with_detector"] for p in det]
                naive = [r["clean_accuracy"]] + [p["naive_robust_accuracy_with_detector"] for p in det]
                lines += [(name, eps, worst, "-", i), (f"{name} (naive attack)", eps, naive, "--", i)]
                continue
            lines.append((name, eps, [r["clean_accuracy"]] + [p["robust_accuracy"] for p in r["points"]], "-", i))
            if "naive_robust_accuracy" in r["points"][0]:
                naive = [r["clean_accuracy"]] + [p["naive_robust_accuracy"] for p in r["points"]]
                lines.append((f"{name} (naive attack)", eps, naive, "--", i))
        out.append(curve_plot(f"Security evaluation curve: {label}", f"epsilon ({rs[0]['norm']})", lines))
        out.append(_query_curves(rs, label))
        rows = []
        for r in rs:
            for p in r["points"]:
                rows.append(
                    [
                        esc(r["model"]),
                        f"{p['eps']:g}",
                        pct(r["clean_accuracy"]),
                        pct(p["robust_accuracy"]),
                        pct(p.get("naive_robust_accuracy")) + " / " + pct(p.get("adaptive_robust_accuracy"))
                        if "naive_robust_accuracy" in p
                        else "—",
                        f"{p['seconds'] + p.get('adaptive_seconds', 0.0):.1f}",
                        f"{p['queries']:,}",
                        f"{p['median_queries']:,.0f}" if "median_queries" in p else "—",
                        f"{p['median_norm']:.3f}",
                    ]
                )
        header = [
            "model / defence",
            "eps",
            "clean acc.",
            "robust acc.",
            "naive / adaptive",
            "attack s",
            "queries",
            "median queries to success",
            "median norm",
        ]
        out.append(table(header, rows))
        out.append(_members(rs))
        out.append(_detections(rs))
        crafted = [p for p in rs[0]["points"] if "surrogate_success_rate" in p]
        if crafted:  # crafted once on the surrogate, the same for every target model
            out.append(
                '<p class="muted">Transfer: success on the surrogate (or teacher) itself '
                + ", ".join(f"{pct(p['surrogate_success_rate'])} at eps {p['eps']:g}" for p in crafted)
                + "; robust accuracy above is measured on the target.</p>"
            )
        adaptive = {r["model"]: r["adaptive"] for r in rs if "adaptive" in r}
        params = rs[0]["params"]
        note = "".join(f" {esc(m)}: adaptive evaluation {esc(a)}." for m, a in adaptive.items())
        settings = {k: v for k, v in params.items() if k != "eps" and v is not None}
        out.append(
            f'<p class="muted">{esc(label)} on {rs[0]["samples"]} test samples; settings: {esc(settings)}. Robust '
            "accuracy is the worst case per sample (a sample broken at a smaller eps counts as broken at larger "
            "ones; for an input transformation, broken by the naive or the adaptive attack)."
            f"{note}</p>"
        )
    return "".join(out)


def _flags_html(flags: list[dict[str, Any]]) -> str:
    if not flags:
        return (
            "<h3>Reliability of the evasion evaluation</h3><p>No sanity check raised a flag (gradients finite and "
            "non-zero, deterministic model, eps 0 keeps clean accuracy, accuracy falls to 0 at a large eps, no "
            "black-box attack beats the white-box ones).</p>"
        )
    rows = [[tag(f["severity"]), esc(f["model"]), esc(f["code"]), esc(f["message"])] for f in flags]
    return (
        "<h3>Reliability of the evasion evaluation</h3><p>These checks (Carlini et al. 2019; Athalye et al., "
        "ICML 2018) flag signs that a robustness figure may be too high, e.g. from gradient masking:</p>"
        + table(["severity", "model / defence", "check", "finding"], rows)
    )


# -- the family -----------------------------------------------------------------------------------


class EvasionFamily(Family[EvasionSpec, EvasionCurveResult]):
    """``[[evasion]]``: one attack's security curve against the model and each defence."""

    key = "evasion"
    title = "evasion"
    section = "Evasion (test-time integrity)"
    order = 10
    spec = EvasionSpec
    result = EvasionCurveResult
    threats = {TEST_INTEGRITY: "evasion"}
    rules = {TEST_INTEGRITY: RULE}
    settings = {
        "adversarial_training": AdversarialTrainingConfig,
        "generalisation": GeneralisationConfig,
        "feature_squeezing": FeatureSqueezingConfig,
    }
    defences = (
        Defences("training", ("adversarial_training",), settings="adversarial_training"),
        Defences("training", ("dropout", "weight_decay", "augmentation"), settings="generalisation"),
        Defences("inference", registry=TRANSFORMS),
        Defences("detector", ("feature_squeezing",), settings="feature_squeezing"),
    )
    attacks = (*EVASION_ATTACKS, *COMPOSITE_ATTACKS)
    smoke = {"evasion": [{"attack": "pgd", "eps": [0.1], "steps": 5, "samples": 40, "defences": ["bit_depth:2"]}]}

    def label(self, entry: EvasionSpec) -> str:
        return f"{entry.attack}-{entry.norm}"

    def check(self, ctx: Context, index: int, entry: EvasionSpec) -> None:
        access = ctx.loaded.access if ctx.loaded is not None else Access.ALL
        missing = required_access(entry) & ~access
        where = f"evasion[{index}]"
        if missing:
            raise ConfigError(
                f"{where}: {entry.attack} needs {describe_access(missing)} access, but the model exposes only "
                f"{describe_access(access)}"
            )
        for d in [*entry.defences, *ctx.config.family_defences(self.key)]:
            kind = self.defence_kind(d)
            if kind == "training" and not ctx.trainable:
                raise ConfigError(f"{where}: {d} retrains the model; [model] must be trainable here")
            if d == "dropout" and ctx.model_name not in ARCHITECTURES:
                raise ConfigError(f"{where}: dropout rebuilds a zoo architecture; set [model] architecture")
            if kind == "inference":
                TRANSFORMS.build(d).check_input_shape(ctx.data.input_shape)
            if kind == "detector":
                fs = ctx.config.section("feature_squeezing")
                assert isinstance(fs, FeatureSqueezingConfig)
                for s in fs.squeezers or []:
                    TRANSFORMS.build(s).check_input_shape(ctx.data.input_shape)

    def artefacts(self, ctx: Context, sc: Scenario) -> list[Artefact[Any]]:
        ev = sc.spec
        assert isinstance(ev, EvasionSpec)
        out: list[Artefact[Any]] = []
        if sc.defence is not None and self.defence_kind(sc.defence) == "training":
            out.append(trained_defence(ctx, sc.defence))
        if ev.attack == "transfer":
            out.append(surrogate_artefact(ctx, ev))
        return out

    def run(self, ctx: Context, sc: Scenario) -> EvasionCurveResult:
        ev = sc.spec
        assert isinstance(ev, EvasionSpec)
        d = defended(ctx, sc.defence)
        test, idx = evaluation_set(ctx, ev.samples)
        surrogate = ctx.artefact(surrogate_artefact(ctx, ev))[0] if ev.attack == "transfer" else None
        clean = accuracy(d.classifier, test.x, test.y)
        curve = sweep(ctx, ev, d.classifier, test, surrogate, key=sc.key)
        points = points_of(curve)
        broken_at = curve.broken_at
        adaptive: str | None = None
        if isinstance(d.classifier, TransformedClassifier):
            if required_access(ev) & Access.GRADIENTS:
                eot = ev.eot_samples if d.classifier.transform.randomized else 1
                bpda = sweep(ctx, ev, d.classifier, test, surrogate, adaptive=True, eot_samples=eot, key=sc.key)
                # Honest figure: per sample, the worst case of the naive and the adaptive attack.
                broken_at = worst_of(curve.broken_at, bpda.broken_at)
                for i, p in enumerate(points):
                    p.naive_robust_accuracy = p.robust_accuracy
                    p.adaptive_robust_accuracy = bpda.points[i].robust_accuracy
                    p.adaptive_seconds = bpda.points[i].seconds
                    p.robust_accuracy = robust_at(broken_at, i)
                adaptive = f"BPDA{' + EOT x' + str(eot) if eot > 1 else ''}"
            else:
                adaptive = "not needed: the attack only queries the defended pipeline"
        query_ms = None
        if d.kind == "inference":
            query_ms = max(0.0, per_query_ms(d.classifier, test.x) - per_query_ms(ctx.target()[0], test.x))
        detection = None
        if d.detector is not None:
            detection = _detection(ctx, ev, d.classifier, d.detector, test, curve)
            adaptive = (
                "detector-aware PGD with BPDA through the squeezers"
                if detection.adaptive
                else "none: only gradient attacks (fgsm, pgd, apgd) get a detector-aware variant"
            )
        return EvasionCurveResult(
            kind=self.key,
            attack=ev.attack,
            norm=ev.norm,
            model=d.model,
            defence=sc.defence,
            defence_type=d.kind,
            params=sc.params(),
            samples=len(test),
            clean_accuracy=clean,
            train_seconds=d.train_seconds,
            reference_eps=ev.ref_eps,
            black_box=not bool(required_access(ev) & Access.GRADIENTS),
            points=points,
            sample_index=idx.tolist(),
            broken_at=broken_at.tolist(),
            adaptive=adaptive,
            detection=detection,
            query_ms=query_ms,
            flags=sanity(ctx, d.classifier, d.model, test, ev.norm) if ev.sanity_checks else None,
        )

    def rate(self, result: EvasionCurveResult) -> Rating:
        return rate_curve(result)

    def figures(self, key: str, result: EvasionCurveResult) -> dict[str, float]:
        return curve_figures(key, result)

    def intervals(self, key: str, result: EvasionCurveResult) -> dict[str, Interval]:
        return curve_intervals(key, result)

    def expected_figures(self, sc: Scenario) -> list[str]:
        assert isinstance(sc.spec, EvasionSpec)
        return expected_curve_figures(sc.key, sc.spec.eps)

    def expected_extras(self, scenarios: Sequence[Scenario]) -> list[str]:
        eps = sorted({e for sc in scenarios if isinstance(sc.spec, EvasionSpec) for e in sc.spec.eps})
        return [f"evasion.worst_case.*.robust_accuracy@{e:g}" for e in eps]

    def cost(self, key: str, result: EvasionCurveResult, base: EvasionCurveResult) -> CostRow:
        return curve_cost(key, result, base)

    def extras(self, results: Mapping[str, ScenarioResult]) -> Extras:
        curves = {k: r for k, r in results.items() if isinstance(r, EvasionCurveResult)}
        if not curves:
            return Extras()
        worst = worst_case(list(curves.values()))
        figures = {
            f"evasion.worst_case.{w['model']}-{w['norm']}.robust_accuracy@{p['eps']:g}": p["robust_accuracy"]
            for w in worst
            for p in w["points"]
        }
        return Extras({"worst_case": worst, "flags": evaluation_flags(curves)}, figures)

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        if not results:
            return ""
        body = _worst_case_html(report.get("worst_case", [])) + curves_html(list(results.values()))
        return body + _flags_html(report.get("flags", []))


FAMILY = EvasionFamily()
