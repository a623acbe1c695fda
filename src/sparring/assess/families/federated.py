"""Federated learning: FedAvg with malicious clients, under plain averaging or a robust aggregator.

Every entry first trains ``warmup_rounds`` benign rounds (a shared artefact), then runs
``rounds`` more with the malicious clients, once with the plain mean and once per defence.
A run without attackers gives the reference accuracy and each aggregator's clean cost.
Model replacement (Bagdasaryan et al., AISTATS 2020) is rated as a backdoor, label-flipping
clients as availability poisoning.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from sparring.assess.artefacts import load_module, save_json, save_module
from sparring.assess.context import Artefact, Context
from sparring.assess.families.backdoor import expected_headlines, headline_figures
from sparring.assess.family import (
    TRAIN_AVAILABILITY,
    TRAIN_INTEGRITY,
    Cell,
    CostRow,
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
from sparring.assess.spec import Entry, WithDefences, defences_field, one_of, parses
from sparring.attacks.poisoning import FEDERATED_ATTACKS, BadNets, LabelFlipClient, ModelReplacementClient
from sparring.data import Dataset, Trigger
from sparring.defenses.training import AGGREGATORS
from sparring.errors import ConfigError
from sparring.federated import (
    SPLITS,
    Aggregator,
    FederatedConfig,
    FederatedResult,
    MaliciousClient,
    evaluator,
    run_fedavg,
    split_clients,
)
from sparring.specs import parse_spec

REPLACEMENT_RULE = Rule("attack success rate (ASR)", medium=0.1, high=0.5)
FLIP_RULE = Rule("relative accuracy drop", medium=0.05, high=0.2)


class FederatedSpec(Entry, WithDefences):
    """A FedAvg simulation with malicious clients and robust aggregation.

    ``clients`` train the configured architecture on an ``iid`` or ``dirichlet:ALPHA`` split
    of the training set for ``warmup_rounds`` benign rounds; then ``rounds`` more run, in
    which ``malicious`` clients attack: ``model_replacement`` (Bagdasaryan et al., AISTATS
    2020: a BadNets backdoor, update boosted to replace the global model, in
    ``attack_round``) or ``label_flip`` (random labels, every round). Defences: coordinate
    ``median``, ``trimmed_mean`` (Yin et al., ICML 2018), norm ``clipping`` at the median
    benign update norm, ``clipping:SIGMA`` with Gaussian noise of that scale (Sun et al.
    2019). The model-replacement attacker trains ``attack_epochs`` local epochs, as
    Bagdasaryan et al.'s attacker trains longer.
    """

    attack: str = "model_replacement"
    clients: int = Field(10, ge=2)
    malicious: int = Field(1, ge=1)
    split: str = "iid"
    warmup_rounds: int = Field(10, ge=0)
    rounds: int = Field(5, ge=1)
    attack_round: int = Field(1, ge=1)
    local_epochs: int = Field(2, ge=1)
    attack_epochs: int = Field(10, ge=1)
    lr: float = Field(0.1, gt=0)
    target: int = Field(0, ge=0)
    patch_size: int = Field(3, ge=1)
    defences: list[str] = defences_field()

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, list(FEDERATED_ATTACKS), "federated attack")

    @field_validator("split")
    @classmethod
    def _known_split(cls, v: str) -> str:
        return parses(lambda s: parse_spec(s, SPLITS, "split"), v)

    @model_validator(mode="after")
    def _consistent(self) -> FederatedSpec:
        if self.malicious >= self.clients:
            raise ValueError("malicious must be fewer than clients")
        if self.attack_round > self.rounds:
            raise ValueError(f"attack_round must be at most rounds ({self.rounds})")
        return self


class FederatedResultRow(Row):
    """One round of the attacked run: clean accuracy and ASR."""

    round: int
    clean_accuracy: float
    asr: float


class FederatedScenarioResult(ScenarioResult):
    """A federated run with the malicious clients, under the mean or one aggregator."""

    model: str
    warmup_accuracy: float
    reference_accuracy: float
    seconds: float
    history: list[FederatedResultRow]
    clean_accuracy: float
    asr: float
    asr_after_rounds: float
    before: dict[str, float] | None = None
    cost_clean_accuracy: float | None = None
    defence_seconds: float | None = None
    cost_note: str | None = None


def _spec(sc: Scenario) -> FederatedSpec:
    assert isinstance(sc.spec, FederatedSpec)
    return sc.spec


def _rounds(fc: FederatedSpec, rounds: int) -> FederatedConfig:
    return FederatedConfig(rounds=rounds, local_epochs=fc.local_epochs, lr=fc.lr, batch_size=32, progress=False)


class Setting:
    """Clients, trigger and evaluation of an entry: cheap and deterministic, rebuilt wherever needed."""

    def __init__(self, ctx: Context, fc: FederatedSpec) -> None:
        self.clients: list[Dataset] = split_clients(ctx.train, fc.clients, fc.split, seed=ctx.seed)
        self.trigger: Trigger = BadNets(target=fc.target, patch_size=fc.patch_size).trigger(ctx.train.input_shape)
        self.evaluate = evaluator(ctx.test, self.trigger, fc.target)


def _store(result: FederatedResult, folder: Path) -> None:
    save_module(folder / "model.safetensors", result.model)
    save_json(folder / "run.json", {"history": result.history, "selected": result.selected, "seconds": result.seconds})


def _restore(ctx: Context, folder: Path) -> FederatedResult:
    run = json.loads((folder / "run.json").read_text())
    model = load_module(folder / "model.safetensors", ctx.build_model())
    return FederatedResult(model, run["history"], run["selected"], float(run["seconds"]))


def warmup_artefact(ctx: Context, sc: Scenario) -> Artefact[FederatedResult]:
    """The entry's benign warm-up rounds (shared by its defences)."""
    fc = _spec(sc)
    params = fc.model_dump(include={"clients", "split", "warmup_rounds", "local_epochs", "lr", "target", "patch_size"})

    def make(c: Context) -> FederatedResult:
        s = Setting(c, fc)
        c.log(f"    {fc.clients} clients, {fc.split}: {fc.warmup_rounds} benign warm-up rounds")
        return run_fedavg(c.build_model, s.clients, _rounds(fc, fc.warmup_rounds), evaluate=s.evaluate, seed=c.seed)

    return Artefact(f"federated-warmup-{sc.label}", params, make, _store, _restore)


