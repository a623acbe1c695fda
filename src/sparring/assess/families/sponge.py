"""Sponge examples: inputs that raise the cost of inference (test-time availability).

Measured by costs that really depend on the input, never the wall time of a dense network:
``cost = "energy"`` is the assessed model's energy on a modelled zero-skipping accelerator
(Shumailov et al., "Sponge Examples: Energy-Latency Attacks on Neural Networks", IEEE
EuroS&P 2021; energy with zero-skipping over energy without, and post-activation density);
``cost = "exits"`` trains the zoo's early-exit CNN on the same data and counts the
multiply-accumulates each input executes, with the median latency of one input on one
thread beside it (the mean over inputs of each one's median of repeated timings; there
latency truly depends on the input; DeepSloth, Hong et al., ICLR
2021, report 1.5-5x). Every attack is set beside the uniform baseline (flat-colour inputs;
Müller & Quiring, IEEE S&P Workshops 2024), and the cell is rated from the worst of them.
The cost cut-off (Shumailov et al.'s worst-case bound) is judged by its worst-case cost, its
false-trigger rate on natural inputs and the accuracy it costs.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from sparring.assess.context import Context
from sparring.assess.family import (
    TEST_AVAILABILITY,
    Defences,
    Family,
    Rating,
    Row,
    Rule,
    Scenario,
    ScenarioResult,
    rated,
)
from sparring.assess.htmlkit import esc, pct, png, table
from sparring.assess.spec import WithDefences, defences_field, one_of
from sparring.attacks.availability import SpongeResult
from sparring.attacks.availability.cost import EnergyModel, HardwareModel, UnsupportedLayerError
from sparring.attacks.availability.genetic import SpongeGA
from sparring.attacks.availability.gradient import SpongeGradient
from sparring.attacks.availability.uniform import UniformBaseline
from sparring.defenses.inference.cost_cutoff import CostCutoff
from sparring.errors import ConfigError
from sparring.metrics import accuracy, median_seconds
from sparring.models import Classifier, EarlyExitCNN, TorchClassifier, early_exit_cnn
from sparring.train import fit

RULE = Rule(
    "worst-case cost over the natural inputs' mean, minus 1 (modelled zero-skipping energy or executed "
    "MACs of an early-exit network; the worst of the attacks and the uniform baseline)",
    medium=0.1,
    high=0.5,
    note="never dense wall time",
)
#: Sponge attacks an entry may name (the uniform baseline always runs).
SPONGE_ATTACKS = ("genetic", "lbfgs", "adam")
#: At most this many cost values per method are kept for the report's plots.
KEEP = 200


class SpongeSpec(WithDefences):
    """Sponge examples against one cost: ``energy`` (the assessed model) or ``exits`` (an early-exit CNN).

    ``samples`` natural test inputs are measured and seed the attacks; the genetic attack
    runs ``generations`` of ``population`` and keeps ``keep`` sponges; L-BFGS / Adam run
    ``steps`` from each natural input, within ``eps`` (L-infinity) of it if set. ``batch``
    inputs share one read of the weights in the energy model; ``threshold`` is the early-exit
    network's confidence to leave; the ``cost_cutoff`` defence sets its budget at the
    ``percentile`` of natural costs.
    """

    cost: str = "energy"
    attacks: list[str] = Field(default_factory=lambda: ["genetic", "lbfgs"])
    samples: int = Field(50, ge=2)
    population: int = Field(50, ge=4)
    generations: int = Field(20, ge=1)
    keep: int = Field(10, ge=1)
    steps: int = Field(30, ge=1)
    eps: float | None = Field(None, gt=0)
    batch: int = Field(1, ge=1)
    threshold: float = Field(0.8, gt=0, le=1)
    epochs: int | None = Field(None, ge=1)
    percentile: float = Field(95.0, gt=0, le=100)
    repeats: int = Field(5, ge=1)
    defences: list[str] = defences_field()

    @field_validator("cost")
    @classmethod
    def _known_cost(cls, v: str) -> str:
        return one_of(v, ["energy", "exits"], "sponge cost")

    @field_validator("attacks")
    @classmethod
    def _known_attacks(cls, v: list[str]) -> list[str]:
        for a in v:
            one_of(a, list(SPONGE_ATTACKS), "sponge attack")
        if len(set(v)) != len(v):
            raise ValueError(f"sponge attacks are listed twice: {v}")
        return v

    @model_validator(mode="after")
    def _keep_fits(self) -> SpongeSpec:
        if self.keep > self.population:
            raise ValueError(f"keep ({self.keep}) cannot exceed population ({self.population})")
        return self


class SpongeCosts(Row):
    """One method's costs (natural inputs, the baseline or an attack)."""

    method: str
    mean: float
    max: float
    increase: float
    density_max: float | None = None
    queries: int = 0
    seconds: float = 0.0
    values: list[float]


