"""The threat-matrix rule for a cell's risk with defences: per defended model, its worst case."""

from __future__ import annotations

from typing import Any

from sparring.assess.families.backdoor import BackdoorResult
from sparring.assess.family import ScenarioResult
from sparring.assess.report import matrix, recommendations


def backdoor(asr: float, defence: str | None = None, defence_type: str | None = None) -> BackdoorResult:
    return BackdoorResult(
        kind="backdoor",
        attack="badnets",
        defence=defence,
        defence_type=defence_type,
        model="small_cnn",
        n_poisoned=10,
        n_train=100,
        train_seconds=1.0,
        asr=asr,
        clean_accuracy=0.95,
        triggered_accuracy=1.0 - asr,
    )


def cell(results: dict[str, ScenarioResult]) -> dict[str, Any]:
    return next(c for c in matrix(results) if c["row"] == "training data" and c["column"] == "integrity")


def old_rule(results: dict[str, BackdoorResult]) -> float:
    """The rule before the redesign: per attack entry its best defence, then the worst over entries."""
    entries: dict[str, list[float]] = {}
    for key, r in results.items():
        if r.defence is not None and r.defence_type != "detector":
            entries.setdefault(key.split("+")[0], []).append(r.asr)
    return max(min(v) for v in entries.values())


def test_the_cell_is_the_best_defended_model_over_every_attack_run_against_it() -> None:
    results = {
        "backdoor.badnets": backdoor(1.0),
        "backdoor.badnets+fine_pruning": backdoor(0.05, "fine_pruning", "repair"),
        "backdoor.badnets+fine_tuning": backdoor(0.4, "fine_tuning", "repair"),
        "backdoor.blended": backdoor(0.8),
        "backdoor.blended+fine_tuning": backdoor(0.2, "fine_tuning", "repair"),
        "backdoor.blended+mixup": backdoor(0.08, "mixup", "training"),
        "backdoor.blended+strip": backdoor(0.01, "strip", "detector"),  # a filter is never credited
    }
    c = cell(dict(results))
    assert c["level"] == "high" and c["value"] == 1.0
    # The old rule mixed models: fine_pruning's badnets figure with mixup's blended figure (0.08),
    # a model nobody deploys. Per model: fine_pruning 0.05 (blended not run against it),
    # mixup 0.08 (badnets not run), fine_tuning 0.4 (both run).
    assert old_rule(results) == 0.08
    models = {m["defence"]: m for m in c["defended_models"]}
    assert set(models) == {"fine_pruning", "fine_tuning", "mixup"}
    assert models["fine_tuning"]["value"] == 0.4 and models["fine_tuning"]["worst_attack"] == "backdoor.badnets"
    assert models["fine_tuning"]["gaps"] == []
    assert c["defended"]["defence"] == "fine_pruning" and c["defended"]["value"] == 0.05
    assert c["defended"]["gaps"] == ["backdoor.blended"]
    advice = recommendations([c], [])[0]
    assert "fine_pruning lowers it to low" in advice and "backdoor.blended was not run against it" in advice


def test_a_defended_model_is_judged_by_its_worst_attack() -> None:
    results: dict[str, ScenarioResult] = {
        "backdoor.badnets": backdoor(1.0),
        "backdoor.badnets+fine_tuning": backdoor(0.05, "fine_tuning", "repair"),
        "backdoor.blended": backdoor(0.6),
        "backdoor.blended+fine_tuning": backdoor(0.55, "fine_tuning", "repair"),
    }
    c = cell(results)
    assert c["defended"]["defence"] == "fine_tuning" and c["defended"]["value"] == 0.55
    assert c["defended"]["level"] == "high" and c["defended"]["gaps"] == []
    assert "does not lower the level enough" in recommendations([c], [])[0]


def test_a_defence_that_makes_things_worse_is_still_shown() -> None:
    c = cell({"backdoor.badnets": backdoor(0.3), "backdoor.badnets+mixup": backdoor(0.7, "mixup", "training")})
    assert c["level"] == "medium" and c["defended"]["defence"] == "mixup" and c["defended"]["level"] == "high"
    assert "does not lower the level enough" in recommendations([c], [])[0]


