"""Membership inference on a balanced member / non-member set, on the model as deployed.

Members are drawn from the training set, non-members from held-out data of the same
distribution; the ROC gives AUC and TPR at 0.1 % and 1 % FPR (LiRA's protocol, Carlini et
al., IEEE S&P 2022). Output hardening (rounding, top-k, labels only; Shokri et al., IEEE S&P
2017) is judged by the attack that still applies: the loss attack falls back to the
label-only gap attack when scores are hidden.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from sparring.assess.context import Context
from sparring.assess.family import (
    TEST_PRIVACY,
    CostRow,
    Defences,
    Family,
    Rating,
    Rule,
    Scenario,
    ScenarioResult,
    not_measurable,
    rated,
)
from sparring.assess.htmlkit import esc, pct, png, table
from sparring.assess.spec import Entry, defences_field, one_of, parses
from sparring.attacks.privacy import MEMBERSHIP_ATTACKS, evaluate_membership
from sparring.defenses.inference import HARDENING
from sparring.metrics import Interval, accuracy, auc_interval, per_query_ms, rate_interval

RULE = Rule("TPR at 1 % FPR", medium=0.02, high=0.1, note="chance is 1 %")


class MembershipSpec(Entry):
    """Membership inference on the model's training set."""

    attack: str = "loss_threshold"
    samples: int = Field(1000, ge=2)
    defences: list[str] = defences_field()

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, list(MEMBERSHIP_ATTACKS), "membership attack")

    @field_validator("defences")
    @classmethod
    def _known_defences(cls, v: list[str]) -> list[str]:
        return [parses(FAMILY.check_defence, d) for d in v]


class MembershipScenarioResult(ScenarioResult):
    """The ROC of one membership attack (thinned for the log-log plot) and what ran."""

    requested: str
    fallback_reason: str | None = None
    clean_accuracy: float
    n_members: int
    n_non_members: int
    seconds: float
    queries: int
    auc: float
    tpr_at_01_fpr: float = Field(alias="tpr_at_0.1%_fpr")
    tpr_at_1_fpr: float = Field(alias="tpr_at_1%_fpr")
    balanced_accuracy: float
    fpr: list[float]
    tpr: list[float]
    #: Wall time the output hardening adds per query, in ms (median of repeated timings).
    query_ms: float | None = None


def _thin(fpr: np.ndarray, tpr: np.ndarray, n: int = 400) -> tuple[list[float], list[float]]:
    """At most ``n`` ROC points, spaced evenly in log-FPR so the log-log plot keeps its shape."""
    if len(fpr) <= n:
        return fpr.tolist(), tpr.tolist()
    grid = np.unique(np.r_[0.0, np.logspace(np.log10(max(fpr[fpr > 0].min(), 1e-6)), 0, n)])
    idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
    return fpr[idx].tolist(), tpr[idx].tolist()


