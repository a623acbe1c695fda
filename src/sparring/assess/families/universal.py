"""Universal perturbations and adversarial patches: evasion a physical attacker can print.

Every other evasion attack crafts one perturbation per input; a sticker on a traffic sign is
one perturbation for every input. ``[[universal]]`` entries craft a universal perturbation
(Moosavi-Dezfooli et al., CVPR 2017; the batched gradient form of Shafahi et al., AAAI 2020)
at each eps, or an adversarial patch (Brown et al., 2017) at each area, on training inputs,
and judge it on held-out test inputs (patches at placements from another generator). Results
are evasion security curves (:class:`~sparring.assess.families.evasion.EvasionCurveResult`),
so they land in the evasion cell, count in its per-sample worst case (patches as their own
"patch" norm, area standing for eps) and share the evasion section of the report.

Defences: universal adversarial training (Shafahi et al., AAAI 2020), PGD adversarial
training (the evasion family's model), derandomised smoothing (Levine & Feizi, NeurIPS 2020:
certified accuracy, and the worst per input of the naive patch and an adaptive patch crafted
through the vote), and the STRIP and random-masking input filters (built for backdoor
triggers, which a patch resembles), judged on the naive patch only and never credited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor, nn

from sparring.assess.context import Artefact, Context, model_artefact
from sparring.assess.families.evasion import (
    RULE,
    DetectionFigures,
    DetectionPoint,
    EvasionCurveResult,
    EvasionPoint,
    curve_cost,
    curve_figures,
    evaluation_set,
    rate_curve,
    trained_defence,
)
from sparring.assess.family import TEST_INTEGRITY, CostRow, Defences, Family, Rating, Row, Scenario
from sparring.assess.htmlkit import curve_plot, esc, image_grid, pct, table
from sparring.assess.spec import Strict, WithDefences, defences_field, listify, one_of, sorted_nonnegative
from sparring.attacks.evasion import UNIVERSAL_ATTACKS, Patch, Universal, UniversalAttack, UniversalPerturbation
from sparring.attacks.evasion.curve import robust_at
from sparring.attacks.evasion.patch import check_area, patch_side
from sparring.defenses.inference import DETECTORS, Detector
from sparring.defenses.inference.ablation import DerandomizedSmoothing, SmoothedClassifier
from sparring.defenses.training.universal import UniversalAdversarialTraining
from sparring.errors import ConfigError
from sparring.metrics import accuracy
from sparring.models import Access, Classifier, TorchClassifier, describe_access

#: Seed offset of the held-out placements (never the crafting generator's).
EVAL_SEED = 7919
#: Clean inputs a filter's threshold is set on.
FILTER_CLEAN = 1000


# -- config -----------------------------------------------------------------------------------


class UniversalAdversarialTrainingConfig(Strict):
    """Settings of universal adversarial training (Shafahi et al., AAAI 2020)."""

    norm: Literal["linf", "l2"] = "linf"
    eps: float = Field(0.2, ge=0)
    step_size: float | None = Field(None, ge=0)
    epochs: int | None = Field(None, ge=1)


class DerandomizedSmoothingConfig(Strict):
    """Settings of derandomised smoothing (Levine & Feizi, NeurIPS 2020): ablation shape and size."""

    mode: Literal["column", "block"] = "column"
    size: int = Field(4, ge=1)
    fill: float | None = None
    epochs: int | None = Field(None, ge=1)


class UniversalSpec(WithDefences):
    """A universal perturbation swept over eps, or a patch swept over area, against the model and each defence."""

    attack: str
    norm: Literal["linf", "l2"] = "linf"
    eps: list[float] = []
    area: list[float] = []
    target: int | None = Field(None, ge=0)
    epochs: int = Field(5, ge=1)
    steps: int = Field(300, ge=1)
    batch_size: int = Field(64, ge=1)
    scale: float = Field(0.2, ge=0, lt=1)
    rotation: float = Field(15.0, ge=0)
    brightness: float = Field(0.1, ge=0, le=1)
    craft_samples: int = Field(1000, ge=1)
    samples: int | None = Field(None, ge=1)
    reference: float | None = Field(None, ge=0)
    defences: list[str] = defences_field()

    _listify = field_validator("eps", "area", mode="before")(listify)
    _nonnegative = field_validator("eps")(sorted_nonnegative)

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, list(UNIVERSAL_ATTACKS), "universal attack")

    @field_validator("area")
    @classmethod
    def _areas(cls, v: list[float]) -> list[float]:
        for a in v:
            try:
                check_area(a)
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return sorted(v)

    @model_validator(mode="after")
    def _consistent(self) -> UniversalSpec:
        if self.attack == "patch":
            if not self.area or self.eps:
                raise ValueError("a patch is swept over 'area' (shares of the image, e.g. [0.02, 0.05, 0.1]), not eps")
        elif not self.eps or self.area:
            raise ValueError(f"{self.attack} is swept over 'eps' (e.g. [0.1, 0.2]), not area")
        if self.attack == "uap-deepfool" and self.target is not None:
            raise ValueError("uap-deepfool is untargeted: use attack = 'uap' for a targeted universal perturbation")
        if len(set(self.defences)) != len(self.defences):
            raise ValueError("a defence is listed twice")
        return self

    @property
    def budgets(self) -> list[float]:
        """The areas of a patch, the eps of a universal perturbation."""
        return self.area if self.attack == "patch" else self.eps

    @property
    def ref(self) -> float:
        """The budget the threat matrix rates risk at (default: the largest swept)."""
        return self.reference if self.reference is not None else max(self.budgets)


# -- result -----------------------------------------------------------------------------------


class UniversalPoint(Row):
    """What one budget's perturbation or patch did, besides the curve point.

    ``size`` is the real eps or patch area (a square patch covers whole pixels);
    ``image`` the perturbation or patch and ``example`` a held-out input carrying it (for the
    report); ``certified_accuracy`` the share of inputs no patch of this size can change
    (derandomised smoothing).
    """

    budget: float
    size: float
    fooling_rate: float
    craft_seconds: float
    craft_queries: int
    image: list[Any]
    example: list[Any]
    certified_accuracy: float | None = None


class UniversalCurveResult(EvasionCurveResult):
    """An evasion security curve of a universal attack, with what it crafted and its fooling rates."""

    measure: Literal["eps", "area"]
    craft_samples: int
    universal: list[UniversalPoint]


# -- running ----------------------------------------------------------------------------------


def build_attack(ev: UniversalSpec, budget: float, seed: int) -> UniversalAttack[Universal]:
    """The entry's attack at one eps (or area)."""
    if ev.attack == "patch":
        settings = ev.model_dump(
            include={"steps", "batch_size", "scale", "rotation", "brightness", "target"}
        )
        return UNIVERSAL_ATTACKS.build("patch", **settings, area=budget, seed=seed)
    settings = ev.model_dump(include={"norm", "epochs", "batch_size", "target"})
    return UNIVERSAL_ATTACKS.build(ev.attack, **settings, eps=budget, seed=seed)


