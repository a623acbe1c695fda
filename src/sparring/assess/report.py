"""The assessment report as data: flat figures, the threat matrix with risk levels, defence costs.

:mod:`sparring.assess.html` renders this dict; ``report.json`` is this dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Rows and columns of the threat matrix (DESIGN.md).
ROWS = ("test-time inputs", "training data")
COLUMNS = ("integrity", "availability", "privacy")

#: What each cell covers; the family key is the scenario kind sparring measures there now.
CELLS: dict[tuple[str, str], dict[str, Any]] = {
    ("test-time inputs", "integrity"): {
        "family": "evasion",
        "covers": "evasion (FGSM, PGD)",
        "later": "APGD, Square, HopSkipJump, transfer attacks",
    },
    ("test-time inputs", "availability"): {"family": None, "covers": "sponge examples (energy, latency)", "later": ""},
    ("test-time inputs", "privacy"): {
        "family": "membership",
        "covers": "membership inference",
        "later": "model stealing, model inversion, attribute and property inference",
    },
    ("training data", "integrity"): {
        "family": "backdoor",
        "covers": "backdoors (BadNets)",
        "later": "blended, hidden-trigger and federated backdoors, clean-label poisoning",
    },
    ("training data", "availability"): {
        "family": "poisoning",
        "covers": "availability poisoning (label flips)",
        "later": "gradient poisoning of linear models",
    },
    ("training data", "privacy"): {"family": "-", "covers": "no attack family in this cell", "later": ""},
}

LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class Rating:
    """A risk level with the figure it rests on."""

    level: str
    value: float
    text: str


def _level(value: float, medium: float, high: float) -> str:
    return "high" if value >= high else "medium" if value >= medium else "low"


def _at(points: list[dict[str, Any]], key: str, x_key: str, x: float) -> float:
    for p in points:
        if abs(float(p[x_key]) - x) < 1e-12:
            return float(p[key])
    return float(points[-1][key])


def rate(result: dict[str, Any]) -> Rating:
    """Risk of one scenario result, by the rule of its family.

    - evasion: share of clean accuracy lost at the reference eps (high >= 0.5, medium >= 0.2)
    - backdoor: attack success rate (high >= 0.5, medium >= 0.1)
    - poisoning: relative accuracy drop at the largest poison fraction (high >= 0.2, medium >= 0.05)
    - membership: TPR at 1 % FPR (high >= 0.1, medium >= 0.02; chance is 0.01)
    """
    kind = result["kind"]
    if kind == "evasion":
        eps = float(result["reference_eps"])
        robust = _at(result["points"], "robust_accuracy", "eps", eps)
        clean = float(result["clean_accuracy"])
        loss = max(0.0, 1.0 - robust / clean) if clean > 0 else 1.0
        return Rating(_level(loss, 0.2, 0.5), loss, f"robust accuracy {robust:.1%} at eps {eps:g} (clean {clean:.1%})")
    if kind == "backdoor":
        asr = float(result["asr"])
        return Rating(_level(asr, 0.1, 0.5), asr, f"ASR {asr:.1%}, clean accuracy {result['clean_accuracy']:.1%}")
    if kind == "poisoning":
        last = result["points"][-1]
        clean = float(result["clean_accuracy"])
        drop = max(0.0, (clean - float(last["accuracy"])) / clean) if clean > 0 else 0.0
        return Rating(
            _level(drop, 0.05, 0.2),
            drop,
            f"accuracy {last['accuracy']:.1%} with {last['fraction']:.0%} flipped labels (clean {clean:.1%})",
        )
    if kind == "membership":
        tpr = float(result["tpr_at_1%_fpr"])
        return Rating(_level(tpr, 0.02, 0.1), tpr, f"TPR {tpr:.1%} at 1% FPR, AUC {result['auc']:.3f}")
    raise ValueError(f"unknown scenario kind {kind!r}")


def figures(results: dict[str, dict[str, Any]], model: dict[str, Any]) -> dict[str, float]:
    """Every headline number under a flat key, e.g. ``evasion.pgd-linf.robust_accuracy@0.1``.

    These keys are what ``--fail-on`` tests.
    """
    out: dict[str, float] = {"model.clean_accuracy": float(model["clean_accuracy"])}
    for key, r in results.items():
        kind = r["kind"]
        if kind == "evasion":
            out[f"{key}.clean_accuracy"] = r["clean_accuracy"]
            for p in r["points"]:
                out[f"{key}.robust_accuracy@{p['eps']:g}"] = p["robust_accuracy"]
        elif kind == "backdoor":
            for name in ("asr", "clean_accuracy", "triggered_accuracy", "detector_recall", "detector_fpr"):
                if name in r:
                    out[f"{key}.{name}"] = r[name]
        elif kind == "poisoning":
            for p in r["points"]:
                out[f"{key}.accuracy@{p['fraction']:g}"] = p["accuracy"]
        elif kind == "membership":
            for name in ("auc", "tpr_at_0.1%_fpr", "tpr_at_1%_fpr", "balanced_accuracy"):
                out[f"{key}.{name}"] = r[name]
    return {k: float(v) for k, v in out.items()}


def matrix(results: dict[str, dict[str, Any]], configured: set[str]) -> list[dict[str, Any]]:
    """One entry per threat-matrix cell: undefended risk, best risk with a defence, and what is not assessed."""
    cells = []
    for (row, col), info in CELLS.items():
        family = info["family"]
        cell: dict[str, Any] = {"row": row, "column": col, "covers": info["covers"], "not_assessed": info["later"]}
        if family == "-":
            cell["status"] = "n/a"
        elif family is None or family not in configured:
            cell["status"] = "not assessed yet"
        else:
            mine = [r for r in results.values() if r["kind"] == family]
            undefended = [rate(r) for r in mine if r.get("defence") is None]
            defended = [(r["defence"], rate(r)) for r in mine if r.get("defence") is not None]
            worst = max(undefended, key=lambda x: x.value)
            cell.update(status="measured", level=worst.level, value=worst.value, text=worst.text)
            if defended:
                name, best = min(defended, key=lambda d: d[1].value)
                cell["defended"] = {"defence": name, "level": best.level, "value": best.value, "text": best.text}
        cells.append(cell)
    return cells


def defence_costs(results: dict[str, dict[str, Any]], model: dict[str, Any]) -> list[dict[str, Any]]:
    """For each defended scenario: what it bought (the family's risk figure) and what it cost."""
    rows = []
    for key, r in results.items():
        if r.get("defence") is None:
            continue
        base_key = key.split("+", 1)[0]
        base = results.get(base_key)
        if base is None:
            continue
        before, after = rate(base), rate(r)
        row: dict[str, Any] = {
            "scenario": key,
            "defence": r["defence"],
            "risk_before": before.text,
            "risk_after": after.text,
            "level_before": before.level,
            "level_after": after.level,
        }
        if r["kind"] == "evasion":
            row["clean_accuracy_before"] = base["clean_accuracy"]
            row["clean_accuracy_after"] = r["clean_accuracy"]
            row["seconds"] = r["train_seconds"]
            row["seconds_note"] = f"training time (standard training: {base['train_seconds']:.1f} s)"
        elif r["kind"] == "backdoor":
            row["clean_accuracy_before"] = r["before"]["clean_accuracy"]
            row["clean_accuracy_after"] = r["clean_accuracy"]
            row["seconds"] = r["defence_seconds"]
            row["seconds_note"] = "detection and retraining"
        elif r["kind"] == "membership":
            row["clean_accuracy_before"] = base["clean_accuracy"]
            row["clean_accuracy_after"] = r["clean_accuracy"]
            row["seconds"] = 0.0
            row["seconds_note"] = "inference-time wrapper; no training cost"
        rows.append(row)
    return rows


def recommendations(cells: list[dict[str, Any]], costs: list[dict[str, Any]]) -> list[str]:
    """Short recommended measures derived from the measured risk and defence costs."""
    out = []
    by_family = {c["covers"]: c for c in cells}
    for c in cells:
        if c.get("status") != "measured" or c["level"] == "low":
            continue
        d = c.get("defended")
        what = c["covers"]
        if d and LEVELS.index(d["level"]) < LEVELS.index(c["level"]):
            cost = next((x for x in costs if x["defence"] == d["defence"]), None)
            price = ""
            if cost is not None and "clean_accuracy_after" in cost:
                delta = 100 * (cost["clean_accuracy_after"] - cost["clean_accuracy_before"])
                price = f" at a clean-accuracy change of {delta:+.1f} points"
            out.append(
                f"{what}: {c['level']} risk ({c['text']}); {d['defence']} lowers it to {d['level']} "
                f"({d['text']}){price}."
            )
        elif d:
            out.append(
                f"{what}: {c['level']} risk ({c['text']}); the assessed defence {d['defence']} does not lower "
                "the level enough: combine measures or restrict the attacker's access."
            )
        else:
            out.append(
                f"{what}: {c['level']} risk ({c['text']}); no defence was assessed for it: add one to the config."
            )
    pending = [c["covers"] for c in by_family.values() if c["status"] == "not assessed yet"]
    if pending:
        out.append("Not assessed yet: " + "; ".join(pending) + ". Treat these as open risks.")
    return out
