"""Attribute inference: whether the model reveals a training record's sensitive feature.

The attacker knows a record's other features and label, sees the model's output on it,
and guesses the sensitive feature (``attribute``: a column name of a built-in with named
columns such as ``fair``'s ``religious``, or a column index of the flattened records),
bucketed at its quantiles. Attacks: ``black_box`` (an attack model over the known
features, the label and the model's output; Fredrikson et al., USENIX Security 2014, as
ART's ``AttributeInferenceBlackBox``) and ``loss`` (the candidate value under which the
model finds the true label most likely, times its prior; Yeom et al., IEEE CSF 2018) and,
white-box, ``gradient`` (the candidate value with the smallest per-record parameter gradient).
Beside each run two baselines that never query the model: imputation (the same attack
model without the model's output; Jayaraman & Evans, ACM CCS 2022) and the majority
value. The rated figure is the attack's accuracy over imputation on training members;
non-members are the contrast: an advantage they share is what the model reveals about
anyone (it computes from the attribute), not a leak of its training records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from sparring.assess.context import Context
from sparring.assess.family import TEST_PRIVACY, Family, Rating, Rule, Scenario, ScenarioResult, rated
from sparring.assess.htmlkit import esc, pct, table
from sparring.assess.spec import Entry, one_of
from sparring.attacks.privacy.attribute import (
    ATTACK_MODELS,
    ATTRIBUTE_ATTACKS,
    attribute_split,
    evaluate_attribute,
    sensitive_column,
)
from sparring.data import FEATURES, SENSITIVE
from sparring.errors import InputError
from sparring.metrics import Interval, paired_difference_interval, rate_interval

RULE = Rule(
    "attribute-inference accuracy over imputation, on training members",
    medium=0.03,
    high=0.1,
    note="imputation guesses from the other features without the model (Jayaraman & Evans)",
)

#: The figures a scenario reports, by result field.
FIGURES = ("advantage", "accuracy", "imputation", "majority", "accuracy_non_members", "advantage_non_members")


class AttributeSpec(Entry):
    """Attribute inference of one sensitive column.

    ``attribute``: a column name (built-ins with named columns, e.g. ``fair``) or an index
    into the flattened records; ``buckets``: how many quantile buckets the value is cut into
    (2 = at the middle); ``samples``: members (and at most as many non-members) evaluated;
    ``auxiliary``: share of the held-out data whose records the attacker knows in full;
    ``model``: the attack model of ``black_box`` and imputation (``boosting`` or ``logistic``).
    """

    attribute: str | int
    attack: str = "black_box"
    buckets: int = Field(2, ge=2, le=10)
    samples: int = Field(1000, ge=10)
    auxiliary: float = Field(0.5, gt=0.0, lt=1.0)
    model: str = "boosting"

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, list(ATTRIBUTE_ATTACKS), "attribute attack")

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        return one_of(v, list(ATTACK_MODELS), "attack model")

    @field_validator("attribute")
    @classmethod
    def _column(cls, v: str | int) -> str | int:
        if isinstance(v, int) and v < 0:
            raise ValueError(f"a column index is >= 0, got {v}")
        if isinstance(v, str) and not v:
            raise ValueError("name a column")
        return v


class AttributeScenarioResult(ScenarioResult):
    """The attack and both baselines on the same members and non-members."""

    attribute: str
    column: int
    buckets: int
    #: Bucket edges on the records' scale (a value at or below ``thresholds[0]`` is bucket 0).
    thresholds: list[float]
    n_members: int
    n_non_members: int
    n_auxiliary: int
    accuracy: float
    accuracy_non_members: float
    imputation: float
    imputation_non_members: float
    majority: float
    majority_non_members: float
    advantage: float
    advantage_non_members: float
    #: Members only the attack got right / only imputation got right (the paired interval's counts).
    only_attack: int
    only_imputation: int
    seconds: float
    queries: int


def column_of(ctx: Context, attribute: str | int) -> int:
    """The flattened column ``attribute`` names in the assessment's data; InputError when there is none."""
    n_features = 1
    for s in ctx.data.input_shape:
        n_features *= s
    dataset = ctx.config.data.dataset
    names = FEATURES.get(dataset or "")
    if isinstance(attribute, int):
        if attribute >= n_features:
            raise InputError(f"attribute column {attribute} is out of range: the records have {n_features} features")
        return attribute
    if names is None:
        what = f"built-in {dataset!r}" if dataset else "the data file"
        raise InputError(f"attribute {attribute!r}: {what} has no named columns; give the column index instead")
    if attribute not in names:
        raise InputError(
            f"attribute {attribute!r}: dataset {dataset!r} has no such column; columns: {', '.join(names)}"
        )
    return names.index(attribute)


