"""The ``fair`` built-in: statsmodels' affairs survey, scaled, with its sensitive columns named."""

from __future__ import annotations

import builtins
from typing import Any

import pytest
import torch

from sparring.data import BUILTINS, FEATURES, SENSITIVE, load_builtin
from sparring.errors import InputError


def test_fair_loads_scaled_with_named_and_sensitive_columns() -> None:
    pytest.importorskip("statsmodels")
    d = load_builtin("fair")
    assert d.x.shape == (6366, 8) and d.classes == ["no affair", "affair"] and "fair" in BUILTINS
    assert int(d.y.sum()) == 2053  # respondents with affairs > 0
    assert torch.equal(d.x.min(dim=0).values, torch.zeros(8)) and torch.equal(d.x.max(dim=0).values, torch.ones(8))
    names = FEATURES["fair"]
    assert len(names) == 8 and set(SENSITIVE["fair"]) <= set(names)
    religious = d.x[:, names.index("religious")]
    assert len(torch.unique(religious)) == 4  # 1 not ... 4 strongly religious


def test_fair_without_statsmodels_is_one_line_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def no_statsmodels(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("statsmodels"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_statsmodels)
    with pytest.raises(InputError, match="statsmodels") as e:
        load_builtin("fair")
    assert "\n" not in str(e.value)
