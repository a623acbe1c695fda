"""The deployment: what the guarded gateway buys against outsiders who steal or evade through it.

The family stands the gateway (:mod:`sparring.serve`) up on 127.0.0.1 in front of the target —
any target, a local model or a ``[model] endpoint`` — with a temporary keys file and audit log
and the entry's monitors, alarm action and per-key quota, and attacks it over HTTP with
:class:`~sparring.models.remote.RemoteClassifier`, one API key per attacker. Two gateways
serve the same model: a *watching* one whose monitors only log (the attacker runs to its
budget, and the audit log tells when each monitor first raised its alarm) and an *enforcing*
one with the entry's action (``block``: the key is revoked; ``throttle``: slowed; ``log``).
Every figure is read from the audit logs.

- Extraction: Jacobian-based augmentation (Papernot et al., AsiaCCS 2017; the synthetic
  queries PRADA, Juuti et al., EuroS&P 2019, was built to catch) and Knockoff Nets with
  natural in-distribution queries (Orekondy et al., CVPR 2019; Atli et al., 2020, report that
  natural queries evade PRADA): queries until each monitor's first alarm, the queries answered
  before the enforcing gateway stopped the key (alarm or quota), and the stolen copy's accuracy
  and fidelity there against the copy after the whole budget, which the watching gateway let
  through (no monitor action). Attacks are seeded, so the copy at a point is measured by
  replaying the attack locally to that many queries (the gateway answers as the model does).
- Evasion: HopSkipJump (Chen et al., IEEE S&P 2020) and Square (Andriushchenko et al., ECCV
  2020) one sample at a time: queries until the stateful detector's alarm (Chen, Carlini &
  Wagner, SPAI 2020) and the success rate before the enforcing gateway stopped the key, against
  the success rate through the watching one.
- Benign traffic: ``clients`` keys replay disjoint slices of the test split in requests of
  ``batch``: each monitor's alarms per client are its false alarms.
- The budget read-off from the extraction curve (the largest budget whose copy stays below
  ``below`` fidelity) against the configured quota.

Rated in the test-time privacy cell (model stealing): the fidelity of the best copy an attacker
takes away before the enforcing gateway stops it — the stealing risk that remains behind the
gateway.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from sparring.assess.context import Context
from sparring.assess.families.extraction import ExtractionRun, read_off
from sparring.assess.family import TEST_PRIVACY, Family, Rating, Row, Rule, Scenario, ScenarioResult, rated
from sparring.assess.htmlkit import curve_plot, esc, muted, pct, table
from sparring.assess.spec import Entry, listify, one_of, parses, query_budgets, surrogate_architecture
from sparring.attacks.evasion import HopSkipJump, Square
from sparring.attacks.privacy.extraction import ExtractionAttack, KnockoffNets, thief_seed
from sparring.attacks.privacy.jacobian import JacobianAugmentation
from sparring.defenses.inference import HARDENING
from sparring.errors import AccessError, InputError, QueryBudgetExceeded
from sparring.metrics import Interval, accuracy, rate_interval
from sparring.models import Access, Classifier

RULE = Rule(
    "fidelity of a copy stolen through the gateway before it stops the key",
    medium=0.5,
    high=0.9,
    note="the best of Jacobian augmentation and Knockoff with natural queries, behind the deployment's monitors",
)
MONITORS = ("prada", "stateful")
EXTRACTION = ("jacobian", "knockoff")
EVASION = ("hopskipjump", "square")
_STOPPED = (AccessError, InputError, QueryBudgetExceeded)


class DeploymentSpec(Entry):
    """The gateway's settings (monitors, alarm action, output hardening, the attacker's quota) and the attacks' sizes.

    ``budget`` is each extraction attacker's query budget and ``budgets`` the points of its
    curve; ``quota`` is every attacker key's total quota (the read-off is compared with it);
    attackers and benign clients send ``batch`` queries per request.
    """

    monitors: list[str] = Field(default_factory=lambda: list(MONITORS), min_length=1)
    on_alarm: Literal["log", "throttle", "block"] = "block"
    hardening: str | None = None
    quota: int = Field(2000, ge=1)
    budget: int = Field(1000, ge=2)
    budgets: list[int] = Field(default_factory=lambda: [250, 500, 1000], min_length=1)
    batch: int = Field(10, ge=1, le=256)
    seeds: int = Field(100, ge=1)
    surrogate: str = "mlp"
    epochs: int = Field(30, ge=1)
    extraction: list[str] = Field(default_factory=lambda: list(EXTRACTION), min_length=1)
    evasion: list[str] = Field(default_factory=lambda: list(EVASION))
    eps: float = Field(0.2, gt=0)
    samples: int = Field(5, ge=1)
    max_queries: int = Field(500, ge=10)
    clients: int = Field(4, ge=1)
    benign: int = Field(200, ge=10)
    below: float = Field(0.9, gt=0.0, le=1.0)

    _listify = field_validator("monitors", "budgets", "extraction", "evasion", mode="before")(listify)

    @field_validator("extraction")
    @classmethod
    def _known_extraction(cls, v: list[str]) -> list[str]:
        return [one_of(a, EXTRACTION, "extraction attack") for a in v]

    @field_validator("monitors")
    @classmethod
    def _known_monitors(cls, v: list[str]) -> list[str]:
        return [one_of(m, MONITORS, "query monitor") for m in v]

    @field_validator("evasion")
    @classmethod
    def _known_evasion(cls, v: list[str]) -> list[str]:
        return [one_of(a, EVASION, "black-box evasion attack") for a in v]

    @field_validator("hardening")
    @classmethod
    def _known_hardening(cls, v: str | None) -> str | None:
        return None if v is None else parses(HARDENING.check, v)

    _surrogate = field_validator("surrogate")(surrogate_architecture)
    _budgets = field_validator("budgets")(query_budgets)


class ThroughGateway(Row):
    """One attack through the gateway: each monitor's first alarm, where the enforcing gateway stopped it, its gain."""

    attack: str
    kind: Literal["extraction", "evasion"]
    applies: bool = True
    note: str | None = None
    #: Queries answered by the watching gateway (the whole budget unless the quota ran out).
    queries: int = 0
    #: Queries answered before each monitor's first alarm (None: it never alarmed).
    first_alarm: dict[str, int | None] = {}
    #: Queries answered before the enforcing gateway refused the key, and why (None: never stopped).
    stopped_at: int | None = None
    stopped_by: str | None = None
    # extraction: the copy where the enforcing gateway stopped the key, and after the whole budget
    accuracy_at_stop: float | None = None
    fidelity_at_stop: float | None = None
    accuracy_full: float | None = None
    fidelity_full: float | None = None
    budgets: list[int] = []
    accuracy: list[float] = []
    fidelity: list[float] = []
    # evasion: success rate through the watching gateway, and before the enforcing one stopped the key
    samples: int = 0
    success_full: float | None = None
    success_before_stop: float | None = None


