"""End-to-end: `sparring assess` on examples/quick.toml, resume, gates, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparring.cli import main

QUICK = Path(__file__).resolve().parents[1] / "examples" / "quick.toml"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("quick") / "report"
    assert main(["assess", str(QUICK), "--out", str(out), "--quiet"]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_report_covers_the_threat_matrix(quick_report: tuple[Path, dict[str, Any]]) -> None:
    out, report = quick_report
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4  # curves, backdoor, poisoning, ROC, examples
    cells = {(c["row"], c["column"]): c for c in report["matrix"]}
    for cell in [
        ("test-time inputs", "availability"),
        ("test-time inputs", "integrity"),
        ("training data", "integrity"),
        ("training data", "availability"),
        ("test-time inputs", "privacy"),
    ]:
        assert cells[cell]["status"] == "measured"
        assert cells[cell]["level"] in ("low", "medium", "high")
    assert all(c["status"] != "not assessed yet" for c in report["matrix"])


def test_attacks_and_defences_change_the_figures(quick_report: tuple[Path, dict[str, Any]]) -> None:
    _, report = quick_report
    f = report["figures"]
    clean = f["model.clean_accuracy"]
    assert clean > 0.85
    # evasion lowers accuracy; adversarial training raises robust accuracy
    assert f["evasion.pgd-linf.robust_accuracy@0.1"] < clean - 0.3
    assert f["evasion.pgd-linf+adversarial_training.robust_accuracy@0.1"] > f["evasion.pgd-linf.robust_accuracy@0.1"]
    # backdoor works; the defence lowers ASR
    assert f["backdoor.badnets.asr"] > 0.8
    assert f["backdoor.badnets+activation_clustering.asr"] < f["backdoor.badnets.asr"]
    # label flips cost accuracy
    assert f["poisoning.label_flip.accuracy@0.7"] < clean - 0.05
    # label-only output forces the gap attack, and the report says so
    mem = report["scenarios"]["membership.loss_threshold+label_only"]
    assert mem["attack"] == "gap" and mem["fallback_reason"]
    costs = {c["scenario"]: c for c in report["defence_costs"]}
    assert costs["evasion.pgd-linf+adversarial_training"]["seconds"] > 0


def test_rerun_resumes_from_stored_results(
    quick_report: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = quick_report
    assert main(["assess", str(QUICK), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("reusing stored result") == len(report["scenarios"])
    again = json.loads((out / "report.json").read_text())
    assert again["figures"] == report["figures"]


def test_fail_on_gates_exit_code(quick_report: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    out, report = quick_report
    value = report["figures"]["evasion.pgd-linf.robust_accuracy@0.1"]
    args = ["assess", str(QUICK), "--out", str(out), "--quiet", "--fail-on"]
    assert main([*args, f"evasion.pgd-linf.robust_accuracy@0.1<{value + 0.01}"]) == 1
    assert "FAILED" in capsys.readouterr().err
    assert main([*args, f"evasion.pgd-linf.robust_accuracy@0.1<{value - 0.01}"]) == 0
    assert main([*args, "no_such_figure<1"]) == 2
    assert "matches no figure" in capsys.readouterr().err


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


BAD = {
    "malformed": ("[data\n", "not valid TOML"),
    "unknown attack": ('[data]\ndataset="digits"\n[[evasion]]\nattack="zoo"\neps=[0.1]\n', "unknown evasion attack"),
    "unknown dataset": ('[data]\ndataset="imagenet"\n[[membership]]\n', "unknown dataset"),
    "negative eps": ('[data]\ndataset="digits"\n[[evasion]]\nattack="pgd"\neps=[-1]\n', "eps must be >= 0"),
    "fraction": ('[data]\ndataset="digits"\n[[backdoor]]\npoison_fraction=2\n', "poison_fraction"),
    "missing data file": ('[data]\npath="nope.npz"\n[[membership]]\n', "data file not found"),
    "shape mismatch": ('[data]\npath="d.npz"\n[model]\narchitecture="small_cnn"\n[[membership]]\n', "image inputs"),
    "nan inputs": ('[data]\npath="nan.npz"\n[[membership]]\n', "NaN"),
    "backdoor target": ('[data]\ndataset="breast_cancer"\n[[backdoor]]\ntarget=5\n', "does not exist"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_exit_2_nothing_written(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((30, 5)), y=np.arange(30) % 2)
    np.savez(tmp_path / "nan.npz", x=np.full((30, 5), np.nan), y=np.arange(30) % 2)
    text, message = BAD[case]
    out = tmp_path / "out"
    assert main(["assess", str(_write(tmp_path, text)), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not out.exists()
