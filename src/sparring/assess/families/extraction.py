"""Model stealing: accuracy and fidelity of a stolen copy against the queries it took.

An attacker queries the model as deployed on inputs from a pool (held-out data of the same
distribution as the upper bound, the other built-in image set, photo crops, noise) and
trains a surrogate on the answers (Knockoff Nets, Orekondy et al., CVPR 2019), or solves
for a logistic model exactly from d + 1 score queries (Tramèr et al., USENIX Security 2016).
The rated figure is the fidelity at the largest budget: agreement with the model's labels
on the test split (Jagielski et al., USENIX Security 2020). Each access mode of an entry
runs when the deployment still allows it, and a defence is judged by the strongest of them:
reverse sigmoid (Lee et al., 2019) misleads an attacker who distils probabilities but not one
who trains on labels. The budget read-off is the largest budget up to which every budget
keeps the strongest copy's fidelity under ``below`` (and, with ``below_accuracy``, its task
accuracy under that): a per-client query limit (ATLAS AML.M0004).

With ``transfer = true`` the stolen copy is also used as a stepping stone (BSI): PGD crafted
white-box on it is replayed on the model as deployed (Papernot et al., AsiaCCS 2017), beside
the same attack crafted on an independently trained surrogate (the attacker's own labelled
data, no queries) and PGD on the model itself, the white-box upper bound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
from pydantic import Field, field_validator

from sparring.assess.context import Context
from sparring.assess.family import (
    TEST_PRIVACY,
    CostRow,
    Defences,
    Family,
    Rating,
    Row,
    Rule,
    Scenario,
    ScenarioResult,
    rated,
)
from sparring.assess.htmlkit import curve_plot, esc, muted, pct, png, table
from sparring.assess.spec import (
    Entry,
    WithDefences,
    defences_field,
    listify,
    one_of,
    parses,
    query_budgets,
    surrogate_architecture,
)
from sparring.attacks.evasion import PGD
from sparring.attacks.evasion.transfer import Transfer
from sparring.attacks.privacy.extraction import (
    EXTRACTION_ATTACKS,
    QUERY_POOLS,
    SAMPLING,
    EquationSolving,
    ExtractionResult,
    KnockoffNets,
    check_access_mode,
    query_pool,
    thief_seed,
)
from sparring.attacks.privacy.jacobian import JacobianAugmentation
from sparring.defenses.inference import HARDENING
from sparring.errors import ConfigError
from sparring.metrics import Interval, accuracy, per_query_ms, rate_interval
from sparring.models import Access, Classifier

RULE = Rule(
    "fidelity of a stolen copy at the largest query budget",
    medium=0.5,
    high=0.9,
    note="agreement with the model's labels on test data; the strongest access that still applies",
)


class ExtractionSpec(Entry, WithDefences):
    """Model stealing within query budgets, with the attacker's access modes.

    ``pool`` ``in_distribution`` queries the assessment's training inputs (the upper bound:
    the attacker holds data of the model's own distribution); fidelity and accuracy are
    measured on the test split. ``access`` lists the Knockoff attacker's modes
    (``probabilities``, ``top_k:K``, ``labels``); ``equation_solving`` always uses scores
    and, where a defence hides them, a label-only Knockoff attacker on the training inputs
    stands in. ``jacobian`` (Papernot et al., AsiaCCS 2017) grows ``seeds`` inputs of ``pool``
    by Jacobian-based augmentation and trains on the labels. ``below`` is the fidelity of the
    query-limit read-off and ``below_accuracy`` (optional) the stolen task accuracy of a second
    one. ``transfer`` replays PGD (``transfer_eps``, ``transfer_steps``, on the first
    ``transfer_samples`` test inputs)
    crafted on the strongest stolen copy against the model (see :func:`stepping_stone`).
    """

    attack: str = "knockoff"
    #: Natural inputs a ``jacobian`` attacker starts from (drawn from ``pool``), doubled each round.
    seeds: int = Field(100, ge=1)
    sampling: str = "random"
    pool: str = "in_distribution"
    budgets: list[int] = Field(default_factory=lambda: [250, 500, 1000], min_length=1)
    access: list[str] = Field(default_factory=lambda: ["probabilities", "labels"], min_length=1)
    surrogate: str = "mlp"
    epochs: int = Field(30, ge=1)
    #: Fewest optimiser steps a copy trains for (more epochs on few answers; see KnockoffNets).
    steps: int = Field(400, ge=0)
    below: float = Field(0.9, gt=0.0, le=1.0)
    below_accuracy: float | None = Field(None, gt=0.0, le=1.0)
    defences: list[str] = defences_field()
    #: Replay PGD crafted on the stolen copy against the model (the stepping stone to transfer attacks).
    transfer: bool = False
    #: L-inf budget of the transfer PGD in the data's units (0.3: the classic MNIST budget, Madry et al., ICLR 2018).
    transfer_eps: float = Field(0.3, gt=0.0)
    transfer_steps: int = Field(20, ge=1)
    #: Test inputs attacked (the first ones of the test split).
    transfer_samples: int = Field(500, ge=1)

    _listify = field_validator("budgets", "access", mode="before")(listify)

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, list(ATTACKS), "extraction attack")

    @field_validator("sampling")
    @classmethod
    def _known_sampling(cls, v: str) -> str:
        return one_of(v, SAMPLING, "Knockoff sampling")

    @field_validator("pool")
    @classmethod
    def _known_pool(cls, v: str) -> str:
        return one_of(v, QUERY_POOLS, "query pool")

    _surrogate = field_validator("surrogate")(surrogate_architecture)
    _budgets = field_validator("budgets")(query_budgets)

    @field_validator("access", mode="before")
    @classmethod
    def _known_access(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        return [parses(check_access_mode, a) if isinstance(a, str) else a for a in v]


class ExtractionRun(Row):
    """One attack with one access mode: its curve, or why it could not run."""

    attack: str
    access: str
    applies: bool = True
    note: str | None = None
    queries: int = 0
    seconds: float = 0.0
    budgets: list[int] = []
    queries_at: list[int] = []
    accuracy: list[float] = []
    fidelity: list[float] = []


class TransferRow(Row):
    """The stepping stone: the model's error on PGD inputs crafted on each surrogate (L-inf ``eps``)."""

    eps: float
    steps: int
    n: int
    #: The model's accuracy on the attacked test inputs before the attack.
    clean_accuracy: float
    #: Share of the inputs the model misclassifies after PGD crafted on the stolen copy.
    stolen_success: float
    #: ... crafted on a surrogate trained on the attacker's own labelled data (no queries).
    independent_success: float
    #: ... crafted on the model itself (white-box; None when the model grants no gradients).
    white_box_success: float | None = None
    #: The crafting attack's success on the stolen copy itself.
    stolen_surrogate_success: float
    independent_data: str
    note: str | None = None