def test_detectors_alone_leave_no_defended_model() -> None:
    c = cell({"backdoor.badnets": backdoor(1.0), "backdoor.badnets+strip": backdoor(0.0, "strip", "detector")})
    assert "defended" not in c
    assert "no defence was assessed" in recommendations([c], [])[0]


def test_verdicts_say_adopt_does_not_help_or_makes_it_worse_with_the_cost() -> None:
    from sparring.assess.report import verdict_line, verdicts

    def cost(defence: str, before: float, after: float, clean_after: float, ms: float | None) -> dict[str, Any]:
        return {
            "scenario": f"evasion.pgd+{defence}",
            "defence": defence,
            "risk_after": "robust accuracy ...",
            "level_before": "high",
            "level_after": "high",
            "value_before": before,
            "value_after": after,
            "query_ms": ms,
            "clean_accuracy_before": 0.9,
            "clean_accuracy_after": clean_after,
            "seconds": 12.0 if ms is None else 0.0,
            "row": "test-time inputs",
            "column": "integrity",
            "rated": True,
        }

    costs = [
        cost("noise:0.05", 0.39, 0.46, 0.9, 0.4),
        cost("adversarial_training", 0.6, 0.3, 0.881, None),
        cost("bit_depth:4", 0.6, 0.61, 0.9, 0.1),
    ]
    ranked = verdicts(costs)
    assert [(v["defence"], v["verdict"]) for v in ranked] == [
        ("adversarial_training", "adopt"),
        ("bit_depth:4", "no help"),
        ("noise:0.05", "makes it worse"),
    ]
    cell = {"covers": "evasion (pgd)"}
    lines = [verdict_line(cell, v) for v in ranked]
    assert "adopt adversarial_training" in lines[0] and "-1.9 pt clean accuracy, +12.0 s training" in lines[0]
    assert "does not help" in lines[1] and "+0.10 ms per query" in lines[1]
    assert "makes it worse — do not adopt" in lines[2]
    assert "60.0 % → 30.0 %" in lines[0] and "tolerance" not in lines[0]
    # a level crossed by less than the tolerance: still "does not help", and the line says why
    near = verdicts([{**cost("dp_sgd:4", 0.034, 0.016, 0.6, None), "level_before": "medium", "level_after": "low"}])
    assert near[0]["verdict"] == "no help"
    assert "medium → low, 3.4 % → 1.6 %, within the 2-point tolerance" in verdict_line(cell, near[0])


def test_a_change_the_samples_cannot_resolve_does_not_count_as_help() -> None:
    from sparring.assess.report import verdict_line, verdicts
    from sparring.metrics import rate_interval

    def row(defence: str, before: float, after: float, n: int | None) -> dict[str, Any]:
        return {
            "scenario": f"membership.rmia+{defence}",
            "defence": defence,
            "risk_after": "TPR at 1 % FPR ...",
            "level_before": "medium",
            "level_after": "low",
            "value_before": before,
            "value_after": after,
            "interval_before": rate_interval(before, n).as_dict() if n else None,
            "interval_after": rate_interval(after, n).as_dict() if n else None,
            "query_ms": 0.1,
            "clean_accuracy_before": 0.9,
            "clean_accuracy_after": 0.9,
            "seconds": 0.0,
            "row": "deployed model",
            "column": "confidentiality",
            "rated": True,
        }

    # 3.4 % -> 1.2 % of 300 members: 2.2 points, past the 2-point floor but inside the chance band
    noisy = verdicts([row("top_k:1", 0.034, 0.012, 300)])[0]
    assert noisy["verdict"] == "no help" and noisy["margin"] > 0.022
    assert "chance variation (±" in verdict_line({"covers": "membership (rmia)"}, noisy)
    # the same figures without intervals fall back to the 2-point tolerance
    assert verdicts([row("top_k:1", 0.034, 0.012, None)])[0]["verdict"] == "adopt"
    # a change far outside the band still counts, either way
    assert verdicts([row("dp_sgd:1", 0.30, 0.02, 500)])[0]["verdict"] == "adopt"
    assert verdicts([row("bad", 0.02, 0.30, 500)])[0]["verdict"] == "makes it worse"
