"""The planner: turns a config into an ordered list of scenarios (attack x defence), family by family."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel

from sparring.assess.families import FAMILIES
from sparring.assess.family import Family, Scenario
from sparring.assess.spec import BaseConfig


def label_of(family: Family[Any, Any], entry: BaseModel) -> str:
    """The entry's ``name``, else the family's label for it (``pgd-linf``)."""
    name = getattr(entry, "name", None)
    return name if isinstance(name, str) else family.label(entry)


def plan(config: BaseConfig) -> list[Scenario]:
    """Every scenario the config asks for: each entry undefended, then once per defence.

    An entry's defences are its own ``defences`` followed by those ``[defences]`` lists for its
    family. An entry's label is its ``name`` if it has one (stable when entries are added),
    else the family's label for it; two unnamed entries with the same label get ``#1``, ``#2``...
    """
    out: list[Scenario] = []
    for family in FAMILIES:
        entries = config.entries(family.key)
        shared = config.family_defences(family.key)
        counts = Counter(label_of(family, e) for e in entries)
        seen: Counter[str] = Counter()
        for i, entry in enumerate(entries):
            label = label_of(family, entry)
            if counts[label] > 1 and getattr(entry, "name", None) is None:
                seen[label] += 1
                label = f"{label}#{seen[label]}"
            out.append(Scenario(family.key, i, label, None, entry))
            own = list(getattr(entry, "defences", []))
            for d in dict.fromkeys([*own, *shared]):
                out.append(Scenario(family.key, i, label, d, entry))
    return out
