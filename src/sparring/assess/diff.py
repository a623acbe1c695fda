"""``sparring diff OLD NEW``: is the new model's assessment worse than the last one.

Two ``report.json`` files (or the folders that hold them) are compared figure by figure. A
figure *moved* when both reports give it a 95 % interval and the intervals do not overlap;
a change within the intervals is noise and is not listed as a move. Cells whose level changed
and gates whose verdict flipped are listed too. ``--fail-on-regression "PATTERN>DELTA"``
exits 1 when a matching figure got worse by more than DELTA, where worse is lower for
accuracy-like figures and higher for attack-success figures.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparring.assess.gates import canonical
from sparring.errors import ConfigError, InputError

#: Figure names (after the scenario key, before ``@``) for which higher is better for the defender.
HIGHER_IS_BETTER = frozenset(
    {
        "clean_accuracy",
        "robust_accuracy",
        "naive_robust_accuracy",
        "adaptive_robust_accuracy",
        "accuracy",
        "random_flip_accuracy",
        "triggered_accuracy",
        "clean_accepted_accuracy",
        "detection_rate",
        "detector_recall",
        "filter_tpr",
    }
)


def higher_is_better(key: str) -> bool:
    """True for figures where a higher value is better for the defender (accuracies, detection rates)."""
    return key.split("@", 1)[0].rsplit(".", 1)[-1] in HIGHER_IS_BETTER


def load_report(path: str | Path) -> dict[str, Any]:
    """A ``report.json`` from a file or from the folder an assessment wrote."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.is_file():
        raise InputError(f"no report found at {path} (give a report.json or the folder that holds it)")
    try:
        report = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p} is not a JSON report: {e}") from None
    if not isinstance(report, dict) or "figures" not in report or "matrix" not in report:
        raise InputError(f"{p} is not a sparring report (it has no figures and matrix)")
    return report


def _overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return bool(a["low"] <= b["high"] and b["low"] <= a["high"])


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """What changed between two reports: moved figures, unresolved changes, level changes, flipped gates."""
    moved, unresolved = [], []
    old_ci, new_ci = old.get("intervals", {}), new.get("intervals", {})
    for key in sorted(set(old["figures"]) & set(new["figures"])):
        a, b = float(old["figures"][key]), float(new["figures"][key])
        if a == b:
            continue
        better = higher_is_better(key)
        row = {"figure": key, "old": a, "new": b, "change": b - a, "worse": (b < a) if better else (b > a)}
        if key in old_ci and key in new_ci:
            if not _overlap(old_ci[key], new_ci[key]):
                moved.append(row)
        else:
            unresolved.append(row)
    cells_old = {(c["row"], c["column"]): c for c in old["matrix"]}
    levels = []
    for c in new["matrix"]:
        before = cells_old.get((c["row"], c["column"]))
        was, now = (before or {}).get("level", (before or {}).get("status")), c.get("level", c["status"])
        if before is not None and was != now:
            levels.append({"cell": f"{c['row']} / {c['column']}", "old": was, "new": now})
    gates_old = {g["rule"]: g["failed"] for g in old.get("fail_on") or []}

    def verdict(failed: bool) -> str:
        return "failed" if failed else "passed"

    flipped = [
        {"rule": g["rule"], "old": verdict(gates_old[g["rule"]]), "new": verdict(g["failed"])}
        for g in new.get("fail_on") or []
        if g["rule"] in gates_old and gates_old[g["rule"]] != g["failed"]
    ]
    return {
        "old": old.get("finished"),
        "new": new.get("finished"),
        "moved": moved,
        "unresolved": unresolved,
        "levels": levels,
        "gates": flipped,
        "only_old": sorted(set(old["figures"]) - set(new["figures"])),
        "only_new": sorted(set(new["figures"]) - set(old["figures"])),
    }


@dataclass(frozen=True)
class Regression:
    """``PATTERN>DELTA``: fail when a figure matching PATTERN got worse by more than DELTA."""

    rule: str
    pattern: str
    delta: float

    def failing(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The matching figures that regressed by more than ``delta`` (in either report's figures)."""
        keys = [k for k in new["figures"] if k in old["figures"] and _matches(k, self.pattern)]
        if not keys:
            raise ConfigError(f"--fail-on-regression {self.rule!r} matches no figure of both reports")
        out = []
        for k in keys:
            a, b = float(old["figures"][k]), float(new["figures"][k])
            worse = (a - b) if higher_is_better(k) else (b - a)
            if worse > self.delta:
                out.append({"figure": k, "old": a, "new": b, "worse_by": worse})
        return out


def _matches(key: str, pattern: str) -> bool:
    return key == pattern or fnmatch.fnmatchcase(key, pattern) or fnmatch.fnmatchcase(key, "*." + pattern)


def parse_regression(rule: str) -> Regression:
    """Parse ``PATTERN>DELTA`` (DELTA >= 0, in the figure's units)."""
    pattern, sep, delta = rule.rpartition(">")
    try:
        value = float(delta)
    except ValueError:
        value = -1.0
    if not sep or not pattern.strip() or value < 0:
        raise ConfigError(
            f"--fail-on-regression {rule!r} is not of the form FIGURE>DELTA with DELTA >= 0, "
            "e.g. 'evasion.*.robust_accuracy@0.1>0.02'"
        )
    return Regression(rule, canonical(pattern.strip()), value)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def render(diff: Mapping[str, Any], regressions: list[dict[str, Any]], fmt: str = "text") -> str:
    """The comparison as ``text``, ``md`` (Markdown) or ``json``."""
    if fmt == "json":
        return json.dumps({**diff, "regressions": regressions}, indent=2) + "\n"
    md = fmt == "md"
    lines = [f"{'## ' if md else ''}sparring diff: {diff['old']} -> {diff['new']}"]

    def section(title: str, rows: list[str]) -> None:
        if rows:
            lines.extend(["", f"**{title}**" if md else f"{title}:"])
            lines.extend(f"- {r}" if md else f"  {r}" for r in rows)

    section(
        "Figures that moved beyond their 95 % intervals",
        [
            f"{'worse' if r['worse'] else 'better'}: {r['figure']} {_fmt(r['old'])} -> {_fmt(r['new'])}"
            for r in diff["moved"]
        ],
    )
    section("Risk levels that changed", [f"{r['cell']}: {r['old']} -> {r['new']}" for r in diff["levels"]])
    section("Gates that flipped", [f"{r['rule']}: {r['old']} -> {r['new']}" for r in diff["gates"]])
    section(
        "Regressions beyond the allowed change",
        [f"{r['figure']} {_fmt(r['old'])} -> {_fmt(r['new'])} (worse by {_fmt(r['worse_by'])})" for r in regressions],
    )
    if not (diff["moved"] or diff["levels"] or diff["gates"] or regressions):
        lines += ["", "No figure moved beyond its interval; no level or gate changed."]
    if diff["unresolved"]:
        lines += ["", f"{len(diff['unresolved'])} figure(s) without intervals changed; see --format json."]
    return "\n".join(lines) + "\n"
