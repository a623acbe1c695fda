"""The planner: turns a config into an ordered list of scenarios (attack x defence)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from sparring.assess.config import AssessConfig

#: Families in the order they run and appear in the report.
KINDS = ("evasion", "transfer_learning", "backdoor", "poisoning", "clean_label", "federated", "membership")


@dataclass(frozen=True)
class Scenario:
    """One attack, against the undefended model or with one defence."""

    kind: str
    index: int
    label: str
    defence: str | None
    spec: BaseModel

    @property
    def key(self) -> str:
        """Stable name, used for stored results and report figures, e.g. ``evasion.pgd-linf+adversarial_training``."""
        return f"{self.kind}.{self.label}" + (f"+{self.defence}" if self.defence else "")

    def params(self) -> dict[str, Any]:
        """The entry's settings, without its list of defences."""
        return self.spec.model_dump(exclude={"defenses"})


def _label(kind: str, spec: Any) -> str:
    if kind in ("evasion", "transfer_learning"):
        return f"{spec.attack}-{spec.norm}"
    if kind == "backdoor" and spec.all_to_all:
        return f"{spec.attack}-all_to_all"
    if kind == "clean_label":
        return f"{spec.attack}-{spec.knowledge}-{spec.training}"
    if kind == "federated":
        return f"{spec.attack}-{spec.split}"
    if kind == "poisoning" and spec.victim != "target":
        return f"{spec.attack}-{spec.victim}"
    return str(spec.attack)


def plan(config: AssessConfig) -> list[Scenario]:
    """Every scenario the config asks for: each entry undefended, then once per defence.

    Two entries of the same family and attack get ``#1``, ``#2``... so keys stay unique.
    """
    out: list[Scenario] = []
    for kind in KINDS:
        entries = getattr(config, kind)
        counts = Counter(_label(kind, e) for e in entries)
        seen: Counter[str] = Counter()
        for i, entry in enumerate(entries):
            label = _label(kind, entry)
            if counts[label] > 1:
                seen[label] += 1
                label = f"{label}#{seen[label]}"
            out.append(Scenario(kind, i, label, None, entry))
            for d in getattr(entry, "defenses", []):
                out.append(Scenario(kind, i, label, d, entry))
    return out
