"""Property inference: whether a model trained like the target reveals its training set's make-up.

The distinguishing game of Suri & Evans (PETS 2022): was a model trained on data where a
share 0.5 of the records has a property, or a share α? Shadow models trained like the
target on draws from held-out data at both ratios teach a meta-classifier over the models'
outputs on a fixed query set (Ganju et al., ACM CCS 2018); victims trained on draws from
the training set at both ratios are told apart. Beside it, Suri & Evans' loss test, which
needs no shadow model. The property (``property``): ``class:K`` (or ``class:K,L``), the
share of records of those classes (a label shift), or a column (a name of a built-in with
named columns, such as ``fair``'s ``children``, or an index), the share of records above
the column's smallest value (a covariate shift). The rated figure is the best accuracy
over the configured ratios; chance is 50 %.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from sparring.assess.context import Context
from sparring.assess.families.attribute import column_of
from sparring.assess.family import TEST_PRIVACY, Family, Rating, Row, Rule, Scenario, ScenarioResult, rated
from sparring.assess.htmlkit import esc, pct, table
from sparring.assess.spec import Entry
from sparring.attacks.privacy.property import BASE_RATIO, MIN_SIZE, Property, evaluate_property, max_size
from sparring.errors import InputError
from sparring.metrics import Interval, rate_interval

RULE = Rule(
    "accuracy of telling a training-set share of 0.5 from another (best ratio)",
    medium=0.6,
    high=0.8,
    note="chance is 50 %; victims trained like the target",
)


class PropertySpec(Entry):
    """Property inference of one property at several ratios.

    ``property``: ``class:K[,L...]`` or a column (name or index); ``ratios``: the shares
    told apart from 0.5; ``shadows`` / ``victims``: models trained per ratio for the
    attacker / to be judged; ``size``: records per model's training set (default: the
    largest the data allow, at most 1,000); ``queries``: the meta-classifier's fixed query
    set; ``epochs``: training epochs of each model (default: the target's).
    """

    property: str | int
    ratios: list[float] = Field(default_factory=lambda: [0.1, 0.9], min_length=1)
    shadows: int = Field(16, ge=2, le=512)
    victims: int = Field(8, ge=1, le=256)
    size: int | None = Field(None, ge=10)
    queries: int = Field(100, ge=2)
    epochs: int | None = Field(None, ge=1)

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        if any(not 0.0 <= r <= 1.0 for r in v) or BASE_RATIO in v or len(set(v)) != len(v):
            raise ValueError(f"ratios are distinct shares in [0, 1] other than {BASE_RATIO}, got {v}")
        return v

    @field_validator("property")
    @classmethod
    def _property(cls, v: str | int) -> str | int:
        if isinstance(v, int) and v < 0:
            raise ValueError(f"a column index is >= 0, got {v}")
        if isinstance(v, str) and v.startswith("class:"):
            try:
                [int(c) for c in v.removeprefix("class:").split(",")]
            except ValueError:
                raise ValueError(f"'class:' takes class indices separated by commas, got {v!r}") from None
        return v


class RatioResult(Row):
    """0.5 against one ratio."""

    ratio: float
    accuracy: float
    loss_test: float
    threshold_test: float
    victims: int


class PropertyScenarioResult(ScenarioResult):
    """The game at every ratio and what it cost."""

    property: str
    rows: list[RatioResult]
    shadows: int
    victims: int
    size: int
    #: Share of the target's training set that has the property.
    target_share: float
    train_seconds: float
    seconds: float
    queries: int

    def best(self) -> RatioResult:
        """The ratio told apart best."""
        return max(self.rows, key=lambda r: r.accuracy)


def property_of(ctx: Context, spec: str | int) -> Property:
    """The :class:`Property` ``spec`` names in the assessment's data; InputError when the data lack it."""
    if isinstance(spec, str) and spec.startswith("class:"):
        classes = tuple(int(c) for c in spec.removeprefix("class:").split(","))
        bad = [c for c in classes if not 0 <= c < ctx.data.num_classes]
        if bad:
            raise InputError(f"property {spec!r}: the data have classes 0..{ctx.data.num_classes - 1}, not {bad}")
        return Property(classes=classes, name=spec)
    column = column_of(ctx, spec)
    smallest = float(ctx.data.x.reshape(len(ctx.data), -1)[:, column].min())
    return Property(column=column, above=smallest, name=str(spec))


class PropertyFamily(Family[PropertySpec, PropertyScenarioResult]):
    """``[[property]]``: property inference by a meta-classifier over shadow models, beside the loss test."""

    key = "property"
    title = "property inference"
    section = "Property inference (test-time privacy)"
    order = 74
    spec = PropertySpec
    result = PropertyScenarioResult
    threats = {TEST_PRIVACY: "property inference"}
    rules = {TEST_PRIVACY: RULE}
    attacks = ("meta_classifier",)
    smoke = {"property": [{"property": "class:0,1,2,3,4", "ratios": [0.1], "shadows": 4, "victims": 2, "size": 60}]}

    def label(self, entry: PropertySpec) -> str:
        return f"meta-{entry.property}".replace(":", "").replace(",", "-")

    def check_config(self, config: Any, entries: Any) -> None:
        if entries and not (config.model.trains_here or config.model.factory):
            raise ValueError(
                "property inference trains shadow and victim models like the target: give [model] 'architecture' "
                "or 'factory' (a skops or ONNX model cannot be retrained)"
            )

    def check(self, ctx: Context, index: int, entry: PropertySpec) -> None:
        try:
            prop = property_of(ctx, entry.property)
            shares = [BASE_RATIO, *entry.ratios]
            size = min(max_size(prop.mask(ctx.test), shares), max_size(prop.mask(ctx.train), shares))
            if size < MIN_SIZE:
                raise InputError(
                    f"property {entry.property!r}: the data allow training sets of only {size} records at shares "
                    f"{shares} (held-out and training data); choose milder ratios or a more common property"
                )
        except InputError as e:
            raise InputError(f"property entry {index + 1}: {e}") from None

    def run(self, ctx: Context, sc: Scenario) -> PropertyScenarioResult:
        spec = sc.spec
        assert isinstance(spec, PropertySpec)
        prop = property_of(ctx, spec.property)
        ctx.log(f"  training {(spec.shadows + spec.victims) * (len(spec.ratios) + 1)} shadow and victim models")
        r = evaluate_property(
            ctx.build_model,
            ctx.wrap,
            ctx.test,
            ctx.train,
            prop,
            ctx.train_config(spec.epochs),
            ratios=spec.ratios,
            shadows=spec.shadows,
            victims=spec.victims,
            size=spec.size,
            queries=spec.queries,
        )
        return PropertyScenarioResult(
            kind=self.key,
            attack="meta_classifier",
            defence=None,
            params=sc.params(),
            property=str(spec.property),
            rows=[RatioResult.model_validate(dataclasses.asdict(x)) for x in r.rows],
            shadows=r.shadows,
            victims=r.victims,
            size=r.size,
            target_share=float(prop.mask(ctx.train).double().mean()),
            train_seconds=r.train_seconds,
            seconds=r.seconds,
            queries=r.queries,
        )

    def rate(self, result: PropertyScenarioResult) -> Rating:
        b = result.best()
        text = (
            f"meta-classifier tells share 0.5 from {b.ratio:g} of {result.property!r} in {b.accuracy:.0%} of "
            f"{b.victims} victim models (loss test {b.loss_test:.0%}, threshold test {b.threshold_test:.0%}; "
            f"{result.shadows} shadow models per ratio)"
        )
        return rated(RULE, b.accuracy, text, rate_interval(b.accuracy, b.victims))

    @staticmethod
    def _name(ratio: float) -> str:
        return f"{ratio:g}"

    def intervals(self, key: str, result: PropertyScenarioResult) -> dict[str, Interval]:
        out = {f"{key}.accuracy": rate_interval(result.best().accuracy, result.best().victims)}
        for row in result.rows:
            out[f"{key}.accuracy_{self._name(row.ratio)}"] = rate_interval(row.accuracy, row.victims)
            out[f"{key}.loss_test_{self._name(row.ratio)}"] = rate_interval(row.loss_test, row.victims)
            out[f"{key}.threshold_test_{self._name(row.ratio)}"] = rate_interval(row.threshold_test, row.victims)
        return out

    def figures(self, key: str, result: PropertyScenarioResult) -> dict[str, float]:
        out = {f"{key}.accuracy": result.best().accuracy}
        for row in result.rows:
            out[f"{key}.accuracy_{self._name(row.ratio)}"] = row.accuracy
            out[f"{key}.loss_test_{self._name(row.ratio)}"] = row.loss_test
            out[f"{key}.threshold_test_{self._name(row.ratio)}"] = row.threshold_test
        return out

    def expected_figures(self, sc: Scenario) -> list[str]:
        spec = sc.spec
        assert isinstance(spec, PropertySpec)
        names = [f"{sc.key}.accuracy"]
        for r in spec.ratios:
            names += [f"{sc.key}.{m}_{self._name(r)}" for m in ("accuracy", "loss_test", "threshold_test")]
        return names

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        if not results:
            return ""
        rows = [
            [
                esc(key),
                esc(r["property"]),
                f"0.5 vs {row['ratio']:g}",
                pct(row["accuracy"]),
                pct(row["loss_test"]),
                pct(row["threshold_test"]),
                f"{r['shadows']} / {row['victims']}",
                f"{r['size']:,}",
                pct(r["target_share"]),
                f"{r['train_seconds']:.1f} s",
            ]
            for key, r in results.items()
            for row in r["rows"]
        ]
        header = [
            "scenario",
            "property",
            "training shares",
            "meta-classifier acc.",
            "loss-test acc.",
            "threshold-test acc.",
            "shadows per ratio / victims judged",
            "records per model",
            "share in the target's training set",
            "training time",
        ]
        note = (
            '<p class="muted">Chance is 50 %. Shadow models train on draws from held-out data, victims on draws '
            "from the training set, all like the target (Suri &amp; Evans, PETS 2022); the meta-classifier reads "
            "each model's log-probabilities on a fixed query set (Ganju et al., CCS 2018). With few victims the "
            "interval of each accuracy is wide.</p>"
        )
        return table(header, rows) + note


FAMILY = PropertyFamily()
