"""The assessment report as data: flat figures, the threat matrix with risk levels, defence costs.

:mod:`sparring.assess.html` renders this dict; ``report.json`` is this dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Rows and columns of the threat matrix (DESIGN.md).
ROWS = ("test-time inputs", "training data")
COLUMNS = ("integrity", "availability", "privacy")

#: What each cell covers; the family key is the scenario kind sparring measures there now.
CELLS: dict[tuple[str, str], dict[str, Any]] = {
    ("test-time inputs", "integrity"): {
        "family": "evasion",
        "covers": "evasion (FGSM, PGD, APGD, CW, Square, HopSkipJump, transfer, worst-case ensemble)",
        "later": "",
    },
    ("test-time inputs", "availability"): {"family": None, "covers": "sponge examples (energy, latency)", "later": ""},
    ("test-time inputs", "privacy"): {
        "family": "membership",
        "covers": "membership inference",
        "later": "model stealing, model inversion, attribute and property inference",
    },
    ("training data", "integrity"): {
        "family": "backdoor",
        "covers": "backdoors (BadNets, blended, all-to-all, hidden trigger, backdoored teacher), clean-label "
        "targeted poisoning, federated model replacement",
        "later": "",
    },
    ("training data", "availability"): {
        "family": "poisoning",
        "covers": "availability poisoning (label flips, gradient poisoning of linear models), federated label flips",
        "later": "",
    },
    ("training data", "privacy"): {"family": "-", "covers": "no attack family in this cell", "later": ""},
}

LEVELS = ("low", "medium", "high")

#: Result kinds rated in each cell's family, besides the family itself.
FAMILY_OF_KIND = {"clean_label": "backdoor", "federated": "backdoor", "transfer_learning": "evasion"}

#: Defence types that give a verdict or flag inputs without lowering the measured risk by
#: themselves; never put forward as a cell's best defence.
NOT_MITIGATIONS = ("detector", "inspection")


def family_of(result: dict[str, Any]) -> str:
    """The threat-matrix family a result is rated in (federated label flips are availability poisoning)."""
    kind = str(result["kind"])
    if kind == "federated" and result.get("attack") == "label_flip":
        return "poisoning"
    return FAMILY_OF_KIND.get(kind, kind)


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
    - backdoor, federated model replacement: attack success rate (high >= 0.5, medium >= 0.1)
    - clean_label: share of targets misclassified as intended (high >= 0.5, medium >= 0.1)
    - poisoning, federated label flips: relative accuracy drop at the largest poison
      fraction (high >= 0.2, medium >= 0.05)
    - membership: TPR at 1 % FPR (high >= 0.1, medium >= 0.02; chance is 0.01)
    """
    kind = result["kind"]
    if kind == "evasion":
        eps = float(result["reference_eps"])
        robust = _at(result["points"], "robust_accuracy", "eps", eps)
        what = "robust accuracy"
        if "detection" in result:  # a detector defends a sample by flagging its adversarial example
            robust = _at(result["detection"]["points"], "robust_accuracy_with_detector", "eps", eps)
            what = "robust accuracy with the detector"
        clean = float(result["clean_accuracy"])
        loss = max(0.0, 1.0 - robust / clean) if clean > 0 else 1.0
        return Rating(_level(loss, 0.2, 0.5), loss, f"{what} {robust:.1%} at eps {eps:g} (clean {clean:.1%})")
    if kind == "backdoor":
        asr = float(result["asr"])
        return Rating(_level(asr, 0.1, 0.5), asr, f"ASR {asr:.1%}, clean accuracy {result['clean_accuracy']:.1%}")
    if kind == "clean_label":
        hit = float(result["success_rate"])
        return Rating(
            _level(hit, 0.1, 0.5),
            hit,
            f"{result['attack']} ({result['params']['knowledge']}) succeeds on {hit:.0%} of targets",
        )
    if kind == "federated" and result["attack"] == "model_replacement":
        asr = float(result["asr"])
        return Rating(
            _level(asr, 0.1, 0.5),
            asr,
            f"federated ASR {asr:.1%} after replacement, clean accuracy {result['clean_accuracy']:.1%}",
        )
    if kind == "federated":  # label-flipping clients: availability
        clean, acc = float(result["reference_accuracy"]), float(result["clean_accuracy"])
        drop = max(0.0, (clean - acc) / clean) if clean > 0 else 0.0
        who = f"{result['params']['malicious']} label-flipping client(s) of {result['params']['clients']}"
        return Rating(_level(drop, 0.05, 0.2), drop, f"federated accuracy {acc:.1%} with {who} (clean {clean:.1%})")
    if kind == "poisoning":
        last = result["points"][-1]
        clean = float(result["clean_accuracy"])
        drop = max(0.0, (clean - float(last["accuracy"])) / clean) if clean > 0 else 0.0
        return Rating(
            _level(drop, 0.05, 0.2),
            drop,
            f"{result['victim']} accuracy {last['accuracy']:.1%} with {last['fraction']:.0%} poisoned by "
            f"{result['attack']} (clean {clean:.1%})",
        )
    if kind == "membership":
        tpr = float(result["tpr_at_1%_fpr"])
        return Rating(_level(tpr, 0.02, 0.1), tpr, f"TPR {tpr:.1%} at 1% FPR, AUC {result['auc']:.3f}")
    raise ValueError(f"unknown scenario kind {kind!r}")


