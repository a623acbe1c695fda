"""The threat-matrix rule for a cell's risk with defences."""

from __future__ import annotations

from typing import Any

from sparring.assess.report import matrix, recommendations


def backdoor(asr: float, defence: str | None = None, defence_type: str | None = None) -> dict[str, Any]:
    return {
        "kind": "backdoor",
        "attack": "badnets",
        "defence": defence,
        "defence_type": defence_type,
        "asr": asr,
        "clean_accuracy": 0.95,
    }


def cell(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return next(c for c in matrix(results, {"backdoor"}) if c["row"] == "training data" and c["column"] == "integrity")


def test_cell_with_defences_is_the_worst_entry_after_its_best_defence() -> None:
    results = {
        "backdoor.badnets": backdoor(1.0),
        "backdoor.badnets+strip": backdoor(0.9, "strip", "detector"),  # a filter is not a mitigation here
        "backdoor.badnets+fine_pruning": backdoor(0.05, "fine_pruning", "repair"),
        "backdoor.badnets+unlearning": backdoor(0.3, "unlearning", "repair"),
        "backdoor.blended": backdoor(0.6),  # no defence assessed
    }
    c = cell(results)
    assert c["level"] == "high" and c["value"] == 1.0
    assert c["defended"]["undefended_entry"] == "backdoor.blended" and c["defended"]["value"] == 0.6
    assert "no defence was assessed against it" in recommendations([c], [])[0]
    del results["backdoor.blended"]
    assert cell(results)["defended"] == {
        "defence": "fine_pruning",
        "level": "low",
        "value": 0.05,
        "text": "ASR 5.0%, clean accuracy 95.0%",
    }


def test_a_defence_that_makes_things_worse_is_still_the_entrys_figure() -> None:
    c = cell({"backdoor.badnets": backdoor(0.3), "backdoor.badnets+mixup": backdoor(0.7, "mixup", "training")})
    assert c["level"] == "medium" and c["defended"]["defence"] == "mixup" and c["defended"]["level"] == "high"
    assert "does not lower the level enough" in recommendations([c], [])[0]
