"""The attribute family: bad entries and missing columns are one-line errors before anything runs; fair runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparring.assess import assess, parse_config
from sparring.assess.families.attribute import FAMILY
from sparring.assess.prepare import prepare
from sparring.errors import ConfigError, InputError


def config(data: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"dataset": data}, "model": {"architecture": "mlp", "epochs": 3}, "attribute": list(entries)}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"attribute": "religious", "attack": "white_box"}, "unknown attribute attack 'white_box'"),
        ({"attribute": "religious", "model": "forest"}, "unknown attack model 'forest'"),
        ({"attribute": "religious", "buckets": 1}, "buckets"),
        ({"attribute": -1}, "column index"),
        ({}, "attribute"),
    ],
)
def test_bad_entries_get_one_line_naming_the_key(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(config("digits", entry))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("attribute", "message"),
    [("religious", "no named columns"), (64, "out of range: the records have 64"), (0, "constant")],
)
def test_a_dataset_without_the_column_is_refused_before_anything_runs(attribute: str | int, message: str) -> None:
    cfg = parse_config(config("digits", {"attribute": attribute}))
    with pytest.raises(InputError, match=message) as err:
        prepare(cfg, log=lambda _: None)
    assert "\n" not in str(err.value) and "attribute entry 1" in str(err.value)


def test_fair_religious_is_rated_on_its_advantage_over_imputation(tmp_path: Path) -> None:
    pytest.importorskip("statsmodels")
    with pytest.raises(InputError, match="no such column; columns: rate_marriage"):
        prepare(parse_config(config("fair", {"attribute": "religion"})), log=lambda _: None)
    cfg = parse_config(config("fair", {"attribute": "religious", "samples": 300, "model": "logistic"}))
    report, failed = assess(cfg, tmp_path / "out", log=lambda _: None)
    assert not failed
    r = FAMILY.load(report["scenarios"]["attribute.black_box-religious"])
    assert r.n_members == 300 and r.imputation == report["figures"]["attribute.black_box-religious.imputation"]
    assert r.advantage == pytest.approx(r.accuracy - r.imputation)
    rating = FAMILY.rate(r)
    assert rating.interval is not None and rating.interval.low <= r.advantage <= rating.interval.high
    assert "Attribute inference" in (tmp_path / "out" / "report.html").read_text()