class BenignClient(Row):
    """One benign client replaying test inputs: its queries and each monitor's alarms on them."""

    client: str
    queries: int
    alarms: dict[str, int]


class DeploymentResult(ScenarioResult):
    """Every attack through the gateway, the benign replay, the read-off against the quota, and the rated fidelity."""

    monitors: list[str]
    on_alarm: str
    hardening: str | None = None
    quota: int
    budget: int
    batch: int
    clean_accuracy: float
    n_test: int
    attacks: list[ThroughGateway]
    benign: list[BenignClient]
    below: float
    safe_budget: int | None = None
    safe_beyond: bool = False
    #: Fidelity of the best copy the configured quota alone lets through (from the curve).
    fidelity_at_quota: float | None = None
    #: The rated figure: fidelity of the best copy taken before the enforcing gateway stopped the key.
    fidelity: float
    #: The same with no monitor action: the best copy after the whole budget.
    fidelity_unguarded: float
    seconds: float


# -- the gateway ---------------------------------------------------------------------------------


class _Gateway:
    """A gateway in front of ``target`` on 127.0.0.1 with its own keys file, audit log and monitors."""

    def __init__(
        self, stack: ExitStack, folder: Path, target: Classifier, entry: DeploymentSpec, action: str, threshold: float
    ) -> None:
        from sparring.serve.app import Monitor, ServeSettings, create_app
        from sparring.serve.audit import AuditLog
        from sparring.serve.keys import KeyStore
        from sparring.serve.monitors import Prada, StatefulDetector
        from sparring.serve.server import serving

        folder.mkdir()
        self.keys = KeyStore(folder / "keys.json")
        self.audit = AuditLog(folder / "audit.sqlite")
        stack.callback(self.audit.close)
        monitors: list[Monitor] = []
        for name in entry.monitors:
            if name == "stateful":
                monitors.append(StatefulDetector(threshold=threshold))
            else:
                monitors.append(Prada())
        settings = ServeSettings(
            name="model",
            monitors=[m for m in entry.monitors if m in MONITORS],
            on_alarm=action,
            max_batch=entry.batch,
        )
        app = create_app(target, settings, self.keys, self.audit, monitors)
        self.url = stack.enter_context(serving(app)) + "/v2/models/model"

    def client(self, name: str, quota: int | None) -> tuple[Any, str]:
        """A RemoteClassifier with a fresh key for ``name`` (total ``quota``) and the key's id."""
        from sparring.models.remote import RemoteClassifier

        remote = RemoteClassifier(self.url, self.keys.add(name, total=quota))
        return remote, self.keys.entries[name].key_id

    def rows(self, key_id: str) -> list[tuple[int, int, str]]:
        """``(status, n, detail)`` of every request of ``key_id``, in order."""
        return self.audit.rows(key_id)


