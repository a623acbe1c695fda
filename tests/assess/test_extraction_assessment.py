"""The [[extraction]] family: model stealing rated in the test-time privacy cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparring.assess import assess, parse_config
from sparring.assess.families.extraction import FAMILY, ExtractionRun, read_off
from sparring.errors import ConfigError


def _config(**entry: Any) -> dict[str, Any]:
    return {"data": {"dataset": "digits"}, "model": {"epochs": 8}, "extraction": [entry]}


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"pool": "imagenet"}, "query pool"),
        ({"access": ["logits"]}, "access"),
        ({"attack": "copycat"}, "extraction attack"),
        ({"budgets": [0, 100]}, "budgets"),
        ({"defences": ["jpeg"]}, "reverse_sigmoid"),
        ({"surrogate": "resnet"}, "surrogate"),
    ],
)
def test_bad_extraction_config_gets_a_one_line_error(entry: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        parse_config(_config(**entry))
    assert "\n" not in str(e.value)


def test_read_off_is_the_largest_budget_that_stays_below() -> None:
    def run(fid: list[float]) -> ExtractionRun:
        return ExtractionRun(attack="knockoff", access="labels", budgets=[10, 20, 40], fidelity=fid, accuracy=fid)

    assert read_off([run([0.3, 0.6, 0.95]), run([0.2, 0.85, 0.8])], 0.8) == (10, False)
    assert read_off([run([0.9, 0.9, 0.9])], 0.8) == (None, False)
    assert read_off([run([0.1, 0.2, 0.3])], 0.8) == (40, True)
    mixed = ExtractionRun(
        attack="knockoff", access="labels", budgets=[10, 20, 40], fidelity=[0.9] * 3, accuracy=[0.3] * 3
    )
    assert read_off([mixed], 0.8, "accuracy") == (40, True) and read_off([mixed], 0.8) == (None, False)
    skipped = ExtractionRun(attack="knockoff", access="probabilities", applies=False)
    assert read_off([skipped, run([0.5, 0.7, 0.9])], 0.8) == (20, False)  # runs that did not apply are ignored


def test_the_family_judges_each_defence_by_the_strongest_attack(tmp_path: Path) -> None:
    entry = {"budgets": [100, 400], "epochs": 20, "defences": ["reverse_sigmoid:5", "label_only"]}
    report, failed = assess(parse_config(_config(**entry)), tmp_path, log=lambda s: None)
    assert not failed
    scenarios = report["scenarios"]
    base = FAMILY.load(scenarios["extraction.knockoff-in_distribution"])
    rs = FAMILY.load(scenarios["extraction.knockoff-in_distribution+reverse_sigmoid:5"])
    lo = FAMILY.load(scenarios["extraction.knockoff-in_distribution+label_only"])
    assert base.fidelity > 0.8
    by_access = {r.access: r for r in rs.runs}
    assert by_access["probabilities"].fidelity[-1] < by_access["labels"].fidelity[-1] - 0.3
    assert rs.strongest == "knockoff, labels" and rs.fidelity == by_access["labels"].fidelity[-1]
    assert [r.applies for r in lo.runs] == [False, True] and lo.strongest == "knockoff, labels"
    assert FAMILY.rate(rs).level == "high"
    cell = next(c for c in report["matrix"] if (c["row"], c["column"]) == ("test-time inputs", "privacy"))
    assert cell["status"] == "measured"
    html = (tmp_path / "report.html").read_text()
    assert "Model stealing" in html and "query limit read-off" in html


def test_equation_solving_falls_back_to_labels_when_scores_are_hidden(tmp_path: Path) -> None:
    cfg = {"data": {"dataset": "breast_cancer"}, "model": {"architecture": "mlp", "epochs": 5}}
    entry = {"attack": "equation_solving", "budgets": [31], "epochs": 10, "defences": ["label_only"]}
    report, failed = assess(parse_config({**cfg, "extraction": [entry]}), tmp_path, log=lambda s: None)
    assert not failed
    base = FAMILY.load(report["scenarios"]["extraction.equation_solving"])
    assert base.queries == 31 and base.runs[0].attack == "equation_solving"
    hidden = FAMILY.load(report["scenarios"]["extraction.equation_solving+label_only"])
    assert hidden.runs[0].applies is False and hidden.runs[-1].note is not None
    assert hidden.strongest == "knockoff, labels"


def test_image_pools_are_refused_for_tabular_data(tmp_path: Path) -> None:
    cfg = {"data": {"dataset": "breast_cancer"}, "model": {"epochs": 1}, "extraction": [{"pool": "photos"}]}
    with pytest.raises(ConfigError, match="image inputs"):
        assess(parse_config(cfg), tmp_path / "out", log=lambda s: None)
    assert not (tmp_path / "out").exists()


def test_a_stolen_copy_is_a_stepping_stone_to_transfer_evasion(tmp_path: Path) -> None:
    cfg = {"data": {"dataset": "digits"}, "model": {"epochs": 8, "architecture": "mlp"}}
    entry = {
        "budgets": [300],
        "access": ["probabilities"],
        "epochs": 10,
        "transfer": True,
        "transfer_samples": 300,
        "below": 0.5,
        "below_accuracy": 0.99,
    }
    report, failed = assess(parse_config({**cfg, "extraction": [entry]}), tmp_path, log=lambda s: None)
    assert not failed
    r = FAMILY.load(report["scenarios"]["extraction.knockoff-in_distribution"])
    t = r.transfer
    assert t is not None and t.n == 300 and t.eps == 0.3 and t.white_box_success is not None
    # PGD crafted on the stolen copy alone drives the model's accuracy far below clean
    assert 1.0 - t.stolen_success < t.clean_accuracy - 0.4
    assert t.white_box_success >= t.stolen_success - 0.05 and t.independent_success > 0.2
    figures = FAMILY.figures("x", r)
    assert figures["x.transfer_success"] == t.stolen_success and "x.transfer_white_box_success" in figures
    assert (r.safe_budget, r.safe_beyond) == (None, False)  # the copy agrees on more than half at 300 queries
    assert (r.safe_budget_accuracy, r.safe_beyond_accuracy) == (300, True) and r.stolen_accuracy < 0.99
    html = (tmp_path / "report.html").read_text()
    assert "success from stolen copy" in html and "none (reached at 300)" in html and "accuracy &lt;" in html


def test_jacobian_augmentation_steals_from_labels_and_is_unaffected_by_label_only_outputs(tmp_path: Path) -> None:
    entry = {"attack": "jacobian", "seeds": 20, "budgets": [20, 320], "epochs": 20, "defences": ["label_only"]}
    report, failed = assess(parse_config(_config(**entry)), tmp_path, log=lambda s: None)
    assert not failed
    plain = FAMILY.load(report["scenarios"]["extraction.jacobian"])
    hidden = FAMILY.load(report["scenarios"]["extraction.jacobian+label_only"])
    run = plain.runs[0]
    assert (run.attack, run.access, run.queries) == ("jacobian", "labels", 320)
    # 20 seeds grown to 320 queries steal far more than the seeds alone (measured fidelity 0.19 -> 0.57 on digits)
    assert run.fidelity[-1] > run.fidelity[0] + 0.1
    assert hidden.strongest == "jacobian, labels" and hidden.runs[0].applies
