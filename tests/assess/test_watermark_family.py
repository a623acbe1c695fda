"""The [[watermark]] family: a bad entry is refused in one line before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from sparring.assess import parse_config
from sparring.assess.families.watermark import FAMILY, StolenRow, WatermarkScenarioResult
from sparring.errors import ConfigError


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"defences": ["jpeg"]}, "trigger, ewe"),
        ({"defences": ["ewe:3"]}, "no argument"),
        ({"budgets": [0]}, "budgets"),
        ({"access": "logits"}, "access"),
        ({"pool": "imagenet"}, "query pool"),
        ({"clean_models": 1}, "clean_models"),
        ({"surrogate": "resnet"}, "surrogate"),
    ],
)
def test_bad_watermark_config_gets_a_one_line_error(entry: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        parse_config({"data": {"dataset": "digits"}, "watermark": [entry]})
    assert "\n" not in str(e.value)


def test_a_watermark_is_rated_by_the_stolen_copies_it_attributes() -> None:
    common = {"kind": "watermark", "attack": "knockoff", "n_test": 100, "alpha": 0.01, "budgets": [100, 200]}
    control = WatermarkScenarioResult(**common, clean_accuracy=0.9, unattributed=1.0)
    assert FAMILY.rate(control).level == "high"
    rows = [
        StolenRow(budget=100, queries=100, accuracy=0.8, fidelity=0.8, hits=3, p_value=0.2),
        StolenRow(budget=200, queries=200, accuracy=0.9, fidelity=0.9, hits=40, p_value=1e-12),
    ]
    half = WatermarkScenarioResult(
        **common,
        defence="ewe",
        clean_accuracy=0.9,
        unattributed=0.5,
        scheme="EntangledWatermark",
        queries=100,
        p_value=1e-9,
        stolen=rows,
        false_claim_rate=0.0,
        clean_p=[0.5, 0.9],
    )
    rating = FAMILY.rate(half)
    assert rating.level == "medium" and "1 of 2 stolen copies attributed" in rating.text
    assert FAMILY.figures("w", half)["w.p_value_stolen_200"] == 1e-12
