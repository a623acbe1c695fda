"""Federated scenarios: FedAvg with malicious clients, under plain averaging or a robust aggregator.

Every entry first trains ``warmup_rounds`` benign rounds (shared by its defences), then runs
``rounds`` more with the malicious clients, once with the plain mean and once per defence.
A run without attackers gives the reference accuracy and each aggregator's clean cost.
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

from sparring.assess.config import FederatedConfig
from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.attacks.poisoning import BadNets
from sparring.attacks.poisoning.federated import LabelFlipClient, ModelReplacementClient
from sparring.defenses.training.aggregation import CoordinateMedian, NormClipping, TrimmedMean
from sparring.federated import (
    Aggregator,
    FederatedResult,
    MaliciousClient,
    evaluator,
    run_fedavg,
    split_clients,
)
from sparring.federated import (
    FederatedConfig as RoundsConfig,
)


def _spec(sc: Scenario) -> FederatedConfig:
    assert isinstance(sc.spec, FederatedConfig)
    return sc.spec


def _rounds(fc: FederatedConfig, rounds: int) -> RoundsConfig:
    return RoundsConfig(rounds=rounds, local_epochs=fc.local_epochs, lr=fc.lr, batch_size=32, progress=False)


def _warm(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """Clients, trigger, evaluation and the benign warm-up model of this entry (once per run)."""
    fc, seed = _spec(sc), ctx.config.seed
    key = f"federated-{sc.index}"
    if key not in ctx.memo:
        clients = split_clients(ctx.train, fc.clients, fc.split, seed=seed)
        trigger = BadNets(target=fc.target, patch_size=fc.patch_size).trigger(ctx.train.input_shape)
        evaluate = evaluator(ctx.test, trigger, fc.target)
        ctx.log(f"    {fc.clients} clients, {fc.split}: {fc.warmup_rounds} benign warm-up rounds")
        warm = run_fedavg(ctx.build_model, clients, _rounds(fc, fc.warmup_rounds), evaluate=evaluate, seed=seed)
        ctx.memo[key] = {"clients": clients, "trigger": trigger, "evaluate": evaluate, "warm": warm}
    memo = ctx.memo[key]
    assert isinstance(memo, dict)
    return memo


def _aggregator(name: str | None, warm: FederatedResult, seed: int) -> Aggregator | None:
    if name == "median":
        return CoordinateMedian()
    if name == "trimmed_mean":
        return TrimmedMean(0.1)
    if name is not None and name.startswith("clipping"):  # Sun et al.: clip at the typical benign norm
        sigma = float(name.partition(":")[2] or 0.0)  # "clipping:SIGMA" adds weak Gaussian noise
        return NormClipping(float(warm.history[-1]["median_update_norm"]), noise_sigma=sigma, seed=seed)
    return None


def _run(ctx: Context, sc: Scenario, defence: str | None, attacked: bool) -> FederatedResult:
    fc, seed = _spec(sc), ctx.config.seed
    key = f"federated-{sc.index}-{defence}-{attacked}"
    if key not in ctx.memo:
        w = _warm(ctx, sc)
        malicious: dict[int, MaliciousClient] = {}
        for k in range(fc.malicious if attacked else 0):
            if fc.attack == "model_replacement":
                malicious[k] = ModelReplacementClient(
                    w["trigger"], fc.target, attack_round=fc.attack_round, epochs=fc.attack_epochs, seed=seed + k
                )
            else:
                malicious[k] = LabelFlipClient(fraction=1.0, seed=seed + k)
        what = f"{len(malicious)} malicious" if attacked else "no malicious"
        ctx.log(f"    {fc.rounds} rounds, {what} clients, aggregation {defence or 'mean'}")
        build = partial(copy.deepcopy, w["warm"].model)
        ctx.memo[key] = run_fedavg(
            build,
            w["clients"],
            _rounds(fc, fc.rounds),
            malicious=malicious,
            aggregator=_aggregator(defence, w["warm"], seed),
            evaluate=w["evaluate"],
            seed=seed + 1,
        )
    result = ctx.memo[key]
    assert isinstance(result, FederatedResult)
    return result


def _figures(fc: FederatedConfig, r: FederatedResult) -> dict[str, float]:
    return {
        "clean_accuracy": float(r.history[-1]["accuracy"]),
        "asr": float(r.history[fc.attack_round]["asr"]),
        "asr_after_rounds": float(r.history[-1]["asr"]),
    }


def run(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """One federated run with the malicious clients, under the mean or the scenario's defence."""
    fc = _spec(sc)
    attacked = _run(ctx, sc, sc.defence, True)
    reference = _run(ctx, sc, None, False)
    out: dict[str, Any] = {
        "kind": "federated",
        "attack": fc.attack,
        "defence": sc.defence,
        "params": sc.params(),
        "model": ctx.model_name,
        "warmup_accuracy": float(_warm(ctx, sc)["warm"].history[-1]["accuracy"]),
        "reference_accuracy": float(reference.history[-1]["accuracy"]),
        "seconds": attacked.seconds,
        "history": [
            {"round": int(h["round"]), "clean_accuracy": float(h["accuracy"]), "asr": float(h["asr"])}
            for h in attacked.history
        ],
        **_figures(fc, attacked),
    }
    if sc.defence is not None:
        undefended = _figures(fc, _run(ctx, sc, None, True))
        clean_cost = _run(ctx, sc, sc.defence, False)
        out.update(
            {
                "defence_type": "aggregation",
                "before": {**undefended, "clean_accuracy": out["reference_accuracy"]},
                "cost_clean_accuracy": float(clean_cost.history[-1]["accuracy"]),
                "defence_seconds": attacked.seconds,
                "cost_note": "robust aggregation at the server (clean accuracy: runs without attackers)",
            }
        )
    return out

