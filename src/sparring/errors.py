"""Errors that sparring raises for problems a user can fix.

Every error here carries a one-line message meant for a person; the command line prints
it and exits with code 2 instead of showing a traceback.
"""

from __future__ import annotations


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


def check_fraction(name: str, value: float) -> float:
    """Return ``value`` if it lies in [0, 1], else raise :class:`ConfigError`."""
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def check_nonnegative(name: str, value: float) -> float:
    """Return ``value`` if it is finite and >= 0, else raise :class:`ConfigError`."""
    v = float(value)
    if not v >= 0.0 or v == float("inf"):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
    return v


def check_positive_int(name: str, value: int) -> int:
    """Return ``value`` if it is an int >= 1, else raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value
