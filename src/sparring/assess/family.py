"""What a family of scenarios is: the plug-in shape every ``assess/families/<name>.py`` fills in.

A family owns one TOML key (``[[evasion]]``), the pydantic spec of an entry, its cells of
the threat matrix and how a result there is rated, its checks before anything runs, the
shared artefacts it needs, ``run`` returning a typed result, the figures ``--fail-on`` can
gate, each defence's cost, its HTML section and its lines in ``sparring list``. The config,
planner, fingerprints, matrix, report and ``sparring list`` are derived from the registered
families (:mod:`sparring.assess.families`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_serializer
from pydantic_core.core_schema import SerializerFunctionWrapHandler

from sparring.assess.spec import DEFENCE_CHECKS
from sparring.errors import ConfigError
from sparring.metrics import Interval
from sparring.params import Registry
from sparring.specs import spec_name

if TYPE_CHECKING:
    from sparring.assess.context import Artefact, Context

#: Rows and columns of the threat matrix (DESIGN.md).
ROWS = ("test-time inputs", "training data")
COLUMNS = ("integrity", "availability", "privacy")
Cell = tuple[str, str]
TEST_INTEGRITY: Cell = ("test-time inputs", "integrity")
TEST_AVAILABILITY: Cell = ("test-time inputs", "availability")
TEST_PRIVACY: Cell = ("test-time inputs", "privacy")
TRAIN_INTEGRITY: Cell = ("training data", "integrity")
TRAIN_AVAILABILITY: Cell = ("training data", "availability")
TRAIN_PRIVACY: Cell = ("training data", "privacy")

#: The threats of each cell (DESIGN.md); a family covers one or more of them.
SCOPE: dict[Cell, tuple[str, ...]] = {
    TEST_INTEGRITY: ("evasion",),
    TEST_AVAILABILITY: ("sponge examples",),
    TEST_PRIVACY: (
        "membership inference",
        "model stealing",
        "model inversion",
        "attribute inference",
        "property inference",
    ),
    TRAIN_INTEGRITY: ("backdoors", "clean-label targeted poisoning", "federated model replacement"),
    TRAIN_AVAILABILITY: ("availability poisoning", "federated label flips", "sponge poisoning"),
    TRAIN_PRIVACY: (),
}

LEVELS = ("low", "medium", "high")

#: Defence kinds that flag inputs or give a verdict without lowering the measured risk by
#: themselves; never credited as a cell's defence (their own figures are in the sections).
NOT_MITIGATIONS = ("detector", "inspection")


@dataclass(frozen=True)
class Rule:
    """How a result in one cell is rated: ``measure`` at or above ``high`` / ``medium``."""

    measure: str
    medium: float
    high: float
    note: str = ""

    def level(self, value: float) -> str:
        """``high``, ``medium`` or ``low``."""
        return "high" if value >= self.high else "medium" if value >= self.medium else "low"

    def legend(self, who: str) -> str:
        """One line of the report's legend, e.g. ``evasion: ... (high ≥ 50 %, medium ≥ 20 %)``."""
        note = f"; {self.note}" if self.note else ""
        return f"{who}: {self.measure} (high ≥ {self.high:.0%}, medium ≥ {self.medium:.0%}{note})"


@dataclass(frozen=True)
class Rating:
    """A risk level with the figure it rests on, its 95 % interval when known, and whether the sample resolves it."""

    level: str
    value: float
    text: str
    interval: Interval | None = None
    measurable: bool = True


def rated(rule: Rule, value: float, text: str, interval: Interval | None = None) -> Rating:
    """The :class:`Rating` of ``value`` under ``rule``; with ``interval`` (same units) the text gives it.

    When the interval reaches into another level the text says so: the sample cannot tell
    the two apart.
    """
    if interval is None:
        return Rating(rule.level(value), value, text)
    low, high = rule.level(interval.low), rule.level(interval.high)
    text += f"; rated figure {value:.1%}, 95 % CI {interval.low:.1%}–{interval.high:.1%} (n={interval.n})"
    if low != high:
        text += f", which spans {low} to {high}"
    return Rating(rule.level(value), value, text, interval)


