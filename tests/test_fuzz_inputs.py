"""Fuzzed configs and data files (issue 10, item 4): sparring either runs (exit 0) or refuses (exit 2).

A refusal is one line and leaves nothing behind; no input may produce a traceback or an
internal error (exit 3).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sparring.cli import main

BASE: dict[str, Any] = {
    "seed": 0,
    "data": {"path": "data.npz", "test_fraction": 0.25},
    "model": {"epochs": 1},
    "evasion": [{"attack": "fgsm", "eps": [0.1], "samples": 8, "sanity_checks": False}],
}
KEYS = [
    ("seed",),
    ("title",),
    ("data", "path"),
    ("data", "test_fraction"),
    ("data", "bounds"),
    ("data", "label_column"),
    ("data", "input_shape"),
    ("data", "header"),
    ("data", "delimiter"),
    ("model", "epochs"),
    ("model", "architecture"),
    ("model", "lr"),
    ("model", "feature_layer"),
    ("evasion", 0, "attack"),
    ("evasion", 0, "eps"),
    ("evasion", 0, "norm"),
    ("evasion", 0, "samples"),
    ("evasion", 0, "name"),
    ("evasion", 0, "defences"),
]
scalars = st.one_of(
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.text(alphabet="abcjpeg:0123456789_-.", max_size=8),
    st.sampled_from(["pgd", "mlp", "linf", "l2", "jpeg:75", "median:2", "data.csv", "penultimate", ""]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def _render(config: dict[str, Any]) -> str:
    lines = [f"{k} = {_toml(v)}" for k, v in config.items() if not isinstance(v, dict | list)]
    for k, v in config.items():
        for entry in v if isinstance(v, list) and v and isinstance(v[0], dict) else [v] if isinstance(v, dict) else []:
            lines.append(f"[[{k}]]" if isinstance(v, list) else f"[{k}]")
            lines += [f"{kk} = {_toml(vv)}" for kk, vv in entry.items()]
    return "\n".join(lines) + "\n"


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    config = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(KEYS))
        holder: Any = config
        for part in path[:-1]:
            holder = holder[part]
        if draw(st.booleans()) and path[-1] in holder:
            del holder[path[-1]]
        else:
            holder[path[-1]] = draw(values)
    return config


@st.composite
def data_files(draw: st.DrawFn) -> tuple[str, bytes | None, tuple[Any, Any] | None]:
    """A data file: a valid or broken .npz (shapes, labels, values) or a CSV text."""
    kind = draw(st.sampled_from(["npz", "npz", "npz", "csv", "bytes"]))
    if kind == "bytes":
        return "data.npz", draw(st.binary(max_size=64)), None
    valid = draw(st.booleans())  # half the files are well-formed, so the runs that follow get fuzzed too
    n = 40 if valid else draw(st.sampled_from([0, 1, 3, 40]))
    d = 4 if valid else draw(st.sampled_from([1, 4]))
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    x = rng.random((n, d)) * (1.0 if valid else draw(st.sampled_from([1.0, 3.0, -1.0])))
    if not valid and n and draw(st.booleans()):
        x[0, 0] = draw(st.sampled_from([np.nan, np.inf, 0.5]))
    classes = 2 if valid else draw(st.sampled_from([1, 2, 3]))
    y = np.arange(n) % classes + (0 if valid else draw(st.sampled_from([0, 1, -1])))
    if kind == "csv":
        header = draw(st.sampled_from(["", "f,g,h,i,label\n", "f,1,2,3,4\n"]))
        body = "\n".join(",".join(f"{v:g}" for v in [*row, label]) for row, label in zip(x, y, strict=True))
        return "data.csv", (header + body).encode(), None
    return "data.npz", None, (x, y)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs(), data=data_files())
def test_any_config_and_data_file_runs_or_is_refused_in_one_line(
    config: dict[str, Any], data: tuple[str, bytes | None, tuple[Any, Any] | None]
) -> None:
    name, raw, arrays = data
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        if arrays is not None:
            np.savez(base / name, x=arrays[0], y=arrays[1])
        elif raw is not None:
            (base / name).write_bytes(raw)
        if config.get("data", {}).get("path") == "data.npz":
            config["data"]["path"] = name
        (base / "c.toml").write_text(_render(config))
        out = base / "out"
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["assess", str(base / "c.toml"), "--out", str(out), "--quiet"])
        text = err.getvalue().strip()
        event(f"exit {code}")
        assert code in (0, 2), text
        assert "Traceback" not in text
        if code == 2:
            assert len(text.splitlines()) == 1 and text.startswith("sparring: error: "), text
            assert not out.exists(), "a refused run wrote output"
        else:
            assert (out / "report.json").is_file()
