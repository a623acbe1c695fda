"""Availability poisoning: test accuracy as the poisoned share of the training set grows.

The victim is the assessed model (retrained on each poisoned copy) or a linear model on
flattened inputs (``model = "logistic_regression" | "linear_svm"``, the setting of gradient
poisoning, Biggio et al., ICML 2012). Attacks other than random flips are shown beside
random flips of the same number of points, the baseline they must beat. The k-NN
label-consistency defence (Paudice et al. 2018) flags and drops suspicious samples before
training; its cost is measured on the clean set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from sparring.assess.context import Context
from sparring.assess.family import (
    TRAIN_AVAILABILITY,
    Defences,
    Family,
    Rating,
    Row,
    Rule,
    Scenario,
    ScenarioResult,
    rated,
)
from sparring.assess.htmlkit import curve_plot, esc, pct, table
from sparring.assess.spec import Entry, WithDefences, defences_field, listify, one_of
from sparring.attacks.poisoning import POISONING_ATTACKS
from sparring.attacks.poisoning.gradient import LINEAR_MODELS, RandomFlipCopies, fit_linear
from sparring.attacks.poisoning.label_flip import RandomLabelFlip
from sparring.data import Dataset, PoisonedDataset
from sparring.defenses.data import KNNLabelConsistency
from sparring.defenses.data.base import Detection
from sparring.errors import ConfigError
from sparring.metrics import accuracy, detection_rates
from sparring.models import Classifier

RULE = Rule("relative accuracy drop at the largest poison fraction", medium=0.05, high=0.2)


class PoisoningSpec(Entry, WithDefences):
    """Availability poisoning of the training data, swept over poison fractions.

    ``label_flip`` flips random labels; ``targeted_label_flip`` flips ``source`` to
    ``target``; ``loss_label_flip`` flips the labels a trained model is most sure of to its
    least likely class; ``gradient`` adds points optimised against a linear model (Biggio et
    al., ICML 2012; Muñoz-González et al., AISec 2017) over ``steps`` gradient steps and is
    compared with random flips of the same number of points.
    """

    attack: str = "label_flip"
    fraction: list[float] = Field([0.1, 0.2, 0.4], min_length=1)
    model: str | None = None
    source: int = Field(0, ge=0)
    target: int = Field(1, ge=0)
    steps: int = Field(100, ge=1)
    defences: list[str] = defences_field()

    _listify = field_validator("fraction", mode="before")(listify)

    @field_validator("fraction")
    @classmethod
    def _in_unit(cls, v: list[float]) -> list[float]:
        for f in v:
            if not 0.0 <= f <= 1.0:
                raise ValueError(f"poison fraction must be in [0, 1], got {f}")
        return sorted(v)

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, list(POISONING_ATTACKS), "poisoning attack")

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str | None) -> str | None:
        return None if v is None else one_of(v, ["target", *LINEAR_MODELS], "poisoning victim model")

    @model_validator(mode="after")
    def _consistent(self) -> PoisoningSpec:
        if self.attack == "gradient" and self.model == "target":
            raise ValueError(
                "gradient poisoning attacks a linear model: set model to logistic_regression or linear_svm"
            )
        if self.attack == "targeted_label_flip" and self.source == self.target:
            raise ValueError("targeted_label_flip needs source != target")
        return self

    @property
    def victim(self) -> str:
        """The model the poison is trained into (gradient poisoning defaults to logistic regression)."""
        return self.model or ("logistic_regression" if self.attack == "gradient" else "target")


class PoisoningPoint(Row):
    """Test accuracy with a share ``fraction`` poisoned (and the random-flip baseline, or the detector's rates)."""

    fraction: float
    n_poisoned: int
    accuracy: float
    train_seconds: float
    random_accuracy: float | None = None
    detector_recall: float | None = None
    detector_fpr: float | None = None
    detector_flagged: int | None = None


class PoisoningResult(ScenarioResult):
    """A curve of test accuracy against the poisoned fraction; with a defence, its clean-set cost."""

    victim: str
    clean_accuracy: float
    points: list[PoisoningPoint]
    before: dict[str, float] | None = None
    defence_seconds: float | None = None
    cost_note: str | None = None


def _spec(sc: Scenario) -> PoisoningSpec:
    assert isinstance(sc.spec, PoisoningSpec)
    return sc.spec


def _poison(ctx: Context, pc: PoisoningSpec, fraction: float) -> PoisonedDataset:
    attack = POISONING_ATTACKS.build(
        pc.attack, fraction=fraction, seed=ctx.seed, source=pc.source, target=pc.target, model=pc.victim, steps=pc.steps
    )
    poisoned = attack.poison(ctx.train)  # type: ignore[attr-defined]
    assert isinstance(poisoned, PoisonedDataset)
    return poisoned


def _random_like(ctx: Context, pc: PoisonedDataset) -> PoisonedDataset:
    """Random label flips of as many points as ``pc`` poisoned (added points are added as flipped copies)."""
    n_train, seed = len(ctx.train), ctx.seed
    if len(pc) > n_train:  # the attack added points: the baseline adds as many flipped copies
        return RandomFlipCopies(fraction=pc.n_poisoned / n_train, seed=seed).poison(ctx.train)
    return RandomLabelFlip(fraction=pc.n_poisoned / n_train, seed=seed).poison(ctx.train)


Trainer = Callable[[Dataset, str], tuple[Classifier, float]]


def _trainer(ctx: Context, sc: Scenario) -> Trainer:
    """``train(data, name) -> (classifier, seconds)`` for the scenario's victim."""
    pc = _spec(sc)
    if pc.victim == "target":

        def train_target(data: Dataset, name: str) -> tuple[Classifier, float]:
            if name == "clean":
                return ctx.target()
            return ctx.cached_model(f"poisoning-{sc.label}-{name}", {"name": name}, lambda: ctx.train_standard(data))

        return train_target

    def train_linear(data: Dataset, name: str) -> tuple[Classifier, float]:
        start = time.perf_counter()
        clf = fit_linear(data, pc.victim, seed=ctx.seed)
        return clf, time.perf_counter() - start

    return train_linear


def _sanitised(data: Dataset, classifier: Classifier) -> tuple[Dataset, Detection]:
    """``data`` without the samples k-NN label consistency flags (searched in input space)."""
    det = KNNLabelConsistency().detect(data, classifier)
    return data.subset((~det.flagged).nonzero().flatten()), det


def _html(results: list[dict[str, Any]]) -> str:
    out = ["<h3>Availability poisoning</h3>"]
    for r in (x for x in results if x["defence"] is None):
        fr = [0.0] + [p["fraction"] for p in r["points"]]
        lines = [(r["attack"], fr, [r["clean_accuracy"]] + [p["accuracy"] for p in r["points"]], "-", 0)]
        if any("random_accuracy" in p for p in r["points"]):
            randoms = [r["clean_accuracy"]] + [p["random_accuracy"] for p in r["points"]]
            lines.append(("random flips, same count", fr, randoms, "--", 1))
        for i, d in enumerate(x for x in results if x["defence"] and x["params"] == r["params"]):
            defended = [d["clean_accuracy"]] + [p["accuracy"] for p in d["points"]]
            lines.append((f"with {d['defence']}", fr, defended, "-.", i + 2))
        out.append(curve_plot(f"{r['attack']} against {r['victim']}", "poisoned share of the training set", lines))
    rows = []
    for r in results:
        for p in r["points"]:
            rows.append(
                [
                    esc(r["attack"]),
                    esc(r["victim"]),
                    esc(r["defence"] or "none"),
                    f"{p['fraction']:g} ({p['n_poisoned']})",
                    pct(p["accuracy"]),
                    pct(p.get("random_accuracy")),
                    f"recall {pct(p['detector_recall'])}, FPR {pct(p['detector_fpr'])}"
                    if "detector_recall" in p
                    else "—",
                ]
            )
    header = ["attack", "victim", "defence", "fraction (points)", "test acc.", "random flips, same count", "detector"]
    out.append(table(header, rows))
    return "".join(out)


class PoisoningFamily(Family[PoisoningSpec, PoisoningResult]):
    """``[[poisoning]]``: availability poisoning swept over poison fractions."""

    key = "poisoning"
    title = "poisoning"
    section = "Training data: poisoning and backdoors"
    order = 40
    spec = PoisoningSpec
    result = PoisoningResult
    threats = {TRAIN_AVAILABILITY: "availability poisoning"}
    rules = {TRAIN_AVAILABILITY: RULE}
    defences = (Defences("data", ("knn_label_consistency",), summary="k-NN label consistency; cost on the clean set"),)
    attacks = tuple(POISONING_ATTACKS)
    smoke = {
        "poisoning": [
            {"fraction": [0.3], "model": "logistic_regression", "defences": ["knn_label_consistency"]}
        ]
    }

    def label(self, entry: PoisoningSpec) -> str:
        return f"{entry.attack}-{entry.victim}" if entry.victim != "target" else entry.attack

    def check_config(self, config: Any, entries: Any) -> None:
        if any(e.victim == "target" for e in entries) and not config.model.trains_here:
            raise ValueError(
                "label-flip scenarios on the target retrain the model, so [model] needs 'architecture' or a "
                "'factory' without 'weights' (or set model to logistic_regression or linear_svm)"
            )

    def check(self, ctx: Context, index: int, entry: PoisoningSpec) -> None:
        k = ctx.data.num_classes
        for name in ("source", "target"):
            c = getattr(entry, name)
            if c >= k:
                raise ConfigError(f"poisoning[{index}].{name}: class {c} does not exist (the data has {k})")

    def run(self, ctx: Context, sc: Scenario) -> PoisoningResult:
        pc = _spec(sc)
        train = _trainer(ctx, sc)
        clean_clf, clean_seconds = train(ctx.train, "clean")
        clean = accuracy(clean_clf, ctx.test.x, ctx.test.y)
        points = []
        seconds = 0.0
        for f in pc.fraction:
            data = _poison(ctx, pc, f)
            point = PoisoningPoint(fraction=f, n_poisoned=data.n_poisoned, accuracy=0.0, train_seconds=0.0)
            if sc.defence is not None:
                start = time.perf_counter()
                kept, det = _sanitised(data, clean_clf)
                rates = detection_rates(det.flagged, data.poison_mask)
                point.detector_recall, point.detector_fpr = rates["recall"], rates["fpr"]
                point.detector_flagged = int(rates["flagged"])
                clf, s = train(kept, f"{pc.attack}-{f:g}+{sc.defence}")
                seconds += time.perf_counter() - start
            else:
                clf, s = train(data, f"{pc.attack}-{f:g}")
                if pc.attack != "label_flip":
                    baseline = _random_like(ctx, data)
                    base_clf, _ = train(baseline, f"random-{baseline.n_poisoned}")
                    point.random_accuracy = accuracy(base_clf, ctx.test.x, ctx.test.y)
            point.accuracy, point.train_seconds = accuracy(clf, ctx.test.x, ctx.test.y), s
            points.append(point)
        result = PoisoningResult(
            kind=self.key,
            attack=pc.attack,
            victim=pc.victim,
            defence=sc.defence,
            params=sc.params(),
            clean_accuracy=clean,
            points=points,
        )
        if sc.defence is not None:  # the defence's price when nobody attacks: sanitise the clean set
            kept, det = _sanitised(ctx.train, clean_clf)
            clf, _ = train(kept, f"clean+{sc.defence}")
            result.before = {"clean_accuracy": clean}
            result.clean_accuracy = accuracy(clf, ctx.test.x, ctx.test.y)
            result.defence_type = self.defence_kind(sc.defence)
            result.defence_seconds = seconds / len(pc.fraction)
            result.cost_note = (
                f"drops {det.n_flagged / len(ctx.train):.1%} of the clean training set "
                f"(clean training: {clean_seconds:.1f} s)"
            )
        return result

    def rate(self, result: PoisoningResult) -> Rating:
        last = result.points[-1]
        clean = result.clean_accuracy
        drop = max(0.0, (clean - last.accuracy) / clean) if clean > 0 else 0.0
        return rated(
            RULE,
            drop,
            f"{result.victim} accuracy {last.accuracy:.1%} with {last.fraction:.0%} poisoned by {result.attack} "
            f"(clean {clean:.1%})",
        )

    def figures(self, key: str, result: PoisoningResult) -> dict[str, float]:
        out = {}
        for p in result.points:
            out[f"{key}.accuracy@{p.fraction:g}"] = p.accuracy
            if p.random_accuracy is not None:
                out[f"{key}.random_flip_accuracy@{p.fraction:g}"] = p.random_accuracy
        return out

    def expected_figures(self, sc: Scenario) -> list[str]:
        assert isinstance(sc.spec, PoisoningSpec)
        return [f"{sc.key}.{n}@{f:g}" for f in sc.spec.fraction for n in ("accuracy", "random_flip_accuracy")]

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(list(results.values())) if results else ""


FAMILY = PoisoningFamily()
