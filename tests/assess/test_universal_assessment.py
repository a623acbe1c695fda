"""The [[universal]] family end to end: universal perturbations and patches in the evasion cell, with their defences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparring.assess import assess
from sparring.assess.config import parse_config
from sparring.assess.families import BY_KEY
from sparring.errors import ConfigError


def quiet(_: str) -> None:
    pass


BASE: dict[str, Any] = {"data": {"dataset": "digits", "test_fraction": 0.25}, "model": {"epochs": 8}}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = parse_config(
        {
            **BASE,
            "evasion": [{"attack": "pgd", "eps": [0.1, 0.2], "steps": 10, "samples": 100}],
            "universal": [
                {"attack": "uap", "eps": [0.1, 0.3], "epochs": 2, "craft_samples": 500, "samples": 100},
                {
                    "attack": "patch",
                    "area": [0.05, 0.25],
                    "steps": 60,
                    "craft_samples": 500,
                    "samples": 100,
                    "defences": ["derandomized_smoothing", "strip"],
                },
            ],
            "derandomized_smoothing": {"size": 2, "epochs": 8},
        }
    )
    out = tmp_path_factory.mktemp("universal") / "report"
    result, failed = assess(cfg, out, log=quiet)
    assert not failed
    result["html"] = (out / "report.html").read_text()
    return result


def test_universal_perturbation_and_patch_lower_held_out_accuracy(report: dict[str, Any]) -> None:
    f = report["figures"]
    clean = f["universal.uap-linf.clean_accuracy"]
    assert clean > 0.9
    assert f["universal.uap-linf.robust_accuracy@0.3"] < clean - 0.3
    assert f["universal.uap-linf.fooling_rate@0.3"] > 0.3
    # a larger patch does more, and the curve never rises
    assert f["universal.patch.robust_accuracy@0.25"] < f["universal.patch.robust_accuracy@0.05"] - 0.1
    assert f["universal.patch.robust_accuracy@0.25"] < clean - 0.2
    scenario = report["scenarios"]["universal.patch"]
    assert scenario["measure"] == "area" and scenario["norm"] == "patch"
    assert [u["size"] for u in scenario["universal"]] == [4 / 64, 16 / 64]  # whole-pixel squares


def test_they_count_in_the_evasion_cell_and_its_worst_case(report: dict[str, Any]) -> None:
    cell = next(c for c in report["matrix"] if (c["row"], c["column"]) == ("test-time inputs", "integrity"))
    assert "uap" in cell["covers"] and "patch" in cell["covers"]
    worst = {(w["model"], w["norm"]): w for w in report["worst_case"]}
    assert worst[("standard", "linf")]["attacks"] == ["pgd", "uap"]
    # the worst case is never above either attack alone
    f = report["figures"]
    w = {p["eps"]: p["robust_accuracy"] for p in worst[("standard", "linf")]["points"]}
    assert w[0.1] <= min(f["evasion.pgd-linf.robust_accuracy@0.1"], f["universal.uap-linf.robust_accuracy@0.1"]) + 1e-6
    assert ("standard", "patch") in worst
    worst_patch = f["evasion.worst_case.standard-patch.robust_accuracy@0.25"]
    assert worst_patch == pytest.approx(f["universal.patch.robust_accuracy@0.25"], abs=1e-6)


def test_smoothing_reports_certified_naive_and_adaptive_figures(report: dict[str, Any]) -> None:
    key = "universal.patch+derandomized_smoothing"
    r = report["scenarios"][key]
    f = report["figures"]
    assert r["defence_type"] == "training" and "through the vote" in r["adaptive"]
    for p, u in zip(r["points"], r["universal"], strict=True):
        # honest figure: per input the worse of the naive and the adaptive patch
        assert p["robust_accuracy"] <= min(p["naive_robust_accuracy"], p["adaptive_robust_accuracy"]) + 1e-9
        assert 0.0 <= u["certified_accuracy"] <= r["clean_accuracy"]
    assert f"{key}.certified_accuracy@0.05" in f
    cost = next(c for c in report["defence_costs"] if c["scenario"] == key)
    assert cost["seconds"] > 0 and cost["clean_accuracy_after"] == r["clean_accuracy"]


def test_strip_is_judged_against_the_patch_and_never_credited(report: dict[str, Any]) -> None:
    r = report["scenarios"]["universal.patch+strip"]
    assert r["defence_type"] == "detector" and len(r["detection"]["points"]) == 2
    assert 0.0 <= r["detection"]["fpr"] <= 0.2
    cell = next(c for c in report["matrix"] if (c["row"], c["column"]) == ("test-time inputs", "integrity"))
    assert all(m["defence"] != "strip" for m in cell.get("defended_models", []))


def test_the_report_shows_the_block(report: dict[str, Any]) -> None:
    html = report["html"]
    assert "Universal perturbations and patches" in html
    assert "<h4>uap-linf</h4>" in html and "<h4>patch</h4>" in html
    block = html.split("Universal perturbations and patches", 1)[1].split("<h2>", 1)[0]
    assert block.count("<img") == 6  # per entry: perturbation or patch, an input carrying it, the curves


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"attack": "patch", "area": [0.0]}, "strictly between 0 and 1"),
        ({"attack": "patch", "area": [1.0]}, "strictly between 0 and 1"),
        ({"attack": "patch", "eps": [0.1]}, "swept over 'area'"),
        ({"attack": "uap", "area": [0.1]}, "swept over 'eps'"),
        ({"attack": "uap-deepfool", "eps": [0.1], "target": 2}, "untargeted"),
        ({"attack": "sticker", "eps": [0.1]}, "unknown universal attack"),
        ({"attack": "uap", "eps": [0.1], "defences": ["jpeg:75"]}, "unknown universal evasion defence"),
    ],
)
def test_bad_entries_get_one_clear_line(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, "universal": [entry]})


def test_a_patch_on_tabular_data_is_refused_before_anything_runs(tmp_path: Path) -> None:
    cfg = parse_config({"data": {"dataset": "breast_cancer"}, "universal": [{"attack": "patch", "area": [0.1]}]})
    with pytest.raises(ConfigError, match=r"universal\[0\].*image inputs"):
        assess(cfg, tmp_path / "out", log=quiet)
    assert not (tmp_path / "out" / "report.html").exists()


def test_the_family_is_listed() -> None:
    lines = dict(BY_KEY["universal"].catalogue())
    assert lines["attacks"] == ["uap", "uap-deepfool", "patch"]
    assert "derandomized_smoothing" in lines["defences (training)"]