def not_measurable(value: float, text: str) -> Rating:
    """A figure the sample cannot resolve: shown, never rated (the matrix says "not measurable")."""
    return Rating("not measurable", value, text, measurable=False)


class ScenarioResult(BaseModel):
    """Base of the typed results families return; stored and reported as JSON.

    Fields that are None are left out of the JSON, except those named in ``keep_none``.
    """

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True, validate_by_name=True)
    keep_none: ClassVar[frozenset[str]] = frozenset({"defence", "defence_type"})

    kind: str
    attack: str
    defence: str | None = None
    defence_type: str | None = None
    params: dict[str, Any] = {}
    #: Wall time of the scenario, set by the executor.
    wall_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as ``report.json`` and the result store hold it."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in self.keep_none}


class Row(BaseModel):
    """A nested part of a result (a curve point, a table row); None fields are left out of the JSON."""

    model_config = ConfigDict(extra="forbid")

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class Scenario:
    """One attack entry, against the undefended model or with one defence."""

    family: str
    index: int
    label: str
    defence: str | None
    spec: BaseModel

    @property
    def key(self) -> str:
        """Stable name, used for stored results and report figures, e.g. ``evasion.pgd-linf+adversarial_training``."""
        return f"{self.family}.{self.label}" + (f"+{self.defence}" if self.defence else "")

    @property
    def base_key(self) -> str:
        """The key of the same entry without a defence."""
        return f"{self.family}.{self.label}"

    def params(self) -> dict[str, Any]:
        """The entry's settings, without its list of defences."""
        return self.spec.model_dump(exclude={"defences"})


@dataclass(frozen=True)
class Defences:
    """A group of defences a family accepts, all of one ``kind``.

    Plain ``names``, or every ``NAME[:ARG]`` spec of a ``registry``; ``settings`` names the
    config section that holds their settings (part of a scenario's fingerprint).
    """

    kind: str
    names: tuple[str, ...] = ()
    registry: Registry[Any] | None = None
    settings: str | None = None
    summary: str = ""

    def all_names(self) -> list[str]:
        """Every name of the group (a registry's names for a registry group)."""
        return list(self.registry) if self.registry is not None else list(self.names)

    def usage(self) -> list[str]:
        """Names as a user writes them (``jpeg[:QUALITY]`` for a registry's)."""
        if self.registry is None:
            return list(self.names)
        return [f.usage() for f in self.registry.forms()]


