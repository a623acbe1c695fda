"""The planner: turns a config into an ordered list of scenarios (attack x defence), family by family."""

from __future__ import annotations

from collections import Counter

from sparring.assess.families import FAMILIES
from sparring.assess.family import Scenario
from sparring.assess.spec import BaseConfig


def plan(config: BaseConfig) -> list[Scenario]:
    """Every scenario the config asks for: each entry undefended, then once per defence.

    An entry's defences are its own ``defences`` followed by those ``[defences]`` lists for its
    family. Two entries of a family with the same label get ``#1``, ``#2``... so keys stay unique.
    """
    out: list[Scenario] = []
    for family in FAMILIES:
        entries = config.entries(family.key)
        shared = config.family_defences(family.key)
        counts = Counter(family.label(e) for e in entries)
        seen: Counter[str] = Counter()
        for i, entry in enumerate(entries):
            label = family.label(entry)
            if counts[label] > 1:
                seen[label] += 1
                label = f"{label}#{seen[label]}"
            out.append(Scenario(family.key, i, label, None, entry))
            own = list(getattr(entry, "defences", []))
            for d in dict.fromkeys([*own, *shared]):
                out.append(Scenario(family.key, i, label, d, entry))
    return out