def _uat_model(ctx: Context) -> tuple[nn.Module, float]:
    cfg = ctx.config.section("universal_adversarial_training")
    assert isinstance(cfg, UniversalAdversarialTrainingConfig)
    defence = UniversalAdversarialTraining(cfg.norm, cfg.eps, cfg.step_size, bounds=ctx.config.data.bounds)
    result = defence.fit(ctx.build_model(), ctx.train, ctx.train_config(cfg.epochs))
    return result.model, result.seconds


def smoothing(ctx: Context) -> DerandomizedSmoothing:
    """The configured derandomised smoothing."""
    cfg = ctx.config.section("derandomized_smoothing")
    assert isinstance(cfg, DerandomizedSmoothingConfig)
    return DerandomizedSmoothing(cfg.mode, cfg.size, cfg.fill, seed=ctx.seed, bounds=ctx.config.data.bounds)


def _smoothing_base(ctx: Context) -> tuple[nn.Module, float]:
    cfg = ctx.config.section("derandomized_smoothing")
    assert isinstance(cfg, DerandomizedSmoothingConfig)
    result = smoothing(ctx).fit(ctx.build_model(), ctx.train, ctx.train_config(cfg.epochs))
    return result.model, result.seconds


def universal_defence(ctx: Context, defence: str) -> Artefact[tuple[TorchClassifier, float]]:
    """The trained model of a training defence (the base classifier, for derandomised smoothing)."""
    if defence == "adversarial_training":
        return trained_defence(ctx, defence)
    settings = ctx.config.section(defence).model_dump()
    train = _uat_model if defence == "universal_adversarial_training" else _smoothing_base
    return model_artefact(defence, settings, lambda: train(ctx), ctx.build_model)


