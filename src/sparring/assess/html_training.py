"""The report's training-data section: backdoors, clean-label and federated poisoning, availability poisoning.

Tables of every attack and defence with their costs, backdoor learning curves, the
triggers model inspection reconstructed, grids of poisoned training samples, and per-round
federated curves.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from sparring.assess.html import _curve_plot, _esc, _image_grid, _pct, _png, _table

ASR_NOTE = (
    '<p class="muted">ASR: share of triggered test inputs whose true class is not their backdoor target that the '
    "model assigns to the target (all-to-all: class i to i + 1). Accuracy on triggered inputs is against their true "
    "labels. Detector recall and FPR are computed against the known poison mask; an input filter's ASR counts only "
    "triggered inputs it lets through.</p>"
)


def _muted(text: str) -> str:
    return f"<span class='muted'>({_esc(text)})</span>"


def _target(p: dict[str, Any]) -> str:
    return "i → i + 1" if p.get("all_to_all") else f"→ class {p['target']}"


def _defence_cell(r: dict[str, Any]) -> str:
    """The figure that says what the defence saw, by its type."""
    kind = r.get("defence_type")
    if kind == "data":
        return f"recall {_pct(r['detector_recall'])}, FPR {_pct(r['detector_fpr'])}"
    if kind == "detector":
        return f"catches {_pct(r['filter_tpr'])} of triggered inputs at {_pct(r['filter_frr'])} clean rejection"
    if kind == "inspection":
        flagged = ", ".join(map(str, r["flagged_classes"])) or "none"
        return (
            f"anomaly index {r['max_anomaly_index']:.2f} (flags {flagged}); clean model "
            f"{r['clean_model_anomaly_index']:.2f} ({'flagged' if r['clean_model_flagged'] else 'not flagged'})"
        )
    if kind == "repair":
        return f"on {r['trusted_samples']} trusted samples"
    return "—"


def _backdoor(results: list[dict[str, Any]]) -> str:
    base = [r for r in results if r["defence"] is None]
    if not base:
        return ""
    out = ["<h3>Backdoors</h3>"]
    rows = []
    for r in base:
        p = r["params"]
        rows.append(
            [
                f"{_esc(r['attack'])} {_target(p)}",
                _esc(r.get("model", "")),
                f"{_pct(p['poison_fraction'])} ({r['n_poisoned']} samples)",
                f"{_pct(r['clean_accuracy'])} {_muted('clean model ' + _pct(r['clean_model_accuracy']))}",
                f"{_pct(r['asr'])} {_muted('clean model ' + _pct(r['clean_model_asr']))}",
                _pct(r["triggered_accuracy"]),
            ]
        )
    out.append(_table(["attack", "victim", "poison", "clean acc.", "ASR", "acc. on triggered"], rows))
    defended = [r for r in results if r["defence"] is not None]
    if defended:
        rows = [
            [
                _esc(r["attack"]),
                f"{_esc(r['defence'])} <span class='muted'>({_esc(r['defence_type'])})</span>",
                f"{_pct(r['before']['clean_accuracy'])} → {_pct(r['clean_accuracy'])}",
                f"{_pct(r['before']['asr'])} → {_pct(r['asr'])}",
                _pct(r["triggered_accuracy"]),
                _defence_cell(r),
                f"{r['defence_seconds']:.1f} s <span class='muted'>{_esc(r['cost_note'])}</span>",
            ]
            for r in defended
        ]
        out.append(
            "<h4>Defences</h4>"
            + _table(["attack", "defence", "clean acc.", "ASR", "acc. on triggered", "what it saw", "cost"], rows)
        )
    for r in base:
        mine = [d for d in defended if d["params"] == r["params"] and d["attack"] == r["attack"]]
        if mine:
            out.append(_bars(r, mine))
        if r.get("examples"):
            labels = [f"{a}→{b}" for a, b in zip(r["example_labels"], r.get("example_poison_labels", []), strict=False)]
            title = f"{r['attack']}: poisoned training samples (true label → training label)"
            out.append(_image_grid(r["examples"], labels or r["example_labels"], title, prefix=""))
        if r.get("learning_curve"):
            out.append(f"<h4>{_esc(r['attack'])}: backdoor learning curve</h4>" + _learning_curves(r))
    triggers = [d for d in defended if d.get("trigger_image")]
    if triggers:
        out.append("<h4>Triggers reconstructed by model inspection</h4>")
        out.append(
            _image_grid(
                [d["trigger_image"] for d in triggers],
                [d["trigger_class"] for d in triggers],
                "mask × pattern of the most anomalous class ("
                + "; ".join(f"{d['attack']}/{d['defence']}" for d in triggers)
                + ")",
                prefix="class ",
            )
        )
    out.append(ASR_NOTE)
    return "".join(out)


def _bars(base: dict[str, Any], defended: list[dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * (len(defended) + 1)), 3.2))
    names = ["no defence"] + [d["defence"] for d in defended]
    vals = [base, *defended]
    xs = np.arange(len(names))
    ax.bar(xs - 0.18, [v["clean_accuracy"] for v in vals], 0.36, label="clean accuracy")
    ax.bar(xs + 0.18, [v["asr"] for v in vals], 0.36, label="attack success rate")
    ax.set_xticks(xs, names, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title(f"{base['attack']}: clean accuracy and ASR per defence")
    return _png(fig)


def _learning_curves(r: dict[str, Any]) -> str:
    """ASR against the poisoned samples' loss weight, one line per weight decay (Cinà et al. 2021)."""
    lines = []
    decays = sorted({p["weight_decay"] for p in r["learning_curve"]})
    for i, wd in enumerate(decays):
        pts = sorted((p for p in r["learning_curve"] if p["weight_decay"] == wd), key=lambda p: p["beta"])
        lines.append((f"ASR, weight decay {wd:g}", [p["beta"] for p in pts], [p["asr"] for p in pts], "-", i))
        lines.append(
            (f"clean acc., weight decay {wd:g}", [p["beta"] for p in pts], [p["clean_accuracy"] for p in pts], ":", i)
        )
    return _curve_plot(
        f"{r['attack']}: backdoor learning curve", "weight β of the poisoned samples' loss", lines, ylabel="rate"
    )