class ExtractionScenarioResult(ScenarioResult):
    """Curves of every access mode that still applies, the strongest one's figures and the budget read-off."""

    pool: str
    clean_accuracy: float
    n_test: int
    runs: list[ExtractionRun]
    strongest: str
    fidelity: float
    stolen_accuracy: float
    relative_accuracy: float
    queries: int
    below: float
    #: Largest budget such that the copy stays below ``below`` fidelity at it and every smaller one (None: none).
    safe_budget: int | None = None
    #: True when every budget of the entry stays below ``below`` (the read-off is a lower bound).
    safe_beyond: bool = False
    #: The same read-off for the copy's task accuracy against ``below_accuracy`` (when configured).
    below_accuracy: float | None = None
    safe_budget_accuracy: int | None = None
    safe_beyond_accuracy: bool = False
    seconds: float
    #: Wall time the output hardening adds per query, in ms (median of repeated timings).
    query_ms: float | None = None
    #: Transfer evasion from the stolen copy (``transfer = true``).
    transfer: TransferRow | None = None


#: The attacks an ``[[extraction]]`` entry names: the library's and Jacobian-based augmentation.
ATTACKS = (*EXTRACTION_ATTACKS, "jacobian")


def _applies(clf: Classifier, attack: str, mode: str) -> str | None:
    """Why ``attack`` with ``mode`` cannot run against ``clf`` (None when it can)."""
    name, _ = check_access_mode(mode)
    needed = Access.LABELS if name == "labels" and attack != "equation_solving" else Access.SCORES
    if needed in clf.access:
        return None
    return f"the deployment releases no {'labels' if needed == Access.LABELS else 'scores'}"