def first_alarms(rows: list[tuple[int, int, str]], monitors: list[str]) -> dict[str, int | None]:
    """Queries answered before each monitor's first alarm (an alarm row's detail names the monitor)."""
    names = {"prada": "PRADA", "stateful": "stateful detector"}
    out: dict[str, int | None] = {m: None for m in monitors}
    answered = 0
    for status, n, detail in rows:
        for m in monitors:
            if out[m] is None and names[m] in detail:
                out[m] = answered
        if status == 200:
            answered += n
    return out


def stop_point(rows: list[tuple[int, int, str]]) -> tuple[int | None, str | None]:
    """Queries answered before the first refusal of a key (blocked, throttled, quota), and its reason."""
    answered = 0
    for status, n, detail in rows:
        if status != 200:
            return answered, detail or str(status)
        answered += n
    return None, None


# -- the attacks ---------------------------------------------------------------------------------


def _thief(name: str, entry: DeploymentSpec, seed: int, scores: bool) -> ExtractionAttack:
    if name == "jacobian":
        return JacobianAugmentation(seeds=entry.seeds, architecture=entry.surrogate, epochs=entry.epochs, seed=seed)
    access = "probabilities" if scores else "labels"
    return KnockoffNets(access=access, architecture=entry.surrogate, epochs=entry.epochs, seed=seed)


def _extraction(
    name: str, ctx: Context, entry: DeploymentSpec, target: Classifier, watch: _Gateway, enforce: _Gateway | None
) -> ThroughGateway:
    scores = Access.SCORES in target.access
    pool = ctx.train.x  # the attacker's natural data: Jacobian seeds, Knockoff's in-distribution queries
    remote, key_id = watch.client(f"{name}-watched", entry.quota)
    try:
        _thief(name, entry, thief_seed(ctx.seed), scores).steal(remote, entry.budget, pool=pool)
    except _STOPPED:
        pass  # the quota ran out: the rows say where
    finally:
        remote.close()
    rows = watch.rows(key_id)
    alarms = first_alarms(rows, entry.monitors)
    answered = sum(n for s, n, _ in rows if s == 200)
    stopped_at, stopped_by = stop_point(rows)
    if enforce is not None and any(a is not None for a in alarms.values()):
        remote, key_id = enforce.client(f"{name}-enforced", entry.quota)
        try:
            _thief(name, entry, thief_seed(ctx.seed), scores).steal(remote, entry.budget, pool=pool)
        except _STOPPED:
            pass
        finally:
            remote.close()
        stopped_at, stopped_by = stop_point(enforce.rows(key_id))
    # the copy at each point: the seeded attack replayed locally (the gateway answers as the model does)
    points = sorted({*(b for b in entry.budgets if b <= answered), answered, *([stopped_at] if stopped_at else [])})
    points = [p for p in points if p >= 1]
    curve = _thief(name, entry, thief_seed(ctx.seed), scores).steal(target, points, pool=pool, test=ctx.test).curve
    at = {p.budget: p for p in curve}
    stop = at[answered] if stopped_at is None else at.get(stopped_at)  # None: stopped before any answer
    return ThroughGateway(
        attack=name,
        kind="extraction",
        queries=answered,
        first_alarm=alarms,
        stopped_at=stopped_at,
        stopped_by=stopped_by,
        accuracy_at_stop=stop.accuracy if stop is not None else None,
        fidelity_at_stop=stop.fidelity if stop is not None else 0.0,
        accuracy_full=at[answered].accuracy,
        fidelity_full=at[answered].fidelity,
        budgets=[p.budget for p in curve],
        accuracy=[float(p.accuracy or 0.0) for p in curve],
        fidelity=[float(p.fidelity or 0.0) for p in curve],
    )