def _aggregator(name: str | None, warm: FederatedResult, seed: int) -> Aggregator | None:
    if name is None:
        return None
    # Sun et al.: clip at the typical benign norm; "clipping:SIGMA" adds weak Gaussian noise
    bound = float(warm.history[-1]["median_update_norm"])
    aggregator = AGGREGATORS.build(name, bound=bound, seed=seed)
    assert isinstance(aggregator, Aggregator)
    return aggregator


def run_artefact(ctx: Context, sc: Scenario, defence: str | None, attacked: bool) -> Artefact[FederatedResult]:
    """The ``rounds`` after the warm-up, with or without the malicious clients, under ``defence`` (None: mean)."""
    fc = _spec(sc)
    warmup = warmup_artefact(ctx, sc)

    def make(c: Context) -> FederatedResult:
        warm = c.artefact(warmup)
        s = Setting(c, fc)
        malicious: dict[int, MaliciousClient] = {}
        for k in range(fc.malicious if attacked else 0):
            if fc.attack == "model_replacement":
                malicious[k] = ModelReplacementClient(
                    s.trigger, fc.target, attack_round=fc.attack_round, epochs=fc.attack_epochs, seed=c.seed + k
                )
            else:
                malicious[k] = LabelFlipClient(fraction=1.0, seed=c.seed + k)
        what = f"{len(malicious)} malicious" if attacked else "no malicious"
        c.log(f"    {fc.rounds} rounds, {what} clients, aggregation {defence or 'mean'}")
        return run_fedavg(
            partial(copy.deepcopy, warm.model),
            s.clients,
            _rounds(fc, fc.rounds),
            malicious=malicious,
            aggregator=_aggregator(defence, warm, c.seed),
            evaluate=s.evaluate,
            seed=c.seed + 1,
        )

    params = {**sc.params(), "defence": defence, "attacked": attacked}
    return Artefact(f"federated-{sc.label}-{defence or 'mean'}-{'attacked' if attacked else 'clean'}", params, make,
                    _store, _restore)


def _figures(fc: FederatedSpec, r: FederatedResult) -> dict[str, float]:
    return {
        "clean_accuracy": float(r.history[-1]["accuracy"]),
        "asr": float(r.history[fc.attack_round]["asr"]),
        "asr_after_rounds": float(r.history[-1]["asr"]),
    }


