"""The property family: bad entries and properties the data lack are one-line errors before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from sparring.assess import parse_config
from sparring.assess.prepare import prepare
from sparring.errors import ConfigError, InputError


def config(*entries: dict[str, Any], model: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"data": {"dataset": "digits"}, "model": model or {"architecture": "mlp"}, "property": list(entries)}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"property": "class:0", "ratios": [0.5]}, "other than 0.5"),
        ({"property": "class:0", "ratios": [1.5]}, "in \\[0, 1\\]"),
        ({"property": "class:a"}, "'class:' takes class indices"),
        ({"property": "class:0", "shadows": 1}, "shadows"),
    ],
)
def test_bad_entries_get_one_line_naming_the_key(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(config(entry))
    assert "\n" not in str(err.value)


def test_a_model_that_cannot_be_retrained_is_refused() -> None:
    with pytest.raises(ConfigError, match="trains shadow and victim models"):
        parse_config(config({"property": "class:0"}, model={"onnx": "m.onnx"}))


@pytest.mark.parametrize(("prop", "message"), [("class:12", "classes 0..9, not \\[12\\]"), ("children", "no named")])
def test_a_property_the_data_lack_is_refused_before_anything_runs(prop: str, message: str) -> None:
    cfg = parse_config(config({"property": prop}))
    with pytest.raises(InputError, match=message) as err:
        prepare(cfg, log=lambda _: None)
    assert "\n" not in str(err.value) and "property entry 1" in str(err.value)


def test_ratios_the_data_cannot_supply_are_refused_before_anything_runs() -> None:
    cfg = parse_config(config({"property": 0}))  # digits' pixel 0 is never above its smallest value
    with pytest.raises(InputError, match="allow training sets of only") as err:
        prepare(cfg, log=lambda _: None)
    assert "\n" not in str(err.value)