def _evasion(
    name: str, ctx: Context, entry: DeploymentSpec, target: Classifier, watch: _Gateway, enforce: _Gateway | None
) -> ThroughGateway:
    if name == "square" and Access.SCORES not in target.access:
        return ThroughGateway(
            attack=name, kind="evasion", applies=False, note="not run: the deployment releases no scores"
        )
    x, y = ctx.test.x[: entry.samples], ctx.test.y[: entry.samples]

    def attack() -> Any:
        if name == "square":
            return Square(norm="linf", eps=entry.eps, max_queries=entry.max_queries, seed=ctx.seed)
        return HopSkipJump(norm="linf", eps=entry.eps, max_queries=entry.max_queries, seed=ctx.seed)

    def through(gw: _Gateway, tag: str) -> tuple[int, int, str]:
        remote, key_id = gw.client(f"{name}-{tag}", entry.quota)
        done = wins = 0
        try:
            for i in range(len(x)):  # one sample at a time, as a patient attacker would
                wins += int(attack().run(remote, x[i : i + 1], y[i : i + 1]).success.sum())
                done += 1
        except _STOPPED:
            pass
        finally:
            remote.close()
        return done, wins, key_id

    _, wins, key_id = through(watch, "watched")
    rows = watch.rows(key_id)
    alarms = first_alarms(rows, entry.monitors)
    stopped_at, stopped_by = stop_point(rows)
    before = wins
    if enforce is not None and any(a is not None for a in alarms.values()):
        _, before, key_id = through(enforce, "enforced")
        stopped_at, stopped_by = stop_point(enforce.rows(key_id))
    return ThroughGateway(
        attack=name,
        kind="evasion",
        queries=sum(n for s, n, _ in rows if s == 200),
        first_alarm=alarms,
        stopped_at=stopped_at,
        stopped_by=stopped_by,
        samples=len(x),
        success_full=wins / len(x),
        success_before_stop=before / len(x),
    )


def _benign(ctx: Context, entry: DeploymentSpec, watch: _Gateway) -> list[BenignClient]:
    names = {"prada": "PRADA", "stateful": "stateful detector"}
    out = []
    for c in range(entry.clients):
        remote, key_id = watch.client(f"benign{c}", None)
        x = ctx.test.x[c * entry.benign : (c + 1) * entry.benign]
        if len(x) == 0:
            break
        try:
            remote.predict_labels(x)
        finally:
            remote.close()
        rows = watch.rows(key_id)
        alarms = {m: sum(1 for s, _, d in rows if s == 200 and names[m] in d) for m in entry.monitors}
        out.append(BenignClient(client=f"benign{c}", queries=len(x), alarms=alarms))
    return out


@contextmanager
def _gateways(ctx: Context, entry: DeploymentSpec, target: Classifier) -> Iterator[tuple[_Gateway, _Gateway | None]]:
    from sparring.serve.monitors import StatefulDetector

    # the stateful detector's threshold: the 0.1st percentile on benign traffic (training inputs, in order)
    threshold = StatefulDetector().calibrate(ctx.train.x[:500]) if "stateful" in entry.monitors else 0.0
    with tempfile.TemporaryDirectory(prefix="sparring-deployment-") as tmp, ExitStack() as stack:
        watch = _Gateway(stack, Path(tmp) / "watch", target, entry, "log", threshold)
        enforce = None
        if entry.on_alarm != "log":
            enforce = _Gateway(stack, Path(tmp) / "enforce", target, entry, entry.on_alarm, threshold)
        yield watch, enforce


# -- the report ----------------------------------------------------------------------------------


def _queries(v: int | None) -> str:
    return "never" if v is None else f"{v:,}"