class AttributeFamily(Family[AttributeSpec, AttributeScenarioResult]):
    """``[[attribute]]``: attribute inference against the imputation and majority baselines."""

    key = "attribute"
    title = "attribute inference"
    section = "Attribute inference (test-time privacy)"
    order = 72
    spec = AttributeSpec
    result = AttributeScenarioResult
    threats = {TEST_PRIVACY: "attribute inference"}
    rules = {TEST_PRIVACY: RULE}
    attacks = tuple(ATTRIBUTE_ATTACKS)
    smoke = {"attribute": [{"attribute": 36, "samples": 60, "model": "logistic"}]}

    def label(self, entry: AttributeSpec) -> str:
        return f"{entry.attack}-{entry.attribute}"

    def check(self, ctx: Context, index: int, entry: AttributeSpec) -> None:
        try:
            index = column_of(ctx, entry.attribute)
            split = attribute_split(len(ctx.train), len(ctx.test), entry.samples, entry.auxiliary, ctx.seed)
            sensitive_column(ctx.test.x[split.auxiliary], index, entry.buckets)  # a constant column is refused
        except InputError as e:
            raise InputError(f"attribute entry {index + 1}: {e}") from None

    def run(self, ctx: Context, sc: Scenario) -> AttributeScenarioResult:
        spec = sc.spec
        assert isinstance(spec, AttributeSpec)
        clf, _ = ctx.target()
        r = evaluate_attribute(
            clf,
            ctx.train,
            ctx.test,
            column_of(ctx, spec.attribute),
            spec.attack,
            buckets=spec.buckets,
            n=spec.samples,
            auxiliary=spec.auxiliary,
            model=spec.model,
            seed=ctx.seed,
        )
        only_attack, only_imputation = r.discordant()
        o = r.outcomes
        return AttributeScenarioResult(
            kind=self.key,
            attack=spec.attack,
            defence=None,
            params=sc.params(),
            attribute=str(spec.attribute),
            column=r.column.index,
            buckets=r.column.buckets,
            thresholds=r.column.thresholds.tolist(),
            n_members=r.n_members,
            n_non_members=r.n_non_members,
            n_auxiliary=r.n_auxiliary,
            accuracy=o[spec.attack].accuracy,
            accuracy_non_members=o[spec.attack].accuracy_non_members,
            imputation=o["imputation"].accuracy,
            imputation_non_members=o["imputation"].accuracy_non_members,
            majority=o["majority"].accuracy,
            majority_non_members=o["majority"].accuracy_non_members,
            advantage=r.advantage(),
            advantage_non_members=r.advantage(members=False),
            only_attack=only_attack,
            only_imputation=only_imputation,
            seconds=r.seconds,
            queries=r.queries,
        )

    def _advantage_interval(self, result: AttributeScenarioResult) -> Interval:
        return paired_difference_interval(result.only_attack, result.only_imputation, result.n_members)

    def rate(self, result: AttributeScenarioResult) -> Rating:
        text = (
            f"{result.attack} infers {result.attribute!r} for {result.accuracy:.1%} of members vs imputation "
            f"{result.imputation:.1%} (non-members {result.accuracy_non_members:.1%} vs "
            f"{result.imputation_non_members:.1%})"
        )
        interval = self._advantage_interval(result)
        if result.advantage > 0 and result.advantage_non_members >= interval.low:
            text += "; non-members alike: the model reveals it for anyone it scores, not only its training records"
        return rated(RULE, result.advantage, text, interval)

    def intervals(self, key: str, result: AttributeScenarioResult) -> dict[str, Interval]:
        m, n = result.n_members, result.n_non_members
        return {
            f"{key}.accuracy": rate_interval(result.accuracy, m),
            f"{key}.imputation": rate_interval(result.imputation, m),
            f"{key}.majority": rate_interval(result.majority, m),
            f"{key}.accuracy_non_members": rate_interval(result.accuracy_non_members, n),
            f"{key}.advantage": self._advantage_interval(result),
        }

    def figures(self, key: str, result: AttributeScenarioResult) -> dict[str, float]:
        return {f"{key}.{n}": float(getattr(result, n)) for n in FIGURES}

    def expected_figures(self, sc: Scenario) -> list[str]:
        return [f"{sc.key}.{n}" for n in FIGURES]

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        if not results:
            return ""
        rows = [
            [
                esc(key),
                esc(r["attribute"]),
                esc(r["attack"]),
                f"{pct(r['accuracy'])} / {pct(r['accuracy_non_members'])}",
                f"{pct(r['imputation'])} / {pct(r['imputation_non_members'])}",
                f"{pct(r['majority'])} / {pct(r['majority_non_members'])}",
                f"{100 * r['advantage']:+.1f} / {100 * r['advantage_non_members']:+.1f} points",
                f"{r['n_members']} / {r['n_non_members']} / {r['n_auxiliary']}",
                f"{r['queries']:,}",
            ]
            for key, r in results.items()
        ]
        header = [
            "scenario",
            "attribute",
            "attack",
            "attack acc. (members / non-members)",
            "imputation",
            "majority",
            "advantage over imputation",
            "members / non-members / attacker's records",
            "queries",
        ]
        sensitive = sorted({n for names in SENSITIVE.values() for n in names})
        note = (
            '<p class="muted">'
            + esc(
                "The value is cut into buckets at its quantiles; imputation is the same attack model without the "
                "model's output (Jayaraman & Evans, CCS 2022). An advantage that non-members share is what the model "
                "reveals about anyone whose record it scores; an advantage on members alone is a leak of the "
                f"training records. Built-in sensitive columns: {', '.join(sensitive)}."
            )
            + "</p>"
        )
        return table(header, rows) + note


FAMILY = AttributeFamily()
