"""The one parser of ``NAME[:ARG]`` specs: ``"jpeg:75"``, ``"round"``, ``"dirichlet:0.5"``, ``"noise:0.1"``.

Transforms, output hardening, augmentation and mixing options, client splits and robust
aggregators are all named this way in code and configs. A :class:`Form` says what one
name takes; :func:`parse_spec` checks a spec against the forms and says, in one line,
which forms are valid when it is not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sparring.errors import ConfigError

Number = int | float


@dataclass(frozen=True)
class Form:
    """One accepted name and its argument.

    ``arg`` names the argument in messages (``"BITS"``; None: the name takes none), ``kind``
    is ``int`` or ``float``, ``default`` the value when ``:ARG`` is left out (None: the
    argument is required), and ``valid``/``rule`` an optional check and its wording
    (``"a finite number > 0"``).
    """

    name: str
    arg: str | None = None
    kind: type[int] | type[float] = float
    default: Number | None = None
    valid: Callable[[Number], bool] | None = None
    rule: str = ""

    def usage(self) -> str:
        """The form as users write it: ``jpeg[:QUALITY]``, ``dirichlet:ALPHA`` or ``iid``."""
        if self.arg is None:
            return self.name
        return f"{self.name}[:{self.arg}]" if self.default is not None else f"{self.name}:{self.arg}"


def positive(v: Number) -> bool:
    """True for a finite number > 0."""
    return 0.0 < float(v) < math.inf


def usage(forms: Sequence[Form]) -> str:
    """All forms, comma-separated, for messages and listings."""
    return ", ".join(f"'{f.usage()}'" for f in forms)


def parse_spec(spec: object, forms: Sequence[Form], what: str) -> tuple[str, Number | None]:
    """Check ``spec`` against ``forms``; returns ``(name, argument)`` (the default when left out).

    Raises :class:`ConfigError` naming the valid forms when the name is unknown, an
    argument is missing, empty, not a number, or fails the form's check.
    """
    valid = f"valid forms: {usage(forms)}"
    if not isinstance(spec, str):
        raise ConfigError(f"{what} must be a string, got {type(spec).__name__}; {valid}")
    name, sep, text = (part.strip() for part in spec.strip().partition(":"))
    form = next((f for f in forms if f.name == name), None)
    if form is None:
        raise ConfigError(f"unknown {what} {spec!r}; {valid}")
    if form.arg is None:
        if sep:
            raise ConfigError(f"{what} {name!r} takes no argument, got {spec!r}; {valid}")
        return name, None
    if sep and not text:
        raise ConfigError(f"{what} {spec!r} has an empty argument; {valid}")
    if not sep:
        if form.default is None:
            raise ConfigError(f"{what} {spec!r} needs its argument {form.arg}; {valid}")
        return name, form.default
    try:
        value: Number = form.kind(text)
    except ValueError:
        kind = "an integer" if form.kind is int else "a number"
        raise ConfigError(f"{form.arg} in {what} {spec!r} must be {kind}, got {text!r}") from None
    if form.valid is not None and not form.valid(value):
        raise ConfigError(f"{form.arg} in {what} {spec!r} must be {form.rule}, got {text}")
    return name, value


def spec_name(spec: str) -> str:
    """The name part of a ``NAME[:ARG]`` spec: ``"jpeg:75"`` -> ``"jpeg"``."""
    return spec.strip().partition(":")[0].strip()