def _html(results: Mapping[str, dict[str, Any]]) -> str:
    out = []
    for key, r in results.items():
        lines: list[tuple[str, list[float], list[float], str, int]] = []
        rows = []
        for i, a in enumerate(r["attacks"]):
            alarms = ", ".join(f"{m}: {_queries(q)}" for m, q in a.get("first_alarm", {}).items()) or "—"
            stop = "never" if a.get("stopped_at") is None else f"{a['stopped_at']:,} ({a.get('stopped_by') or ''})"
            if not a.get("applies", True):
                rows.append([esc(a["attack"]), esc(a.get("note") or ""), "", "", "", ""])
                continue
            if a["kind"] == "extraction":
                xs = [float(b) for b in a["budgets"]]
                lines.append((f"fidelity ({a['attack']})", xs, a["fidelity"], "-", i))
                got = f"fidelity {pct(a.get('fidelity_at_stop'))}, accuracy {pct(a.get('accuracy_at_stop'))}"
                full = f"fidelity {pct(a.get('fidelity_full'))}, accuracy {pct(a.get('accuracy_full'))}"
            else:
                got = f"success {pct(a.get('success_before_stop'))} of {a['samples']}"
                full = f"success {pct(a.get('success_full'))}"
            rows.append([esc(a["attack"]), f"{a['queries']:,}", esc(alarms), esc(stop), got, full])
        if lines:
            out.append(curve_plot(f"Stealing through the gateway: {key}", "victim queries", lines, "fidelity"))
        action = r["on_alarm"] + (f", output {r['hardening']}" if r.get("hardening") else "")
        out.append(
            muted(
                f"{esc(key)}: monitors {esc(', '.join(r['monitors']))}, on alarm {esc(action)}, quota "
                f"{r['quota']:,} queries per attacker key, {r['batch']} queries per request; model accuracy "
                f"{pct(r['clean_accuracy'])}."
            )
        )
        header = [
            "attack",
            "queries (watched)",
            "queries to first alarm",
            "stopped after",
            "gained before the stop",
            "with no monitor action",
        ]
        out.append(table(header, rows))
        benign = [
            [esc(b["client"]), f"{b['queries']:,}", esc(", ".join(f"{m}: {n}" for m, n in b["alarms"].items()))]
            for b in r["benign"]
        ]
        out.append(table(["benign client", "queries", "alarms (false)"], benign))
        if r.get("safe_beyond"):
            read = f"≥ {r['budget']:,} queries (every budget tried)"
        elif r.get("safe_budget") is None:
            read = "none of the budgets tried"
        else:
            read = f"{r['safe_budget']:,} queries"
        if r.get("fidelity_at_quota") is not None:
            quota = f"lets the best copy reach {pct(r['fidelity_at_quota'])} fidelity on its own"
        else:
            quota = f"is beyond the budget of {r['budget']:,}: the best copy reached {pct(r['fidelity_unguarded'])}"
        out.append(
            muted(
                f"Query-limit read-off: a copy stays below {pct(r['below'])} fidelity up to {read}; the configured "
                f"quota of {r['quota']:,} queries {quota}."
            )
        )
    out.append(
        muted(
            "Two gateways serve the model on 127.0.0.1: a watching one whose monitors only log (queries to each "
            "monitor's first alarm; the attack runs to its budget) and an enforcing one with the configured action. "
            "Figures come from the audit logs; a copy at a point is the seeded attack replayed locally to that many "
            "queries. PRADA: Juuti et al., EuroS&P 2019; stateful detection: Chen, Carlini & Wagner, SPAI 2020; "
            "natural Knockoff queries are reported to evade PRADA (Atli et al., 2020)."
        )
    )
    return "".join(out)