#: Scalar figures of training-data results copied into :func:`figures` when present.
HEADLINES = (
    "asr",
    "clean_accuracy",
    "triggered_accuracy",
    "detector_recall",
    "detector_fpr",
    "filter_tpr",
    "filter_frr",
    "max_anomaly_index",
    "clean_model_anomaly_index",
    "success_rate",
    "asr_after_rounds",
)


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
                for extra in ("naive_robust_accuracy", "adaptive_robust_accuracy"):
                    if extra in p:
                        out[f"{key}.{extra}@{p['eps']:g}"] = p[extra]
            for p in r.get("detection", {}).get("points", []):
                out[f"{key}.detection_rate@{p['eps']:g}"] = p["detection_rate"]
        elif kind in ("backdoor", "clean_label", "federated"):
            for name in HEADLINES:
                if name in r:
                    out[f"{key}.{name}"] = r[name]
            for p in r.get("learning_curve", []):
                out[f"{key}.asr@beta={p['beta']:g},wd={p['weight_decay']:g}"] = p["asr"]
        elif kind == "poisoning":
            for p in r["points"]:
                out[f"{key}.accuracy@{p['fraction']:g}"] = p["accuracy"]
                if "random_accuracy" in p:
                    out[f"{key}.random_flip_accuracy@{p['fraction']:g}"] = p["random_accuracy"]
        elif kind == "membership":
            for name in ("auc", "tpr_at_0.1%_fpr", "tpr_at_1%_fpr", "balanced_accuracy"):
                out[f"{key}.{name}"] = r[name]
    return {k: float(v) for k, v in out.items()}


