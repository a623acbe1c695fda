"""The local executor: runs scenarios in-process, storing each result as it finishes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sparring.assess.context import Context, fingerprint
from sparring.assess.planner import Scenario
from sparring.assess.scenarios import RUNNERS
from sparring.assess.store import ResultStore


def scenario_fingerprint(ctx: Context, sc: Scenario) -> str:
    """Everything that shapes a scenario's result; a stored result with another fingerprint is stale."""
    cfg = ctx.config
    extra: dict[str, Any] | None = None
    if sc.defence == "adversarial_training":
        extra = cfg.adversarial_training.model_dump()
    elif sc.defence in ("dropout", "weight_decay", "augmentation"):
        extra = cfg.generalisation.model_dump()
    return fingerprint(cfg.data.model_dump(), cfg.model.model_dump(), cfg.seed, sc.kind, sc.params(), sc.defence, extra)


def execute(
    ctx: Context,
    scenarios: list[Scenario],
    store: ResultStore | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Run (or reuse) every scenario in order; returns results by scenario key."""
    results: dict[str, dict[str, Any]] = {}
    for i, sc in enumerate(scenarios, 1):
        fp = scenario_fingerprint(ctx, sc)
        stored = store.get(sc.key, fp) if store is not None else None
        if stored is not None:
            log(f"[{i}/{len(scenarios)}] {sc.key}: reusing stored result")
            results[sc.key] = stored
            continue
        log(f"[{i}/{len(scenarios)}] {sc.key}")
        t0 = time.perf_counter()
        result = RUNNERS[sc.kind](ctx, sc)
        result["wall_seconds"] = time.perf_counter() - t0
        if store is not None:
            store.put(sc.key, fp, result)
        results[sc.key] = result
    return results
