"""Progress bars that show on a terminal and stay quiet in logs and tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled(flag: bool | None = None) -> bool:
    """Explicit ``flag`` wins; otherwise on when stderr is a terminal and SPARRING_PROGRESS != 0."""
    if flag is not None:
        return flag
    if os.environ.get("SPARRING_PROGRESS") == "0":
        return False
    return sys.stderr.isatty()


def bar(items: Iterable[T], desc: str, total: int | None = None, enabled: bool | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar when :func:`progress_enabled`."""
    if not progress_enabled(enabled):
        yield from items
        return
    yield from tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)