class DeploymentFamily(Family[DeploymentSpec, DeploymentResult]):
    """``[[deployment]]``: the gateway in front of the target, attacked over HTTP."""

    key = "deployment"
    title = "deployment"
    section = "The deployment"
    order = 95
    spec = DeploymentSpec
    result = DeploymentResult
    threats = {TEST_PRIVACY: "model stealing"}
    rules = {TEST_PRIVACY: RULE}
    attacks = (*EXTRACTION, *EVASION)
    smoke = {
        "deployment": [
            {
                "extraction": ["jacobian"],
                "budget": 40,
                "budgets": [40],
                "seeds": 10,
                "epochs": 2,
                "quota": 30,
                "evasion": ["hopskipjump"],
                "samples": 1,
                "max_queries": 30,
                "clients": 1,
                "benign": 20,
            }
        ]
    }

    def label(self, entry: DeploymentSpec) -> str:
        return f"gateway-{entry.on_alarm}"

    def run(self, ctx: Context, sc: Scenario) -> DeploymentResult:
        e = sc.spec
        assert isinstance(e, DeploymentSpec)
        t0 = time.perf_counter()
        target, _ = ctx.target()
        if e.hardening is not None:
            target = HARDENING.build(e.hardening).wrap(target)
        attacks: list[ThroughGateway] = []
        with _gateways(ctx, e, target) as (watch, enforce):
            for name in e.extraction:
                attacks.append(_extraction(name, ctx, e, target, watch, enforce))
            for name in e.evasion:
                attacks.append(_evasion(name, ctx, e, target, watch, enforce))
            benign = _benign(ctx, e, watch)
        stolen = [a for a in attacks if a.kind == "extraction"]
        runs = [
            ExtractionRun(attack=a.attack, access="labels", budgets=a.budgets, fidelity=a.fidelity, accuracy=a.accuracy)
            for a in stolen
        ]
        common = sorted(set.intersection(*(set(r.budgets) for r in runs)))
        aligned = [
            r.model_copy(
                update={
                    "budgets": common,
                    "fidelity": [r.fidelity[r.budgets.index(b)] for b in common],
                    "accuracy": [r.accuracy[r.budgets.index(b)] for b in common],
                }
            )
            for r in runs
        ]
        safe, beyond = read_off(aligned, e.below) if common else (None, False)
        # the watching gateway stops an attacker only at its quota: the copy there is what the quota alone allows
        at_quota = [a.fidelity_full for a in stolen if a.queries >= e.quota] if e.quota <= e.budget else []
        return DeploymentResult(
            kind=self.key,
            attack="gateway",
            defence=None,
            defence_type=None,
            params=sc.params(),
            monitors=e.monitors,
            on_alarm=e.on_alarm,
            hardening=e.hardening,
            quota=e.quota,
            budget=e.budget,
            batch=e.batch,
            clean_accuracy=accuracy(target, ctx.test.x, ctx.test.y),
            n_test=len(ctx.test),
            attacks=attacks,
            benign=benign,
            below=e.below,
            safe_budget=safe,
            safe_beyond=beyond,
            fidelity_at_quota=max((f for f in at_quota if f is not None), default=None),
            fidelity=max(float(a.fidelity_at_stop or 0.0) for a in stolen),
            fidelity_unguarded=max(float(a.fidelity_full or 0.0) for a in stolen),
            seconds=time.perf_counter() - t0,
        )

    def rate(self, result: DeploymentResult) -> Rating:
        f = result.fidelity
        text = (
            f"through the gateway ({', '.join(result.monitors)}; {result.on_alarm} on alarm) the best copy taken "
            f"before the key was stopped agrees with the model on {f:.1%} of test inputs "
            f"({result.fidelity_unguarded:.1%} with no monitor action)"
        )
        return rated(RULE, f, text, rate_interval(f, result.n_test))

    def intervals(self, key: str, result: DeploymentResult) -> dict[str, Interval]:
        return {f"{key}.fidelity": rate_interval(result.fidelity, result.n_test)} if result.n_test else {}

    def figures(self, key: str, result: DeploymentResult) -> dict[str, float]:
        out = {
            f"{key}.fidelity": result.fidelity,
            f"{key}.fidelity_unguarded": result.fidelity_unguarded,
            f"{key}.benign_alarms": float(sum(sum(b.alarms.values()) for b in result.benign)),
        }
        for a in result.attacks:
            for m, q in a.first_alarm.items():
                if q is not None:
                    out[f"{key}.{a.attack}.queries_to_{m}_alarm"] = float(q)
            if a.stopped_at is not None:
                out[f"{key}.{a.attack}.stopped_at"] = float(a.stopped_at)
            if a.success_before_stop is not None:
                out[f"{key}.{a.attack}.success_before_stop"] = a.success_before_stop
        if result.safe_budget is not None:
            out[f"{key}.safe_budget"] = float(result.safe_budget)
        return out

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(results) if results else ""


FAMILY = DeploymentFamily()