def _run(r: ExtractionResult) -> ExtractionRun:
    return ExtractionRun(
        attack=r.attack,
        access=r.access,
        queries=r.queries,
        seconds=r.seconds,
        budgets=[p.budget for p in r.curve],
        queries_at=[p.queries for p in r.curve],
        accuracy=[float(p.accuracy or 0.0) for p in r.curve],
        fidelity=[float(p.fidelity or 0.0) for p in r.curve],
    )


def read_off(runs: list[ExtractionRun], below: float, figure: str = "fidelity") -> tuple[int | None, bool]:
    """The largest budget up to which every budget keeps the strongest copy's ``figure`` below ``below``.

    ``figure`` is ``fidelity`` or ``accuracy``; at each budget the strongest of the runs that
    applied counts. Returns ``(budget or None when the first budget already reaches it,
    True when no budget of the entry reaches it: the read-off is then a lower bound)``.
    """
    ran = [r for r in runs if r.applies]
    budgets = ran[0].budgets
    best = [max(getattr(r, figure)[i] for r in ran) for i in range(len(budgets))]
    safe: int | None = None
    for b, f in zip(budgets, best, strict=True):
        if f >= below:
            return safe, False
        safe = b
    return safe, True


def stepping_stone(
    ctx: Context, e: ExtractionSpec, target: Classifier, deployed: Classifier, stolen: Classifier
) -> TransferRow:
    """PGD crafted on the stolen copy, on an independent surrogate and on the model, replayed on ``deployed``.

    The independent surrogate is trained with the Knockoff recipe on the attacker's own
    labelled data of the task (as many training inputs as the largest budget, true labels,
    no victim queries); with the ``in_distribution`` pool these are the pool's inputs. The
    white-box bound attacks ``target`` (the model behind any output hardening, whose labels
    the hardening keeps) and is None when it grants no gradients.
    """
    n = min(e.transfer_samples, len(ctx.test))
    x, y = ctx.test.x[:n], ctx.test.y[:n]
    # no early stop: an input pushed the whole way on the surrogate transfers better than a barely-flipped one
    pgd = PGD(eps=e.transfer_eps, steps=e.transfer_steps, early_stop=False, seed=ctx.seed)
    m = min(e.budgets[-1], len(ctx.train))
    own = KnockoffNets(architecture=e.surrogate, epochs=e.epochs, seed=thief_seed(ctx.seed), steps=e.steps).train_copy(
        deployed, ctx.train.x[:m], ctx.train.y[:m]
    )
    success: dict[str, float] = {}
    surrogate_success = 0.0
    for name, surrogate in (("stolen", stolen), ("independent", own)):
        attack = Transfer(surrogate, pgd)
        success[name] = attack.run(deployed, x, y).success_rate
        if name == "stolen":
            surrogate_success = float(attack.last_surrogate_success_rate or 0.0)
    white: float | None = None
    note = None
    if Access.GRADIENTS in target.access:
        x_adv = pgd.run(target, x, y).x_adv
        white = float((deployed.predict_labels(x_adv) != y).float().mean())
    else:
        note = "white-box bound not measured: the model grants no gradients"
    return TransferRow(
        eps=e.transfer_eps,
        steps=e.transfer_steps,
        n=n,
        clean_accuracy=accuracy(deployed, x, y),
        stolen_success=success["stolen"],
        independent_success=success["independent"],
        white_box_success=white,
        stolen_surrogate_success=surrogate_success,
        independent_data=f"{m:,} labelled training inputs",
        note=note,
    )


