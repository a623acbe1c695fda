"""Loaders for user data: ``.npz`` archives and CSV files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sparring.data.builtin import load_builtin
from sparring.data.dataset import Dataset
from sparring.errors import InputError


def load_npz(path: str | Path, input_shape: Sequence[int] | None = None) -> Dataset:
    """Load ``x`` and ``y`` arrays (and optional ``classes``) from an ``.npz`` file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"data file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = {"x", "y"} - set(f.files)
            if missing:
                raise InputError(f"{p} lacks array(s) {', '.join(sorted(missing))}; it has {', '.join(f.files)}")
            x, y = f["x"], f["y"]
            classes = [str(c) for c in f["classes"]] if "classes" in f.files else []
    except (OSError, ValueError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"cannot read {p} as .npz: {e}") from e
    if not np.issubdtype(x.dtype, np.number) or not np.issubdtype(y.dtype, np.number):
        raise InputError(f"{p}: x and y must be numeric arrays")
    xt = torch.as_tensor(x.astype(np.float32))
    if input_shape is not None:
        xt = _reshape(xt, input_shape, p)
    return Dataset(xt, torch.as_tensor(y), classes, p.stem)


def load_csv(path: str | Path, label_column: str | int = -1, input_shape: Sequence[int] | None = None) -> Dataset:
    """Load a CSV with a header row; ``label_column`` (name or index) holds integer labels."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"data file not found: {p}")
    with p.open() as fh:
        header = fh.readline().strip().split(",")
    if isinstance(label_column, str):
        if label_column not in header:
            raise InputError(f"{p}: no column {label_column!r}; columns: {', '.join(header)}")
        col = header.index(label_column)
    else:
        col = label_column % len(header)
    try:
        arr = np.loadtxt(p, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise InputError(f"{p}: every value must be numeric ({e})") from e
    if arr.shape[1] != len(header):
        raise InputError(f"{p}: header has {len(header)} columns but rows have {arr.shape[1]}")
    y = arr[:, col]
    x = np.delete(arr, col, axis=1).astype(np.float32)
    xt = torch.as_tensor(x)
    if input_shape is not None:
        xt = _reshape(xt, input_shape, p)
    return Dataset(xt, torch.as_tensor(y), [], p.stem)


def _reshape(x: torch.Tensor, shape: Sequence[int], p: Path) -> torch.Tensor:
    want = int(np.prod(shape))
    have = int(np.prod(x.shape[1:]))
    if want != have:
        raise InputError(f"{p}: samples have {have} values, input_shape {tuple(shape)} needs {want}")
    return x.reshape(-1, *shape)


def load_dataset(
    name: str | None = None,
    path: str | Path | None = None,
    *,
    label_column: str | int = -1,
    input_shape: Sequence[int] | None = None,
) -> Dataset:
    """Load a built-in dataset by ``name`` or a file by ``path`` (``.npz`` or ``.csv``)."""
    if (name is None) == (path is None):
        raise InputError("give exactly one of a built-in dataset name or a data file path")
    if name is not None:
        return load_builtin(name)
    p = Path(str(path))
    if p.suffix == ".npz":
        return load_npz(p, input_shape)
    if p.suffix == ".csv":
        return load_csv(p, label_column, input_shape)
    raise InputError(f"unsupported data file {p}: use .npz (arrays x, y) or .csv")