@dataclass(frozen=True)
class CostRow:
    """What one defence bought (risk before and after) and what it cost (clean accuracy, time)."""

    scenario: str
    defence: str
    before: Rating
    after: Rating
    clean_accuracy_before: float | None
    clean_accuracy_after: float | None
    seconds: float
    seconds_note: str
    #: Added wall time per query of an inference-time defence (median of repeated timings), in ms.
    query_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The row as ``report.json`` holds it."""
        return {
            "scenario": self.scenario,
            "defence": self.defence,
            "risk_before": self.before.text,
            "risk_after": self.after.text,
            "level_before": self.before.level,
            "level_after": self.after.level,
            "value_before": self.before.value,
            "value_after": self.after.value,
            "interval_before": self.before.interval.as_dict() if self.before.interval else None,
            "interval_after": self.after.interval.as_dict() if self.after.interval else None,
            "query_ms": self.query_ms,
            "clean_accuracy_before": self.clean_accuracy_before,
            "clean_accuracy_after": self.clean_accuracy_after,
            "seconds": self.seconds,
            "seconds_note": self.seconds_note,
        }


@dataclass
class Extras:
    """Report parts a family computes over all results: top-level ``report.json`` keys and figures."""

    report: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)


S = TypeVar("S", bound=BaseModel)
R = TypeVar("R", bound=ScenarioResult)


class Family(ABC, Generic[S, R]):
    """One family of scenarios; subclass it in ``assess/families/<name>.py`` and set ``FAMILY``.

    Required: the class variables ``key``, ``title``, ``section``, ``order``, ``spec``,
    ``result``, ``threats``, ``rules`` and ``smoke``, and the methods :meth:`label`,
    :meth:`run`, :meth:`rate`, :meth:`figures` and :meth:`html`. The rest have defaults. See
    ``assess/families/README.md``.
    """

    #: The TOML key of the family's entries (``[[key]]``) and the first part of scenario keys.
    key: ClassVar[str]
    #: A short human name (``"evasion"``).
    title: ClassVar[str]
    #: The report section the family's HTML goes under; families sharing one are grouped.
    section: ClassVar[str]
    #: Where the family runs and appears (lower first).
    order: ClassVar[int]
    #: The pydantic spec of one entry (with a ``defences`` list if the family takes defences).
    spec: ClassVar[type[BaseModel]]
    #: The typed result of one scenario.
    result: ClassVar[type[ScenarioResult]]
    #: Cells of the threat matrix the family's results land in, and the threat (from SCOPE) of each.
    threats: ClassVar[dict[Cell, str]]
    #: How a result in each of those cells is rated.
    rules: ClassVar[dict[Cell, Rule]]
    #: False for a family drawn in the report but not rated in the matrix (it attacks a model
    #: sparring built, not the one under assessment).
    rated_in_matrix: ClassVar[bool] = True
    #: Config sections the family owns (``[adversarial_training]``), by name.
    settings: ClassVar[dict[str, type[BaseModel]]] = {}
    #: The defences the family accepts, in groups of one kind.
    defences: ClassVar[tuple[Defences, ...]] = ()
    #: The attacks an entry may name, for ``sparring list``.
    attacks: ClassVar[tuple[str, ...]] = ()
    #: A config fragment (the family's entries, with a defence, and any sections it needs) that
    #: runs in seconds on the digits data; the families' conformance test runs it.
    smoke: ClassVar[dict[str, Any]]

    def __init__(self) -> None:
        if hasattr(self, "spec"):  # entries with defences are checked by this family (assess.spec.WithDefences)
            DEFENCE_CHECKS[self.spec] = self.check_defence

    # -- config ----------------------------------------------------------------------
    @abstractmethod
    def label(self, entry: S) -> str:
        """The entry's name in scenario keys (``pgd-linf``); equal labels get ``#1``, ``#2``."""

    def defence_group(self, spec: str) -> Defences | None:
        """The group that accepts ``spec``, if any."""
        name = spec_name(spec)
        return next((g for g in self.defences if name in g.all_names()), None)

    def check_defence(self, spec: str) -> str:
        """``spec`` if the family accepts it (name known, argument valid), else a ConfigError."""
        group = self.defence_group(spec)
        if group is None:
            names = [n for g in self.defences for n in g.usage()]
            accepted = ", ".join(names) if names else "none (this family takes no defences)"
            raise ConfigError(f"unknown {self.title} defence {spec!r}; accepted: {accepted}")
        if group.registry is not None:
            group.registry.check(spec)
        elif spec != spec_name(spec):
            raise ConfigError(f"{self.title} defence {spec_name(spec)!r} takes no argument, got {spec!r}")
        return spec

    def defence_kind(self, spec: str) -> str:
        """The kind of defence ``spec`` is (``training``, ``inference``, ``detector``, ...)."""
        group = self.defence_group(spec)
        assert group is not None, spec
        return group.kind

    def check_config(self, config: Any, entries: Sequence[S]) -> None:
        """Cross-key checks on the whole config (raise ValueError); run when the config is validated."""

    def check(self, ctx: Context, index: int, entry: S) -> None:
        """Checks against the loaded data and model, before anything is written (raise ConfigError)."""

    # -- running ---------------------------------------------------------------------
    def fingerprint(self, ctx: Context, sc: Scenario) -> dict[str, Any]:
        """Inputs of a scenario's result besides data, model, seed, entry and defence (default: its settings)."""
        group = self.defence_group(sc.defence) if sc.defence is not None else None
        if group is None or group.settings is None:
            return {}
        return {group.settings: ctx.config.section(group.settings).model_dump()}

    def artefacts(self, ctx: Context, sc: Scenario) -> list[Artefact[Any]]:
        """Shared artefacts the scenario needs (built once, stored, loaded by whoever needs them)."""
        return []

    @abstractmethod
    def run(self, ctx: Context, sc: Scenario) -> R:
        """Run one scenario."""

    def load(self, data: Mapping[str, Any]) -> R:
        """A stored result (raises pydantic's ValidationError if it is not one of this family's)."""
        result = self.result.model_validate(data)
        return result  # type: ignore[return-value]

    # -- reporting -------------------------------------------------------------------
    def cell(self, result: R) -> Cell:
        """The matrix cell a result is rated in (default: the family's only cell)."""
        (cell,) = self.threats
        return cell

    @abstractmethod
    def rate(self, result: R) -> Rating:
        """The result's risk, by its cell's rule."""

    @abstractmethod
    def figures(self, key: str, result: R) -> dict[str, float]:
        """Flat figures ``{key}.{name}`` that ``--fail-on`` can gate."""

    def intervals(self, key: str, result: R) -> dict[str, Interval]:
        """95 % intervals of the result's figures (keys as in :meth:`figures`), where the sample size is known."""
        return {}

    def expected_figures(self, sc: Scenario) -> list[str]:
        """The figure keys (globs allowed) ``sc`` will report, known before it runs.

        ``--fail-on`` rules are checked against them before anything runs; the conformance
        test checks that every figure a scenario reports matches one. Default: anything under
        the scenario's key; families narrow it to their names.
        """
        return [f"{sc.key}.*"]

    def expected_extras(self, scenarios: Sequence[Scenario]) -> list[str]:
        """The figure keys (globs allowed) :meth:`extras` will add for these scenarios."""
        return []

    def clean_accuracy(self, result: R) -> float | None:
        """The clean accuracy (or utility) of the model a result measured, if it has one."""
        value = getattr(result, "clean_accuracy", None)
        return float(value) if isinstance(value, int | float) else None

    def cost(self, key: str, result: R, base: R) -> CostRow:
        """What a defended result bought against ``base`` (the same entry undefended) and what it cost."""
        seconds = float(getattr(result, "defence_seconds", 0.0) or 0.0)
        note = str(getattr(result, "cost_note", "") or "")
        ms = getattr(result, "query_ms", None)
        return CostRow(
            key,
            str(result.defence),
            self.rate(base),
            self.rate(result),
            self.clean_accuracy(base),
            self.clean_accuracy(result),
            seconds,
            note,
            float(ms) if isinstance(ms, int | float) else None,
        )

    def extras(self, results: Mapping[str, ScenarioResult]) -> Extras:
        """Report parts over all results (e.g. the per-sample worst case over every evasion attack)."""
        return Extras()

    @abstractmethod
    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        """The family's part of the report page from its results as ``report.json`` holds them (empty: none).

        Rendering from the JSON means a page can be rebuilt from ``report.json`` alone.
        """

    def catalogue(self) -> list[tuple[str, list[str]]]:
        """Lines of ``sparring list``: attacks, then defences by kind."""
        kinds: dict[str, list[str]] = {}
        for g in self.defences:
            kinds.setdefault(g.kind, []).extend(g.usage())
        return [("attacks", list(self.attacks)), *((f"defences ({k})", names) for k, names in kinds.items())]

    def mitigates(self, result: R) -> bool:
        """True when a defended result's model may be credited as a defended model of its cell."""
        return result.defence is not None and result.defence_type not in NOT_MITIGATIONS

    def __repr__(self) -> str:
        return f"<family {self.key}>"
