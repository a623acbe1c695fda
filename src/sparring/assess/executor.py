"""Executors run planned scenarios and store each result as it finishes; they share one interface.

:class:`LocalExecutor` runs in-process, in plan order: it builds the shared artefacts a
scenario declares, runs it, and stores the result under the scenario's fingerprint, so a
rerun reuses every result whose inputs did not change.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from sparring.assess.context import Context
from sparring.assess.families import BY_KEY
from sparring.assess.family import Scenario, ScenarioResult
from sparring.assess.store import ResultStore


def scenario_fingerprint(ctx: Context, sc: Scenario) -> str:
    """Everything that shapes a scenario's result; a stored result with another fingerprint is stale."""
    family = BY_KEY[sc.family]
    return ctx.fingerprint(sc.family, sc.params(), sc.defence, family.fingerprint(ctx, sc))


class Executor(ABC):
    """Runs scenarios; results keyed by scenario key."""

    @abstractmethod
    def map(
        self,
        ctx: Context,
        scenarios: list[Scenario],
        store: ResultStore | None = None,
        log: Callable[[str], None] = print,
    ) -> dict[str, ScenarioResult]:
        """Run (or reuse) every scenario; returns results by scenario key."""


class LocalExecutor(Executor):
    """In-process, one scenario after another (the default)."""

    def map(
        self,
        ctx: Context,
        scenarios: list[Scenario],
        store: ResultStore | None = None,
        log: Callable[[str], None] = print,
    ) -> dict[str, ScenarioResult]:
        results: dict[str, ScenarioResult] = {}
        for i, sc in enumerate(scenarios, 1):
            family = BY_KEY[sc.family]
            fp = scenario_fingerprint(ctx, sc)
            stored = _load(family, store.get(sc.key, fp)) if store is not None else None
            if stored is not None:
                log(f"[{i}/{len(scenarios)}] {sc.key}: reusing stored result")
                results[sc.key] = stored
                continue
            log(f"[{i}/{len(scenarios)}] {sc.key}")
            t0 = time.perf_counter()
            for artefact in family.artefacts(ctx, sc):
                ctx.artefact(artefact)
            result = family.run(ctx, sc)
            result.wall_seconds = time.perf_counter() - t0
            if store is not None:
                store.put(sc.key, fp, result.to_json())
            results[sc.key] = result
        return results


def _load(family: Any, data: dict[str, Any] | None) -> ScenarioResult | None:
    """A stored result as the family's type; None if there is none or it is not one (an older format)."""
    if data is None:
        return None
    try:
        result: ScenarioResult = family.load(data)
    except ValidationError:
        return None
    return result
