"""Render the report dict as one self-contained HTML page (plots embedded as PNG data URIs)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

COLOURS = {"high": "#f4a09c", "medium": "#fbd38d", "low": "#b7e4c7", "warning": "#fbd38d", "error": "#f4a09c",
           "info": "#d9dde2", "n/a": "#eeeeee", "not assessed yet": "#d9dde2"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0} td,th{border:1px solid #ccc;padding:.35em .6em;text-align:left;
vertical-align:top} th{background:#f4f4f4} .matrix td{width:30%} .muted{color:#555;font-size:.9em}
.tag{display:inline-block;padding:0 .4em;border-radius:3px;font-size:.85em;font-weight:600}
.fail{color:#b00020;font-weight:600} .pass{color:#2e7d32;font-weight:600} img{max-width:100%}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _pct(x: float | None) -> str:
    return "—" if x is None or x != x else f"{100 * x:.1f} %"


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _tag(level: str) -> str:
    return f'<span class="tag" style="background:{COLOURS.get(level, "#ddd")}">{_esc(level)}</span>'


def _matrix(cells: list[dict[str, Any]]) -> str:
    from sparring.assess.report import COLUMNS, ROWS

    grid = {(c["row"], c["column"]): c for c in cells}
    rows = []
    for r in ROWS:
        tds = []
        for col in COLUMNS:
            c = grid[(r, col)]
            status = c["status"]
            if status == "measured":
                colour = COLOURS[c["level"]]
                inner = f"<b>{_esc(c['covers'])}</b><br>{_tag(c['level'])} {_esc(c['text'])}"
                if "defended" in c:
                    d = c["defended"]
                    who = f"{d['undefended_entry']} (no defence assessed)" if "undefended_entry" in d else d["defence"]
                    inner += f"<br>with defences, worst case {_esc(who)}: {_tag(d['level'])} {_esc(d['text'])}"
                if c["not_assessed"]:
                    inner += f'<br><span class="muted">not assessed yet: {_esc(c["not_assessed"])}</span>'
            else:
                colour = COLOURS[status]
                inner = f"<b>{_esc(c['covers'])}</b><br>{_esc(status)}"
            tds.append(f'<td style="background:{colour}">{inner}</td>')
        rows.append(f"<tr><th>{_esc(r)}</th>{''.join(tds)}</tr>")
    head = "<tr><th>attacker can touch</th>" + "".join(f"<th>{_esc(c)}</th>" for c in COLUMNS) + "</tr>"
    return f'<table class="matrix">{head}{"".join(rows)}</table>'


def _curve_plot(
    title: str, xlabel: str, lines: list[tuple[str, list[float], list[float], str, int]], ylabel: str = "accuracy"
) -> str:
    """One plot of rates in [0, 1]; each line is ``(label, xs, ys, style, colour index)``."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, xs, ys, style, colour in lines:
        ax.plot(xs, ys, style, marker="o", label=label, color=f"C{colour % 10}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return _png(fig)


def _worst_case(worst: list[dict[str, Any]]) -> str:
    if not worst:
        return ""
    out = ["<h3>Worst case over every attack</h3>"]
    for norm in sorted({w["norm"] for w in worst}):
        ws = [w for w in worst if w["norm"] == norm]
        lines = []
        for i, w in enumerate(ws):
            eps, acc = [p["eps"] for p in w["points"]], [p["robust_accuracy"] for p in w["points"]]
            lines.append((w["model"].replace("_", " "), eps, acc, "-", i))
        out.append(_curve_plot(f"Worst-case robust accuracy ({norm})", f"epsilon ({norm})", lines))
        rows = [
            [_esc(w["model"]), f"{p['eps']:g}", _pct(p["robust_accuracy"]), _esc(", ".join(w["attacks"])), w["samples"]]
            for w in ws
            for p in w["points"]
        ]
        out.append(_table(["model / defence", "eps", "worst-case robust acc.", "attacks", "samples"], rows))
    out.append(
        '<p class="muted">Per sample, the worst case over every attack of that norm run against the model: a sample '
        "counts as robust at eps only if no attack broke it within eps (the AutoAttack rule).</p>"
    )
    return "".join(out)


def _query_curves(rs: list[dict[str, Any]], label: str) -> str:
    with_curves = [(r, p) for r in rs for p in r["points"] if "query_curve" in p]
    if not with_curves:
        return ""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for r, p in with_curves:
        qc = p["query_curve"]
        ax.plot(qc["budgets"], qc["success"], marker=".", label=f"{r['model']} eps {p['eps']:g}")
    ax.set_xscale("log")
    ax.set_xlabel("queries per sample")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Black-box query curve: {label}")
    return _png(fig)


def _members(rs: list[dict[str, Any]]) -> str:
    rows = [
        [
            _esc(r["model"]),
            f"{p['eps']:g}",
            _esc(m["name"]),
            m["newly_broken"],
            _pct(m["robust_accuracy_after"]),
            f"{m['seconds']:.1f}",
            f"{m['queries']:,}",
        ]
        for r in rs
        for p in r["points"]
        for m in p.get("members", [])
    ]
    if not rows:
        return ""
    return "<p>Ensemble members, in the order they ran (each only on samples still robust):</p>" + _table(
        ["model", "eps", "attack", "newly broken", "robust acc. after", "s", "queries"], rows
    )


def _detections(rs: list[dict[str, Any]]) -> str:
    rows = [
        [
            _esc(f"{r['defence']} ({', '.join(r['detection']['squeezers'])})"),
            f"{p['eps']:g}",
            _pct(r["detection"]["fpr"]),
            _pct(p["detection_rate"]),
            _pct(p.get("adaptive_undetected_success")),
            _pct(r["points"][i]["robust_accuracy"]),
            _pct(p["naive_robust_accuracy_with_detector"]),
            _pct(p["robust_accuracy_with_detector"]),
        ]
        for r in rs
        if "detection" in r
        for i, p in enumerate(r["detection"]["points"])
    ]
    if not rows:
        return ""
    header = [
        "detector",
        "eps",
        "clean FPR",
        "naive adv. detected",
        "aware attack: undetected success",
        "robust acc. (no detector)",
        "with detector, naive",
        "with detector, worst case",
    ]
    return (
        "<p>Detector (threshold set on clean training inputs; false positives measured on the clean test inputs). "
        "A sample counts as defended when the naive attack's example is flagged or harmless and the "
        "detector-aware attack fails on it:</p>"
        + _table(header, rows)
        + '<p class="muted">The detector-aware attack (PGD with BPDA through the squeezers, continued until the '
        "detector is evaded) is a lower bound on what an adaptive attacker achieves: He et al. (WOOT 2017) "
        "defeat feature squeezing with stronger joint attacks. The threat matrix therefore never credits a "
        "detector as the best defence.</p>"
    )


def _evasion(results: list[dict[str, Any]], worst: list[dict[str, Any]]) -> str:
    if not results:
        return ""
    out = ["<h2>Evasion (test-time integrity)</h2>", _worst_case(worst)]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(f"{r['attack']}-{r['norm']}", []).append(r)
    for label, rs in groups.items():
        out.append(f"<h3>{_esc(label)}</h3>")
        lines = []
        for i, r in enumerate(rs):
            eps = [0.0] + [p["eps"] for p in r["points"]]
            name = r["model"].replace("_", " ")
            if "detection" in r:  # a detector's figure counts flagged adversarial examples as defended
                det = r["detection"]["points"]
                worst = [r["clean_accuracy"]] + [p["robust_accuracy_with_detector"] for p in det]
                naive = [r["clean_accuracy"]] + [p["naive_robust_accuracy_with_detector"] for p in det]
                lines += [(name, eps, worst, "-", i), (f"{name} (naive attack)", eps, naive, "--", i)]
                continue
            lines.append((name, eps, [r["clean_accuracy"]] + [p["robust_accuracy"] for p in r["points"]], "-", i))
            if "naive_robust_accuracy" in r["points"][0]:
                naive = [r["clean_accuracy"]] + [p["naive_robust_accuracy"] for p in r["points"]]
                lines.append((f"{name} (naive attack)", eps, naive, "--", i))
        out.append(_curve_plot(f"Security evaluation curve: {label}", f"epsilon ({rs[0]['norm']})", lines))
        out.append(_query_curves(rs, label))
        rows = []
        for r in rs:
            for p in r["points"]:
                rows.append(
                    [
                        _esc(r["model"]),
                        f"{p['eps']:g}",
                        _pct(r["clean_accuracy"]),
                        _pct(p["robust_accuracy"]),
                        _pct(p.get("naive_robust_accuracy")) + " / " + _pct(p.get("adaptive_robust_accuracy"))
                        if "naive_robust_accuracy" in p
                        else "—",
                        f"{p['seconds'] + p.get('adaptive_seconds', 0.0):.1f}",
                        f"{p['queries']:,}",
                        f"{p['median_queries']:,.0f}" if "median_queries" in p else "—",
                        f"{p['median_norm']:.3f}",
                    ]
                )
        out.append(
            _table(
                [
                    "model / defence",
                    "eps",
                    "clean acc.",
                    "robust acc.",
                    "naive / adaptive",
                    "attack s",
                    "queries",
                    "median queries to success",
                    "median norm",
                ],
                rows,
            )
        )
        out.append(_members(rs))
        out.append(_detections(rs))
        crafted = [p for p in rs[0]["points"] if "surrogate_success_rate" in p]
        if crafted:  # crafted once on the surrogate, the same for every target model
            out.append(
                '<p class="muted">Transfer: success on the surrogate (or teacher) itself '
                + ", ".join(f"{_pct(p['surrogate_success_rate'])} at eps {p['eps']:g}" for p in crafted)
                + "; robust accuracy above is measured on the target.</p>"
            )
        adaptive = {r["model"]: r["adaptive"] for r in rs if "adaptive" in r}
        params = rs[0]["params"]
        note = "".join(f" {_esc(m)}: adaptive evaluation {_esc(a)}." for m, a in adaptive.items())
        out.append(
            f'<p class="muted">{_esc(label)} on {rs[0]["samples"]} test samples; settings: '
            f"{_esc({k: v for k, v in params.items() if k != 'eps' and v is not None})}. Robust accuracy is the "
            "worst case "
            "per sample (a sample broken at a smaller eps counts as broken at larger ones; for an input "
            f"transformation, broken by the naive or the adaptive attack).{note}</p>"
        )
    return "".join(out)


def _flags(flags: list[dict[str, Any]]) -> str:
    if not flags:
        return (
            "<h2>Reliability of the evasion evaluation</h2><p>No sanity check raised a flag (gradients finite and "
            "non-zero, deterministic model, eps 0 keeps clean accuracy, accuracy falls to 0 at a large eps, no "
            "black-box attack beats the white-box ones).</p>"
        )
    rows = [[_tag(f["severity"]), _esc(f["model"]), _esc(f["code"]), _esc(f["message"])] for f in flags]
    return (
        "<h2>Reliability of the evasion evaluation</h2><p>These checks (Carlini et al. 2019; Athalye et al., "
        "ICML 2018) flag signs that a robustness figure may be too high, e.g. from gradient masking:</p>"
        + _table(["severity", "model / defence", "check", "finding"], rows)
    )


def _image_grid(images: list[Any], labels: list[Any], title: str, prefix: str = "true ") -> str:
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4 or len(arr) == 0:
        return ""
    fig, axes = plt.subplots(1, len(arr), figsize=(1.4 * len(arr), 1.8))
    for ax, img, lab in zip(np.atleast_1d(axes), arr, labels, strict=False):
        ax.imshow(img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0)), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{prefix}{lab}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def _membership(results: list[dict[str, Any]]) -> str:
    if not results:
        return ""
    out = ["<h2>Membership inference (test-time privacy)</h2>"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    lo = 1e-3
    for r in results:
        fpr = np.clip(np.asarray(r["fpr"]), lo / 2, 1)
        tpr = np.clip(np.asarray(r["tpr"]), lo / 2, 1)
        name = r["defence"] or "no defence"
        ax.step(fpr, tpr, where="post", label=f"{name} ({r['attack']}, AUC {r['auc']:.3f})")
    ax.plot([lo / 2, 1], [lo / 2, 1], "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo / 2, 1)
    ax.set_ylim(lo / 2, 1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=7)
    ax.set_title("Membership ROC (log-log)")
    out.append(_png(fig))
    rows = []
    for r in results:
        rows.append(
            [
                _esc(r["defence"] or "none"),
                _esc(r["attack"]),
                f"{r['auc']:.3f}",
                _pct(r["tpr_at_0.1%_fpr"]),
                _pct(r["tpr_at_1%_fpr"]),
                _pct(r["balanced_accuracy"]),
                _pct(r["clean_accuracy"]),
                f"{r['n_members']} / {r['n_non_members']}",
            ]
        )
    out.append(
        _table(
            [
                "defence",
                "attack run",
                "AUC",
                "TPR @ 0.1 % FPR",
                "TPR @ 1 % FPR",
                "best balanced acc.",
                "clean acc.",
                "members / non-members",
            ],
            rows,
        )
    )
    if min(r["n_non_members"] for r in results) < 1000:
        out.append('<p class="muted">With fewer than 1,000 non-members, TPR at 0.1 % FPR is the TPR at zero false '
                   "positives.</p>")
    for r in results:
        if r.get("fallback_reason"):
            out.append(f'<p class="muted">{_esc(r["defence"] or "no defence")}: {_esc(r["fallback_reason"])}</p>')
    return "".join(out)


def _costs(costs: list[dict[str, Any]]) -> str:
    if not costs:
        return ""
    rows = []
    for c in costs:
        delta = 100 * (c["clean_accuracy_after"] - c["clean_accuracy_before"])
        rows.append(
            [
                _esc(c["scenario"]),
                f"{_tag(c['level_before'])} {_esc(c['risk_before'])}",
                f"{_tag(c['level_after'])} {_esc(c['risk_after'])}",
                f"{_pct(c['clean_accuracy_before'])} → {_pct(c['clean_accuracy_after'])} ({delta:+.1f} pt)",
                f"{c['seconds']:.1f} s <span class='muted'>{_esc(c['seconds_note'])}</span>",
            ]
        )
    return "<h2>What each defence buys and costs</h2>" + _table(
        ["scenario", "without defence", "with defence", "clean accuracy", "time"], rows
    )


def _values(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in values.items())


def render(report: dict[str, Any]) -> str:
    """The whole report page."""
    results = list(report["scenarios"].values())
    from sparring.assess.html_training import training_section

    kinds = ("evasion", "backdoor", "poisoning", "clean_label", "federated", "membership")
    by = {k: [r for r in results if r["kind"] == k] for k in kinds}
    model = report["model"]
    gate = ""
    if report.get("fail_on"):
        items = "".join(
            f"<li class='{'fail' if g['failed'] else 'pass'}'>{_esc(g['rule'])}: "
            f"{'FAILED' if g['failed'] else 'passed'} ({_esc(_values(g['values']))})</li>"
            for g in report["fail_on"]
        )
        gate = f"<h2>Gates (--fail-on)</h2><ul>{items}</ul>"
    recs = "".join(f"<li>{_esc(r)}</li>" for r in report["recommendations"])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{_esc(report["title"])}</title><style>{CSS}</style></head><body>
<h1>{_esc(report["title"])}</h1>
<p class="muted">sparring {_esc(report["sparring_version"])} · data {_esc(model["data"])} ({model["n_train"]} train /
{model["n_test"]} test) · model {_esc(model["name"])} · clean accuracy {_pct(model["clean_accuracy"])} ·
finished {_esc(report["finished"])} in {report["seconds"]:.0f} s</p>
<h2>Threat matrix</h2>
{_matrix(report["matrix"])}
<p class="muted">Colour: measured risk of the undefended model (red high, amber medium, green low; grey not assessed).
Rules: evasion, share of clean accuracy lost at the reference eps (high ≥ 50 %, medium ≥ 20 %); backdoor and federated
model replacement, ASR, and clean-label poisoning, share of targets hit (high ≥ 50 %, medium ≥ 10 %); availability
poisoning and federated label flips, relative accuracy drop (high ≥ 20 %, medium ≥ 5 %); membership,
TPR at 1 % FPR (high ≥ 10 %, medium ≥ 2 %; chance is 1 %).</p>
<h2>Recommended measures</h2><ul>{recs}</ul>
{gate}
{_evasion(by["evasion"], report.get("worst_case", []))}{_flags(report["flags"]) if by["evasion"] else ""}
{training_section(by)}{_membership(by["membership"])}
{_costs(report["defence_costs"])}
<h2>Figures</h2>
{_table(["figure", "value"], [[_esc(k), f"{v:.4f}"] for k, v in report["figures"].items()])}
</body></html>
"""
