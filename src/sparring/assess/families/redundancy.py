"""Redundant diverse models with human review, and partition ensembles against poisoning.

``attack = "evasion"``: the best single member and the redundant ensemble
(:class:`~sparring.defenses.inference.redundancy.RedundantEnsemble`) face a transfer attack
from an independently trained surrogate, Square through the vote, and the adaptive attack on
the ensemble's differentiable members (PGD on the log of their mean probabilities; He et al.,
WOOT 2017). The cell is rated on the worst of them, so redundancy is credited only with its
adaptive figure; the share of successful attacks routed to human review, and the review rate
on clean inputs (the human work it creates), are reported beside it, never counted as defended.

``attack = "partition"``: Deep Partition Aggregation (Levine & Feizi, ICLR 2021) against
BadNets: the ASR on one model trained on the poisoned set vs on ``partitions`` members trained
on hash-disjoint parts of it (the poisons kept to those that hash into ``poisoned_partitions``
partitions, so both models see the same poisons), and the share of clean test inputs certified
correct against 1, 5, 10 and 20 poisoned samples.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from sparring.assess.context import Context
from sparring.assess.family import (
    TEST_INTEGRITY,
    TRAIN_INTEGRITY,
    Defences,
    Family,
    Rating,
    Rule,
    Scenario,
    ScenarioResult,
    rated,
)
from sparring.assess.htmlkit import esc, pct, table
from sparring.assess.spec import Entry, WithDefences, defences_field
from sparring.attacks.evasion import PGD, Square
from sparring.attacks.poisoning.badnets import BadNets
from sparring.data import Dataset
from sparring.defenses.inference.redundancy import (
    RedundantEnsemble,
    certified_poisons,
    partition_members,
    partition_of,
)
from sparring.errors import ConfigError
from sparring.metrics import accuracy, attack_success_rate, per_query_ms, rate_interval
from sparring.models import ARCHITECTURES, Access, Classifier, SklearnClassifier, TorchClassifier, build
from sparring.train import TrainConfig, fit

EVASION_RULE = Rule("share of clean accuracy lost at eps, worst of transfer, Square and the adaptive attack", 0.2, 0.5)
BACKDOOR_RULE = Rule("backdoor attack success rate", 0.2, 0.5)
SKLEARN_MEMBERS = ("knn", "logistic_regression")
POISON_COUNTS = (1, 5, 10, 20)


class RedundancySpec(Entry, WithDefences):
    """One redundancy entry: diverse members against evasion, or a partition ensemble against BadNets."""

    attack: Literal["evasion", "partition"] = "evasion"
    #: The diverse members (evasion: at least 2); a partition entry trains the first PyTorch one per partition.
    members: list[str] = Field(default_factory=lambda: ["small_cnn", "mlp", "knn"], min_length=1)
    agreement: float = Field(1.0, gt=0.0, le=1.0)
    eps: float = Field(0.1, gt=0)
    samples: int = Field(200, ge=10)
    steps: int = Field(20, ge=1)
    max_queries: int = Field(300, ge=10)
    partitions: int = Field(10, ge=2)
    poison_fraction: float = Field(0.3, gt=0, lt=1)
    #: Poisons are kept only where they land in this many partitions (DPA's threat: a poison reaches one vote).
    poisoned_partitions: int = Field(1, ge=1)
    epochs: int | None = Field(None, ge=1)
    defences: list[str] = defences_field()

    @field_validator("members")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for m in v:
            if m not in ARCHITECTURES and m not in SKLEARN_MEMBERS:
                raise ValueError(f"unknown member {m!r}; accepted: {', '.join([*ARCHITECTURES, *SKLEARN_MEMBERS])}")
        return v


class RedundancyResult(ScenarioResult):
    """Figures of the single model (no defence) or of the ensemble."""

    model: str
    clean_accuracy: float
    samples: int
    transfer_robust_accuracy: float | None = None
    square_robust_accuracy: float | None = None
    adaptive_robust_accuracy: float | None = None
    robust_accuracy: float | None = None
    review_rate_clean: float | None = None
    review_share_of_successes: float | None = None
    asr: float | None = None
    n_triggered: int | None = None
    certified: dict[str, float] | None = None
    members: list[dict[str, Any]] | None = None
    train_seconds: float = 0.0
    query_ms: float | None = None


def _spec(sc: Scenario) -> RedundancySpec:
    assert isinstance(sc.spec, RedundancySpec)
    return sc.spec


def _train_torch(ctx: Context, arch: str, data: Dataset, seed: int, epochs: int | None) -> tuple[Classifier, float]:
    module = build(arch, ctx.data.input_shape, ctx.data.num_classes, seed=seed)
    cfg = TrainConfig(epochs=epochs or ctx.config.model.epochs, batch_size=64, lr=1e-3, seed=seed)
    result = fit(module, data, cfg, desc=f"member {arch}")
    return ctx.wrap(result.model), result.seconds


def _member(ctx: Context, kind: str, data: Dataset, seed: int, epochs: int | None) -> tuple[Classifier, float]:
    if kind in ARCHITECTURES:
        if data is ctx.train:  # the same member serves every entry: stored once
            key = {"arch": kind, "seed": seed, "epochs": epochs}
            return ctx.cached_model(
                f"member-{kind}-{seed}-{epochs}",
                key,
                lambda: _fitted_module(ctx, kind, data, seed, epochs),
                lambda: build(kind, ctx.data.input_shape, ctx.data.num_classes, seed=seed),
            )
        return _train_torch(ctx, kind, data, seed, epochs)
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    estimator = KNeighborsClassifier(5) if kind == "knn" else LogisticRegression(max_iter=500)
    x, y = data.x.flatten(1).numpy(), data.y.numpy()
    estimator.fit(x, y)
    missing = set(range(ctx.data.num_classes)) - {int(c) for c in np.unique(y)}
    if missing:
        raise ConfigError(f"member {kind} saw no sample of class(es) {sorted(missing)}: use fewer partitions")
    return SklearnClassifier(estimator, ctx.data.input_shape, bounds=ctx.config.data.bounds), 0.0


def _fitted_module(ctx: Context, kind: str, data: Dataset, seed: int, epochs: int | None) -> tuple[Any, float]:
    clf, seconds = _train_torch(ctx, kind, data, seed, epochs)
    assert isinstance(clf, TorchClassifier)
    return clf.model, seconds


def _correct(clf: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return clf.predict_labels(x) == y


class RedundancyFamily(Family[RedundancySpec, RedundancyResult]):
    """``[[redundancy]]``: diverse redundant models with human review, and partition ensembles."""

    key = "redundancy"
    title = "redundancy"
    section = "Redundancy and human review"
    order = 75
    spec = RedundancySpec
    result = RedundancyResult
    threats = {TEST_INTEGRITY: "evasion", TRAIN_INTEGRITY: "backdoors"}
    rules = {TEST_INTEGRITY: EVASION_RULE, TRAIN_INTEGRITY: BACKDOOR_RULE}
    defences = (
        Defences("inference", ("ensemble",), summary="majority vote of the members, disagreement to human review"),
        Defences("training", ("partition",), summary="Deep Partition Aggregation over hash-disjoint partitions"),
    )
    attacks = ("evasion", "partition")
    smoke = {
        "redundancy": [
            {
                "attack": "evasion",
                "members": ["mlp", "knn"],
                "samples": 30,
                "steps": 5,
                "max_queries": 20,
                "epochs": 2,
                "defences": ["ensemble"],
            },
            {"attack": "partition", "members": ["mlp", "knn"], "partitions": 3, "epochs": 2, "defences": ["partition"]},
        ]
    }

    def label(self, entry: RedundancySpec) -> str:
        return entry.attack

    def check_config(self, config: Any, entries: Any) -> None:
        for e in entries:
            if e.attack == "evasion" and len(e.members) < 2:
                raise ValueError("redundancy: a redundant ensemble needs at least 2 members")
            wrong = [d for d in e.defences if (d == "partition") != (e.attack == "partition")]
            if wrong:
                raise ValueError(f"redundancy: defence {wrong[0]!r} does not go with attack {e.attack!r}")

    def check(self, ctx: Context, index: int, entry: RedundancySpec) -> None:
        if entry.attack == "partition" and len(ctx.data.input_shape) != 3:
            raise ConfigError(
                f"redundancy[{index}]: the partition entry stamps a BadNets patch; the data is not images"
            )
        if entry.attack == "evasion" and not any(m in ARCHITECTURES for m in entry.members):
            raise ConfigError(f"redundancy[{index}]: the adaptive attack needs at least one PyTorch member")

    def cell(self, result: RedundancyResult) -> tuple[str, str]:
        return TRAIN_INTEGRITY if result.attack == "partition" else TEST_INTEGRITY

    def run(self, ctx: Context, sc: Scenario) -> RedundancyResult:
        spec = _spec(sc)
        return self._partition(ctx, sc, spec) if spec.attack == "partition" else self._evasion(ctx, sc, spec)

    def _evasion(self, ctx: Context, sc: Scenario, spec: RedundancySpec) -> RedundancyResult:
        members = [_member(ctx, kind, ctx.train, ctx.seed + i, spec.epochs) for i, kind in enumerate(spec.members)]
        n = min(spec.samples, len(ctx.test))
        x, y = ctx.test.x[:n], ctx.test.y[:n]
        clean = [accuracy(m, x, y) for m, _ in members]
        rows: list[dict[str, Any]] = [
            {"member": kind, "clean_accuracy": acc} for kind, acc in zip(spec.members, clean, strict=True)
        ]
        ensemble = RedundantEnsemble([m for m, _ in members], spec.agreement)
        if sc.defence is None:  # the undefended figure: the best single member
            best = max(range(len(members)), key=lambda i: clean[i])
            target: Classifier = members[best][0]
            name = spec.members[best]
        else:
            target, name = ensemble, "ensemble of " + " + ".join(spec.members)
        surrogate, _ = _train_torch(ctx, "mlp", ctx.train, ctx.seed + 1000, spec.epochs)
        transfer = PGD(eps=spec.eps, steps=spec.steps, seed=ctx.seed).run(surrogate, x, y).x_adv
        robust = {"transfer": _correct(target, transfer, y)}
        if Access.SCORES in target.access:
            sq = Square(eps=spec.eps, max_queries=spec.max_queries, seed=ctx.seed).run(target, x, y).x_adv
            robust["square"] = _correct(target, sq, y)
        if Access.GRADIENTS in target.access:
            adaptive = PGD(eps=spec.eps, steps=spec.steps, seed=ctx.seed).run(target, x, y).x_adv
            robust["adaptive"] = _correct(target, adaptive, y)
        worst = torch.stack(list(robust.values())).all(dim=0)
        extra: dict[str, Any] = {}
        if sc.defence is not None:
            broken = ~worst & _correct(target, x, y)
            attacked = adaptive if "adaptive" in robust else transfer
            extra = {
                "review_rate_clean": float(ensemble.review(x).float().mean()),
                "review_share_of_successes": float(ensemble.review(attacked)[broken].float().mean())
                if bool(broken.any())
                else 0.0,
                "query_ms": max(0.0, per_query_ms(ensemble, x) - per_query_ms(members[0][0], x)),
            }
        return RedundancyResult(
            kind=self.key,
            attack=spec.attack,
            defence=sc.defence,
            defence_type="inference" if sc.defence else None,
            params=sc.params(),
            model=name,
            clean_accuracy=accuracy(target, x, y),
            samples=n,
            transfer_robust_accuracy=float(robust["transfer"].float().mean()),
            square_robust_accuracy=float(robust["square"].float().mean()) if "square" in robust else None,
            adaptive_robust_accuracy=float(robust["adaptive"].float().mean()) if "adaptive" in robust else None,
            robust_accuracy=float(worst.float().mean()),
            members=rows,
            train_seconds=sum(s for _, s in members),
            **extra,
        )

    def _partition(self, ctx: Context, sc: Scenario, spec: RedundancySpec) -> RedundancyResult:
        badnets = BadNets(target=0, poison_fraction=spec.poison_fraction, patch_size=2, seed=ctx.seed)
        stamped = badnets.poison(ctx.train)
        assert stamped.trigger is not None
        # the same training set for both models: every clean sample, and the poisons that hash into the
        # first `poisoned_partitions` partitions (the single model sees exactly the poisons the ensemble sees)
        keep_poison = partition_of(stamped.x, spec.partitions) < spec.poisoned_partitions
        poisoned = stamped.subset(torch.nonzero(~stamped.poison_mask | keep_poison).flatten(), ctx.train.name)
        n_poisons = int((stamped.poison_mask & keep_poison).sum())
        test = ctx.test
        keep = test.y != 0
        clean_x = test.x[: spec.samples]
        clean_y = test.y[: spec.samples]
        kind = next(m for m in spec.members if m in ARCHITECTURES)
        if sc.defence is None:
            target, seconds = _train_torch(ctx, kind, poisoned, ctx.seed, spec.epochs)
            certified = None
        else:
            started = time.perf_counter()
            # each member sees 1/k of the data: k times the epochs gives it the single model's number of steps
            steps = (spec.epochs or ctx.config.model.epochs) * spec.partitions
            members, _ = partition_members(
                poisoned, spec.partitions, lambda part, i: _member(ctx, kind, part, ctx.seed + i, steps)[0]
            )
            target, seconds = RedundantEnsemble(members, agreement=0.0), time.perf_counter() - started
            votes = target.votes(clean_x)
            ok = votes.argmax(dim=1) == clean_y
            radius = certified_poisons(votes)
            certified = {str(t): float((ok & (radius >= t)).float().mean()) for t in POISON_COUNTS}
        asr = attack_success_rate(target, test.x[keep], test.y[keep], stamped.trigger, 0)
        return RedundancyResult(
            kind=self.key,
            attack=spec.attack,
            defence=sc.defence,
            defence_type="training" if sc.defence else None,
            params=sc.params(),
            model=(f"{spec.partitions} x {kind} on hash partitions" if sc.defence else kind)
            + f", {n_poisons} poisons",
            clean_accuracy=accuracy(target, clean_x, clean_y),
            samples=len(clean_x),
            asr=asr,
            n_triggered=int(keep.sum()),
            certified=certified,
            train_seconds=seconds,
        )

    def rate(self, result: RedundancyResult) -> Rating:
        if result.attack == "partition":
            assert result.asr is not None
            ci = rate_interval(result.asr, result.n_triggered) if result.n_triggered else None
            return rated(BACKDOOR_RULE, result.asr, f"BadNets ASR {result.asr:.1%} on {result.model}", ci)
        assert result.robust_accuracy is not None
        clean = result.clean_accuracy
        loss = max(0.0, 1 - result.robust_accuracy / clean) if clean > 0 else 1.0
        text = f"worst-case robust accuracy {result.robust_accuracy:.1%} of {result.model} (clean {clean:.1%})"
        return rated(EVASION_RULE, loss, text)

    def figures(self, key: str, result: RedundancyResult) -> dict[str, float]:
        names = (
            "clean_accuracy",
            "robust_accuracy",
            "transfer_robust_accuracy",
            "square_robust_accuracy",
            "adaptive_robust_accuracy",
            "review_rate_clean",
            "review_share_of_successes",
            "asr",
        )
        out = {f"{key}.{n}": float(v) for n in names if isinstance(v := getattr(result, n), int | float)}
        for t, share in (result.certified or {}).items():
            out[f"{key}.certified@{t}"] = share
        return out

    def expected_figures(self, sc: Scenario) -> list[str]:
        return [f"{sc.key}.*"]

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        if not results:
            return ""
        rows = []
        for key, r in results.items():
            robust = [r.get(f"{a}_robust_accuracy") for a in ("transfer", "square", "adaptive")]
            rows.append(
                [
                    esc(key),
                    esc(r["model"]),
                    pct(r["clean_accuracy"]),
                    *(pct(v) if v is not None else "—" for v in robust),
                    pct(r["asr"]) if r.get("asr") is not None else "—",
                    pct(r["review_rate_clean"]) if r.get("review_rate_clean") is not None else "—",
                    pct(r["review_share_of_successes"]) if r.get("review_share_of_successes") is not None else "—",
                    esc(", ".join(f"{t}: {pct(v)}" for t, v in (r.get("certified") or {}).items())) or "—",
                ]
            )
        head = [
            "scenario",
            "model",
            "clean",
            "transfer",
            "Square",
            "adaptive",
            "BadNets ASR",
            "review (clean)",
            "successes sent to review",
            "certified vs poisons",
        ]
        return (
            '<p class="muted">Robust accuracy per attack at the entry\'s eps; the matrix credits the ensemble only '
            "with the worst of them (the adaptive attack on its differentiable members included). Review: inputs "
            "whose members disagree go to a person — the clean rate is the work it creates.</p>" + table(head, rows)
        )


FAMILY = RedundancyFamily()
