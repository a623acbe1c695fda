"""Parameters from the constructor signature, and name -> class registries (scikit-learn's rule).

An attack's or defence's constructor stores each argument under its own name and derives
nothing else that a caller could set, so :meth:`Params.get_params`, ``repr`` and
:meth:`Params.clone` can read the signature: every object can be rebuilt from
``(name, params)`` (Pedregosa et al., "Scikit-learn: Machine Learning in Python", JMLR 2011;
Buitinck et al., "API design for machine learning software", 2013). Constructors do validate
their arguments, so a bad value fails at once with one line.

A :class:`Registry` maps the names a config uses (``"pgd"``, ``"jpeg"``) to classes; with
``arg`` it also parses ``NAME[:ARG]`` specs through :func:`sparring.specs.parse_spec`.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from sparring.errors import ConfigError, SparringError
from sparring.specs import Form, Number, parse_spec, usage


class Params:
    """Mixin: ``get_params``, ``clone`` and ``repr`` from the constructor's signature."""

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The constructor's named parameters, in order."""
        sig = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return tuple(n for n, p in sig.parameters.items() if n != "self" and p.kind in kinds)

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """Default value of each parameter that has one."""
        sig = inspect.signature(cls.__init__)
        return {n: p.default for n, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}

    def get_params(self) -> dict[str, Any]:
        """Each constructor parameter and its value on this object."""
        return {name: getattr(self, name) for name in self.param_names()}

    def clone(self, **changes: Any) -> Self:
        """A new object with the same parameters (nested :class:`Params` cloned too), ``changes`` applied."""
        unknown = set(changes) - set(self.param_names())
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no parameter {', '.join(sorted(unknown))}")
        params = {k: v.clone() if isinstance(v, Params) else copy.copy(v) for k, v in self.get_params().items()}
        return type(self)(**{**params, **changes})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"


T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered class; ``arg`` names the constructor parameter a spec's ``:ARG`` sets."""

    name: str
    cls: type[T]
    arg: str | None = None
    summary: str = ""

    def form(self) -> Form:
        """The spec form of this entry (its argument's kind and default from the signature)."""
        if self.arg is None:
            return Form(self.name)
        default = inspect.signature(self.cls.__init__).parameters[self.arg].default
        if default is inspect.Parameter.empty or default is None:
            return Form(self.name, self.arg.upper(), float)
        kind: type[int] | type[float] = int if isinstance(default, int) else float
        return Form(self.name, self.arg.upper(), kind, default)


class Registry(Generic[T]):
    """Names a config uses -> classes, for one kind (e.g. ``"evasion attack"``).

    :meth:`build` makes an object from a spec (``"jpeg:75"``) and keyword ``context``
    values; a context value reaches a class only when its constructor has a parameter of
    that name and the value is not None (a seed, an eps from a config entry). The config,
    ``sparring list`` and the report all read the same registries.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, cls: type[T], arg: str | None = None, summary: str = "") -> type[T]:
        """Register ``cls`` under ``name`` (``arg``: the parameter that ``NAME:ARG`` sets)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        if arg is not None and arg not in inspect.signature(cls.__init__).parameters:
            raise ValueError(f"{cls.__name__} has no parameter {arg!r}")
        doc = (inspect.getdoc(cls) or "").split("\n", 1)[0]
        self._entries[name] = Entry(name, cls, arg, summary or doc)
        return cls

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Registered entries, in registration order."""
        return list(self._entries.values())

    def forms(self) -> list[Form]:
        """The spec form of every entry."""
        return [e.form() for e in self._entries.values()]

    def usage(self) -> str:
        """Every form, for messages and ``sparring list``."""
        return usage(self.forms())

    def __getitem__(self, name: str) -> type[T]:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; accepted: {', '.join(self._entries)}")
        return self._entries[name].cls

    def parse(self, spec: str) -> tuple[str, dict[str, Number]]:
        """``"jpeg:75"`` -> ``("jpeg", {"quality": 75})``; checks the grammar, not the value."""
        name, value = parse_spec(spec, self.forms(), self.kind)
        arg = self._entries[name].arg
        return name, ({} if arg is None or value is None else {arg: value})

    def build(self, spec: str, **context: Any) -> T:
        """The object ``spec`` names, with the context values its constructor takes."""
        name, kwargs = self.parse(spec)
        cls = self._entries[name].cls
        accepted = inspect.signature(cls.__init__).parameters
        kwargs = {**{k: v for k, v in context.items() if k in accepted and v is not None}, **kwargs}
        try:
            return cls(**kwargs)
        except SparringError as e:
            raise ConfigError(f"{self.kind} {spec!r}: {e}") from None

    def check(self, spec: str) -> str:
        """Validate ``spec`` by building it (no classifier needed); returns it unchanged."""
        self.build(spec)
        return spec
