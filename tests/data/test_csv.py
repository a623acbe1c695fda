"""CSV loading (issue 10, item 6): the header is detected, never assumed; ambiguous files are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparring.data.loaders import load_csv
from sparring.errors import InputError

ROWS = np.array([[0.1, 0.2, 0], [0.3, 0.4, 1], [0.5, 0.6, 1], [0.7, 0.8, 0]])


def _write(path: Path, rows: np.ndarray, header: str | None = None, sep: str = ",") -> Path:
    lines = [sep.join(f"{v:g}" for v in row) for row in rows]
    path.write_text("\n".join(([header] if header else []) + lines) + "\n")
    return path


def test_a_headerless_csv_keeps_every_sample(tmp_path: Path) -> None:
    data = load_csv(_write(tmp_path / "a.csv", ROWS))
    assert len(data) == 4 and data.input_shape == (2,)
    assert data.y.tolist() == [0, 1, 1, 0]


def test_a_header_is_detected_and_names_the_label_column(tmp_path: Path) -> None:
    data = load_csv(_write(tmp_path / "a.csv", ROWS[:, [2, 0, 1]], header="label,f1,f2"), label_column="label")
    assert len(data) == 4 and data.y.tolist() == [0, 1, 1, 0]
    assert data.x[0].tolist() == pytest.approx([0.1, 0.2])


def test_semicolons_and_tabs_are_detected_or_given(tmp_path: Path) -> None:
    assert len(load_csv(_write(tmp_path / "s.csv", ROWS, sep=";"))) == 4
    assert len(load_csv(_write(tmp_path / "t.csv", ROWS, sep="\t"))) == 4
    assert len(load_csv(_write(tmp_path / "p.csv", ROWS, sep="|"), delimiter="|")) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("f1,2.0,label\n0.1,0.2,0\n", "mixes names and numbers"),
        ("0.1;0.2,0\n0.3;0.4,1\n", "several of the delimiters"),
        ("", "is empty"),
        ("f1,f2,label\n", "no samples"),
        ("0.1,0.2,0\n0.3,x,1\n", "must be a number"),
    ],
)
def test_ambiguous_or_broken_files_are_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        load_csv(p)
    assert "\n" not in str(err.value)


def test_a_label_name_needs_a_header(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="line 1 is data"):
        load_csv(_write(tmp_path / "a.csv", ROWS), label_column="label")
    # header = false reads a numeric-looking first line as data, header = true as names
    named = load_csv(_write(tmp_path / "n.csv", ROWS, header="1,2,3"), header=True)
    assert len(named) == 4
