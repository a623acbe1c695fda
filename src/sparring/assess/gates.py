"""``--fail-on`` gates: thresholds on report figures that make ``sparring assess`` exit non-zero.

A rule is ``FIGURE<VALUE`` (or ``<=``, ``>``, ``>=``). FIGURE is a report key
(``evasion.pgd-linf.robust_accuracy@0.1``), a glob, or a key's tail (``robust_accuracy@0.1``);
numbers after ``@`` and ``=`` match by value (``@0.10`` is ``@0.1``). Rules are checked before
the run against the figures the planned scenarios will report.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sparring.errors import ConfigError

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_RULE = re.compile(r"^\s*(?P<key>[^<>\s]+?)\s*(?P<op><=|>=|<|>)\s*(?P<value>[-+0-9.eE]+)\s*$")


_NUMBER = re.compile(r"(?<=[@=])([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_NORM = re.compile(r"-(linf|l2|l1|l0)\b")


def canonical(key: str) -> str:
    """``key`` with every number after ``@`` or ``=`` written as report keys write it (``@0.10`` -> ``@0.1``)."""
    return _NUMBER.sub(lambda m: f"{float(m[1]):g}", key)


@dataclass(frozen=True)
class Gate:
    """Fail when a figure matching ``pattern`` satisfies ``op value`` (e.g. ``robust_accuracy@0.1<0.5``)."""

    rule: str
    pattern: str
    op: str
    value: float

    def matches(self, figures: dict[str, float]) -> dict[str, float]:
        """Figures this gate applies to: exact key, else a glob, else keys ending in ``.pattern``."""
        if self.pattern in figures:
            return {self.pattern: figures[self.pattern]}
        hit = {k: v for k, v in figures.items() if fnmatch.fnmatchcase(k, self.pattern)}
        if not hit:
            hit = {k: v for k, v in figures.items() if fnmatch.fnmatchcase(k, "*." + self.pattern)}
        return hit

    def could_match(self, expected: list[str]) -> list[str]:
        """The expected figure keys (globs allowed) this gate may match; empty means it never can.

        A glob stands for the keys it matches: the gate may match it if it matches the glob
        with its wildcards filled in, or the gate itself is one of those keys; a glob that ends
        in ``.*`` (a family that lists no names) may hold any tail.
        """
        keys = {e.replace("*", "\x00"): e for e in expected}
        hit = [keys[k] for k in self.matches(dict.fromkeys(keys, 0.0))]
        for e in expected:
            if "*" in e and e not in hit:
                open_tail = e.endswith(".*") and (self.pattern.startswith(e[:-1]) or "." not in self.pattern)
                if open_tail or fnmatch.fnmatchcase(self.pattern, e):
                    hit.append(e)
        return hit

    def norms(self, keys: list[str]) -> list[str]:
        """The distinct perturbation norms among ``keys`` a short rule matched (``linf``, ``l2``)."""
        return sorted({m[1] for k in keys if (m := _NORM.search(k))})

    def check(self, figures: dict[str, float]) -> dict[str, Any]:
        """Evaluate against figures; the gate fails if any matched figure crosses the threshold."""
        values = self.matches(figures)
        if not values:
            raise ConfigError(
                f"--fail-on {self.rule!r} matches no figure of this report; figures: {', '.join(sorted(figures))}"
            )
        failed = [k for k, v in values.items() if _OPS[self.op](v, self.value)]
        return {"rule": self.rule, "values": values, "failed": bool(failed), "failing": failed}


def parse_gate(rule: str) -> Gate:
    """Parse ``FIGURE<VALUE`` (also ``<=``, ``>``, ``>=``); FIGURE may be a glob or a key suffix."""
    m = _RULE.match(rule)
    if m is None:
        raise ConfigError(
            f"--fail-on {rule!r} is not of the form FIGURE<VALUE (or <=, >, >=), e.g. 'robust_accuracy@0.1<0.5'"
        )
    try:
        value = float(m["value"])
    except ValueError:
        raise ConfigError(f"--fail-on {rule!r}: {m['value']!r} is not a number") from None
    return Gate(rule, canonical(m["key"]), m["op"], value)


def check_gates(gates: list[Gate], expected: list[str], warn: Callable[[str], None]) -> None:
    """Refuse a gate that no planned figure can match; warn when a short one spans several norms."""
    for g in gates:
        hit = g.could_match(expected)
        if not hit:
            shown = ", ".join(sorted(e for e in expected if "*" not in e)[:12])
            raise ConfigError(f"--fail-on {g.rule!r} matches no figure this config will report; e.g. {shown}")
        norms = g.norms(hit)
        if len(norms) > 1:
            warn(
                f"warning: --fail-on {g.rule!r} matches figures of several norms ({', '.join(norms)}); "
                "name the scenario (e.g. evasion.NAME.robust_accuracy@EPS) to gate one"
            )