def _transfer_html(results: Mapping[str, dict[str, Any]]) -> str:
    """The stepping-stone table and a bar chart of the model's accuracy under each transfer."""
    rows, bars = [], []
    for key, r in results.items():
        t = r.get("transfer")
        if not t:
            continue
        white = t.get("white_box_success")
        name = r["defence"] or "no defence"
        rows.append(
            [
                esc(key),
                esc(name),
                f"{t['eps']:g} ({t['steps']} steps, {t['n']:,} inputs)",
                pct(t["clean_accuracy"]),
                pct(t["stolen_success"]),
                pct(t["independent_success"]),
                pct(white) if white is not None else "—",
            ]
        )
        accs = [t["clean_accuracy"], 1 - t["stolen_success"], 1 - t["independent_success"]]
        bars.append((f"{key} ({name})", [*accs, 1 - white if white is not None else float("nan")]))
        if t.get("note"):
            rows[-1][-1] += f" ({esc(t['note'])})"
    if not rows:
        return ""
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.55 * len(bars)))
    kinds = ["clean", "from the stolen copy", "from an independent surrogate", "white-box"]
    height = 0.8 / len(kinds)
    for j, kind in enumerate(kinds):
        ax.barh([i + j * height for i in range(len(bars))], [b[1][j] for b in bars], height, label=kind)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(bars))], [b[0] for b in bars], fontsize=7)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("model accuracy on the attacked test inputs")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    ax.set_title("Stepping stone: transfer evasion from the stolen copy")
    header = [
        "scenario",
        "defence",
        "L-inf eps",
        "model acc.",
        "success from stolen copy",
        "from independent surrogate",
        "white-box",
    ]
    return (
        png(fig)
        + table(header, rows)
        + muted(
            "Success is the share of attacked test inputs the model (as deployed) misclassifies after PGD crafted "
            "on each surrogate (Papernot et al., AsiaCCS 2017); the independent surrogate is trained on the "
            "attacker's own labelled data without a single query, and white-box PGD on the model is the upper bound. "
            "A stolen copy that transfers better than the independent one makes stealing a stepping stone (BSI)."
        )
    )


def _read(budgets: list[int], safe: int | None, beyond: bool) -> str:
    """A read-off as the report states it."""
    if not budgets:
        return "—"
    if beyond:
        return f"≥ {budgets[-1]:,} (every budget tried)"
    return f"none (reached at {budgets[0]:,})" if safe is None else f"{safe:,}"


def _html(results: Mapping[str, dict[str, Any]]) -> str:
    out = []
    rows = []
    for key, r in results.items():
        name = r["defence"] or "no defence"
        lines: list[tuple[str, list[float], list[float], str, int]] = []
        for i, run in enumerate(r["runs"]):
            if not run.get("applies", True):
                continue
            xs = [float(q) for q in run["queries_at"]]
            tag_ = f"{run['attack']}, {run['access']}"
            lines.append((f"fidelity ({tag_})", xs, run["fidelity"], "-", i))
            lines.append((f"accuracy ({tag_})", xs, run["accuracy"], "--", i))
        if lines:
            out.append(curve_plot(f"Model stealing: {key} ({name}, pool {r['pool']})", "victim queries", lines, "rate"))
        budgets: list[int] = next((run["budgets"] for run in r["runs"] if run.get("applies", True)), [])
        fid = _read(budgets, r.get("safe_budget"), r.get("safe_beyond", False))
        read = esc(f"{fid} (fidelity < {pct(r['below'])})")
        if r.get("below_accuracy") is not None:
            acc = _read(budgets, r.get("safe_budget_accuracy"), r.get("safe_beyond_accuracy", False))
            read += "<br>" + esc(f"{acc} (accuracy < {pct(r['below_accuracy'])})")
        rows.append(
            [
                esc(key),
                esc(name),
                esc(r["strongest"]),
                f"{r['queries']:,}",
                pct(r["stolen_accuracy"]),
                pct(r["fidelity"]),
                pct(r["clean_accuracy"]),
                read,
            ]
        )
    header = [
        "scenario",
        "defence",
        "strongest attack (access)",
        "queries",
        "stolen acc.",
        "fidelity",
        "model acc.",
        "query limit read-off",
    ]
    out.append(table(header, rows))
    for key, r in results.items():
        for run in r["runs"]:
            if run.get("note"):
                out.append(muted(f"{key}, {run['attack']} with {run['access']}: {run['note']}"))
    out.append(
        muted(
            "Fidelity is agreement with the model's labels on the test split (Jagielski et al., USENIX Security "
            "2020); a defence is rated by the strongest access mode that still runs against it. The read-off is "
            "the largest budget at which (and below which) the strongest copy stays under the chosen fidelity (or "
            "accuracy): a per-client query limit to configure at serving time."
        )
    )
    out.append(_transfer_html(results))
    return "".join(out)


