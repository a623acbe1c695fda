"""``report.md``: the assessment as a pull-request comment, and JUnit XML for CI test reporters.

The Markdown fits a GitHub or GitLab comment: the matrix with levels and intervals, gate
verdicts, what to adopt and what to avoid, the top findings with their framework identifiers,
a model-card block ("Security evaluation", the Hugging Face model-card convention) and a link
to the full HTML. The JUnit file makes each gate and each cell of the matrix a test case, so
Jenkins, GitLab and GitHub test reporters show an assessment like a test run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree as ET

from sparring.assess.family import LEVELS
from sparring.assess.frameworks import describe
from sparring.assess.report import level_move


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _figure(c: Mapping[str, Any]) -> str:
    if "value" not in c:
        return "—"
    ci = c.get("interval")
    return _pct(c["value"]) + (f" [{_pct(ci['low'])}, {_pct(ci['high'])}]" if ci else "")


def _cell_status(c: Mapping[str, Any]) -> str:
    return f"**{c['level']}**" if c["status"] == "measured" else c["status"]


def _clean(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Mapping[str, Any], html: str = "report.html") -> str:
    """The Markdown summary of a report (under 60 lines for the demo)."""
    m = report["model"]
    chance = m.get("chance") or {}
    ci = chance.get("interval")
    clean = _pct(m["clean_accuracy"]) + (f" [{_pct(ci['low'])}, {_pct(ci['high'])}]" if ci else "")
    out = [
        f"## sparring: {report['title']}",
        "",
        f"Model `{m['name']}` on `{m['data']}` ({m['n_train']} train / {m['n_test']} test), clean accuracy {clean}; "
        f"sparring {report['sparring_version']}, {report['finished']}.",
    ]
    if chance and not chance.get("beats_chance", True):
        out += ["", "> **Not rated**: the model does not clearly beat the majority class; its figures mean nothing."]
    out += ["", "| cell | covers | risk | rated figure [95 % CI] | frameworks |", "|---|---|---|---|---|"]
    for c in report["matrix"]:
        if c["status"] == "n/a":
            continue
        ids = describe({k: v for k, v in c.get("frameworks", {}).items() if k in ("atlas", "owasp")})
        out.append(
            f"| {c['row']} / {c['column']} | {_clean(c['covers'])} | {_cell_status(c)} | {_figure(c)} | {ids} |"
        )
    gates = report.get("fail_on") or []
    if gates:
        out += ["", "**Gates**"]
        out += [f"- {'❌ FAILED' if g['failed'] else '✅ passed'} `{g['rule']}`" for g in gates]
    failures = report.get("failures") or []
    if failures:
        out += ["", f"**{len(failures)} failed task(s)** (results missing; a rerun retries them)"]
        out += [f"- `{f['task']}`: {_clean(f['error'])}" for f in failures[:5]]
    verdicts = report.get("verdicts") or []
    if verdicts:
        out += ["", "**What to adopt, and what not**"]
        words = {"adopt": "adopt", "no help": "does not help:", "makes it worse": "avoid (makes it worse):"}
        for v in verdicts:
            moved = level_move(v)
            cost = f", {v['clean_points']:+.1f} pt clean accuracy" if v.get("clean_points") is not None else ""
            out.append(f"- {words[v['verdict']]} `{v['defence']}` ({v['row']} / {v['column']}: {moved}{cost})")
    findings = sorted(
        (c for c in report["matrix"] if c["status"] == "measured" and c["level"] != "low"),
        key=lambda c: (-LEVELS.index(c["level"]), -c["value"]),
    )
    if findings:
        out += ["", "**Top findings**"]
        for c in findings[:5]:
            ids = describe(c.get("frameworks", {}))
            out.append(f"- **{c['level']}** {_clean(c['covers'])}: {_clean(c['text'])} ({ids})")
    out += ["", *model_card(report), "", f"Full report: [{html}]({html})"]
    return "\n".join(out) + "\n"


def model_card(report: Mapping[str, Any]) -> list[str]:
    """A "Security evaluation" block for a model card (Hugging Face convention)."""
    m = report["model"]
    lines = [
        "<details><summary>Model card: security evaluation</summary>",
        "",
        "### Security evaluation",
        f"- Evaluated {report['finished']} with sparring {report['sparring_version']} on `{m['data']}` "
        f"({m['n_test']} test samples); clean accuracy {_pct(m['clean_accuracy'])}.",
    ]
    for c in report["matrix"]:
        if c["status"] == "measured":
            lines.append(f"- {c['row']} / {c['column']} ({_clean(c['covers'])}): {c['level']} risk, {_figure(c)}.")
    return [*lines, "", "</details>"]


def junit_xml(report: Mapping[str, Any], fail_level: str = "high") -> str:
    """JUnit XML: one test case per ``--fail-on`` gate and per cell; a cell fails at ``fail_level`` or above."""
    if fail_level not in LEVELS:
        raise ValueError(f"fail_level must be one of {', '.join(LEVELS)}, got {fail_level!r}")
    cases: list[ET.Element] = []
    for g in report.get("fail_on") or []:
        case = ET.Element("testcase", name=f"gate {g['rule']}", classname="sparring.gates", time="0")
        if g["failed"]:
            values = ", ".join(f"{k}={v:.4g}" for k, v in g["values"].items())
            ET.SubElement(case, "failure", message=f"gate {g['rule']} failed", type="gate").text = values
        cases.append(case)
    for c in report["matrix"]:
        if c["status"] == "n/a":
            continue
        name = f"{c['row']} / {c['column']}: {c['covers']}"
        case = ET.Element("testcase", name=name, classname="sparring.matrix", time="0")
        if c["status"] != "measured":
            ET.SubElement(case, "skipped", message=f"{c['status']}: {c.get('text', '')}".rstrip(": "))
        elif LEVELS.index(c["level"]) >= LEVELS.index(fail_level):
            message = f"{c['level']} risk (fails at {fail_level} and above)"
            ET.SubElement(case, "failure", message=message, type="risk").text = c["text"]
        cases.append(case)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    attrs = {
        "name": f"sparring: {report['title']}",
        "tests": str(len(cases)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": f"{report['seconds']:.1f}",
    }
    root = ET.Element("testsuites", {k: v for k, v in attrs.items() if k != "skipped"})
    suite = ET.SubElement(root, "testsuite", attrs)
    suite.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