@dataclass
class Target:
    """The model a universal attack runs against, as the report names it."""

    classifier: Classifier
    model: str
    train_seconds: float
    kind: str | None = None
    detector: Detector | None = None


def defended(ctx: Context, defence: str | None) -> Target:
    """The target model, or what a defence makes of it."""
    target, seconds = ctx.target()
    if defence is None:
        return Target(target, "standard", seconds)
    kind = FAMILY.defence_kind(defence)
    if kind == "detector":
        detector = DETECTORS.build(defence, seed=ctx.seed)
        detector.fit(target, ctx.train.take(FILTER_CLEAN, ctx.seed).x)
        return Target(target, defence, seconds, kind, detector)
    clf, secs = ctx.artefact(universal_defence(ctx, defence))
    if defence == "derandomized_smoothing":
        return Target(smoothing(ctx).wrap(clf), defence, secs, kind)
    return Target(clf, defence, secs, kind)


def crafted(ctx: Context, ev: UniversalSpec, label: str, budget: float, clf: Classifier, model: str) -> Universal:
    """The entry's perturbation at ``budget`` crafted on ``clf`` (kept for the run: other scenarios reuse it)."""
    key = f"universal:{label}:{model}:{budget:g}"
    if key not in ctx.memo:
        craft = ctx.train.take(ev.craft_samples, ctx.seed + 1)
        ctx.log(f"    {ev.attack} {budget:g} crafted on {len(craft)} training inputs against {model}")
        ctx.memo[key] = build_attack(ev, budget, ctx.seed).craft(clf, craft.x, craft.y)
    value: Universal = ctx.memo[key]
    return value


def _picture(u: Universal, bounds: tuple[float, float]) -> Tensor:
    """The perturbation (mid-grey is zero, scaled to its largest entry) or the patch, for display in [0, 1]."""
    if isinstance(u, Patch):
        lo, hi = bounds
        return (u.pattern - lo) / (hi - lo)
    assert isinstance(u, UniversalPerturbation)
    return (0.5 + u.delta / (2 * u.delta.abs().max().clamp_min(1e-12))).clamp(0, 1)


def _rounded(t: Tensor, lo: float, hi: float) -> list[Any]:
    out: list[Any] = (((t - lo) / (hi - lo)).clamp(0, 1) * 1000).round().div(1000).tolist()
    return out


def _detection(detector: Detector, x_adv: Tensor, success: Tensor, budget: float) -> DetectionPoint:
    flagged = detector.detect(x_adv)
    rate = float(flagged[success].float().mean()) if bool(success.any()) else 1.0
    defended = float((flagged | ~success).float().mean())
    return DetectionPoint(
        eps=budget,
        detection_rate=rate,
        naive_robust_accuracy_with_detector=defended,
        robust_accuracy_with_detector=defended,
    )


# -- HTML -----------------------------------------------------------------------------------------


def _images(rs: list[dict[str, Any]]) -> str:
    base = next((r for r in rs if r["defence"] is None), rs[0])
    pts = base["universal"]
    what = "patch" if base["measure"] == "area" else "perturbation"
    pictures = _padded([p["image"] for p in pts])
    grid = image_grid(pictures, [f"{p['size']:.3g}" for p in pts], f"The {what} against {base['model']}", prefix="")
    examples = image_grid(
        [p["example"] for p in pts], [f"{p['size']:.3g}" for p in pts], "A held-out input carrying it", prefix=""
    )
    if what == "patch":
        return grid + examples
    return (
        grid
        + '<p class="muted">Perturbations are drawn with zero as mid-grey, scaled to their largest entry.</p>'
        + examples
    )


def _padded(images: list[Any]) -> list[Any]:
    """Images ``[C, h, w]`` of different sizes on canvases of the largest, the rest left blank (NaN)."""
    arrays = [np.asarray(im, dtype=np.float32) for im in images]
    h = max((a.shape[-2] for a in arrays), default=0)
    w = max((a.shape[-1] for a in arrays), default=0)
    out = []
    for a in arrays:
        canvas = np.full((a.shape[0], h, w), np.nan, dtype=np.float32)
        canvas[:, : a.shape[-2], : a.shape[-1]] = a
        out.append(canvas)
    return out