class ExtractionFamily(Family[ExtractionSpec, ExtractionScenarioResult]):
    """``[[extraction]]``: steal the model as deployed, behind each output hardening."""

    key = "extraction"
    title = "extraction"
    section = "Model stealing (test-time privacy)"
    order = 72
    spec = ExtractionSpec
    result = ExtractionScenarioResult
    threats = {TEST_PRIVACY: "model stealing"}
    rules = {TEST_PRIVACY: RULE}
    defences = (Defences("inference", registry=HARDENING, summary="output hardening"),)
    attacks = ATTACKS
    smoke = {"extraction": [{"budgets": [50, 100], "epochs": 5, "steps": 50, "defences": ["reverse_sigmoid:5"]}]}

    def label(self, entry: ExtractionSpec) -> str:
        if entry.attack != "knockoff":
            return entry.attack
        return f"knockoff-{entry.pool}" + ("-adaptive" if entry.sampling == "adaptive" else "")

    def check(self, ctx: Context, index: int, entry: ExtractionSpec) -> None:
        if entry.attack != "equation_solving" and entry.pool in ("other", "photos") and len(ctx.data.input_shape) != 3:
            raise ConfigError(
                f"extraction[{index}].pool: {entry.pool!r} needs image inputs [C, H, W], the data has "
                f"{ctx.data.input_shape}; use 'in_distribution' or 'noise'"
            )
        if entry.surrogate == "small_cnn" and len(ctx.data.input_shape) != 3:
            raise ConfigError(f"extraction[{index}].surrogate: 'small_cnn' needs image inputs; use 'mlp'")

    def run(self, ctx: Context, sc: Scenario) -> ExtractionScenarioResult:
        e = sc.spec
        assert isinstance(e, ExtractionSpec)
        target, _ = ctx.target()
        clf, query_ms = target, None
        if sc.defence is not None:
            clf = HARDENING.build(sc.defence).wrap(target)
            query_ms = max(0.0, per_query_ms(clf, ctx.test.x) - per_query_ms(target, ctx.test.x))
        lo, hi = ctx.config.data.bounds
        runs: list[ExtractionRun] = []
        copies: dict[int, Classifier] = {}  # index in runs -> the copy stolen at the largest budget
        if e.attack == "equation_solving":
            modes = [("equation_solving", "probabilities")]
        else:
            pool = query_pool(e.pool, ctx.data.input_shape, e.budgets[-1], ctx.seed, (lo, hi), ctx.train.x)
            modes = [("jacobian", "labels")] if e.attack == "jacobian" else [("knockoff", a) for a in e.access]
        for attack, mode in modes:
            why = _applies(clf, attack, mode)
            if why is not None:
                runs.append(ExtractionRun(attack=attack, access=mode, applies=False, note=f"not run: {why}"))
                continue
            if attack == "equation_solving":
                r = EquationSolving(seed=ctx.seed).steal(clf, e.budgets, test=ctx.test)
            elif attack == "jacobian":
                grower = JacobianAugmentation(
                    seeds=e.seeds, architecture=e.surrogate, epochs=e.epochs, seed=thief_seed(ctx.seed)
                )
                r = grower.steal(clf, e.budgets, pool=pool, test=ctx.test)
            else:
                thief = KnockoffNets(
                    access=mode,
                    architecture=e.surrogate,
                    epochs=e.epochs,
                    seed=thief_seed(ctx.seed),
                    sampling=e.sampling,
                    steps=e.steps,
                )
                r = thief.steal(clf, e.budgets, pool=pool, test=ctx.test)
            copies[len(runs)] = r.surrogate
            runs.append(_run(r))
        if not any(r.applies for r in runs) and Access.LABELS in clf.access:
            # the strongest attack that still applies: a label-only Knockoff attacker
            pool = query_pool(
                e.pool if e.attack != "equation_solving" else "in_distribution",
                ctx.data.input_shape,
                e.budgets[-1],
                ctx.seed,
                (lo, hi),
                ctx.train.x,
            )
            thief = KnockoffNets(
                access="labels", architecture=e.surrogate, epochs=e.epochs, seed=thief_seed(ctx.seed), steps=e.steps
            )
            stolen = thief.steal(clf, e.budgets, pool=pool, test=ctx.test)
            copies[len(runs)] = stolen.surrogate
            note = "fallback: no requested access applies; label-only Knockoff"
            runs.append(_run(stolen).model_copy(update={"note": note}))
        ran = [i for i, r in enumerate(runs) if r.applies]
        if not ran:
            raise ConfigError(f"no extraction attack applies to the model behind {sc.defence or 'no defence'}")
        top = max(ran, key=lambda i: (runs[i].fidelity[-1], runs[i].accuracy[-1]))
        best = runs[top]
        transfer = stepping_stone(ctx, e, target, clf, copies[top]) if e.transfer else None
        victim_acc = accuracy(clf, ctx.test.x, ctx.test.y)
        safe, beyond = read_off(runs, e.below)
        safe_acc, beyond_acc = (None, False)
        if e.below_accuracy is not None:
            safe_acc, beyond_acc = read_off(runs, e.below_accuracy, "accuracy")
        return ExtractionScenarioResult(
            kind=self.key,
            attack=e.attack,
            defence=sc.defence,
            defence_type=self.defence_kind(sc.defence) if sc.defence else None,
            params=sc.params(),
            pool=e.pool if e.attack != "equation_solving" else "uniform (equation solving)",
            clean_accuracy=victim_acc,
            n_test=len(ctx.test),
            runs=runs,
            strongest=f"{best.attack}, {best.access}",
            fidelity=best.fidelity[-1],
            stolen_accuracy=best.accuracy[-1],
            relative_accuracy=best.accuracy[-1] / victim_acc if victim_acc > 0 else 0.0,
            queries=best.queries,
            below=e.below,
            safe_budget=safe,
            safe_beyond=beyond,
            below_accuracy=e.below_accuracy,
            safe_budget_accuracy=safe_acc,
            safe_beyond_accuracy=beyond_acc,
            seconds=sum(runs[i].seconds for i in ran),
            query_ms=query_ms,
            transfer=transfer,
        )

    def rate(self, result: ExtractionScenarioResult) -> Rating:
        f = result.fidelity
        text = (
            f"a copy stolen with {result.queries:,} queries ({result.strongest}) agrees with the model on {f:.1%} "
            f"of test inputs, accuracy {result.stolen_accuracy:.1%} vs the model's {result.clean_accuracy:.1%}"
        )
        return rated(RULE, f, text, rate_interval(f, result.n_test))

    def intervals(self, key: str, result: ExtractionScenarioResult) -> dict[str, Interval]:
        if result.n_test < 1:
            return {}
        return {
            f"{key}.fidelity": rate_interval(result.fidelity, result.n_test),
            f"{key}.stolen_accuracy": rate_interval(result.stolen_accuracy, result.n_test),
        }

    def figures(self, key: str, result: ExtractionScenarioResult) -> dict[str, float]:
        out = {
            f"{key}.fidelity": result.fidelity,
            f"{key}.stolen_accuracy": result.stolen_accuracy,
            f"{key}.relative_accuracy": result.relative_accuracy,
            f"{key}.queries": float(result.queries),
        }
        if result.safe_budget is not None:
            out[f"{key}.safe_budget"] = float(result.safe_budget)
        if result.safe_budget_accuracy is not None:
            out[f"{key}.safe_budget_accuracy"] = float(result.safe_budget_accuracy)
        t = result.transfer
        if t is not None:
            out[f"{key}.transfer_success"] = t.stolen_success
            out[f"{key}.transfer_independent_success"] = t.independent_success
            if t.white_box_success is not None:
                out[f"{key}.transfer_white_box_success"] = t.white_box_success
        return out

    def expected_figures(self, sc: Scenario) -> list[str]:
        names = ["fidelity", "stolen_accuracy", "relative_accuracy", "queries", "safe_budget", "safe_budget_accuracy"]
        if isinstance(sc.spec, ExtractionSpec) and sc.spec.transfer:
            names += ["transfer_success", "transfer_independent_success", "transfer_white_box_success"]
        return [f"{sc.key}.{n}" for n in names]

    def cost(self, key: str, result: ExtractionScenarioResult, base: ExtractionScenarioResult) -> CostRow:
        row = super().cost(key, result, base)
        return dataclasses.replace(row, seconds_note="inference-time wrapper; no training cost")

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(results) if results else ""


FAMILY = ExtractionFamily()
