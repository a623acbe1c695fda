"""``--fail-on`` gates: thresholds on report figures that make ``sparring assess`` exit non-zero."""

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
_RULE = re.compile(r"^\s*(?P<key>[^<>=\s]+)\s*(?P<op><=|>=|<|>)\s*(?P<value>[-+0-9.eE]+)\s*$")


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
    return Gate(rule, m["key"], m["op"], value)