class SpongeScenarioResult(ScenarioResult):
    """Costs of natural inputs, the uniform baseline and each attack; for ``exits`` latency too; a cut-off's effect."""

    cost: str
    unit: str
    model: str
    clean_accuracy: float
    natural: SpongeCosts
    rows: list[SpongeCosts]
    best_attack: str | None = None
    attack_increase: float | None = None
    baseline_increase: float
    worst_increase: float
    beats_baseline: bool | None = None
    exits_natural: list[int] | None = None
    exits_sponge: list[int] | None = None
    latency_natural_us: float | None = None
    latency_sponge_us: float | None = None
    latency_capped_us: float | None = None
    budget: float | None = None
    false_trigger: float | None = None
    worst_before: float | None = None
    worst_after: float | None = None
    before: dict[str, float] | None = None
    defence_seconds: float | None = None
    cost_note: str | None = None


def _spec(sc: Scenario) -> SpongeSpec:
    assert isinstance(sc.spec, SpongeSpec)
    return sc.spec


def _thin(v: Tensor) -> list[float]:
    values = v.double().flatten()
    if len(values) > KEEP:
        values = values[torch.linspace(0, len(values) - 1, KEEP).round().long()]
    return [float(c) for c in values]


def _row(
    method: str, costs: Tensor, density: Tensor | None, natural_mean: float, r: SpongeResult | None
) -> SpongeCosts:
    return SpongeCosts(
        method=method,
        mean=float(costs.mean()),
        max=float(costs.max()),
        increase=float(costs.max()) / natural_mean - 1.0,
        density_max=None if density is None else float(density.max()),
        queries=0 if r is None else r.queries,
        seconds=0.0 if r is None else r.seconds,
        values=_thin(costs),
    )


