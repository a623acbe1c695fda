"""The membership family: reference-model attacks from the config, one shared artefact, the strongest attack rated."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Any

import pytest

from sparring.assess import assess, parse_config
from sparring.assess.families.membership import FAMILY, RESOLVES_1PCT, MembershipScenarioResult
from sparring.assess.prepare import prepare
from sparring.cli import main
from sparring.errors import ConfigError

BASE: dict[str, Any] = {"data": {"dataset": "digits"}, "model": {"architecture": "mlp", "epochs": 20}}


def config(*entries: dict[str, Any]) -> dict[str, Any]:
    return {**BASE, "membership": list(entries)}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"attack": "rmia", "online": True}, "'online' applies to attack 'lira' only"),
        ({"attack": "lira", "online": True, "references": 1}, "online LiRA needs references >= 2"),
        ({"attack": "loss_threshold", "references": 4}, "'references' applies to lira, rmia"),
        ({"attack": "rmia", "population": 1.0}, "population"),
        ({"attack": "rmia", "references": 0}, "references"),
        ({"attack": "lira_online"}, "unknown membership attack 'lira_online'"),
    ],
)
def test_bad_entries_get_one_line_naming_the_key(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(config(entry))
    assert "\n" not in str(err.value)


def test_a_reference_attack_without_a_population_is_refused_before_anything_runs() -> None:
    cfg = parse_config(config({"attack": "rmia", "population": 0.0}))
    with pytest.raises(ConfigError, match="needs population data"):
        prepare(cfg, log=lambda _: None)


def _result(n: int, tpr: float, attack: str = "rmia", title: str = "RMIA (offline, 2 reference models)") -> Any:
    return MembershipScenarioResult.model_validate(
        {
            "kind": "membership",
            "attack": attack,
            "requested": attack,
            "clean_accuracy": 0.9,
            "n_members": n,
            "n_non_members": n,
            "seconds": 1.0,
            "queries": 2 * n,
            "auc": 0.6,
            "tpr_at_0.1%_fpr": 0.0,
            "tpr_at_1%_fpr": tpr,
            "balanced_accuracy": 0.55,
            "fpr": [0.0, 1.0],
            "tpr": [0.0, 1.0],
            "title": title,
            "references": 2,
        }
    )


def test_too_few_non_members_is_not_measurable_and_the_rating_names_the_attack() -> None:
    small = FAMILY.rate(_result(RESOLVES_1PCT - 1, 0.05))
    assert not small.measurable and "not measurable" in small.text and small.text.startswith("RMIA (offline")
    assert set(FAMILY.intervals("m", _result(RESOLVES_1PCT - 1, 0.05))) == {"m.auc"}
    ok = FAMILY.rate(_result(500, 0.05))
    assert ok.measurable and ok.level == "medium" and ok.interval is not None
    assert ok.interval.low < 0.05 < ok.interval.high and ok.interval.n == 500
    assert set(FAMILY.intervals("m", _result(500, 0.05))) == {"m.auc", "m.tpr_at_1%_fpr"}  # 0.1 % needs 1,000


def test_reference_models_are_one_stored_artefact_and_the_cell_rates_the_strongest_attack(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            **config(
                {"attack": "loss_threshold", "samples": 150, "population": 0.5},
                {"attack": "rmia", "references": 1, "samples": 150, "defences": ["round:2", "label_only"]},
            ),
            "data": {"dataset": "digits", "test_fraction": 0.6},
        }
    )
    log: list[str] = []
    report, failed = assess(cfg, tmp_path / "out", log=log.append)
    assert not failed
    assert sum("building membership-references" in line for line in log) == 1  # shared by rmia and rmia+round:2
    res = report["scenarios"]
    assert res["membership.rmia"]["references"] == 1 and res["membership.rmia"]["population"] > 0
    assert res["membership.rmia+label_only"]["attack"] == "label_only"  # scores hidden: the label-only attack
    assert res["membership.rmia"]["n_members"] == res["membership.loss_threshold"]["n_members"] == 150
    assert len(res["membership.rmia"]["exposed"]) == 10
    cell = next(c for c in report["matrix"] if (c["row"], c["column"]) == ("test-time inputs", "privacy"))
    strongest = max(("membership.loss_threshold", "membership.rmia"), key=lambda k: res[k]["tpr_at_1%_fpr"])
    assert cell["value"] == res[strongest]["tpr_at_1%_fpr"]
    assert cell["text"].startswith(res[strongest]["title"])
    shutil.rmtree(tmp_path / "out" / ".work" / "results")  # results gone, artefacts kept: the models are loaded
    again: list[str] = []
    rerun, _ = assess(cfg, tmp_path / "out", log=again.append)
    assert not any("building membership-references" in line for line in again)
    assert any("reusing membership-references" in line for line in again)
    assert rerun["scenarios"]["membership.rmia"]["auc"] == pytest.approx(res["membership.rmia"]["auc"])


def test_dp_sgd_without_opacus_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sparring.defenses.training.dp_sgd as dp

    monkeypatch.setattr(dp, "opacus_available", lambda: False)
    path = tmp_path / "c.toml"
    path.write_text('[data]\ndataset = "digits"\n[[membership]]\ndefences = ["dp_sgd:8"]\n')
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["assess", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2 and not (tmp_path / "out").exists()
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and "pip install 'sparring[privacy]'" in lines[0]


def test_dp_sgd_spends_at_most_its_epsilon_and_its_leak_is_within_chance(tmp_path: Path) -> None:
    pytest.importorskip("opacus")
    cfg = parse_config(
        {
            "data": {"dataset": "digits", "test_fraction": 0.6},
            "model": {"architecture": "mlp", "epochs": 20},
            "membership": [{"attack": "loss_threshold", "samples": 300, "defences": ["dp_sgd:1"]}],
        }
    )
    report, failed = assess(cfg, tmp_path / "out", log=lambda _: None)
    assert not failed
    key = "membership.loss_threshold+dp_sgd:1"
    plain, private = report["scenarios"]["membership.loss_threshold"], report["scenarios"][key]
    assert 0 < private["epsilon"] <= 1.0 + 1e-6 and private["delta"] < 1 / 719  # the accountant's ε at δ < 1/N
    assert private["defence_seconds"] > 0 and private["clean_accuracy"] < plain["clean_accuracy"]  # utility paid
    ci = report["intervals"][f"{key}.auc"]
    assert ci["low"] <= 0.5 <= ci["high"]  # measured AUC 0.513: no leak the sample can tell from chance
    cost = next(c for c in report["defence_costs"] if c["defence"] == "dp_sgd:1")
    assert "accountant's ε" in cost["seconds_note"]
