"""The [[deployment]] family: the gateway in front of the model, attacked over HTTP on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparring.assess import assess, parse_config
from sparring.assess.families.deployment import FAMILY, first_alarms, stop_point
from sparring.errors import ConfigError


def _config(**entry: Any) -> dict[str, Any]:
    return {"data": {"dataset": "digits"}, "model": {"architecture": "mlp", "epochs": 10}, "deployment": [entry]}


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"monitors": ["strip"]}, "query monitor"),
        ({"hardening": "blur"}, "hardening|accepted"),
        ({"quota": 0}, "quota"),
    ],
)
def test_bad_deployment_config_gets_a_one_line_error(entry: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        parse_config(_config(**entry))
    assert "\n" not in str(e.value)


def test_alarms_and_the_stop_are_read_from_the_audit_rows() -> None:
    rows = [(200, 10, ""), (200, 10, "PRADA: W 0.9"), (200, 10, "PRADA: W 0.9; stateful detector: 0.5"), (403, 10, "b")]
    assert first_alarms(rows, ["prada", "stateful"]) == {"prada": 10, "stateful": 20}
    assert stop_point(rows) == (30, "b") and stop_point(rows[:2]) == (None, None)


def test_the_gateway_stops_synthetic_stealing_and_black_box_evasion_early(tmp_path: Path) -> None:
    entry = {
        "budget": 300,
        "budgets": [300],
        "seeds": 20,
        "extraction": ["jacobian"],
        "epochs": 3,
        "evasion": ["square"],
        "samples": 1,
        "max_queries": 100,
        "clients": 2,
        "benign": 50,
    }
    report, failed = assess(parse_config(_config(**entry)), tmp_path, log=lambda s: None)
    assert not failed
    r = FAMILY.load(report["scenarios"]["deployment.gateway-block"])
    by = {a.attack: a for a in r.attacks}
    assert set(by) == {"jacobian", "square"}
    jacobian, square = by["jacobian"], by["square"]
    # Jacobian augmentation raised an alarm (measured: the stateful detector at 170, PRADA at 200 of 1,000) and
    # the enforcing gateway revoked the key before the budget was spent
    assert jacobian.queries == 300 and any(q is not None for q in jacobian.first_alarm.values())
    assert jacobian.stopped_at is not None and jacobian.stopped_at < 300 and "blocked" in (jacobian.stopped_by or "")
    # Square's tiny steps trip the stateful detector within a few requests (measured: after 10 queries)
    assert square.first_alarm["stateful"] is not None and square.first_alarm["stateful"] <= 50
    assert square.success_before_stop is not None and square.success_full is not None
    assert square.success_before_stop <= square.success_full
    assert r.fidelity <= r.fidelity_unguarded
    assert all(b.alarms["stateful"] == 0 for b in r.benign)  # benign replay: no stateful alarm
    assert FAMILY.rate(r).level in ("low", "medium", "high")