def latency_us(net: EarlyExitCNN, x: Tensor, repeats: int = 7) -> float:
    """Mean over inputs of each input's median time through :meth:`EarlyExitCNN.run_one`, one thread, in µs.

    The median of repeats damps scheduler noise; the mean over inputs follows the share of
    inputs that leave early (a median over inputs would hide it).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            per_input = [median_seconds(functools.partial(net.run_one, xi[None]), repeats) for xi in x]
    finally:
        torch.set_num_threads(threads)
    return 1e6 * statistics.fmean(per_input)


def _attack(name: str, sp: SpongeSpec, seed: int) -> SpongeGA | SpongeGradient:
    if name == "genetic":
        return SpongeGA(sp.cost, sp.population, sp.generations, keep=sp.keep, seed=seed)
    return SpongeGradient(sp.cost, optimizer=name, steps=sp.steps, eps=sp.eps)


def _early_exit(ctx: Context, sp: SpongeSpec) -> TorchClassifier:
    shape, k = ctx.data.input_shape, ctx.data.num_classes

    def train() -> tuple[torch.nn.Module, float]:
        net = early_exit_cnn(shape, k, seed=ctx.seed, threshold=sp.threshold)
        result = fit(net, ctx.train, ctx.train_config(sp.epochs), desc="early-exit", penalty=_exit_penalty)
        return result.model, result.seconds

    clf, _ = ctx.cached_model(
        f"sponge-early-exit-{sp.threshold:g}-{sp.epochs}",
        {"threshold": sp.threshold, "epochs": sp.epochs},
        train,
        lambda: early_exit_cnn(shape, k, seed=ctx.seed, threshold=sp.threshold),
    )
    return clf


def _exit_penalty(model: torch.nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
    assert isinstance(model, EarlyExitCNN)
    return model.exit_loss(x, y)


def _html(results: list[dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    out = []
    for r in (x for x in results if x["defence"] is None):
        rows = [r["natural"], *r["rows"]]
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.boxplot([row["values"] for row in rows], showfliers=True)
        ax.set_xticks(range(1, len(rows) + 1), [row["method"] for row in rows])
        ax.set_ylabel(r["unit"])
        ax.set_title(f"Sponge costs ({r['cost']}, {r['model']})")
        ax.grid(alpha=0.3)
        out.append(png(fig))
        body = [
            [
                esc(row["method"]),
                f"{row['mean']:.4g}",
                f"{row['max']:.4g}",
                f"{row['increase']:+.1%}",
                pct(row.get("density_max")),
                str(row.get("queries", 0)),
                f"{row.get('seconds', 0.0):.2f} s",
            ]
            for row in rows
        ]
        header = ["inputs", f"mean {r['unit']}", "max", "max over natural mean", "max density", "queries", "time"]
        out.append(table(header, body))
        verdict = (
            "no attack was run"
            if r.get("best_attack") is None
            else f"the best attack ({esc(r['best_attack'])}) "
            + ("beats" if r.get("beats_baseline") else "does <b>not</b> beat")
            + f" the uniform baseline ({r['attack_increase']:+.1%} against {r['baseline_increase']:+.1%})"
        )
        out.append(f"<p>{r['cost']}: {verdict}.</p>")
        if r.get("latency_natural_us") is not None:
            out.append(
                f"<p>Early-exit network: exits taken by natural inputs {r['exits_natural']}, by the sponges of "
                f"highest mean cost {r['exits_sponge']}; latency of one input on one thread (median of repeats, "
                f"mean over inputs) "
                f"{r['latency_natural_us']:.0f} µs natural, {r['latency_sponge_us']:.0f} µs sponge "
                f"({r['latency_sponge_us'] / r['latency_natural_us']:.2f}x; DeepSloth reports 1.5-5x).</p>"
            )
    defended = [x for x in results if x["defence"] is not None]
    if defended:
        body = [
            [
                esc(d["defence"]),
                esc(d["cost"]),
                f"{d['budget']:.4g}",
                f"{d['worst_before']:.4g}",
                f"{d['worst_after']:.4g}",
                pct(d["false_trigger"]),
                f"{pct(d['before']['clean_accuracy'])} → {pct(d['clean_accuracy'])}",
                "—" if d.get("latency_capped_us") is None else f"{d['latency_capped_us']:.0f} µs",
            ]
            for d in defended
        ]
        header = ["defence", "cost", "budget", "worst case before", "worst case after", "false triggers",
                  "accuracy", "worst-case latency after"]
        out.append(table(header, body))
    out.append(
        '<p class="muted">Energy: Shumailov et al.\'s ASIC model (1950 pJ per DRAM access, 3.7 pJ per '
        "multiply, 45 nm; Horowitz, ISSCC 2014); the ratio is energy with zero-skipping over energy without. "
        "Dense wall time is never reported as a sponge effect.</p>"
    )
    return "".join(out)


class SpongeFamily(Family[SpongeSpec, SpongeScenarioResult]):
    """``[[sponge]]``: sponge examples against modelled energy or an early-exit network, with the cost cut-off."""

    key = "sponge"
    title = "sponge examples"
    section = "Sponge examples (test-time availability)"
    order = 60
    spec = SpongeSpec
    result = SpongeScenarioResult
    threats = {TEST_AVAILABILITY: "sponge examples"}
    rules = {TEST_AVAILABILITY: RULE}
    defences = (Defences("inference", ("cost_cutoff",), summary="per-input cost budget at a percentile"),)
    attacks = ("uniform (baseline)", *SPONGE_ATTACKS)
    smoke = {
        "sponge": [
            {"cost": "energy", "samples": 8, "population": 12, "generations": 3, "keep": 4, "steps": 5},
            {
                "cost": "exits",
                "samples": 8,
                "population": 12,
                "generations": 3,
                "keep": 4,
                "steps": 5,
                "epochs": 3,
                "repeats": 1,
                "defences": ["cost_cutoff"],
            },
        ]
    }

    def label(self, entry: SpongeSpec) -> str:
        return entry.cost

    def check(self, ctx: Context, index: int, entry: SpongeSpec) -> None:
        if entry.cost == "exits":
            if len(ctx.data.input_shape) != 3:
                raise ConfigError(
                    f"sponge[{index}].cost: 'exits' trains an early-exit CNN and needs image data [C, H, W], "
                    f"got input shape {ctx.data.input_shape}"
                )
            return
        if ctx.loaded is not None and not isinstance(ctx.loaded, TorchClassifier):
            raise ConfigError(
                f"sponge[{index}].cost: 'energy' hooks the layers of a PyTorch model; the loaded model is "
                f"{type(ctx.loaded).__name__} (use cost = \"exits\")"
            )
        module = ctx.loaded.model if isinstance(ctx.loaded, TorchClassifier) else ctx.build_model()
        try:
            EnergyModel().check(module)
        except UnsupportedLayerError as e:
            raise ConfigError(f"sponge[{index}]: {e}") from None

    def _victim(self, ctx: Context, sp: SpongeSpec) -> tuple[Classifier, str]:
        if sp.cost == "exits":
            return _early_exit(ctx, sp), "early-exit CNN"
        clf, _ = ctx.target()
        return clf, ctx.model_name

    def run(self, ctx: Context, sc: Scenario) -> SpongeScenarioResult:
        sp = _spec(sc)
        clf, model_name = self._victim(ctx, sc.spec)  # type: ignore[arg-type]
        x = ctx.test.take(sp.samples, seed=ctx.seed).x
        energy = EnergyModel(HardwareModel(batch=sp.batch))
        module = clf.model if isinstance(clf, TorchClassifier) else None

        def costs(r: SpongeResult, xs: Tensor) -> tuple[Tensor, Tensor | None]:
            if sp.cost == "energy":
                assert module is not None
                rep = energy.measure(module, xs)
                return rep.ratio, rep.density
            return r.cost_after.double(), None

        base = UniformBaseline(sp.cost).run(clf, x)
        if sp.cost == "energy":
            assert module is not None
            nat_rep = energy.measure(module, x)
            natural, nat_density = nat_rep.ratio, nat_rep.density
        else:
            natural, nat_density = base.cost_before.double(), None
        nat_mean = float(natural.mean())
        rows = [_row("uniform", *costs(base, base.x_sponge), nat_mean, base)]
        sponges = {"uniform": base.x_sponge}
        for name in sp.attacks:
            r = _attack(name, sp, ctx.seed).run(clf, x)
            rows.append(_row(name, *costs(r, r.x_sponge), nat_mean, r))
            sponges[name] = r.x_sponge
        attack_rows = rows[1:]
        best = max(attack_rows, key=lambda row: row.max) if attack_rows else None
        worst = max(rows, key=lambda row: row.max)
        result = SpongeScenarioResult(
            kind=self.key,
            attack="+".join(["uniform", *sp.attacks]),
            defence=sc.defence,
            params=sc.params(),
            cost=sp.cost,
            unit="energy ratio" if sp.cost == "energy" else "MACs executed",
            model=model_name,
            clean_accuracy=accuracy(clf, ctx.test.x, ctx.test.y),
            natural=_row("natural", natural, nat_density, nat_mean, None),
            rows=rows,
            best_attack=None if best is None else best.method,
            attack_increase=None if best is None else best.increase,
            baseline_increase=rows[0].increase,
            worst_increase=worst.increase,
            beats_baseline=None if best is None else best.max > rows[0].max,
        )
        costliest = max(rows, key=lambda row: row.mean)  # the set an attacker would send: highest mean cost
        worst_x = sponges[costliest.method]
        if sp.cost == "exits":
            assert isinstance(module, EarlyExitCNN)
            result.exits_natural = torch.bincount(module.exit_index(x), minlength=module.n_exits).tolist()
            result.exits_sponge = torch.bincount(module.exit_index(worst_x), minlength=module.n_exits).tolist()
            result.latency_natural_us = latency_us(module, x, sp.repeats)
            result.latency_sponge_us = latency_us(module, worst_x, sp.repeats)
        if sc.defence is not None:
            self._defend(ctx, sp, clf, x, worst_x, result)
        return result

    def _defend(
        self, ctx: Context, sp: SpongeSpec, clf: Classifier, x: Tensor, worst_x: Tensor, result: SpongeScenarioResult
    ) -> None:
        """Calibrate the cut-off on natural training inputs; worst case on the inputs tried, price on the test set."""
        start = time.perf_counter()
        calib = ctx.train.take(min(len(ctx.train), max(200, sp.samples)), seed=ctx.seed + 1).x
        cut = CostCutoff(sp.percentile, sp.cost, batch=sp.batch).fit(clf, calib)
        tried = torch.cat([x, worst_x])
        before_costs = torch.tensor([result.natural.max, *(row.max for row in result.rows)])
        after = cut.apply(tried).cost
        natural_test = ctx.test.x
        outcome = cut.apply(natural_test)
        triggered = outcome.triggered
        labels = cut.labels(natural_test, outcome)
        result.before = {"clean_accuracy": result.clean_accuracy}
        result.clean_accuracy = float((labels == ctx.test.y).float().mean())
        result.budget = float(cut.budget or 0.0)
        result.false_trigger = float(triggered.float().mean())
        result.worst_before = float(before_costs.max())
        result.worst_after = float(after.max())
        result.defence_type = self.defence_kind(str(result.defence))
        if sp.cost == "exits":
            capped = cut.wrap(clf)
            assert isinstance(capped, TorchClassifier) and isinstance(capped.model, EarlyExitCNN)
            result.latency_capped_us = latency_us(capped.model, worst_x, sp.repeats)
        result.defence_seconds = time.perf_counter() - start
        action = "answers from the deepest exit within budget" if sp.cost == "exits" else "refuses"
        result.cost_note = (
            f"budget at the {sp.percentile:g}th percentile of natural costs; {action}; "
            f"{result.false_trigger:.1%} of natural test inputs cut"
        )

    def rate(self, result: SpongeScenarioResult) -> Rating:
        nat = result.natural.mean
        if result.defence is not None and result.worst_after is not None:
            value = result.worst_after / nat - 1.0
            return rated(
                RULE,
                value,
                f"worst case {value:+.1%} over natural with {result.defence} ({result.cost}, {result.model})",
            )
        return rated(
            RULE,
            result.worst_increase,
            f"worst sponge {result.worst_increase:+.1%} {result.unit} over natural ({result.cost}, {result.model}); "
            f"uniform baseline {result.baseline_increase:+.1%}",
        )

    def figures(self, key: str, result: SpongeScenarioResult) -> dict[str, float]:
        out = {
            f"{key}.worst_increase": result.worst_increase,
            f"{key}.baseline_increase": result.baseline_increase,
            f"{key}.natural_mean": result.natural.mean,
        }
        if result.attack_increase is not None:
            out[f"{key}.attack_increase"] = result.attack_increase
        if result.natural.density_max is not None:
            out[f"{key}.natural_density_max"] = result.natural.density_max
        if result.latency_natural_us and result.latency_sponge_us:
            out[f"{key}.latency_ratio"] = result.latency_sponge_us / result.latency_natural_us
        if result.worst_after is not None and result.false_trigger is not None:
            out[f"{key}.worst_after"] = result.worst_after
            out[f"{key}.false_trigger"] = result.false_trigger
        return out

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(list(results.values())) if results else ""


FAMILY = SpongeFamily()

__all__ = ["FAMILY", "SPONGE_ATTACKS", "SpongeCosts", "SpongeScenarioResult", "SpongeSpec"]
