"""Errors that sparring raises for problems a user can fix, and the checks that raise them.

Every error here carries a one-line message meant for a person; the command line prints
it and exits with code 2 instead of showing a traceback. The ``check_*`` helpers validate
one constructor argument each and return it normalised, so every attack and defence words
the same mistake the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


class SparringError(Exception):
    """Base class of user-facing errors (bad input, bad config, missing access)."""


class InputError(SparringError, ValueError):
    """Input data has the wrong shape, dtype, or contains non-finite values."""


class ConfigError(SparringError, ValueError):
    """An assessment config or a constructor argument is invalid."""


class AccessError(SparringError, PermissionError):
    """An attack asked a classifier for something its access flags do not allow."""


class QueryBudgetExceeded(SparringError, RuntimeError):
    """A query budget was spent."""


class TasksFailed(Exception):
    """Some tasks of an assessment raised; the others' results were kept and the report lists the failures.

    Not a :class:`SparringError`: the run was not refused, it is incomplete (exit code 3),
    whether a task met a bug or a deployment's limit.
    """


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


def check_fraction(name: str, value: float) -> float:
    """Return ``value`` if it lies in [0, 1], else raise :class:`ConfigError`."""
    v = _number(name, value)
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], got {value}")
    return v


def check_nonnegative(name: str, value: float) -> float:
    """Return ``value`` if it is finite and >= 0, else raise :class:`ConfigError`."""
    v = _number(name, value)
    if not 0.0 <= v < math.inf:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
    return v


def check_positive(name: str, value: float) -> float:
    """Return ``value`` if it is finite and > 0, else raise :class:`ConfigError`."""
    v = _number(name, value)
    if not 0.0 < v < math.inf:
        raise ConfigError(f"{name} must be a finite number > 0, got {value}")
    return v


def check_positive_int(name: str, value: int) -> int:
    """Return ``value`` if it is an int >= 1, else raise :class:`ConfigError`."""
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_nonnegative_int(name: str, value: int) -> int:
    """Return ``value`` if it is an int >= 0, else raise :class:`ConfigError`."""
    if not _is_int(value) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def check_seed(value: int, name: str = "seed") -> int:
    """Return ``value`` if it is an integer (any sign), else raise :class:`ConfigError`."""
    if not _is_int(value):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    return value


def check_class(name: str, value: int, num_classes: int | None = None) -> int:
    """Return ``value`` if it is a class index >= 0 (and < ``num_classes`` when given)."""
    if not _is_int(value) or value < 0 or (num_classes is not None and value >= num_classes):
        upper = f" and < {num_classes}" if num_classes is not None else ""
        raise ConfigError(f"{name} must be a class index >= 0{upper}, got {value!r}")
    return value


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ConfigError` listing them."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_flag(name: str, value: bool) -> bool:
    """Return ``value`` if it is True or False, else raise :class:`ConfigError`."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return value


def check_bounds(bounds: tuple[float, float], name: str = "bounds") -> tuple[float, float]:
    """Return ``(low, high)`` as floats if it is a pair with low < high, else raise :class:`ConfigError`."""
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a pair (low, high) with low < high, got {bounds!r}") from None
    if not lo < hi:
        raise ConfigError(f"{name} must be a pair (low, high) with low < high, got {bounds!r}")
    return lo, hi