def _curves(label: str, rs: list[dict[str, Any]]) -> str:
    area = rs[0]["measure"] == "area"
    xlabel = "patch area (share of the image)" if area else f"epsilon ({rs[0]['norm']})"
    lines = []
    for i, r in enumerate(rs):
        xs = [0.0] + [u["size"] if area else u["budget"] for u in r["universal"]]
        name = r["model"].replace("_", " ")
        lines.append((name, xs, [r["clean_accuracy"]] + [p["robust_accuracy"] for p in r["points"]], "-", i))
        lines.append((f"{name}: fooling rate", xs, [0.0] + [u["fooling_rate"] for u in r["universal"]], ":", i))
        if any("certified_accuracy" in u for u in r["universal"]):
            cert = [r["clean_accuracy"]] + [u.get("certified_accuracy", 0.0) for u in r["universal"]]
            lines.append((f"{name}: certified", xs, cert, "--", i))
    title = f"Success against {'area' if area else 'eps'}: {label}"
    return curve_plot(title, xlabel, lines, ylabel="accuracy / fooling rate")


def _table(rs: list[dict[str, Any]]) -> str:
    rows = []
    for r in rs:
        for p, u in zip(r["points"], r["universal"], strict=True):
            naive = (
                pct(p.get("naive_robust_accuracy")) + " / " + pct(p.get("adaptive_robust_accuracy"))
                if "naive_robust_accuracy" in p
                else "—"
            )
            rows.append(
                [
                    esc(r["model"]),
                    f"{u['budget']:g}",
                    f"{u['size']:.3g}",
                    pct(r["clean_accuracy"]),
                    pct(p["robust_accuracy"]),
                    naive,
                    pct(u["fooling_rate"]),
                    pct(u.get("certified_accuracy")),
                    f"{u['craft_seconds']:.1f}",
                    f"{u['craft_queries']:,}",
                ]
            )
    header = [
        "model / defence",
        "budget",
        "real size",
        "clean acc.",
        "robust acc.",
        "naive / adaptive",
        "fooling rate",
        "certified acc.",
        "craft s",
        "craft queries",
    ]
    return table(header, rows)


def _filters(rs: list[dict[str, Any]]) -> str:
    rows = [
        [
            esc(r["defence"]),
            f"{d['eps']:g}",
            pct(r["detection"]["fpr"]),
            pct(d["detection_rate"]),
            pct(p["robust_accuracy"]),
            pct(d["robust_accuracy_with_detector"]),
        ]
        for r in rs
        if "detection" in r
        for p, d in zip(r["points"], r["detection"]["points"], strict=True)
    ]
    if not rows:
        return ""
    return (
        "<p>Input filters in front of the model (threshold set on clean training inputs; the clean rate is measured "
        "on the held-out inputs). An input counts as defended when it is flagged or the patch does not fool it:</p>"
        + table(["filter", "budget", "clean flagged", "fooled inputs flagged", "robust acc.", "with filter"], rows)
        + '<p class="muted">Only the naive patch (crafted against the model, unaware of the filter) is run against a '
        "filter, so these figures are an upper bound on what a filter buys; the threat matrix never credits a "
        "filter as the cell's defence.</p>"
    )


# -- the family -----------------------------------------------------------------------------------