def _poisoning(results: list[dict[str, Any]]) -> str:
    if not results:
        return ""
    out = ["<h3>Availability poisoning</h3>"]
    base = [r for r in results if r["defence"] is None]
    for r in base:
        fr = [0.0] + [p["fraction"] for p in r["points"]]
        lines = [(r["attack"], fr, [r["clean_accuracy"]] + [p["accuracy"] for p in r["points"]], "-", 0)]
        if any("random_accuracy" in p for p in r["points"]):
            lines.append(
                (
                    "random flips, same count",
                    fr,
                    [r["clean_accuracy"]] + [p["random_accuracy"] for p in r["points"]],
                    "--",
                    1,
                )
            )
        for i, d in enumerate(x for x in results if x["defence"] and x["params"] == r["params"]):
            lines.append(
                (f"with {d['defence']}", fr, [d["clean_accuracy"]] + [p["accuracy"] for p in d["points"]], "-.", i + 2)
            )
        out.append(_curve_plot(f"{r['attack']} against {r['victim']}", "poisoned share of the training set", lines))
    rows = []
    for r in results:
        for p in r["points"]:
            rows.append(
                [
                    _esc(r["attack"]),
                    _esc(r["victim"]),
                    _esc(r["defence"] or "none"),
                    f"{p['fraction']:g} ({p['n_poisoned']})",
                    _pct(p["accuracy"]),
                    _pct(p.get("random_accuracy")),
                    f"recall {_pct(p['detector_recall'])}, FPR {_pct(p['detector_fpr'])}"
                    if "detector_recall" in p
                    else "—",
                ]
            )
    out.append(
        _table(
            ["attack", "victim", "defence", "fraction (points)", "test acc.", "random flips, same count", "detector"],
            rows,
        )
    )
    return "".join(out)


def _clean_label(results: list[dict[str, Any]]) -> str:
    if not results:
        return ""
    rows = [
        [
            _esc(r["attack"]),
            _esc(r["params"]["knowledge"]),
            _esc(r["params"]["training"]),
            f"{r['params']['target_class']} → {r['params']['base_class']}",
            f"{r['n_targets']} targets × {r['params']['n_poisons']} poisons (eps {r['params']['eps']:g})",
            _pct(r["success_rate"]),
            f"{_pct(r['clean_accuracy_before'])} → {_pct(r['clean_accuracy'])}",
            f"{r['seconds_per_target']:.1f} s",
        ]
        for r in results
    ]
    fig, ax = plt.subplots(figsize=(6, 3))
    names = [f"{r['attack']}\n{r['params']['knowledge']}, {r['params']['training']}" for r in results]
    ax.bar(np.arange(len(results)), [r["success_rate"] for r in results])
    ax.set_xticks(np.arange(len(results)), names, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("targets misclassified")
    ax.set_title("Clean-label targeted poisoning: success rate")
    return (
        "<h3>Clean-label targeted poisoning (transfer learning)</h3>"
        + _table(
            [
                "attack",
                "attacker knows",
                "victim trains",
                "target → base class",
                "budget",
                "success",
                "clean acc.",
                "time per target",
            ],
            rows,
        )
        + _png(fig)
        + '<p class="muted">Success: share of target test images the poisoned student assigns to the base class. '
        "The poisons carry their correct labels and stay within eps of real base-class images.</p>"
    )


def _federated(results: list[dict[str, Any]]) -> str:
    if not results:
        return ""
    rows = []
    for r in results:
        p = r["params"]
        rows.append(
            [
                f"{_esc(r['attack'])}, {p['malicious']} of {p['clients']} clients, {_esc(p['split'])}",
                _esc(r["defence"] or "FedAvg (mean)"),
                _pct(r["clean_accuracy"]),
                _pct(r.get("asr")) if r["attack"] == "model_replacement" else "—",
                _pct(r.get("asr_after_rounds")) if r["attack"] == "model_replacement" else "—",
                f"{r['seconds']:.1f} s",
            ]
        )
    lines = []
    for i, r in enumerate(results):
        key = "asr" if r["attack"] == "model_replacement" else "clean_accuracy"
        hist = r["history"]
        lines.append(
            (
                f"{r['attack']} / {r['defence'] or 'mean'} ({key})",
                [h["round"] for h in hist],
                [h[key] for h in hist],
                "-",
                i,
            )
        )
    return (
        "<h3>Federated learning</h3>"
        + _table(
            ["attack", "aggregation", "clean acc. (final)", "ASR after replacement", "ASR at the end", "time"], rows
        )
        + _curve_plot("Federated: per round", "round", lines, ylabel="rate")
    )


def training_section(by: dict[str, list[dict[str, Any]]]) -> str:
    """The whole training-data section (empty when no training-data family ran)."""
    parts = [
        _backdoor(by.get("backdoor", [])),
        _clean_label(by.get("clean_label", [])),
        _federated(by.get("federated", [])),
        _poisoning(by.get("poisoning", [])),
    ]
    body = "".join(parts)
    return f"<h2>Training data: poisoning and backdoors</h2>{body}" if body else ""
