"""Render the report dict as one self-contained HTML page (plots embedded as PNG data URIs).

The page has the threat matrix, the rating legend, recommendations and gates, then one
section per group of families (each family renders its own part from ``report.json``'s
scenarios), the defence costs and every figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparring.assess.families import FAMILIES, family_of_key
from sparring.assess.family import COLUMNS, ROWS
from sparring.assess.frameworks import describe
from sparring.assess.htmlkit import COLOURS, CSS, esc, pct, table, tag


def _matrix(cells: list[dict[str, Any]]) -> str:
    grid = {(c["row"], c["column"]): c for c in cells}
    rows = []
    for r in ROWS:
        tds = []
        for col in COLUMNS:
            c = grid[(r, col)]
            status = c["status"]
            if status == "measured":
                colour = COLOURS[c["level"]]
                inner = f"<b>{esc(c['covers'])}</b><br>{tag(c['level'])} {esc(c['text'])}"
                if "defended" in c:
                    d = c["defended"]
                    inner += f"<br>with defences, best model {esc(d['defence'])}: {tag(d['level'])} {esc(d['text'])}"
                    if d["gaps"]:
                        inner += f'<br><span class="muted">coverage gap: {esc(", ".join(d["gaps"]))} not run ' \
                                 f"against {esc(d['defence'])}</span>"
                if c["not_assessed"]:
                    inner += f'<br><span class="muted">not assessed yet: {esc(c["not_assessed"])}</span>'
            else:
                colour = COLOURS[status]
                inner = f"<b>{esc(c['covers'])}</b><br>{esc(status)}"
                if c.get("text"):
                    inner += f": {esc(c['text'])}"
            ids = c.get("frameworks")
            if ids:
                inner += f'<br><span class="muted">{esc(describe(ids))}</span>'
            tds.append(f'<td style="background:{colour}">{inner}</td>')
        rows.append(f"<tr><th>{esc(r)}</th>{''.join(tds)}</tr>")
    head = "<tr><th>attacker can touch</th>" + "".join(f"<th>{esc(c)}</th>" for c in COLUMNS) + "</tr>"
    return f'<table class="matrix">{head}{"".join(rows)}</table>'


def _defended_models(cells: list[dict[str, Any]]) -> str:
    rows = [
        [
            esc(f"{c['row']} / {c['column']}"),
            esc(m["defence"]),
            f"{tag(m['level'])} {esc(m['text'])}",
            esc(", ".join(m["covered"])),
            esc(", ".join(m["gaps"]) or "none"),
        ]
        for c in cells
        for m in c.get("defended_models", [])
    ]
    if not rows:
        return ""
    return (
        "<h3>Defended models</h3><p>Each defended model with its worst case over every attack of the cell that "
        "was run against it; the best is the cell's figure. An attack not run against a model is a coverage gap: "
        "its risk for that model is unknown.</p>"
        + table(["cell", "defended model", "worst case", "attacks run against it", "coverage gaps"], rows)
    )


def _costs(costs: list[dict[str, Any]]) -> str:
    if not costs:
        return ""
    rows = []
    for c in costs:
        before, after = c["clean_accuracy_before"], c["clean_accuracy_after"]
        change = (
            f"{pct(before)} → {pct(after)} ({100 * (after - before):+.1f} pt)"
            if before is not None and after is not None
            else "—"
        )
        rows.append(
            [
                esc(c["scenario"]),
                f"{tag(c['level_before'])} {esc(c['risk_before'])}",
                f"{tag(c['level_after'])} {esc(c['risk_after'])}",
                change,
                f"{c['seconds']:.1f} s"
                + (f" · +{c['query_ms']:.2f} ms per query" if c.get("query_ms") is not None else "")
                + f" <span class='muted'>{esc(c['seconds_note'])}</span>",
            ]
        )
    return "<h2>What each defence buys and costs</h2>" + table(
        ["scenario", "without defence", "with defence", "clean accuracy", "time"], rows
    )


def _provenance(model: dict[str, Any]) -> str:
    rows = [
        [
            esc(r["input"]),
            esc(Path(r["path"]).name),
            f"<code>{esc(r['sha256'][:16])}…</code>",
            f"verified, key {esc(r['key'])}" if r.get("verification") == "verified" else "not signed",
        ]
        for r in model.get("provenance", [])
    ]
    if not rows:
        return ""
    return "<h2>Provenance</h2>" + table(["input", "file", "SHA-256", "signature"], rows)


def _coverage(report: dict[str, Any]) -> str:
    fw = report.get("frameworks")
    if not fw:
        return ""
    rows = [
        [esc(r["id"]), esc(r["name"]), esc(", ".join(r["threats"])), "assessed" if r["assessed"] else "not assessed"]
        for r in fw["coverage"]
    ]
    versions = "; ".join(esc(v) for v in fw["versions"].values())
    return (
        "<h2>Framework coverage</h2><p>The MITRE ATLAS techniques of the threat matrix and whether this assessment "
        f"ran an attack for them. Identifiers from: {versions}.</p>"
        + table(["ATLAS", "technique", "threats", "this assessment"], rows)
    )


def _values(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in values.items())


def sections(report: dict[str, Any]) -> str:
    """Every family's part of the page, grouped under the families' section headings in order."""
    by_family: dict[str, dict[str, dict[str, Any]]] = {}
    for key, r in report["scenarios"].items():
        by_family.setdefault(family_of_key(key).key, {})[key] = r
    out: list[str] = []
    parts: dict[str, list[str]] = {}
    for family in FAMILIES:
        body = family.html(by_family.get(family.key, {}), report)
        if body:
            parts.setdefault(family.section, []).append(body)
    for heading, bodies in parts.items():
        out.append(f"<h2>{esc(heading)}</h2>{''.join(bodies)}")
    return "".join(out)


def render(report: dict[str, Any]) -> str:
    """The whole report page."""
    model = report["model"]
    gate = ""
    if report.get("fail_on"):
        items = "".join(
            f"<li class='{'fail' if g['failed'] else 'pass'}'>{esc(g['rule'])}: "
            f"{'FAILED' if g['failed'] else 'passed'} ({esc(_values(g['values']))})</li>"
            for g in report["fail_on"]
        )
        gate = f"<h2>Gates (--fail-on)</h2><ul>{items}</ul>"
    if report.get("failures"):
        items = "".join(f"<li class='fail'>{esc(f['task'])}: {esc(f['error'])}</li>" for f in report["failures"])
        gate += f"<h2>Failed tasks</h2><p>Their results are missing; a rerun retries only them.</p><ul>{items}</ul>"
    recs = "".join(f"<li>{esc(r)}</li>" for r in report["recommendations"])
    rules = "; ".join(report.get("legend", []))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{esc(report["title"])}</title><style>{CSS}</style></head><body>
<h1>{esc(report["title"])}</h1>
<p class="muted">sparring {esc(report["sparring_version"])} · data {esc(model["data"])} ({model["n_train"]} train /
{model["n_test"]} test) · model {esc(model["name"])} · clean accuracy {pct(model["clean_accuracy"])} ·
finished {esc(report["finished"])} in {report["seconds"]:.0f} s</p>
{_provenance(model)}
<h2>Threat matrix</h2>
{_matrix(report["matrix"])}
<p class="muted">Colour: measured risk of the undefended model (red high, amber medium, green low; grey not assessed).
Rules: {esc(rules)}.</p>
{_defended_models(report["matrix"])}
<h2>Recommended measures</h2><ul>{recs}</ul>
{gate}
{sections(report)}
{_costs(report["defence_costs"])}
{_coverage(report)}
<h2>Figures</h2>
{table(["figure", "value"], [[esc(k), f"{v:.4f}"] for k, v in report["figures"].items()])}
</body></html>
"""