def _defended(results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The cell's risk with defences: per attack entry its best defence, then the worst over entries.

    An entry with no mitigating defence keeps its undefended risk, so the cell never looks
    safer than its least defended attack; an entry's best defence counts even when it makes
    things worse. A detector or an inspection is never a mitigation
    here: it flags inputs or gives a verdict, judged by its own figures (see the sections).
    None when no entry has a mitigating defence.
    """
    entries: dict[str, list[tuple[str | None, Rating]]] = {}
    for key, r in results.items():
        if r.get("defence") is None or r.get("defence_type") not in NOT_MITIGATIONS:
            entries.setdefault(key.split("+", 1)[0], []).append((r.get("defence"), rate(r)))
    if not any(d is not None for options in entries.values() for d, _ in options):
        return None
    best = {
        base: min([o for o in options if o[0] is not None] or options, key=lambda o: o[1].value)
        for base, options in entries.items()
    }
    base, (name, rating) = max(best.items(), key=lambda b: b[1][1].value)
    out = {"defence": name or "none", "level": rating.level, "value": rating.value, "text": rating.text}
    if name is None:
        out["undefended_entry"] = base
    return out


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
            # The transfer-learning case attacks a teacher and student sparring built, not the model
            # under assessment, so it is drawn in the evasion section but not rated here.
            mine = {
                k: r for k, r in results.items() if family_of(r) == family and r.get("case") != "transfer_learning"
            }
            undefended = [rate(r) for r in mine.values() if r.get("defence") is None]
            if not undefended:
                cell["status"] = "not assessed yet"
                cells.append(cell)
                continue
            worst = max(undefended, key=lambda x: x.value)
            cell.update(status="measured", level=worst.level, value=worst.value, text=worst.text)
            defended = _defended(mine)
            if defended is not None:
                cell["defended"] = defended
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
            if r.get("defence_type") == "training":
                row["seconds"] = r["train_seconds"]
                row["seconds_note"] = f"training time (standard training: {base['train_seconds']:.1f} s)"
            else:
                row["seconds"] = 0.0
                row["seconds_note"] = "inference-time wrapper; no training cost"
            if "detection" in r:
                row["seconds_note"] += f"; flags {r['detection']['fpr']:.1%} of clean inputs"
        elif "before" in r:  # training-data defences state their own cost
            row["clean_accuracy_before"] = r["before"]["clean_accuracy"]
            row["clean_accuracy_after"] = r.get("cost_clean_accuracy", r["clean_accuracy"])
            row["seconds"] = r["defence_seconds"]
            row["seconds_note"] = r["cost_note"]
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
        if d and "undefended_entry" in d:
            out.append(
                f"{what}: {c['level']} risk ({c['text']}); with the assessed defences, {d['undefended_entry']} "
                f"remains at {d['level']} ({d['text']}) and no defence was assessed against it: add one to the "
                "config."
            )
        elif d and LEVELS.index(d["level"]) < LEVELS.index(c["level"]):
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


def worst_case(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and norm, robust accuracy as the worst case per sample over every attack run on it.

    AutoAttack's rule (Croce & Hein, ICML 2020): a sample counts as robust at eps only if
    no attack of that norm found an adversarial example within eps. Only samples every
    attack of the group was run on are counted.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results.values():
        if r["kind"] == "evasion" and "broken_at" in r:
            groups.setdefault((r["model"], r["norm"]), []).append(r)
    out = []
    for (model, norm), rs in groups.items():
        common = set(rs[0]["sample_index"])
        for r in rs[1:]:
            common &= set(r["sample_index"])
        if not common:
            continue
        grid = sorted({float(p["eps"]) for r in rs for p in r["points"]})
        first: dict[int, float] = {}  # sample -> smallest eps at which any attack broke it
        for r in rs:
            for sample, at in zip(r["sample_index"], r["broken_at"], strict=True):
                if sample in common and at >= 0:
                    eps = float(r["points"][at]["eps"])
                    first[sample] = min(eps, first.get(sample, eps))
        n = len(common)
        points = [{"eps": e, "robust_accuracy": 1.0 - sum(v <= e for v in first.values()) / n} for e in grid]
        attacks = sorted({r["attack"] for r in rs})
        out.append({"model": model, "norm": norm, "samples": n, "attacks": attacks, "points": points})
    return out


def evaluation_flags(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every sanity-check flag: those the scenarios raised, and those read off the curves.

    Curve checks (Carlini et al., "On Evaluating Adversarial Robustness", 2019): eps 0 must
    give clean accuracy, robust accuracy must not rise with eps, and a black-box attack
    beating every white-box one at the same eps points to gradient masking.
    """
    from sparring.attacks.evasion.sanity import curve_flags

    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    by_model: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for key, r in results.items():
        if r["kind"] != "evasion":
            continue
        for f in r.get("flags", []):  # the same finding on the same model is listed once
            same = seen.get((r["model"], f["code"], f["message"]))
            if same is None:
                seen[(r["model"], f["code"], f["message"])] = {"scenario": key, "model": r["model"], **f}
                out.append(seen[(r["model"], f["code"], f["message"])])
            else:
                same["scenario"] += f", {key}"
        by_model.setdefault((r["model"], r["norm"]), []).append((key, r))
    for (model, _norm), items in by_model.items():
        curves = {
            key: [(float(p["eps"]), float(p.get("attack_robust_accuracy", p["robust_accuracy"]))) for p in r["points"]]
            for key, r in items
        }
        black_box = {key for key, r in items if r.get("black_box")}
        clean = float(items[0][1]["clean_accuracy"])
        for f in curve_flags(clean, curves, black_box):
            out.append({"scenario": ", ".join(k for k, _ in items), "model": model, **asdict(f)})
    return out
