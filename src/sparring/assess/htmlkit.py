"""Building blocks of the report page: escaping, percentages, tables, tags, plots as embedded PNGs."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

COLOURS = {"high": "#f4a09c", "medium": "#fbd38d", "low": "#b7e4c7", "warning": "#fbd38d", "error": "#f4a09c",
           "info": "#d9dde2", "n/a": "#eeeeee", "not assessed yet": "#d9dde2",
           "not measurable": "#d9dde2", "not rated": "#d9dde2"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0} td,th{border:1px solid #ccc;padding:.35em .6em;text-align:left;
vertical-align:top} th{background:#f4f4f4} .matrix td{width:30%} .muted{color:#555;font-size:.9em}
.tag{display:inline-block;padding:0 .4em;border-radius:3px;font-size:.85em;font-weight:600}
.fail{color:#b00020;font-weight:600} .pass{color:#2e7d32;font-weight:600} img{max-width:100%}
"""


def esc(x: Any) -> str:
    """HTML-escaped text."""
    return html.escape(str(x))


def pct(x: float | None) -> str:
    """A rate as a percentage with one decimal (an em dash for None or NaN)."""
    return "—" if x is None or x != x else f"{100 * x:.1f} %"


def png(fig: Figure) -> str:
    """A matplotlib figure as an embedded PNG image (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """An HTML table; cells are inserted as given (escape them first)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def tag(level: str) -> str:
    """A coloured label for a risk level or a flag's severity."""
    return f'<span class="tag" style="background:{COLOURS.get(level, "#ddd")}">{esc(level)}</span>'


def curve_plot(
    title: str, xlabel: str, lines: list[tuple[str, list[float], list[float], str, int]], ylabel: str = "accuracy"
) -> str:
    """One plot of rates in [0, 1]; each line is ``(label, xs, ys, style, colour index)``."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, xs, ys, style, colour in lines:
        ax.plot(xs, ys, style, marker="o", label=label, color=f"C{colour % 10}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return png(fig)


def image_grid(images: list[Any], labels: list[Any], title: str, prefix: str = "true ") -> str:
    """A row of images ``[N, C, H, W]`` (values in [0, 1]) with a label over each."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4 or len(arr) == 0:
        return ""
    fig, axes = plt.subplots(1, len(arr), figsize=(1.4 * len(arr), 1.8))
    for ax, img, lab in zip(np.atleast_1d(axes), arr, labels, strict=False):
        ax.imshow(img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0)), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{prefix}{lab}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return png(fig)


def muted(text: str) -> str:
    """Small grey text (escaped) in parentheses."""
    return f"<span class='muted'>({esc(text)})</span>"
