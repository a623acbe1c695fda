"""The assessment report as data: flat figures, the threat matrix with risk levels, defence costs.

Everything here is derived from the registered families (:mod:`sparring.assess.families`);
:mod:`sparring.assess.html` renders the dict, and ``report.json`` is the dict.

The matrix's rule (DESIGN.md, "Metrics"): a cell's risk is the worst undefended result of
the cell. A user deploys one model, so a cell's risk *with defences* is judged per defended
model: for each defence, the worst case over every attack of the cell run against the
model it makes; the best such model is the cell's figure, and every attack of the cell not
run against it is a coverage gap, shown, never silently skipped. Detectors and inspections
flag or give a verdict without lowering the risk themselves, so they are never credited.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sparring import __version__
from sparring.assess.families import FAMILIES, family_of_key
from sparring.assess.family import COLUMNS, LEVELS, ROWS, SCOPE, Cell, Rating, ScenarioResult
from sparring.assess.spec import BaseConfig


def _base(key: str) -> str:
    return key.split("+", 1)[0]


def _in_cell(results: Mapping[str, ScenarioResult], cell: Cell) -> dict[str, ScenarioResult]:
    out = {}
    for key, r in results.items():
        family = family_of_key(key)
        if family.rated_in_matrix and family.cell(r) == cell:
            out[key] = r
    return out


def defended_models(results: Mapping[str, ScenarioResult]) -> list[dict[str, Any]]:
    """Per defence of a cell's results: its worst case over the attacks run against it, and its coverage gaps.

    ``results`` are one cell's; sorted best first (lowest worst-case risk, then fewest gaps).
    """
    attacks = sorted({_base(k) for k, r in results.items() if r.defence is None})
    models: dict[str, list[tuple[str, Rating]]] = {}
    for key, r in results.items():
        if r.defence is not None and family_of_key(key).mitigates(r):
            models.setdefault(r.defence, []).append((_base(key), family_of_key(key).rate(r)))
    out = []
    for defence, rows in models.items():
        entry, worst = max(rows, key=lambda row: row[1].value)
        covered = sorted({e for e, _ in rows})
        out.append(
            {
                "defence": defence,
                "level": worst.level,
                "value": worst.value,
                "text": worst.text,
                "worst_attack": entry,
                "covered": covered,
                "gaps": [a for a in attacks if a not in covered],
            }
        )
    return sorted(out, key=lambda m: (m["value"], len(m["gaps"])))


def matrix(results: Mapping[str, ScenarioResult]) -> list[dict[str, Any]]:
    """One entry per threat-matrix cell: undefended risk, the best defended model, and what is not assessed."""
    cells = []
    for row in ROWS:
        for col in COLUMNS:
            cell: Cell = (row, col)
            mine = _in_cell(results, cell)
            ran = {t for k, r in mine.items() if (t := family_of_key(k).threats.get(cell))}
            scope = SCOPE[cell]
            attacks = sorted({r.attack for r in mine.values()})
            covers = ", ".join(t for t in scope if t in ran)
            everything = ", ".join(scope) or "no attack in this cell"
            entry: dict[str, Any] = {
                "row": row,
                "column": col,
                "covers": f"{covers} ({', '.join(attacks)})" if covers else everything,
                "not_assessed": ", ".join(t for t in scope if t not in ran) if ran else "",
            }
            undefended = [family_of_key(k).rate(r) for k, r in mine.items() if r.defence is None]
            if not scope:
                entry["status"] = "n/a"
            elif not undefended:
                entry["status"] = "not assessed yet"
            else:
                worst = max(undefended, key=lambda x: x.value)
                entry.update(status="measured", level=worst.level, value=worst.value, text=worst.text)
                models = defended_models(mine)
                if models:
                    entry["defended"] = models[0]
                    entry["defended_models"] = models
            cells.append(entry)
    return cells


def defence_costs(results: Mapping[str, ScenarioResult]) -> list[dict[str, Any]]:
    """For each defended scenario: what it bought (its family's risk figure) and what it cost."""
    rows = []
    for key, r in results.items():
        base = results.get(_base(key))
        if r.defence is None or base is None:
            continue
        rows.append(family_of_key(key).cost(key, r, base).as_dict())
    return rows


def _price(costs: list[dict[str, Any]], defence: str) -> str:
    cost = next((x for x in costs if x["defence"] == defence and x["clean_accuracy_after"] is not None), None)
    if cost is None or cost["clean_accuracy_before"] is None:
        return ""
    delta = 100 * (cost["clean_accuracy_after"] - cost["clean_accuracy_before"])
    return f" at a clean-accuracy change of {delta:+.1f} points"


def recommendations(cells: list[dict[str, Any]], costs: list[dict[str, Any]]) -> list[str]:
    """Short recommended measures derived from the measured risk, the defended models and their costs."""
    out = []
    for c in cells:
        if c.get("status") != "measured" or c["level"] == "low":
            continue
        d = c.get("defended")
        head = f"{c['covers']}: {c['level']} risk ({c['text']})"
        if d is None:
            out.append(f"{head}; no defence was assessed for it: add one to the config.")
            continue
        gaps = (
            f"; {', '.join(d['gaps'])} {'was' if len(d['gaps']) == 1 else 'were'} not run against it (coverage "
            f"gap): list {d['defence']} under [defences] for the family so every attack runs against it"
            if d["gaps"]
            else ""
        )
        if LEVELS.index(d["level"]) < LEVELS.index(c["level"]):
            out.append(
                f"{head}; {d['defence']} lowers it to {d['level']} ({d['text']}){_price(costs, d['defence'])}{gaps}."
            )
        else:
            out.append(
                f"{head}; the best assessed defence, {d['defence']}, does not lower the level enough "
                f"({d['level']}: {d['text']}){gaps}: combine measures or restrict the attacker's access."
            )
    pending = [c["covers"] for c in cells if c["status"] == "not assessed yet"]
    if pending:
        out.append("Not assessed yet: " + "; ".join(pending) + ". Treat these as open risks.")
    return out


def figures(results: Mapping[str, ScenarioResult], model: Mapping[str, Any]) -> dict[str, float]:
    """Every headline number under a flat key, e.g. ``evasion.pgd-linf.robust_accuracy@0.1``.

    These keys are what ``--fail-on`` tests.
    """
    out: dict[str, float] = {"model.clean_accuracy": float(model["clean_accuracy"])}
    for key, r in results.items():
        out.update(family_of_key(key).figures(key, r))
    return {k: float(v) for k, v in out.items()}


def legend() -> list[str]:
    """How each family's results are rated, one line per cell rule (from the families' rules)."""
    lines = []
    for f in FAMILIES:
        if f.rated_in_matrix:
            for cell, rule in f.rules.items():
                lines.append(rule.legend(f.threats[cell]))
    return lines


def build_report(
    cfg: BaseConfig, model: dict[str, Any], results: Mapping[str, ScenarioResult], seconds: float
) -> dict[str, Any]:
    """Assemble the report dict that report.json holds and the HTML renders."""
    cells = matrix(results)
    costs = defence_costs(results)
    figs = figures(results, model)
    report: dict[str, Any] = {
        "title": cfg.title,
        "sparring_version": __version__,
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": seconds,
        "config": json.loads(cfg.model_dump_json()),
        "model": model,
        "matrix": cells,
        "legend": legend(),
        "recommendations": recommendations(cells, costs),
        "defence_costs": costs,
    }
    for family in FAMILIES:
        extras = family.extras(results)
        report.update(extras.report)
        figs.update(extras.figures)
    report["figures"] = figs
    report["scenarios"] = {key: r.to_json() for key, r in results.items()}
    return report
