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
            if x.ndim == 0 or len(x) == 0:
                raise InputError(f"{p} has no samples (x is empty)")
            classes = [str(c) for c in f["classes"]] if "classes" in f.files else []
    except InputError:
        raise
    except Exception as e:  # numpy raises OSError, ValueError, EOFError, BadZipFile... for a broken file
        raise InputError(f"cannot read {p} as .npz: {type(e).__name__}: {e}") from None
    if not np.issubdtype(x.dtype, np.number) or not np.issubdtype(y.dtype, np.number):
        raise InputError(f"{p}: x and y must be numeric arrays")
    xt = torch.as_tensor(x.astype(np.float32))
    if input_shape is not None:
        xt = _reshape(xt, input_shape, p)
    return Dataset(xt, torch.as_tensor(y), classes, p.stem)


#: Delimiters a CSV may use when ``delimiter`` is not given.
DELIMITERS = (",", ";", "\t")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _sniff(p: Path, first: str, delimiter: str | None) -> str:
    """The delimiter: the one given, else the only one of :data:`DELIMITERS` on line 1."""
    if delimiter is not None:
        if len(delimiter) != 1:
            raise InputError(f"delimiter must be one character, got {delimiter!r}")
        return delimiter
    found = [d for d in DELIMITERS if d in first]
    if len(found) != 1:
        seen = "none of" if not found else "several of"
        names = ", ".join(repr(d) for d in DELIMITERS)
        raise InputError(f"{p}: line 1 has {seen} the delimiters {names}; set [data] delimiter")
    return found[0]


def _has_header(p: Path, fields: list[str], header: bool | None) -> bool:
    """Whether line 1 names the columns: given, else detected (names vs numbers); mixed lines are refused."""
    numeric = [_is_number(f) for f in fields]
    if header is not None:
        return header
    if all(numeric):
        return False
    if not any(numeric):
        return True
    raise InputError(
        f"{p}: line 1 mixes names and numbers ({', '.join(fields[:4])}, ...); "
        "set [data] header = true or false"
    )


def load_csv(
    path: str | Path,
    label_column: str | int = -1,
    input_shape: Sequence[int] | None = None,
    *,
    delimiter: str | None = None,
    header: bool | None = None,
) -> Dataset:
    """Load a CSV of numbers, one sample per line; ``label_column`` (name or index) holds integer labels.

    Line 1 is a header when its fields are names and data when they are numbers (``header``
    overrides the detection; a line of both is refused). The delimiter is ``delimiter``, else
    whichever one of comma, semicolon or tab line 1 contains (several or none is refused).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"data file not found: {p}")
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise InputError(f"{p} is not a UTF-8 text file") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{p} is empty")
    sep = _sniff(p, lines[0], delimiter)
    fields = [f.strip().strip('"') for f in lines[0].split(sep)]
    named = _has_header(p, fields, header)
    if isinstance(label_column, str):
        if not named:
            raise InputError(f"{p}: label_column {label_column!r} is a name, but line 1 is data, not a header")
        if label_column not in fields:
            raise InputError(f"{p}: no column {label_column!r}; columns: {', '.join(fields)}")
        col = fields.index(label_column)
    else:
        if not -len(fields) <= label_column < len(fields):
            raise InputError(f"{p}: label_column {label_column} is out of range for {len(fields)} columns")
        col = label_column % len(fields)
    rows = lines[1:] if named else lines
    if not rows:
        raise InputError(f"{p} has a header but no samples")
    try:
        arr = np.loadtxt(rows, delimiter=sep, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise InputError(f"{p}: every value must be a number ({e})") from None
    if arr.shape[1] != len(fields):
        raise InputError(f"{p}: line 1 has {len(fields)} columns but the rows have {arr.shape[1]}")
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
    delimiter: str | None = None,
    header: bool | None = None,
) -> Dataset:
    """Load a built-in dataset by ``name`` or a file by ``path`` (``.npz``, or ``.csv`` read by :func:`load_csv`)."""
    if (name is None) == (path is None):
        raise InputError("give exactly one of a built-in dataset name or a data file path")
    if name is not None:
        return load_builtin(name)
    p = Path(str(path))
    if p.suffix == ".npz":
        return load_npz(p, input_shape)
    if p.suffix == ".csv":
        return load_csv(p, label_column, input_shape, delimiter=delimiter, header=header)
    raise InputError(f"unsupported data file {p}: use .npz (arrays x, y) or .csv")
