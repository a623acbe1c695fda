"""End-to-end evasion assessment: every attack kind, every defence kind, the worst case and the flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import skops.io
import torch
from sklearn.ensemble import GradientBoostingClassifier

from sparring.assess import assess
from sparring.assess.config import parse_config
from sparring.data import breast_cancer, digits
from sparring.errors import ConfigError
from sparring.models import build, export_onnx
from sparring.train import TrainConfig, fit


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = parse_config(
        {
            "data": {"dataset": "digits", "test_fraction": 0.25},
            "model": {"architecture": "small_cnn", "epochs": 8},
            "evasion": [
                {
                    "attack": "pgd",
                    "eps": [0.1, 0.2],
                    "steps": 10,
                    "samples": 60,
                    "defences": ["bit_depth:2", "noise:0.1", "feature_squeezing"],
                    "eot_samples": 4,
                },
                {"attack": "square", "eps": [0.2], "max_queries": 100, "samples": 60},
                {"attack": "transfer", "eps": [0.2], "samples": 60},
            ],
            "transfer_learning": [
                {"eps": [0.2], "steps": 10, "samples": 60, "teacher_epochs": 4, "student_epochs": 2,
                 "defences": ["fine_tune"]}
            ],
        }
    )
    out = tmp_path_factory.mktemp("evasion") / "report"
    result, failed = assess(cfg, out, log=quiet)
    assert not failed and (out / "report.html").is_file()
    result["html"] = (out / "report.html").read_text()
    return result


def test_transformation_defence_shows_naive_and_adaptive_figures(report: dict[str, Any]) -> None:
    f = report["figures"]
    key = "evasion.pgd-linf+bit_depth:2"
    # Quantisation hides the gradient: the naive attack sees a large gain, BPDA takes it back,
    # and the reported (worst-case) figure is never above the adaptive one.
    assert f[f"{key}.naive_robust_accuracy@0.2"] > f["evasion.pgd-linf.robust_accuracy@0.2"] + 0.3
    assert f[f"{key}.adaptive_robust_accuracy@0.2"] < f[f"{key}.naive_robust_accuracy@0.2"] - 0.3
    assert f[f"{key}.robust_accuracy@0.2"] <= f[f"{key}.adaptive_robust_accuracy@0.2"]
    flags = {(x["model"], x["code"]) for x in report["flags"]}
    assert ("bit_depth:2", "zero-gradients") in flags
    assert ("noise:0.1", "randomised-model") in flags
    assert not [x for x in report["flags"] if x["model"] == "standard" and x["severity"] != "info"]
    assert "naive / adaptive" in report["html"] and "Reliability of the evasion evaluation" in report["html"]


def test_detector_and_black_box_results(report: dict[str, Any]) -> None:
    sc = report["scenarios"]
    det = sc["evasion.pgd-linf+feature_squeezing"]["detection"]
    assert det["adaptive"] and 0.0 <= det["fpr"] <= 0.2
    for p in det["points"]:
        assert p["robust_accuracy_with_detector"] <= p["naive_robust_accuracy_with_detector"]
    square = sc["evasion.square-linf"]["points"][0]
    curve = square["query_curve"]
    assert curve["budgets"][-1] <= 100 and curve["success"] == sorted(curve["success"])
    assert square["attack_robust_accuracy"] < sc["evasion.square-linf"]["clean_accuracy"] - 0.1
    transfer = sc["evasion.transfer-linf"]["points"][0]
    assert transfer["surrogate_success_rate"] > 1.0 - transfer["robust_accuracy"]


def test_worst_case_is_no_better_than_any_attack(report: dict[str, Any]) -> None:
    worst = {(w["model"], w["norm"]): w for w in report["worst_case"]}
    std = worst[("standard", "linf")]
    assert set(std["attacks"]) == {"pgd", "square", "transfer"}
    at = {p["eps"]: p["robust_accuracy"] for p in std["points"]}
    for key in ("evasion.pgd-linf", "evasion.square-linf", "evasion.transfer-linf"):
        for p in report["scenarios"][key]["points"]:
            assert at[p["eps"]] <= p["robust_accuracy"] + 1e-6
    assert "Worst case over every attack" in report["html"]


def test_transfer_learning_scenario(report: dict[str, Any]) -> None:
    sc = report["scenarios"]["transfer_learning.pgd-linf"]
    assert sc["model"] == "student" and sc["black_box"]
    p = sc["points"][0]
    assert 0.0 < p["transfer_success_rate"] <= p["surrogate_success_rate"] + 0.2
    assert "transfer_learning.pgd-linf+fine_tune" in report["scenarios"]


def test_black_box_attacks_on_sklearn_and_onnx_models(tmp_path: Path) -> None:
    data = breast_cancer()
    train, _ = data.split(0.25, seed=0)
    est = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(train.x.numpy(), train.y.numpy())
    skops.io.dump(est, tmp_path / "gb.skops")
    model = {"sklearn": str(tmp_path / "gb.skops"), "trusted_types": ["sklearn.tree._tree.Tree"]}
    base = {"data": {"dataset": "breast_cancer", "test_fraction": 0.25}, "model": model}
    with pytest.raises(ConfigError, match="pgd needs gradients access"):
        assess(parse_config({**base, "evasion": [{"attack": "pgd", "eps": 0.1}]}), tmp_path / "no", log=quiet)
    cfg = parse_config(
        {**base, "evasion": [{"attack": "hopskipjump", "norm": "l2", "eps": [0.5], "max_queries": 300, "samples": 30}]}
    )
    rep, _ = assess(cfg, tmp_path / "gb", log=quiet)
    assert rep["figures"]["evasion.hopskipjump-l2.robust_accuracy@0.5"] < rep["model"]["clean_accuracy"]

    d = digits()
    tr, _ = d.split(0.25, seed=0)
    module = fit(build("mlp", tr.input_shape, 10, seed=0), tr, TrainConfig(epochs=5, progress=False)).model
    export_onnx(module, tr.input_shape, tmp_path / "mlp.onnx")
    cfg = parse_config(
        {
            "data": {"dataset": "digits", "test_fraction": 0.25},
            "model": {"onnx": str(tmp_path / "mlp.onnx")},
            "evasion": [{"attack": "square", "eps": [0.2], "max_queries": 100, "samples": 30}],
        }
    )
    rep, _ = assess(cfg, tmp_path / "onnx", log=quiet)
    assert rep["figures"]["evasion.square-linf.robust_accuracy@0.2"] < rep["model"]["clean_accuracy"] - 0.2
    assert torch.isfinite(torch.tensor(rep["model"]["clean_accuracy"]))


def test_white_box_attacks_and_the_ensemble_from_a_config(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "data": {"dataset": "digits", "test_fraction": 0.25},
            "model": {"architecture": "mlp", "epochs": 10},
            "evasion": [
                {"attack": "pgd", "eps": [0.1], "steps": 10, "samples": 40},
                {"attack": "apgd", "eps": [0.1], "steps": 10, "samples": 100},
                {"attack": "cw-l2", "norm": "l2", "eps": [1.0], "steps": 30, "samples": 40},
                {"attack": "autoattack", "version": "fast", "eps": [0.1], "samples": 40, "sanity_checks": False},
            ],
        }
    )
    rep, _ = assess(cfg, tmp_path / "wb", log=quiet)
    f, clean = rep["figures"], rep["model"]["clean_accuracy"]
    for key in ("apgd-linf.robust_accuracy@0.1", "cw-l2-l2.robust_accuracy@1", "autoattack-linf.robust_accuracy@0.1"):
        assert f[f"evasion.{key}"] < clean - 0.2, key
    members = rep["scenarios"]["evasion.autoattack-linf"]["points"][0]["members"]
    assert [m["name"] for m in members] == ["APGD-CE", "APGD-T", "Square"]
    assert f["evasion.worst_case.standard-linf.robust_accuracy@0.1"] <= min(
        f["evasion.pgd-linf.robust_accuracy@0.1"], f["evasion.autoattack-linf.robust_accuracy@0.1"]
    )
