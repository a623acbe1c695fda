"""Ownership watermarks: whether the owner can prove that a stolen copy came from the model.

Each defence retrains the model with a watermark (``trigger``: Adi et al., USENIX Security
2018; ``ewe``: Jia et al., USENIX Security 2021; :mod:`sparring.defenses.training.watermark`),
steals it with Knockoff Nets at every budget of the entry (one fresh copy per budget), and
verifies: a one-sided binomial test of the verification queries' hits against the base rate
of ``clean_models`` independently trained clean models (a shared artefact). The result
carries the verification table: the clean-accuracy cost, the p-value on the watermarked
model, on each stolen copy, and the false-claim rate (the share of clean models whose p-value,
with the base rate from the other clean models, falls below ``alpha``). The entry without a
defence is the control: without a watermark no stolen copy can be attributed.

A watermark does not make stealing harder (the ``[[extraction]]`` family measures that, and
rates the matrix cell); it makes theft provable. So this family is drawn beside model stealing
but not rated in the matrix, and its figure is the share of stolen copies that could not be
attributed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from torch import nn

from sparring.assess.artefacts import load_module, load_tensors, save_json, save_module, save_tensors
from sparring.assess.context import Artefact, Context
from sparring.assess.family import TEST_PRIVACY, Defences, Family, Rating, Row, Rule, Scenario, ScenarioResult, rated
from sparring.assess.htmlkit import esc, muted, pct, table
from sparring.assess.spec import (
    Entry,
    WithDefences,
    defences_field,
    listify,
    one_of,
    parses,
    query_budgets,
    surrogate_architecture,
)
from sparring.attacks.privacy.extraction import QUERY_POOLS, KnockoffNets, check_access_mode, query_pool, thief_seed
from sparring.attacks.privacy.reference import reinitialise
from sparring.defenses.training.watermark import WATERMARKS, Watermark, base_rate
from sparring.errors import ConfigError
from sparring.metrics import Interval, accuracy, rate_interval
from sparring.models import TorchClassifier
from sparring.models.zoo import ARCHITECTURES
from sparring.train import fit

RULE = Rule(
    "share of stolen copies that cannot be attributed to the model",
    medium=0.5,
    high=1.0,
    note="one-sided binomial test of the watermark's hits against clean models; not rated in the matrix",
)

#: Seed offset of the clean models (independent of the model under assessment's seed).
CLEAN_SEED = 1000


class WatermarkSpec(Entry, WithDefences):
    """Ownership verification of copies stolen by Knockoff Nets, for each watermark in ``defences``.

    ``budgets``, ``pool``, ``access``, ``surrogate`` (default: the model's zoo architecture,
    else ``mlp``) and ``epochs`` describe the thief as in ``[[extraction]]``; ``queries`` is
    the size of the verification set; ``clean_models`` the independently trained clean models
    that set the base rate and the false-claim rate; ``alpha`` the claim threshold on p.
    """

    budgets: list[int] = Field(default_factory=lambda: [250, 1000], min_length=1)
    pool: str = "in_distribution"
    access: str = "probabilities"
    surrogate: str | None = None
    epochs: int = Field(30, ge=1)
    queries: int = Field(100, ge=10, le=10_000)
    clean_models: int = Field(10, ge=2, le=100)
    alpha: float = Field(0.01, gt=0.0, lt=1.0)
    defences: list[str] = defences_field()

    _listify = field_validator("budgets", mode="before")(listify)

    @field_validator("pool")
    @classmethod
    def _known_pool(cls, v: str) -> str:
        return one_of(v, QUERY_POOLS, "query pool")

    @field_validator("access")
    @classmethod
    def _known_access(cls, v: str) -> str:
        return parses(check_access_mode, v)

    _surrogate = field_validator("surrogate")(surrogate_architecture)
    _budgets = field_validator("budgets")(query_budgets)


class StolenRow(Row):
    """A copy stolen at one budget: its task figures and its verification."""

    budget: int
    queries: int
    accuracy: float
    fidelity: float
    hits: int
    p_value: float


class WatermarkScenarioResult(ScenarioResult):
    """The verification table of one watermark (or, without a defence, the control)."""

    clean_accuracy: float
    n_test: int
    alpha: float
    budgets: list[int]
    #: Share of the stolen copies (one per budget) whose p-value is not below ``alpha``.
    unattributed: float
    scheme: str | None = None
    #: Accuracy of the model trained without the watermark (the cost's reference).
    standard_accuracy: float | None = None
    queries: int | None = None
    base_rate: float | None = None
    hits: int | None = None
    p_value: float | None = None
    stolen: list[StolenRow] = []
    clean_hits: list[int] = []
    clean_p: list[float] = []
    false_claim_rate: float | None = None
    defence_seconds: float | None = None
    cost_note: str | None = None


def _surrogate(ctx: Context, e: WatermarkSpec) -> str:
    if e.surrogate is not None:
        return e.surrogate
    arch = ctx.config.model.architecture or ("small_cnn" if len(ctx.data.input_shape) == 3 else "mlp")
    return arch if ctx.config.model.factory is None and arch in ARCHITECTURES else "mlp"


def _fresh(ctx: Context, seed: int) -> nn.Module:
    """The configured architecture with parameters drawn from ``seed`` (an independent clean model)."""
    return reinitialise(ctx.build_model(), seed)


def _clean(ctx: Context, i: int) -> TorchClassifier:
    """Clean model ``i``: trained like the model under assessment, from its own seed."""
    seed = ctx.seed + CLEAN_SEED + i

    def train() -> tuple[nn.Module, float]:
        cfg = dataclasses.replace(ctx.train_config(), seed=seed)
        r = fit(_fresh(ctx, seed), ctx.train, cfg, desc=f"clean model {i}")
        return r.model, r.seconds

    return ctx.cached_model(f"watermark-clean-{i}", {"seed": seed}, train, lambda: _fresh(ctx, seed))[0]


def _scheme(ctx: Context, name: str) -> Watermark:
    wm: Watermark = WATERMARKS.build(name, seed=ctx.seed, bounds=tuple(ctx.config.data.bounds))
    return wm


def _watermarked(ctx: Context, name: str, queries: int) -> Artefact[tuple[TorchClassifier, Watermark, float]]:
    """The model retrained with watermark ``name``, its verification set and its training seconds."""

    def make(c: Context) -> tuple[TorchClassifier, Watermark, float]:
        wm = _scheme(c, name).clone(size=queries)
        c.log(f"    embedding watermark '{name}'")
        r = wm.embed(c.build_model(), c.train, c.train_config())
        return c.wrap(r.model), wm, r.seconds

    def save(value: tuple[TorchClassifier, Watermark, float], folder: Path) -> None:
        clf, wm, seconds = value
        assert wm.verification_x is not None and wm.verification_y is not None
        save_module(folder / "model.safetensors", clf.model)
        save_tensors(folder / "verification.safetensors", {"x": wm.verification_x, "y": wm.verification_y})
        save_json(folder / "seconds.json", seconds)

    def load(c: Context, folder: Path) -> tuple[TorchClassifier, Watermark, float]:
        wm = _scheme(c, name).clone(size=queries)
        t = load_tensors(folder / "verification.safetensors")
        wm.verification_x, wm.verification_y = t["x"], t["y"]
        module = load_module(folder / "model.safetensors", c.build_model())
        return c.wrap(module), wm, float(json.loads((folder / "seconds.json").read_text()))

    return Artefact(f"watermark-{name}-q{queries}", {"scheme": name, "queries": queries}, make, save, load)


def _html(results: Mapping[str, dict[str, Any]]) -> str:
    out = []
    rows = []
    for key, r in results.items():
        if r["defence"] is None:
            continue
        stolen = "<br>".join(
            f"{s['queries']:,} queries: p = {s['p_value']:.2g} ({s['hits']}/{r['queries']} hits; "
            f"fidelity {pct(s['fidelity'])})"
            for s in r["stolen"]
        )
        n_clean = len(r["clean_p"])
        claims = sum(p < r["alpha"] for p in r["clean_p"])
        cost = 100 * ((r.get("standard_accuracy") or 0.0) - r["clean_accuracy"])
        rows.append(
            [
                esc(key),
                esc(r["scheme"]),
                f"{pct(r['clean_accuracy'])} (cost {cost:.1f} points)",
                f"{r['queries']}",
                f"p = {r['p_value']:.2g} ({r['hits']}/{r['queries']} hits)",
                stolen,
                f"{pct(r['false_claim_rate'])} ({claims}/{n_clean}; base rate {pct(r['base_rate'])})",
            ]
        )
    if rows:
        header = [
            "scenario",
            "watermark",
            "accuracy (cost)",
            "verification queries",
            "watermarked model",
            "stolen copies",
            "false claims on clean models",
        ]
        out.append(table(header, rows))
    alpha = next(iter(results.values()))["alpha"] if results else 0.01
    out.append(
        muted(
            "Ownership is claimed when a one-sided binomial test of the verification queries' hits against "
            f"the base rate of independently trained clean models gives p < {alpha:g}. Cost: accuracy points "
            "lost against the model trained without the watermark. A watermark does not stop stealing (see the "
            "extraction figures); it makes a stolen copy attributable."
        )
    )
    return "".join(out)


class WatermarkFamily(Family[WatermarkSpec, WatermarkScenarioResult]):
    """``[[watermark]]``: retrain with a watermark, steal the model, verify ownership of the copies."""

    key = "watermark"
    title = "watermark"
    section = "Model stealing (test-time privacy)"
    order = 73
    spec = WatermarkSpec
    result = WatermarkScenarioResult
    threats = {TEST_PRIVACY: "model stealing"}
    rules = {TEST_PRIVACY: RULE}
    rated_in_matrix = False
    defences = (Defences("training", names=tuple(WATERMARKS), summary="ownership watermark (retrains the model)"),)
    attacks = ("knockoff",)
    smoke = {"watermark": [{"budgets": [100], "epochs": 3, "clean_models": 2, "queries": 20, "defences": ["trigger"]}]}

    def label(self, entry: WatermarkSpec) -> str:
        return f"knockoff-{entry.pool}"

    def check(self, ctx: Context, index: int, entry: WatermarkSpec) -> None:
        if entry.defences and not ctx.trainable:
            raise ConfigError(f"watermark[{index}]: watermarks retrain the model; give a model sparring can train")
        if entry.pool in ("other", "photos") and len(ctx.data.input_shape) != 3:
            raise ConfigError(f"watermark[{index}].pool: {entry.pool!r} needs image inputs; use 'in_distribution'")
        if _surrogate(ctx, entry) == "small_cnn" and len(ctx.data.input_shape) != 3:
            raise ConfigError(f"watermark[{index}].surrogate: 'small_cnn' needs image inputs; use 'mlp'")

    def run(self, ctx: Context, sc: Scenario) -> WatermarkScenarioResult:
        e = sc.spec
        assert isinstance(e, WatermarkSpec)
        target, _ = ctx.target()
        standard = accuracy(target, ctx.test.x, ctx.test.y)
        common = {
            "kind": self.key,
            "attack": "knockoff",
            "defence": sc.defence,
            "params": sc.params(),
            "n_test": len(ctx.test),
            "alpha": e.alpha,
            "budgets": e.budgets,
        }
        if sc.defence is None:
            return WatermarkScenarioResult(**common, clean_accuracy=standard, unattributed=1.0)
        victim, wm, seconds = ctx.artefact(_watermarked(ctx, sc.defence, e.queries))
        clean = [_clean(ctx, i) for i in range(e.clean_models)]
        hits = [wm.hits(c) for c in clean]
        wm.calibrate(clean)
        n = len(wm.verification_x) if wm.verification_x is not None else 0
        clean_p = [wm.verify(c, base=base_rate(hits[:i] + hits[i + 1 :], n)).p_value for i, c in enumerate(clean)]
        own = wm.verify(victim)
        lo, hi = ctx.config.data.bounds
        pool = query_pool(e.pool, ctx.data.input_shape, e.budgets[-1], ctx.seed, (lo, hi), ctx.train.x)
        stolen = []
        for b in e.budgets:
            thief = KnockoffNets(
                access=e.access, architecture=_surrogate(ctx, e), epochs=e.epochs, seed=thief_seed(ctx.seed)
            )
            r = thief.steal(victim, b, pool=pool, test=ctx.test)
            v = wm.verify(r.surrogate)
            p = r.curve[-1]
            stolen.append(
                StolenRow(
                    budget=b,
                    queries=p.queries,
                    accuracy=float(p.accuracy or 0.0),
                    fidelity=float(p.fidelity or 0.0),
                    hits=v.hits,
                    p_value=v.p_value,
                )
            )
        watermarked = accuracy(victim, ctx.test.x, ctx.test.y)
        return WatermarkScenarioResult(
            **common,
            defence_type=self.defence_kind(sc.defence),
            clean_accuracy=watermarked,
            unattributed=sum(s.p_value >= e.alpha for s in stolen) / len(stolen),
            scheme=type(wm).__name__,
            standard_accuracy=standard,
            queries=own.queries,
            base_rate=own.base_rate,
            hits=own.hits,
            p_value=own.p_value,
            stolen=stolen,
            clean_hits=hits,
            clean_p=clean_p,
            false_claim_rate=sum(p < e.alpha for p in clean_p) / len(clean_p),
            defence_seconds=seconds,
            cost_note=f"retraining with the watermark; {e.clean_models} clean models set the base rate",
        )

    def rate(self, result: WatermarkScenarioResult) -> Rating:
        if result.defence is None:
            return rated(RULE, 1.0, "without a watermark no stolen copy can be attributed to the model")
        claimed = [s for s in result.stolen if s.p_value < result.alpha]
        text = (
            f"{result.scheme}: p = {result.p_value:.2g} on the watermarked model with {result.queries} queries; "
            f"{len(claimed)} of {len(result.stolen)} stolen copies attributed (p < {result.alpha:g}); "
            f"false claims on {result.false_claim_rate:.0%} of {len(result.clean_p)} clean models"
        )
        return rated(RULE, result.unattributed, text)

    def intervals(self, key: str, result: WatermarkScenarioResult) -> dict[str, Interval]:
        if result.false_claim_rate is None or not result.clean_p:
            return {}
        return {f"{key}.false_claim_rate": rate_interval(result.false_claim_rate, len(result.clean_p))}

    def figures(self, key: str, result: WatermarkScenarioResult) -> dict[str, float]:
        out = {f"{key}.unattributed": result.unattributed, f"{key}.clean_accuracy": result.clean_accuracy}
        if result.p_value is not None and result.false_claim_rate is not None:
            out[f"{key}.p_value"] = result.p_value
            out[f"{key}.false_claim_rate"] = result.false_claim_rate
            for s in result.stolen:
                out[f"{key}.p_value_stolen_{s.budget}"] = s.p_value
        return out

    def expected_figures(self, sc: Scenario) -> list[str]:
        names = ["unattributed", "clean_accuracy"]
        if sc.defence is not None:
            assert isinstance(sc.spec, WatermarkSpec)
            names += ["p_value", "false_claim_rate", *(f"p_value_stolen_{b}" for b in sc.spec.budgets)]
        return [f"{sc.key}.{n}" for n in names]

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(results) if results else ""


FAMILY = WatermarkFamily()