def _html(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        p = r["params"]
        rows.append(
            [
                f"{esc(r['attack'])}, {p['malicious']} of {p['clients']} clients, {esc(p['split'])}",
                esc(r["defence"] or "FedAvg (mean)"),
                pct(r["clean_accuracy"]),
                pct(r.get("asr")) if r["attack"] == "model_replacement" else "—",
                pct(r.get("asr_after_rounds")) if r["attack"] == "model_replacement" else "—",
                f"{r['seconds']:.1f} s",
            ]
        )
    lines = []
    for i, r in enumerate(results):
        key = "asr" if r["attack"] == "model_replacement" else "clean_accuracy"
        hist = r["history"]
        label = f"{r['attack']} / {r['defence'] or 'mean'} ({key})"
        lines.append((label, [h["round"] for h in hist], [h[key] for h in hist], "-", i))
    header = ["attack", "aggregation", "clean acc. (final)", "ASR after replacement", "ASR at the end", "time"]
    return (
        "<h3>Federated learning</h3>"
        + table(header, rows)
        + curve_plot("Federated: per round", "round", lines, ylabel="rate")
    )


class FederatedFamily(Family[FederatedSpec, FederatedScenarioResult]):
    """``[[federated]]``: FedAvg with malicious clients, against the mean and robust aggregators."""

    key = "federated"
    title = "federated"
    section = "Training data: poisoning and backdoors"
    order = 60
    spec = FederatedSpec
    result = FederatedScenarioResult
    threats = {TRAIN_INTEGRITY: "federated model replacement", TRAIN_AVAILABILITY: "federated label flips"}
    rules = {TRAIN_INTEGRITY: REPLACEMENT_RULE, TRAIN_AVAILABILITY: FLIP_RULE}
    defences = (Defences("aggregation", registry=AGGREGATORS, summary="robust aggregation at the server"),)
    attacks = tuple(FEDERATED_ATTACKS)
    smoke = {
        "federated": [
            {
                "clients": 3,
                "warmup_rounds": 1,
                "rounds": 1,
                "local_epochs": 1,
                "attack_epochs": 1,
                "defences": ["median"],
            }
        ]
    }

    def label(self, entry: FederatedSpec) -> str:
        return f"{entry.attack}-{entry.split}"

    def check_config(self, config: Any, entries: Any) -> None:
        if entries and not config.model.trains_here:
            raise ValueError(
                "federated scenarios retrain the model, so [model] needs 'architecture' or a 'factory' without "
                "'weights'"
            )

    def check(self, ctx: Context, index: int, entry: FederatedSpec) -> None:
        k = ctx.data.num_classes
        if entry.target >= k:
            raise ConfigError(f"federated[{index}].target: class {entry.target} does not exist (the data has {k})")
        if entry.attack == "model_replacement" and len(ctx.data.input_shape) != 3:
            raise ConfigError(
                "federated model_replacement stamps a patch trigger on images [C, H, W]; the data is not image-shaped"
            )

    def artefacts(self, ctx: Context, sc: Scenario) -> list[Artefact[Any]]:
        out = [warmup_artefact(ctx, sc), run_artefact(ctx, sc, None, False), run_artefact(ctx, sc, None, True)]
        if sc.defence is not None:
            out += [run_artefact(ctx, sc, sc.defence, True), run_artefact(ctx, sc, sc.defence, False)]
        return out

    def run(self, ctx: Context, sc: Scenario) -> FederatedScenarioResult:
        fc = _spec(sc)
        attacked = ctx.artefact(run_artefact(ctx, sc, sc.defence, True))
        reference = ctx.artefact(run_artefact(ctx, sc, None, False))
        history = [
            FederatedResultRow(round=int(h["round"]), clean_accuracy=float(h["accuracy"]), asr=float(h["asr"]))
            for h in attacked.history
        ]
        result = FederatedScenarioResult(
            kind=self.key,
            attack=fc.attack,
            defence=sc.defence,
            params=sc.params(),
            model=ctx.model_name,
            warmup_accuracy=float(ctx.artefact(warmup_artefact(ctx, sc)).history[-1]["accuracy"]),
            reference_accuracy=float(reference.history[-1]["accuracy"]),
            seconds=attacked.seconds,
            history=history,
            **_figures(fc, attacked),
        )
        if sc.defence is not None:
            undefended = _figures(fc, ctx.artefact(run_artefact(ctx, sc, None, True)))
            clean_cost = ctx.artefact(run_artefact(ctx, sc, sc.defence, False))
            result.defence_type = self.defence_kind(sc.defence)
            result.before = {**undefended, "clean_accuracy": result.reference_accuracy}
            result.cost_clean_accuracy = float(clean_cost.history[-1]["accuracy"])
            result.defence_seconds = attacked.seconds
            result.cost_note = "robust aggregation at the server (clean accuracy: runs without attackers)"
        return result

    def cell(self, result: FederatedScenarioResult) -> Cell:
        return TRAIN_INTEGRITY if result.attack == "model_replacement" else TRAIN_AVAILABILITY

    def rate(self, result: FederatedScenarioResult) -> Rating:
        if result.attack == "model_replacement":
            text = f"federated ASR {result.asr:.1%} after replacement, clean accuracy {result.clean_accuracy:.1%}"
            return rated(REPLACEMENT_RULE, result.asr, text)
        clean, acc = result.reference_accuracy, result.clean_accuracy
        drop = max(0.0, (clean - acc) / clean) if clean > 0 else 0.0
        who = f"{result.params['malicious']} label-flipping client(s) of {result.params['clients']}"
        return rated(FLIP_RULE, drop, f"federated accuracy {acc:.1%} with {who} (clean {clean:.1%})")

    def figures(self, key: str, result: FederatedScenarioResult) -> dict[str, float]:
        return headline_figures(key, result)

    def expected_figures(self, sc: Scenario) -> list[str]:
        return expected_headlines(sc)

    def cost(self, key: str, result: FederatedScenarioResult, base: FederatedScenarioResult) -> CostRow:
        row = super().cost(key, result, base)
        assert result.before is not None
        return CostRow(
            row.scenario,
            row.defence,
            row.before,
            row.after,
            result.before["clean_accuracy"],
            result.cost_clean_accuracy,
            row.seconds,
            row.seconds_note,
        )

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(list(results.values())) if results else ""


FAMILY = FederatedFamily()
