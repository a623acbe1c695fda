"""`sparring demo` signs the demo's data and verifies it before the run (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparring.cli import _examples_dir, _signed_demo
from sparring.integrity import verify


def test_the_demo_data_is_written_signed_and_verifies(tmp_path: Path) -> None:
    cfg = _signed_demo(_examples_dir() / "quick.toml", tmp_path)
    inputs = tmp_path / "demo-inputs"
    data = cfg.data
    assert data.dataset is None and data.path == str(inputs / "digits.npz") and data.signature is not None
    verified = verify([inputs / "digits.npz"], json.loads((inputs / "data.sig").read_text()), inputs / "demo.pub")
    assert list(verified.digests) == ["digits.npz"]
    again = _signed_demo(_examples_dir() / "quick.toml", tmp_path)  # a rerun reuses the key
    assert again.data.public_key == data.public_key


def test_a_relative_out_dir_gives_data_paths_that_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `make demo` passes the default, relative --out; the config resolves relative paths against examples/
    monkeypatch.chdir(tmp_path)
    cfg = _signed_demo(_examples_dir() / "quick.toml", Path("sparring-report"))
    assert cfg.data.path is not None and Path(cfg.data.path).is_file()
    assert cfg.data.path == str(tmp_path / "sparring-report" / "demo-inputs" / "digits.npz")
