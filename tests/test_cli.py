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
    summary = (out / "report.md").read_text().splitlines()
    assert len(summary) < 60 and any(line.startswith("| test-time inputs / integrity |") for line in summary)


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
    # label-only output forces the label-only attack, and the report says so
    mem = report["scenarios"]["membership.loss_threshold+label_only"]
    assert mem["attack"] == "label_only" and mem["fallback_reason"]
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
    # issue 10: fail early and say what is wrong
    "empty data": ('[data]\npath="empty.npz"\n[[membership]]\n', "no samples"),
    "labels 1..2": (
        '[data]\npath="shifted.npz"\n[model]\nfactory="net2:build"\n[[membership]]\n', "re-encode them as 0..1"
    ),
    "pickled weights": (
        '[data]\npath="d.npz"\n[model]\nfactory="net2:build"\nweights="w.pt"\n[[evasion]]\nattack="pgd"\neps=[0.1]\n',
        "is a pickle",
    ),
    "weights that do not fit": (
        '[data]\npath="d.npz"\n[model]\nfactory="net2:build"\nweights="w8.safetensors"\n[[evasion]]\nattack="pgd"\n'
        "eps=[0.1]\n",
        "size mismatch at 0.weight: file [8, 5], model [16, 5]",
    ),
    "feature layer": (
        '[data]\npath="d.npz"\n[model]\nfactory="net2:build"\nfeature_layer="fc9"\n[[membership]]\n', "no layer named"
    ),
    "csv header ambiguous": ('[data]\npath="mixed.csv"\n[[membership]]\n', "mixes names and numbers"),
    "jpeg on vectors": (
        '[data]\npath="d.npz"\n[[evasion]]\nattack="pgd"\neps=[0.1]\ndefences=["jpeg:75"]\n', "needs image inputs"
    ),
    "badnets on vectors": ('[data]\npath="d.npz"\n[[backdoor]]\nattack="badnets"\n', "not image-shaped"),
    "duplicate names": (
        '[data]\ndataset="digits"\n[[evasion]]\nname="a"\nattack="pgd"\neps=[0.1]\n[[evasion]]\nname="a"\n'
        'attack="fgsm"\neps=[0.1]\n',
        "same name",
    ),
}


class _Payload:
    """Unpickling this would create a file: the test proves sparring never unpickles weights."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _inputs(tmp_path: Path) -> None:
    import pickle

    import torch
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((30, 5)), y=np.arange(30) % 2)
    np.savez(tmp_path / "nan.npz", x=np.full((30, 5), np.nan), y=np.arange(30) % 2)
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 5)), y=np.zeros(0))
    np.savez(tmp_path / "shifted.npz", x=rng.random((30, 5)), y=np.arange(30) % 2 + 1)
    (tmp_path / "net2.py").write_text(
        "from torch import nn\n\n\ndef build():\n"
        "    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))\n"
    )
    (tmp_path / "w.pt").write_bytes(pickle.dumps(_Payload(tmp_path / "unpickled"), protocol=4))
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w8.safetensors"))
    (tmp_path / "mixed.csv").write_text("f1,2.0,label\n0.1,0.2,0\n0.3,0.4,1\n")


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_exit_2_nothing_written(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _inputs(tmp_path)
    text, message = BAD[case]
    out = tmp_path / "out"
    assert main(["assess", str(_write(tmp_path, text)), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not out.exists()
    assert not (tmp_path / "unpickled").exists()


def test_report_matches_its_shipped_schema(quick_report: tuple[Path, dict[str, Any]]) -> None:
    import jsonschema

    from sparring.assess.report import SCHEMA_VERSION, report_schema

    _, report = quick_report
    assert report["schema_version"] == SCHEMA_VERSION
    jsonschema.validate(report, report_schema())
    broken = {**report, "matrix": [{**report["matrix"][0], "status": "fine"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, report_schema())


def test_report_gives_intervals_covers_what_ran_and_prices_queries(quick_report: tuple[Path, dict[str, Any]]) -> None:
    _, report = quick_report
    ci = report["intervals"]["evasion.pgd-linf.robust_accuracy@0.1"]
    assert ci["low"] <= report["figures"]["evasion.pgd-linf.robust_accuracy@0.1"] <= ci["high"] and ci["n"] == 200
    privacy = next(c for c in report["matrix"] if c["row"] == "test-time inputs" and c["column"] == "privacy")
    assert "label_only" not in privacy["covers"]  # the label-only fallback ran only behind the defence
    costs = {c["scenario"]: c for c in report["defence_costs"]}
    assert costs["membership.loss_threshold+label_only"]["query_ms"] is not None
    assert all(v["verdict"] in ("adopt", "no help", "makes it worse") for v in report["verdicts"])