class UniversalFamily(Family[UniversalSpec, UniversalCurveResult]):
    """``[[universal]]``: a universal perturbation's or a patch's curve against the model and each defence."""

    key = "universal"
    title = "universal evasion"
    section = "Evasion (test-time integrity)"
    order = 11
    spec = UniversalSpec
    result = UniversalCurveResult
    threats = {TEST_INTEGRITY: "evasion"}
    rules = {TEST_INTEGRITY: RULE}
    settings = {
        "universal_adversarial_training": UniversalAdversarialTrainingConfig,
        "derandomized_smoothing": DerandomizedSmoothingConfig,
    }
    defences = (
        Defences("training", ("universal_adversarial_training",), settings="universal_adversarial_training"),
        Defences("training", ("adversarial_training",), settings="adversarial_training"),
        Defences("training", ("derandomized_smoothing",), settings="derandomized_smoothing"),
        Defences("detector", ("strip", "random_masking")),
    )
    attacks = tuple(UNIVERSAL_ATTACKS)
    smoke = {
        "universal": [
            {
                "attack": "uap",
                "eps": [0.2],
                "epochs": 2,
                "craft_samples": 300,
                "samples": 60,
                "defences": ["universal_adversarial_training"],
            },
            {
                "attack": "patch",
                "area": [0.1],
                "steps": 20,
                "craft_samples": 300,
                "samples": 40,
                "defences": ["derandomized_smoothing", "strip"],
            },
        ],
        "derandomized_smoothing": {"size": 2},
    }

    def label(self, entry: UniversalSpec) -> str:
        name = entry.attack if entry.attack == "patch" else f"{entry.attack}-{entry.norm}"
        return name if entry.target is None else f"{name}-to-{entry.target}"

    def check(self, ctx: Context, index: int, entry: UniversalSpec) -> None:
        where = f"universal[{index}]"
        access = ctx.loaded.access if ctx.loaded is not None else Access.ALL
        if Access.GRADIENTS not in access:
            raise ConfigError(
                f"{where}: {entry.attack} needs gradients access, but the model exposes only {describe_access(access)}"
            )
        if entry.target is not None and entry.target >= ctx.data.num_classes:
            raise ConfigError(f"{where}: target {entry.target} is not a class (the data has {ctx.data.num_classes})")
        try:
            if entry.attack == "patch":
                for a in entry.area:
                    patch_side(a, ctx.data.input_shape)
            for d in [*entry.defences, *ctx.config.family_defences(self.key)]:
                if self.defence_kind(d) == "training" and not ctx.trainable:
                    raise ConfigError(f"{d} retrains the model; [model] must be trainable here")
                if d == "derandomized_smoothing":
                    smoothing(ctx).masks(ctx.data.input_shape)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    def artefacts(self, ctx: Context, sc: Scenario) -> list[Artefact[Any]]:
        if sc.defence is not None and self.defence_kind(sc.defence) == "training":
            return [universal_defence(ctx, sc.defence)]
        return []

    def run(self, ctx: Context, sc: Scenario) -> UniversalCurveResult:
        ev = sc.spec
        assert isinstance(ev, UniversalSpec)
        d = defended(ctx, sc.defence)
        standard = ctx.target()[0]
        test, idx = evaluation_set(ctx, ev.samples)
        lo, hi = ctx.config.data.bounds
        clean = accuracy(d.classifier, test.x, test.y)
        broken_at = torch.full((len(test),), -1, dtype=torch.long)
        points: list[EvasionPoint] = []
        extra: list[UniversalPoint] = []
        detections: list[DetectionPoint] = []
        smoothed = d.classifier if isinstance(d.classifier, SmoothedClassifier) else None
        for i, budget in enumerate(ev.budgets):
            # a training defence (and smoothing) faces an attack crafted on it; a filter the naive one only
            aware = d.kind == "training"
            on, name = (d.classifier, d.model) if aware else (standard, "standard")
            u = crafted(ctx, ev, sc.label, budget, on, name)
            e = u.evaluate(d.classifier, test.x, test.y, seed=ctx.seed + EVAL_SEED)
            success = e.result.success.clone()
            point = EvasionPoint(
                eps=budget,
                robust_accuracy=0.0,
                attack_robust_accuracy=e.robust_accuracy,
                seconds=u.seconds + e.result.seconds,
                queries=u.queries + e.result.queries,
                median_norm=float(e.result.norms.median()) if len(test) else 0.0,
            )
            certified = None
            if smoothed is not None:
                naive = crafted(ctx, ev, sc.label, budget, standard, "standard")
                n = naive.evaluate(d.classifier, test.x, test.y, seed=ctx.seed + EVAL_SEED)
                success |= n.result.success  # the honest figure: the worse of naive and adaptive, per input
                point.naive_robust_accuracy = n.robust_accuracy
                point.adaptive_robust_accuracy = e.robust_accuracy
                point.adaptive_seconds = u.seconds
                if isinstance(u, Patch):
                    side = patch_side(budget, ctx.data.input_shape)
                    certified = float(smoothed.certify(test.x, test.y, side).float().mean())
            if d.detector is not None:
                detections.append(_detection(d.detector, e.result.x_adv, success, budget))
            broken_at[(broken_at < 0) & success] = i
            point.robust_accuracy = robust_at(broken_at, i)
            points.append(point)
            size = u.area if isinstance(u, Patch) else budget
            extra.append(
                UniversalPoint(
                    budget=budget,
                    size=size,
                    fooling_rate=e.fooling_rate,
                    craft_seconds=u.seconds,
                    craft_queries=u.queries,
                    image=_rounded(_picture(u, (lo, hi)), 0.0, 1.0),
                    example=_rounded(e.result.x_adv[0], lo, hi) if len(test) else [],
                    certified_accuracy=certified,
                )
            )
        detection = None
        if d.detector is not None:
            assert d.detector.threshold is not None
            fpr = float(d.detector.detect(test.x).float().mean()) if len(test) else 0.0
            detection = DetectionFigures(
                fpr=fpr, threshold=d.detector.threshold, squeezers=[str(sc.defence)], adaptive=False, points=detections
            )
        adaptive = None
        if smoothed is not None:
            adaptive = f"{ev.attack} crafted through the vote (mean of the base model's probabilities over ablations)"
        elif d.kind == "training":
            adaptive = f"{ev.attack} crafted against the defended model itself"
        return UniversalCurveResult(
            kind=self.key,
            attack=ev.attack,
            norm="patch" if ev.attack == "patch" else ev.norm,
            model=d.model,
            defence=sc.defence,
            defence_type=d.kind,
            params=sc.params(),
            samples=len(test),
            clean_accuracy=clean,
            train_seconds=d.train_seconds,
            reference_eps=ev.ref,
            black_box=False,
            points=points,
            sample_index=idx.tolist(),
            broken_at=broken_at.tolist(),
            adaptive=adaptive,
            detection=detection,
            targeted=ev.target is not None or None,
            measure="area" if ev.attack == "patch" else "eps",
            craft_samples=min(ev.craft_samples, len(ctx.train)),
            universal=extra,
        )

    def rate(self, result: UniversalCurveResult) -> Rating:
        return rate_curve(result)

    def figures(self, key: str, result: UniversalCurveResult) -> dict[str, float]:
        out = curve_figures(key, result)
        for u in result.universal:
            out[f"{key}.fooling_rate@{u.budget:g}"] = u.fooling_rate
            if u.certified_accuracy is not None:
                out[f"{key}.certified_accuracy@{u.budget:g}"] = u.certified_accuracy
        return out

    def cost(self, key: str, result: UniversalCurveResult, base: UniversalCurveResult) -> CostRow:
        return curve_cost(key, result, base)

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        if not results:
            return ""
        groups: dict[str, list[dict[str, Any]]] = {}
        for key, r in results.items():
            groups.setdefault(key.split(".", 1)[1].split("+", 1)[0], []).append(r)
        out = [
            "<h3>Universal perturbations and patches</h3><p>One perturbation (or one patch) for every input, as a "
            "physical attacker prints it. Each is crafted on training inputs and judged on held-out test inputs "
            "(patches at placements drawn from another generator, upright and at their nominal size), with the "
            "clean accuracy of the same inputs beside it.</p>"
        ]
        for label, rs in groups.items():
            r0 = rs[0]
            out.append(f"<h4>{esc(label)}</h4>")
            out.append(_images(rs))
            out.append(_curves(label, rs))
            out.append(_table(rs))
            out.append(_filters(rs))
            notes = "".join(f" {esc(r['model'])}: {esc(r['adaptive'])}." for r in rs if "adaptive" in r)
            out.append(
                f'<p class="muted">Crafted on {r0["craft_samples"]} training inputs, judged on {r0["samples"]} test '
                "inputs. Robust accuracy is cumulative over budgets (an input broken at a smaller budget counts as "
                "broken at larger ones); the fooling rate is the share whose prediction changed (Moosavi-Dezfooli "
                "et al., CVPR 2017). Against derandomised smoothing the figure is, per input, the worse of the "
                "naive patch (crafted on the undefended model) and the adaptive one; certified accuracy counts "
                f"inputs no patch of that size can change, wherever it is placed (Levine & Feizi, NeurIPS 2020).{notes}"
                "</p>"
            )
        return "".join(out)


FAMILY = UniversalFamily()
