"""The registered families: every module in this package that defines ``FAMILY``.

A new family is one module here (and one test); nothing else needs an edit. The config,
planner, fingerprints, threat matrix, report and ``sparring list`` read :data:`FAMILIES`.
See README.md in this folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from pydantic import BaseModel

from sparring.assess.family import SCOPE, Family, Rule, ScenarioResult


def _discover() -> tuple[Family[Any, Any], ...]:
    found: list[Family[Any, Any]] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        family = getattr(module, "FAMILY", None)
        if isinstance(family, Family):
            found.append(family)
    keys = [f.key for f in found]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"two families share a key: {sorted(keys)}")
    broken = [p for f in found for p in problems(f)]
    if broken:
        raise RuntimeError("a registered family is incomplete: " + "; ".join(broken))
    return tuple(sorted(found, key=lambda f: (f.order, f.key)))


#: What each required part of a family is, for the messages of :func:`problems`.
REQUIRED = {
    "key": "the TOML key of its entries, e.g. 'evasion'",
    "title": "a short human name",
    "section": "the report section its HTML goes under",
    "order": "where it runs and appears (an int)",
    "spec": "the pydantic model of one entry",
    "result": "the ScenarioResult subclass run() returns",
    "threats": "the matrix cells it rates in, each with a threat from SCOPE",
    "rules": "how a result in each of those cells is rated (a Rule per cell)",
    "smoke": "a tiny config fragment the conformance test runs",
}


def problems(family: Family[Any, Any]) -> list[str]:
    """What a family lacks or gets wrong, one line each (empty: it conforms)."""
    name = type(family).__name__
    out = [f"{name} lacks `{part}`: {what}" for part, what in REQUIRED.items() if not hasattr(family, part)]
    if out:
        return out
    if not (isinstance(family.spec, type) and issubclass(family.spec, BaseModel)):
        out.append(f"{name}.spec must be a pydantic model, got {family.spec!r}")
    if not (isinstance(family.result, type) and issubclass(family.result, ScenarioResult)):
        out.append(f"{name}.result must subclass ScenarioResult, got {family.result!r}")
    if not family.threats:
        out.append(f"{name}.threats is empty: name at least one cell and its threat")
    for cell, threat in family.threats.items():
        if threat not in SCOPE.get(cell, ()):
            out.append(f"{name}.threats: {threat!r} is not a threat of cell {cell} (SCOPE: {SCOPE.get(cell)})")
    if set(family.rules) != set(family.threats) or not all(isinstance(r, Rule) for r in family.rules.values()):
        out.append(f"{name}.rules must give one Rule for each cell of threats")
    if family.defences and "defences" not in family.spec.model_fields:
        out.append(f"{name} accepts defences, but its spec has no `defences` field (use spec.defences_field())")
    if family.key not in family.smoke:
        out.append(f"{name}.smoke must hold [[{family.key}]] entries")
    return out


#: Every family, in the order they run and appear in the report.
FAMILIES: tuple[Family[Any, Any], ...] = _discover()
#: Families by key.
BY_KEY: dict[str, Family[Any, Any]] = {f.key: f for f in FAMILIES}


def family_of_key(scenario_key: str) -> Family[Any, Any]:
    """The family a scenario key (``evasion.pgd-linf+jpeg:75``) belongs to."""
    return BY_KEY[scenario_key.split(".", 1)[0]]


__all__ = ["BY_KEY", "FAMILIES", "REQUIRED", "family_of_key", "problems"]