def _html(results: list[dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(5, 4.5))
    lo = 1e-3
    for r in results:
        fpr = np.clip(np.asarray(r["fpr"]), lo / 2, 1)
        tpr = np.clip(np.asarray(r["tpr"]), lo / 2, 1)
        name = r["defence"] or "no defence"
        ax.step(fpr, tpr, where="post", label=f"{name} ({r['attack']}, AUC {r['auc']:.3f})")
    ax.plot([lo / 2, 1], [lo / 2, 1], "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo / 2, 1)
    ax.set_ylim(lo / 2, 1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=7)
    ax.set_title("Membership ROC (log-log)")
    out.append(png(fig))
    rows = [
        [
            esc(r["defence"] or "none"),
            esc(r["attack"]),
            f"{r['auc']:.3f}",
            pct(r["tpr_at_0.1%_fpr"]),
            pct(r["tpr_at_1%_fpr"]),
            pct(r["balanced_accuracy"]),
            pct(r["clean_accuracy"]),
            f"{r['n_members']} / {r['n_non_members']}",
        ]
        for r in results
    ]
    header = [
        "defence",
        "attack run",
        "AUC",
        "TPR @ 0.1 % FPR",
        "TPR @ 1 % FPR",
        "best balanced acc.",
        "clean acc.",
        "members / non-members",
    ]
    out.append(table(header, rows))
    if min(r["n_non_members"] for r in results) < 1000:
        out.append(
            '<p class="muted">With fewer than 1,000 non-members, TPR at 0.1 % FPR is the TPR at zero false '
            "positives.</p>"
        )
    for r in results:
        if r.get("fallback_reason"):
            out.append(f'<p class="muted">{esc(r["defence"] or "no defence")}: {esc(r["fallback_reason"])}</p>')
    return "".join(out)


class MembershipFamily(Family[MembershipSpec, MembershipScenarioResult]):
    """``[[membership]]``: membership inference on the model as deployed, behind each output hardening."""

    key = "membership"
    title = "membership"
    section = "Membership inference (test-time privacy)"
    order = 70
    spec = MembershipSpec
    result = MembershipScenarioResult
    threats = {TEST_PRIVACY: "membership inference"}
    rules = {TEST_PRIVACY: RULE}
    defences = (Defences("inference", registry=HARDENING, summary="output hardening"),)
    attacks = tuple(MEMBERSHIP_ATTACKS)
    smoke = {"membership": [{"samples": 100, "defences": ["label_only"]}]}

    def label(self, entry: MembershipSpec) -> str:
        return entry.attack

    def check_config(self, config: Any, entries: Any) -> None:
        if entries and not config.model.trains_here and config.data.test_path is None:
            raise ValueError(
                "membership inference on a model trained elsewhere needs its training set: give [data] 'path' "
                "(the training set) and 'test_path' (data it never saw)"
            )

    def run(self, ctx: Context, sc: Scenario) -> MembershipScenarioResult:
        mc = sc.spec
        assert isinstance(mc, MembershipSpec)
        clf, _ = ctx.target()
        query_ms = None
        if sc.defence is not None:
            target, clf = clf, HARDENING.build(sc.defence).wrap(clf)
            query_ms = max(0.0, per_query_ms(clf, ctx.test.x) - per_query_ms(target, ctx.test.x))
        r = evaluate_membership(clf, ctx.train, ctx.test, attack=mc.attack, n=mc.samples, seed=ctx.seed)
        fpr, tpr = _thin(r.roc.fpr, r.roc.tpr)
        return MembershipScenarioResult.model_validate(
            {
                "kind": self.key,
                "attack": r.attack,
                "requested": r.requested,
                "fallback_reason": r.fallback_reason,
                "defence": sc.defence,
                "defence_type": self.defence_kind(sc.defence) if sc.defence else None,
                "params": sc.params(),
                "clean_accuracy": accuracy(clf, ctx.test.x, ctx.test.y),
                "n_members": r.n_members,
                "n_non_members": r.n_non_members,
                "seconds": r.seconds,
                "queries": r.queries,
                **r.roc.as_dict(),
                "fpr": fpr,
                "tpr": tpr,
                "query_ms": query_ms,
            }
        )

    def rate(self, result: MembershipScenarioResult) -> Rating:
        tpr, n = result.tpr_at_1_fpr, result.n_non_members
        if n < RESOLVES_1PCT:
            return not_measurable(
                tpr, f"TPR at 1% FPR not measurable with {n} non-members (needs {RESOLVES_1PCT}); AUC {result.auc:.3f}"
            )
        return rated(RULE, tpr, f"TPR {tpr:.1%} at 1% FPR, AUC {result.auc:.3f}", rate_interval(tpr, result.n_members))

    def intervals(self, key: str, result: MembershipScenarioResult) -> dict[str, Interval]:
        if result.n_members < 1 or result.n_non_members < 1:
            return {}
        out = {f"{key}.auc": auc_interval(result.auc, result.n_members, result.n_non_members)}
        for name, value, needs in (
            ("tpr_at_1%_fpr", result.tpr_at_1_fpr, RESOLVES_1PCT),
            ("tpr_at_0.1%_fpr", result.tpr_at_01_fpr, 10 * RESOLVES_1PCT),
        ):
            if result.n_non_members >= needs:
                out[f"{key}.{name}"] = rate_interval(value, result.n_members)
        return out

    def figures(self, key: str, result: MembershipScenarioResult) -> dict[str, float]:
        return {
            f"{key}.auc": result.auc,
            f"{key}.tpr_at_0.1%_fpr": result.tpr_at_01_fpr,
            f"{key}.tpr_at_1%_fpr": result.tpr_at_1_fpr,
            f"{key}.balanced_accuracy": result.balanced_accuracy,
        }

    def expected_figures(self, sc: Scenario) -> list[str]:
        names = ("auc", "tpr_at_0.1%_fpr", "tpr_at_1%_fpr", "balanced_accuracy")
        return [f"{sc.key}.{n}" for n in names]

    def cost(self, key: str, result: MembershipScenarioResult, base: MembershipScenarioResult) -> CostRow:
        row = super().cost(key, result, base)
        return dataclasses.replace(row, seconds_note="inference-time wrapper; no training cost")

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(list(results.values())) if results else ""


#: Non-members needed before a false-positive rate of 1 % can be told from 0 (one false positive in 100).
RESOLVES_1PCT = 100

FAMILY = MembershipFamily()
