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
import math
from collections.abc import Mapping
from importlib import resources
from typing import Any

from sparring import __version__
from sparring.assess import frameworks
from sparring.assess.families import FAMILIES, family_of_key
from sparring.assess.family import COLUMNS, LEVELS, ROWS, SCOPE, Cell, Rating, ScenarioResult
from sparring.assess.spec import BaseConfig

#: The version of report.json's layout (``report.schema.json`` in this package describes it).
SCHEMA_VERSION = 1


def report_schema() -> dict[str, Any]:
    """The JSON Schema of ``report.json``, shipped in the package."""
    text = resources.files("sparring.assess").joinpath("report.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


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
        family = family_of_key(key)
        if r.defence is not None and family.mitigates(r) and (rating := family.rate(r)).measurable:
            models.setdefault(r.defence, []).append((_base(key), rating))
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


#: Cell statuses that mean its attacks ran (whatever the verdict).
ASSESSED = ("measured", "not measurable", "not rated")

#: What a cell says instead of a level when the model under assessment barely beats chance.
CHANCE = "model barely beats chance: figures not meaningful"


def matrix(results: Mapping[str, ScenarioResult], beats_chance: bool = True) -> list[dict[str, Any]]:
    """One entry per threat-matrix cell: undefended risk, the best defended model, and what is not assessed.

    A cell whose figures the sample cannot resolve is "not measurable"; when the model does
    not beat the majority-class baseline (``beats_chance`` False) no cell is rated.
    """
    cells = []
    for row in ROWS:
        for col in COLUMNS:
            cell: Cell = (row, col)
            mine = _in_cell(results, cell)
            ran = {t for k, r in mine.items() if (t := family_of_key(k).threats.get(cell))}
            scope = SCOPE[cell]
            attacks = sorted({r.attack for k, r in mine.items() if r.defence is None})
            covers = ", ".join(t for t in scope if t in ran)
            everything = ", ".join(scope) or "no attack in this cell"
            entry: dict[str, Any] = {
                "row": row,
                "column": col,
                "covers": f"{covers} ({', '.join(attacks)})" if covers else everything,
                "not_assessed": ", ".join(t for t in scope if t not in ran) if ran else "",
                "threats": [t for t in scope if t in ran],
                "frameworks": frameworks.merged([t for t in scope if t in ran] or scope).as_dict(),
            }
            undefended = [family_of_key(k).rate(r) for k, r in mine.items() if r.defence is None]
            resolved = [x for x in undefended if x.measurable]
            if not scope:
                entry["status"] = "n/a"
            elif not undefended:
                entry["status"] = "not assessed yet"
            elif not beats_chance:
                entry.update(status="not rated", text=CHANCE)
            elif not resolved:
                entry.update(status="not measurable", text="; ".join(x.text for x in undefended))
            else:
                worst = max(resolved, key=lambda x: x.value)
                entry.update(status="measured", level=worst.level, value=worst.value, text=worst.text)
                if worst.interval is not None:
                    entry["interval"] = worst.interval.as_dict()
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
        family = family_of_key(key)
        row, column = family.cell(r)
        cost = family.cost(key, r, base)
        # judged in the recommendations only if it is a mitigation of a rated cell, measured both ways
        rated = family.rated_in_matrix and family.mitigates(r) and cost.before.measurable and cost.after.measurable
        rows.append({**cost.as_dict(), "row": row, "column": column, "rated": rated})
    return rows


#: A defence must move its cell's rated figure by more than this to help (or to make things worse).
TOLERANCE = 0.02


def _half_width(interval: Mapping[str, Any] | None, value: float, upward: bool) -> float | None:
    """How far ``interval`` reaches from ``value`` up (``upward``) or down; ``None`` without one."""
    if not interval:
        return None
    return max(0.0, float(interval["high"]) - value) if upward else max(0.0, value - float(interval["low"]))


def noise(before: float, after: float, interval_before: Any, interval_after: Any) -> float | None:
    """The change two independently measured figures can show by chance alone (about 95 %), or ``None``.

    The half-widths of the two 95 % intervals on the sides that face each other, added in
    quadrature: the usual normal approximation of the difference of two independent estimates
    (a 1.96-standard-error band); ``None`` when either figure has no interval.
    """
    hb = _half_width(interval_before, before, upward=after > before)
    ha = _half_width(interval_after, after, upward=after < before)
    return None if hb is None or ha is None else math.sqrt(hb * hb + ha * ha)


def verdicts(costs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell and defence: adopt, does not help, or makes it worse, with what it costs; ranked best first.

    A defence is judged by its cell's rated figure on the worst entry it was run against
    (before and after). A change counts only if it exceeds :data:`TOLERANCE` and, when both
    figures carry a 95 % interval, the chance variation of their difference (:func:`noise`):
    on a few hundred members a TPR at 1 % FPR of 3.4 % and one of 1.2 % are not told apart.
    Its cost is the largest clean-accuracy drop, training time and added time per query over
    those entries.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for c in costs:
        if c["rated"]:
            groups.setdefault((c["row"], c["column"], c["defence"]), []).append(c)
    out = []
    for (row, column, defence), rows in groups.items():
        first = max(rows, key=lambda r: r["value_before"])
        worst = max(rows, key=lambda r: r["value_after"])
        before, after = first["value_before"], worst["value_after"]
        chance = noise(before, after, first.get("interval_before"), worst.get("interval_after"))
        margin = TOLERANCE if chance is None else max(TOLERANCE, chance)
        drops = [
            100 * (r["clean_accuracy_after"] - r["clean_accuracy_before"])
            for r in rows
            if r["clean_accuracy_after"] is not None and r["clean_accuracy_before"] is not None
        ]
        ms = [r["query_ms"] for r in rows if r["query_ms"] is not None]
        verdict = "no help"
        if after > before + margin:
            verdict = "makes it worse"
        elif after < before - margin:
            verdict = "adopt"
        family = rows[0]["scenario"].split(".", 1)[0]
        out.append(
            {
                "row": row,
                "column": column,
                "defence": defence,
                "atlas_mitigations": frameworks.defence(family, defence),
                "verdict": verdict,
                "before": before,
                "after": after,
                "level_before": worst["level_before"],
                "level_after": worst["level_after"],
                "margin": margin,
                "noise_bound": chance is not None and chance > TOLERANCE,
                "risk_after": worst["risk_after"],
                "clean_points": min(drops) if drops else None,
                "seconds": max(r["seconds"] for r in rows),
                "query_ms": max(ms) if ms else None,
            }
        )
    rank = {"adopt": 0, "no help": 1, "makes it worse": 2}
    return sorted(out, key=lambda v: (v["row"], v["column"], rank[v["verdict"]], v["after"], -(v["clean_points"] or 0)))


def _cost_text(v: Mapping[str, Any]) -> str:
    parts = []
    if v["clean_points"] is not None:
        parts.append(f"{v['clean_points']:+.1f} pt clean accuracy")
    if v["seconds"]:
        parts.append(f"+{v['seconds']:.1f} s training")
    if v["query_ms"] is not None:
        parts.append(f"+{v['query_ms']:.2f} ms per query")
    return "cost: " + (", ".join(parts) if parts else "none measured")


def level_move(v: Mapping[str, Any]) -> str:
    """A verdict's levels and rated figures (``medium → low, 3.4 % → 1.8 %``), and why a change did not count.

    A level can change while the figure moves less than the verdict's margin (a figure near
    a level's edge, or a change the samples cannot resolve); the verdict then stays "does not
    help", and the text says which margin held it back.
    """
    text = f"{v['level_before']} → {v['level_after']}, {100 * v['before']:.1f} % → {100 * v['after']:.1f} %"
    if v["verdict"] == "no help" and (v["level_before"] != v["level_after"] or v.get("noise_bound")):
        margin = float(v.get("margin", TOLERANCE))
        if v.get("noise_bound"):
            text += f", within the measurement's chance variation (±{100 * margin:.1f} points at 95 %)"
        else:
            text += f", within the {100 * TOLERANCE:.0f}-point tolerance"
    return text


def verdict_line(cell: Mapping[str, Any], v: Mapping[str, Any]) -> str:
    """One recommendation: ``adopt X (...; cost: ...)``, ``X does not help``, ``X makes it worse - do not adopt``."""
    moved = f"{level_move(v)}: {v['risk_after']}"
    model = next((m for m in cell.get("defended_models", []) if m["defence"] == v["defence"]), None)
    if model is not None and model["gaps"]:  # an attack of the cell never met this defence: say so
        moved += f"; not run against {', '.join(model['gaps'])}, so its effect on them is unknown"
    if v["verdict"] == "adopt":
        return f"{cell['covers']}: adopt {v['defence']} ({moved}; {_cost_text(v)})."
    if v["verdict"] == "no help":
        return f"{cell['covers']}: {v['defence']} does not help ({moved}; {_cost_text(v)})."
    return f"{cell['covers']}: {v['defence']} makes it worse — do not adopt ({moved}; {_cost_text(v)})."


def _price(costs: list[dict[str, Any]], defence: str) -> str:
    cost = next((x for x in costs if x["defence"] == defence and x["clean_accuracy_after"] is not None), None)
    if cost is None or cost["clean_accuracy_before"] is None:
        return ""
    delta = 100 * (cost["clean_accuracy_after"] - cost["clean_accuracy_before"])
    return f" at a clean-accuracy change of {delta:+.1f} points"


def _cell_line(c: Mapping[str, Any], costs: list[dict[str, Any]]) -> str:
    """A cell at medium or high risk: its level, and what its best defended model reaches."""
    d = c.get("defended")
    head = f"{c['covers']}: {c['level']} risk ({c['text']})"
    if d is None:
        return f"{head}; no defence was assessed for it: add one to the config."
    gaps = (
        f"; {', '.join(d['gaps'])} {'was' if len(d['gaps']) == 1 else 'were'} not run against it (coverage "
        f"gap): list {d['defence']} under [defences] for the family so every attack runs against it"
        if d["gaps"]
        else ""
    )
    if LEVELS.index(d["level"]) < LEVELS.index(c["level"]):
        return f"{head}; {d['defence']} lowers it to {d['level']} ({d['text']}){_price(costs, d['defence'])}{gaps}."
    return (
        f"{head}; the best assessed defence, {d['defence']}, does not lower the level enough "
        f"({d['level']}: {d['text']}){gaps}: combine measures or restrict the attacker's access."
    )


def recommendations(
    cells: list[dict[str, Any]], costs: list[dict[str, Any]], model: Mapping[str, Any] | None = None
) -> list[str]:
    """Short recommended measures derived from the measured risk, the defended models and their costs."""
    out = []
    info = model or {}
    chance = info.get("chance")
    if chance is not None and not chance["beats_chance"]:
        ci = chance["interval"]
        out.append(
            f"The model's clean accuracy {info['clean_accuracy']:.1%} (95 % CI {ci['low']:.1%}–{ci['high']:.1%}, "
            f"n={ci['n']}) does not clearly beat predicting the majority class ({chance['majority_accuracy']:.1%}): "
            "no risk is rated. Fix the model (training, data, labels) and assess it again."
        )
    ranked = verdicts(costs)
    for c in cells:
        if c.get("status") != "measured":
            continue
        mine = [v for v in ranked if (v["row"], v["column"]) == (c["row"], c["column"])]
        if c["level"] != "low":
            out.append(_cell_line(c, costs))
        out += [verdict_line(c, v) for v in mine if c["level"] != "low" or v["verdict"] == "makes it worse"]
    for c in cells:
        if c["status"] == "not measurable":
            out.append(f"{c['covers']}: not measurable ({c['text']}): raise the number of samples.")
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


def intervals(results: Mapping[str, ScenarioResult], model: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """95 % intervals of the figures whose sample size is known, under the figures' keys."""
    out: dict[str, dict[str, Any]] = {}
    chance = model.get("chance")
    if chance is not None:
        out["model.clean_accuracy"] = chance["interval"]
    for key, r in results.items():
        out.update({k: v.as_dict() for k, v in family_of_key(key).intervals(key, r).items()})
    return out


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
    chance = model.get("chance")
    cells = matrix(results, beats_chance=chance is None or bool(chance["beats_chance"]))
    costs = defence_costs(results)
    figs = figures(results, model)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "title": cfg.title,
        "sparring_version": __version__,
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": seconds,
        "config": json.loads(cfg.model_dump_json()),
        "model": model,
        "matrix": cells,
        "legend": legend(),
        "recommendations": recommendations(cells, costs, model),
        "verdicts": verdicts(costs),
        "defence_costs": costs,
    }
    for family in FAMILIES:
        extras = family.extras(results)
        report.update(extras.report)
        figs.update(extras.figures)
    report["figures"] = figs
    report["intervals"] = intervals(results, model)
    assessed = {t for c in cells if c["status"] in ASSESSED for t in c["threats"]}
    report["frameworks"] = {"versions": frameworks.VERSIONS, "coverage": frameworks.coverage(assessed)}
    report["fail_on"] = []
    report["scenarios"] = {key: r.to_json() for key, r in results.items()}
    return report
