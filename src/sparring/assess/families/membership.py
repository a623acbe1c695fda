"""Membership inference on a balanced member / non-member set, on the model as deployed.

Members are drawn from the training set, non-members from held-out data of the same
distribution; the ROC gives AUC and TPR at 0.1 % and 1 % FPR (LiRA's protocol, Carlini et
al., IEEE S&P 2022). Attacks: the loss threshold and the label-only gap (Yeom et al., CSF
2018), LiRA (Carlini et al., S&P 2022; offline or online), RMIA (Zarifzadeh et al.,
ICML 2024; offline or online), shadow models (Shokri et al., S&P 2017) and the label-only attacks of
Choquette-Choo et al. (ICML 2021: augmentation robustness, or the HopSkipJump distance to the
boundary). LiRA, RMIA and shadow models compare the target
with reference models trained like it on random halves of a population share of the
held-out data (``population``, by default half of it), a shared artefact built once per
setting and stored. Output hardening (rounding, top-k, labels only; Shokri et al.) is judged
by the attack that still applies: the reference models are seen through the same hardening,
and a score-based attack falls back to the label-only augmentation attack when scores are
hidden. The matrix rates the strongest attack that ran (the highest TPR at 1 % FPR), and its
text names it.

DP-SGD (``dp_sgd:EPS``, settings in ``[dp_sgd]``) retrains the target through Opacus; every
result carries the threshold audit's ε̂ (Jagielski et al., NeurIPS 2020), and an ε̂ above the
accountant's ε is flagged as a bug. With several ε the report draws the privacy–utility
curve beside the non-private model. ``canaries`` inserts mislabelled records into the
training set (Aerni et al., 2024) and reports their exposure apart; the most exposed
training records are listed with their scores (and images, for image data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from sparring.assess.artefacts import load_tensors, save_json, save_tensors
from sparring.assess.context import Artefact, Context, model_artefact
from sparring.assess.family import (
    TEST_PRIVACY,
    CostRow,
    Defences,
    Family,
    Rating,
    Rule,
    Scenario,
    ScenarioResult,
    not_measurable,
    rated,
)
from sparring.assess.htmlkit import esc, image_grid, pct, png, table
from sparring.assess.spec import Entry, Strict, WithDefences, defences_field, one_of
from sparring.attacks.privacy import MEMBERSHIP_ATTACKS, ReferenceAttack, evaluate_membership
from sparring.attacks.privacy.audit import threshold_audit
from sparring.attacks.privacy.label_only import VARIANTS
from sparring.attacks.privacy.reference import (
    MembershipSplit,
    ReferenceModels,
    balanced_keep,
    membership_split,
    random_halves,
    train_references,
)
from sparring.data import Dataset
from sparring.defenses.inference import HARDENING
from sparring.defenses.training.dp_sgd import DEFAULT_DELTA, DPSGD, PRIVATE_TRAINING, fix_module, require_opacus
from sparring.defenses.training.regularisation import REGULARISATION
from sparring.errors import ConfigError, SparringError
from sparring.metrics import Interval, accuracy, auc_interval, per_query_ms, rate_interval
from sparring.models.zoo import ARCHITECTURES
from sparring.models.zoo import build as build_zoo
from sparring.train import fit

RULE = Rule("TPR at 1 % FPR", medium=0.02, high=0.1, note="chance is 1 %")


#: Attacks that need reference models, and the default number of them.
REFERENCE_ATTACKS = {"lira": 8, "rmia": 2, "shadow": 4}
#: Share of the held-out data set aside as the population when a reference attack does not say.
DEFAULT_POPULATION = 0.5
#: Training-set records listed as the most exposed.
EXPOSED = 10


class DPSGDSettings(Strict):
    """Settings of the ``dp_sgd:EPS`` defence (``[dp_sgd]``): δ (must be below 1/N), the clipping norm, the epochs.

    ``epochs`` None trains as many epochs as the model; fewer make DP-SGD cheaper (Opacus
    calibrates the noise to reach ε at δ after them).
    """

    delta: float = Field(DEFAULT_DELTA, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: int | None = Field(None, ge=1)


class MembershipSpec(Entry, WithDefences):
    """Membership inference on the model's training set.

    ``references`` (LiRA, RMIA, shadow): reference models to train (default 8, 2 and 4);
    ``online`` (LiRA, RMIA): reference models also train on the evaluated samples, each IN for half
    of them; ``fixed_variance`` (LiRA): one pooled variance per side; ``population``: share of
    the held-out data set aside as data the target never saw (default 0.5 for those attacks,
    0 otherwise; give the same value to every entry to score all attacks on the same samples);
    ``variant`` (label_only): ``augmentation`` (default) or ``boundary`` (HopSkipJump);
    ``canaries``: mislabelled held-out records inserted into the training set (the target is
    retrained with them), scored and reported apart (Aerni et al., 2024).
    """

    attack: str = "loss_threshold"
    samples: int = Field(1000, ge=2)
    references: int | None = Field(None, ge=1, le=64)
    online: bool = False
    fixed_variance: bool = True
    population: float | None = Field(None, ge=0.0, lt=1.0)
    variant: str | None = None
    canaries: int = Field(0, ge=0, le=10000)
    defences: list[str] = defences_field()

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, list(MEMBERSHIP_ATTACKS), "membership attack")

    @model_validator(mode="after")
    def _consistent(self) -> MembershipSpec:
        if self.references is not None and self.attack not in REFERENCE_ATTACKS:
            raise ValueError(f"'references' applies to {', '.join(REFERENCE_ATTACKS)}, not to attack {self.attack!r}")
        if self.online and self.attack not in ("lira", "rmia"):
            raise ValueError(f"'online' applies to attacks 'lira' and 'rmia' only, not to {self.attack!r}")
        if self.variant is not None and self.attack != "label_only":
            raise ValueError(f"'variant' applies to attack 'label_only' only, not to {self.attack!r}")
        if self.variant is not None and self.variant not in VARIANTS:
            raise ValueError(f"'variant' must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.canaries and self.online:
            raise ValueError("'canaries' needs an offline attack (online reference models cover no canary)")
        if self.online and self.n_references < 2:
            name = {"lira": "LiRA", "rmia": "RMIA"}[self.attack]
            raise ValueError(f"online {name} needs references >= 2 (each sample IN for half of them, OUT for the rest)")
        return self

    @property
    def n_references(self) -> int:
        """Reference models the attack uses (0 for attacks without)."""
        return self.references or REFERENCE_ATTACKS.get(self.attack, 0)

    @property
    def population_share(self) -> float:
        """The share of the held-out data set aside as the population."""
        if self.population is not None:
            return self.population
        return DEFAULT_POPULATION if self.attack in REFERENCE_ATTACKS else 0.0

    def options(self) -> dict[str, Any]:
        """The attack's constructor arguments."""
        if self.attack == "lira":
            return {"online": self.online, "fixed_variance": self.fixed_variance}
        if self.attack == "rmia" and self.online:
            return {"online": True}
        if self.attack == "label_only" and self.variant is not None:
            return {"variant": self.variant}
        return {}


def attack_title(attack: str, online: bool = False, references: int = 0, variant: str | None = None) -> str:
    """How the report names an attack that ran."""
    if attack == "label_only":
        return f"label-only ({variant or 'augmentation'})"
    if attack == "lira":
        return f"LiRA ({'online' if online else 'offline'}, {references} reference models)"
    if attack == "rmia":
        mode = "online" if online else "offline"
        return f"RMIA ({mode}, {references} reference model{'s' if references != 1 else ''})"
    if attack == "shadow":
        return f"shadow models ({references})"
    return {"loss_threshold": "loss threshold", "gap": "label-only gap"}.get(attack, attack)


class MembershipScenarioResult(ScenarioResult):
    """The ROC of one membership attack (thinned for the log-log plot) and what ran."""

    requested: str
    fallback_reason: str | None = None
    clean_accuracy: float
    n_members: int
    n_non_members: int
    seconds: float
    queries: int
    auc: float
    tpr_at_01_fpr: float = Field(alias="tpr_at_0.1%_fpr")
    tpr_at_1_fpr: float = Field(alias="tpr_at_1%_fpr")
    balanced_accuracy: float
    fpr: list[float]
    tpr: list[float]
    #: What ran, as the report names it (e.g. "RMIA (offline, 2 reference models)").
    title: str = ""
    #: Reference models used, their training seconds (a shared artefact) and the population size.
    references: int = 0
    reference_seconds: float = 0.0
    population: int = 0
    #: DP-SGD (a training defence): the accountant's ε spent at δ, the noise multiplier and the training seconds.
    epsilon: float | None = None
    delta: float | None = None
    noise_multiplier: float | None = None
    defence_seconds: float | None = None
    #: ``[dp_sgd]`` clipping norm, and whether Opacus replaced BatchNorm with GroupNorm.
    max_grad_norm: float | None = None
    batchnorm_replaced: bool | None = None
    #: Training seconds of the target attacked (the DP model's are ``defence_seconds``).
    target_seconds: float | None = None
    #: Threshold audit (Jagielski et al., NeurIPS 2020): ε̂, a lower bound on ε at ``audit_delta``
    #: with ``audit_confidence``, from these scores; ``audit_violation`` flags ε̂ > the accountant's ε (a bug).
    epsilon_lower_bound: float | None = None
    audit_delta: float | None = None
    audit_confidence: float | None = None
    audit_tpr_low: float | None = None
    audit_fpr_high: float | None = None
    audit_members: int | None = None
    audit_non_members: int | None = None
    audit_violation: bool | None = None
    #: Canaries inserted into the training set and their TPR at the thresholds giving 1 % and
    #: 0.1 % FPR on the ordinary non-members (None: too few non-members to set that threshold).
    canaries: int = 0
    canary_tpr_at_1_fpr: float | None = Field(None, alias="canary_tpr_at_1%_fpr")
    canary_tpr_at_01_fpr: float | None = Field(None, alias="canary_tpr_at_0.1%_fpr")
    #: Training-set indices of the members with the highest scores (the most exposed records), best first,
    #: their scores, and (image data) their pixels and labels.
    exposed: list[int] = []
    exposed_scores: list[float] = []
    exposed_images: list[Any] | None = None
    exposed_labels: list[int] | None = None
    #: Wall time the output hardening adds per query, in ms (median of repeated timings).
    query_ms: float | None = None


def _thin(fpr: np.ndarray, tpr: np.ndarray, n: int = 400) -> tuple[list[float], list[float]]:
    """At most ``n`` ROC points, spaced evenly in log-FPR so the log-log plot keeps its shape."""
    if len(fpr) <= n:
        return fpr.tolist(), tpr.tolist()
    grid = np.unique(np.r_[0.0, np.logspace(np.log10(max(fpr[fpr > 0].min(), 1e-6)), 0, n)])
    idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
    return fpr[idx].tolist(), tpr[idx].tolist()


def _html(results: list[dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(5, 4.5))
    lo = 1e-3
    for r in results:
        fpr = np.clip(np.asarray(r["fpr"]), lo / 2, 1)
        tpr = np.clip(np.asarray(r["tpr"]), lo / 2, 1)
        name = r["defence"] or "no defence"
        ax.step(fpr, tpr, where="post", label=f"{name} ({r.get('title') or r['attack']}, AUC {r['auc']:.3f})")
    ax.plot([lo / 2, 1], [lo / 2, 1], "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo / 2, 1)
    ax.set_ylim(lo / 2, 1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=7)
    ax.set_title("Membership ROC (log-log)")
    out.append(png(fig))
    rows = [
        [
            esc(r["defence"] or "none"),
            esc(r.get("title") or r["attack"]),
            f"{r['auc']:.3f}",
            pct(r["tpr_at_0.1%_fpr"]),
            pct(r["tpr_at_1%_fpr"]),
            pct(r["balanced_accuracy"]),
            pct(r["clean_accuracy"]),
            f"{r['n_members']} / {r['n_non_members']}",
        ]
        for r in results
    ]
    header = [
        "defence",
        "attack run",
        "AUC",
        "TPR @ 0.1 % FPR",
        "TPR @ 1 % FPR",
        "best balanced acc.",
        "clean acc.",
        "members / non-members",
    ]
    out.append(table(header, rows))
    if min(r["n_non_members"] for r in results) < 1000:
        out.append(
            '<p class="muted">With fewer than 1,000 non-members, TPR at 0.1 % FPR is the TPR at zero false '
            "positives.</p>"
        )
    trained = {(r.get("title"), r.get("reference_seconds")) for r in results if r.get("references")}
    for title, seconds in sorted(trained, key=str):
        out.append(
            f'<p class="muted">{esc(title)}: reference models trained like the target on random halves of a '
            f"population the target never saw, in {float(seconds or 0):.1f} s (shared by its scenarios).</p>"
        )
    out.append(_exposed_html(results))
    out.append(_canaries_html(results))
    out.append(_dp_html(results))
    for r in results:
        if r.get("fallback_reason"):
            out.append(f'<p class="muted">{esc(r["defence"] or "no defence")}: {esc(r["fallback_reason"])}</p>')
    return "".join(out)


def _exposed_html(results: list[dict[str, Any]]) -> str:
    """The most exposed training records of the undefended model's strongest ranked attack."""
    ranked = [r for r in results if r.get("exposed") and r["defence"] is None and not r.get("canaries")]
    if not ranked:
        return ""
    r = max(ranked, key=lambda r: (r["tpr_at_1%_fpr"], r["auc"]))
    who = esc(r.get("title") or r["attack"])
    rows = [[str(i), f"{s:.4g}"] for i, s in zip(r["exposed"], r.get("exposed_scores") or [], strict=False)]
    share = (
        f"{pct(r['tpr_at_0.1%_fpr'])} of the {r['n_members']} evaluated members are identified at 0.1 % FPR."
        if r["n_non_members"] >= 10 * RESOLVES_1PCT
        else f"The share identified at 0.1 % FPR is not measurable with {r['n_non_members']} non-members "
        f"(needs {10 * RESOLVES_1PCT})."
    )
    out = [f"<h4>Most exposed training records ({who})</h4>", f"<p>{share}</p>"]
    out.append(table(["training-set index", "score"], rows))
    if r.get("exposed_images"):
        out.append(image_grid(r["exposed_images"], [f"#{i}" for i in r["exposed"]], "most exposed members", ""))
    return "".join(out)


def _canaries_html(results: list[dict[str, Any]]) -> str:
    rows = [
        [
            esc(r["defence"] or "none"),
            esc(r.get("title") or r["attack"]),
            str(r["canaries"]),
            "not measurable" if r.get("canary_tpr_at_1%_fpr") is None else pct(r["canary_tpr_at_1%_fpr"]),
            "not measurable" if r.get("canary_tpr_at_0.1%_fpr") is None else pct(r["canary_tpr_at_0.1%_fpr"]),
            pct(r["tpr_at_1%_fpr"]),
        ]
        for r in results
        if r.get("canaries")
    ]
    if not rows:
        return ""
    header = ["defence", "attack run", "canaries", "canary TPR @ 1 % FPR", "canary TPR @ 0.1 % FPR"]
    header.append("members' TPR @ 1 %")
    return (
        "<h4>Canaries</h4><p>Mislabelled held-out records inserted into the training set (the target retrained "
        "with them), scored by the same attack; the thresholds are those giving 1 % and 0.1 % FPR on the ordinary "
        "non-members. Such outliers are the most exposed records (Aerni et al., 2024): average-case figures "
        "underestimate their leak.</p>" + table(header, rows)
    )


def _dp_html(results: list[dict[str, Any]]) -> str:
    """DP-SGD models: what ran, the audit (ε̂ against ε, a violation flagged), and the privacy–utility curve."""
    private = [r for r in results if r.get("epsilon") is not None]
    if not private:
        return ""
    out = ["<h4>Differential privacy (DP-SGD)</h4>"]
    for d in sorted({r["defence"] for r in private}):
        r = next(r for r in private if r["defence"] == d)
        bn = (
            "BatchNorm layers were replaced by GroupNorm (Opacus' ModuleValidator.fix)"
            if r.get("batchnorm_replaced")
            else "no layer needed replacing"
        )
        out.append(
            f"<p>{esc(d)}: the target retrained with DP-SGD through Opacus (Poisson sampling, gradients clipped at "
            f"norm {float(r.get('max_grad_norm') or 1.0):g}, noise multiplier "
            f"{float(r.get('noise_multiplier') or 0):.2f}; "
            f"{bn}): the accountant's ε = {r['epsilon']:.2f} at δ = {r['delta']:.0e}, clean accuracy "
            f"{pct(r['clean_accuracy'])}, {float(r.get('defence_seconds') or 0):.1f} s of training. The attacks' "
            "reference models are trained without DP.</p>"
        )
    for r in private:
        if r.get("audit_violation"):
            out.append(
                f'<p class="bad"><strong>BUG FLAG</strong>: {esc(r["defence"])} under '
                f"{esc(r.get('title') or r['attack'])}: "
                f"the audited lower bound ε̂ = {r['epsilon_lower_bound']:.2f} exceeds the accountant's ε = "
                f"{r['epsilon']:.2f}. DP-SGD, its accounting or the audit is wrong (or a rare event below "
                f"{1 - float(r.get('audit_confidence') or 0.95):.0%} probability happened); do not trust this ε.</p>"
            )
    out.append(
        '<p class="muted">ε̂ is the threshold audit of Jagielski et al. (NeurIPS 2020): a lower bound on ε with 95 % '
        "confidence from the attack's Clopper–Pearson rates (threshold picked on one half of the scored samples, "
        "bounded on the other). With a few hundred samples it cannot exceed a few units, whatever the model: a loose "
        "ε̂ (far below ε) is not evidence of extra privacy, only of a weak test.</p>"
    )
    out.append(_curve_html(results))
    return "".join(out)


def _curve_html(results: list[dict[str, Any]]) -> str:
    """ε (and ε̂), clean accuracy, training seconds and the strongest attack's TPR @ 1 % FPR, per ε and for ε = ∞."""
    plain = [r for r in results if not r.get("canaries")]
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for r in plain:
        if r["defence"] is None or r.get("epsilon") is not None:
            groups.setdefault(r["defence"], []).append(r)
    if not any(d is not None for d in groups):
        return ""

    def eps_of(d: str | None) -> float:
        return float("inf") if d is None else float(groups[d][0]["epsilon"])

    rows, points = [], []
    for d in sorted(groups, key=eps_of):
        rs = groups[d]
        best = max(rs, key=lambda r: (r["tpr_at_1%_fpr"], r["auc"]))
        first = rs[0]
        eps_hat = max(float(r.get("epsilon_lower_bound") or 0.0) for r in rs)
        seconds = first.get("defence_seconds") if d is not None else first.get("target_seconds")
        rows.append(
            [
                esc(d or "none (ε = ∞)"),
                "∞" if d is None else f"{first['epsilon']:.2f}",
                f"{eps_hat:.2f}",
                pct(first["clean_accuracy"]),
                "—" if seconds is None else f"{float(seconds):.1f}",
                f"{pct(best['tpr_at_1%_fpr'])} ({esc(best.get('title') or best['attack'])})",
            ]
        )
        points.append((eps_of(d), first["clean_accuracy"], best["tpr_at_1%_fpr"], eps_hat))
    header = ["model", "accountant's ε", "audited ε̂", "clean acc.", "training s", "strongest attack's TPR @ 1 % FPR"]
    out = ["<h4>Privacy–utility curve</h4>", table(header, rows)]
    finite = [p for p in points if np.isfinite(p[0])]
    if finite:
        import matplotlib.pyplot as plt

        top = max(p[0] for p in finite) * 2
        xs = [p[0] if np.isfinite(p[0]) else top for p in points]
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(xs, [p[1] for p in points], "o-", label="clean accuracy")
        ax.plot(xs, [p[2] for p in points], "s-", label="strongest attack's TPR @ 1 % FPR")
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{p[0]:g}" if np.isfinite(p[0]) else "∞" for p in points])
        ax.set_xlabel("ε (accountant; ∞ = no DP)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        ax.set_title("Privacy–utility")
        out.append(png(fig))
    return "".join(out)


class MembershipFamily(Family[MembershipSpec, MembershipScenarioResult]):
    """``[[membership]]``: membership inference on the model as deployed, behind each output hardening."""

    key = "membership"
    title = "membership"
    section = "Membership inference (test-time privacy)"
    order = 70
    spec = MembershipSpec
    result = MembershipScenarioResult
    threats = {TEST_PRIVACY: "membership inference"}
    rules = {TEST_PRIVACY: RULE}
    defences = (
        Defences("inference", registry=HARDENING, summary="output hardening"),
        Defences(
            "training", registry=PRIVATE_TRAINING, settings="dp_sgd", summary="DP-SGD through Opacus (extra 'privacy')"
        ),
        Defences("training", registry=REGULARISATION, summary="regularised retraining (one hyper-parameter changed)"),
    )
    settings = {"dp_sgd": DPSGDSettings}
    attacks = tuple(MEMBERSHIP_ATTACKS)
    smoke = {
        "membership": [
            {"samples": 100, "defences": ["label_only"]},
            {"attack": "rmia", "references": 1, "samples": 100},
        ]
    }

    def label(self, entry: MembershipSpec) -> str:
        return f"{entry.attack}-online" if entry.online else entry.attack

    def check_config(self, config: Any, entries: Any) -> None:
        if entries and not config.model.trains_here and config.data.test_path is None:
            raise ValueError(
                "membership inference on a model trained elsewhere needs its training set: give [data] 'path' "
                "(the training set) and 'test_path' (data it never saw)"
            )
        for e in entries:
            if e.attack in REFERENCE_ATTACKS and not (config.model.trains_here or config.model.factory):
                raise ValueError(
                    f"membership attack {e.attack!r} trains reference models like the target: give [model] "
                    "'architecture' or 'factory' (a skops or ONNX model cannot be retrained)"
                )

    def check(self, ctx: Context, index: int, entry: MembershipSpec) -> None:
        retrained = [d for d in entry.defences if self.defence_kind(d) == "training"]
        if retrained and not (ctx.config.model.trains_here or ctx.config.model.factory):
            raise ConfigError(
                f"membership defence {retrained[0]} retrains the model: give [model] 'architecture' or 'factory'"
            )
        dropout = [d for d in retrained if d.partition(":")[0] == "dropout"]
        if dropout and ctx.model_name not in ARCHITECTURES:
            raise ConfigError(
                f"membership defence {dropout[0]} adds dropout to a zoo architecture; [model] factory "
                f"{ctx.model_name!r} is not one (add dropout in the factory instead)"
            )
        if any(_is_dp(d) for d in entry.defences):
            require_opacus("membership defence dp_sgd")
            n, delta = len(ctx.train) + entry.canaries, dp_settings(ctx).delta
            if delta >= 1.0 / n:
                raise ConfigError(
                    f"[dp_sgd] delta = {delta:g} is not below 1/N = {1.0 / n:.3g} for N = {n} training records; "
                    "lower delta"
                )
        try:
            split = _split(ctx, entry)
        except SparringError as e:
            raise ConfigError(f"membership entry {index + 1}: {e}") from None
        if entry.canaries and len(split.spare) < entry.canaries:
            raise ConfigError(
                f"membership entry {index + 1}: {entry.canaries} canaries need as many held-out samples beyond the "
                f"non-members and the population, but only {len(split.spare)} are left; lower 'canaries' or "
                "'samples', or raise [data] test_fraction"
            )
        if entry.canaries and not (ctx.config.model.trains_here or ctx.config.model.factory):
            raise ConfigError(
                f"membership entry {index + 1}: canaries retrain the target: give [model] 'architecture' or 'factory'"
            )
        if entry.attack not in REFERENCE_ATTACKS:
            return
        if len(split.population) < 2:
            raise ConfigError(
                f"membership entry {index + 1}: {entry.attack} needs population data for its reference models, "
                f"but population = {entry.population_share} of {len(ctx.test)} held-out samples leaves "
                f"{len(split.population)}; raise 'population' or [data] test_fraction"
            )

    def artefacts(self, ctx: Context, sc: Scenario) -> list[Artefact[Any]]:
        mc = sc.spec
        assert isinstance(mc, MembershipSpec)
        needed: list[Artefact[Any]] = [references_artefact(ctx, mc)] if mc.attack in REFERENCE_ATTACKS else []
        if sc.defence is not None and self.defence_kind(sc.defence) == "training":
            needed.append(retrained_artefact(ctx, sc.defence, mc))
        return needed

    def run(self, ctx: Context, sc: Scenario) -> MembershipScenarioResult:
        mc = sc.spec
        assert isinstance(mc, MembershipSpec)
        canaries = canary_set(ctx, mc)
        clf, target_seconds = ctx.target() if canaries is None else ctx.artefact(canary_artefact(ctx, mc, canaries))
        query_ms = None
        private: dict[str, Any] = {}
        training = sc.defence is not None and self.defence_kind(sc.defence) == "training"
        if training:
            assert sc.defence is not None
            clf, private = ctx.artefact(retrained_artefact(ctx, sc.defence, mc))
        harden = HARDENING.build(sc.defence) if sc.defence is not None and not training else None
        if harden is not None:
            target, clf = clf, harden.wrap(clf)
            query_ms = max(0.0, per_query_ms(clf, ctx.test.x) - per_query_ms(target, ctx.test.x))

        def references(split: MembershipSplit) -> ReferenceModels:
            return ctx.artefact(references_artefact(ctx, mc))

        def wrap(module: torch.nn.Module) -> Any:
            return harden.wrap(ctx.wrap(module)) if harden is not None else ctx.wrap(module)

        r = evaluate_membership(
            clf,
            ctx.train,
            ctx.test,
            attack=mc.attack,
            n=mc.samples,
            seed=ctx.seed,
            population=mc.population_share,
            references=references,
            wrap=wrap,
            options=mc.options(),
            extra=canaries,
        )
        fpr, tpr = _thin(r.roc.fpr, r.roc.tpr)
        uses_refs = isinstance(MEMBERSHIP_ATTACKS[r.attack], type) and issubclass(
            MEMBERSHIP_ATTACKS[r.attack], ReferenceAttack
        )
        audit = threshold_audit(
            r.scores, r.is_member, float(private.get("delta") or dp_settings(ctx).delta), seed=ctx.seed
        )
        violation = None
        if private.get("epsilon") is not None:
            violation = audit.epsilon > float(private["epsilon"])
            if violation:
                ctx.log(
                    f"  BUG FLAG: {sc.defence}: audited ε̂ = {audit.epsilon:.2f} exceeds the accountant's "
                    f"ε = {private['epsilon']:.2f}"
                )
        non_member_scores = r.scores[r.n_members :]
        return MembershipScenarioResult.model_validate(
            {
                "kind": self.key,
                "attack": r.attack,
                "requested": r.requested,
                "fallback_reason": r.fallback_reason,
                "defence": sc.defence,
                "defence_type": self.defence_kind(sc.defence) if sc.defence else None,
                "params": sc.params(),
                "clean_accuracy": accuracy(clf, ctx.test.x, ctx.test.y),
                "n_members": r.n_members,
                "n_non_members": r.n_non_members,
                "seconds": r.seconds,
                "queries": r.queries,
                **r.roc.as_dict(),
                "fpr": fpr,
                "tpr": tpr,
                "title": attack_title(r.attack, mc.online, r.references, mc.variant),
                "references": r.references,
                "reference_seconds": r.reference_seconds,
                "population": len(_split(ctx, mc).population) if uses_refs else 0,
                "query_ms": query_ms,
                "target_seconds": target_seconds,
                **audit.as_dict(),
                "audit_violation": violation,
                **_exposed(ctx, r.scores[: r.n_members], r.member_index, r.attack != "gap"),
                **_canary_rates(r.extra_scores, non_member_scores, mc.canaries),
                **private,
            }
        )

    def rate(self, result: MembershipScenarioResult) -> Rating:
        tpr, n = result.tpr_at_1_fpr, result.n_non_members
        who = result.title or attack_title(result.attack)
        if n < RESOLVES_1PCT:
            return not_measurable(
                tpr,
                f"{who}: TPR at 1% FPR not measurable with {n} non-members (needs {RESOLVES_1PCT}); "
                f"AUC {result.auc:.3f}",
            )
        text = f"{who}: TPR {tpr:.1%} at 1% FPR, AUC {result.auc:.3f}"
        return rated(RULE, tpr, text, rate_interval(tpr, result.n_members))

    def intervals(self, key: str, result: MembershipScenarioResult) -> dict[str, Interval]:
        if result.n_members < 1 or result.n_non_members < 1:
            return {}
        out = {f"{key}.auc": auc_interval(result.auc, result.n_members, result.n_non_members)}
        for name, value, needs in (
            ("tpr_at_1%_fpr", result.tpr_at_1_fpr, RESOLVES_1PCT),
            ("tpr_at_0.1%_fpr", result.tpr_at_01_fpr, 10 * RESOLVES_1PCT),
        ):
            if result.n_non_members >= needs:
                out[f"{key}.{name}"] = rate_interval(value, result.n_members)
        return out

    def figures(self, key: str, result: MembershipScenarioResult) -> dict[str, float]:
        return {
            f"{key}.auc": result.auc,
            f"{key}.tpr_at_0.1%_fpr": result.tpr_at_01_fpr,
            f"{key}.tpr_at_1%_fpr": result.tpr_at_1_fpr,
            f"{key}.balanced_accuracy": result.balanced_accuracy,
        }

    def expected_figures(self, sc: Scenario) -> list[str]:
        names = ("auc", "tpr_at_0.1%_fpr", "tpr_at_1%_fpr", "balanced_accuracy")
        return [f"{sc.key}.{n}" for n in names]

    def cost(self, key: str, result: MembershipScenarioResult, base: MembershipScenarioResult) -> CostRow:
        row = super().cost(key, result, base)
        if result.epsilon is not None:
            note = f"DP-SGD training; accountant's ε {result.epsilon:.2f} at δ {result.delta:.0e}"
            return dataclasses.replace(row, seconds_note=note)
        if result.defence_type == "training":
            return dataclasses.replace(row, seconds_note="the target retrained with this setting")
        return dataclasses.replace(row, seconds_note="inference-time wrapper; no training cost")

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(list(results.values())) if results else ""


def _split(ctx: Context, mc: MembershipSpec) -> MembershipSplit:
    """The member / non-member / population draw of an entry (the one evaluate_membership makes)."""
    return membership_split(len(ctx.train), len(ctx.test), mc.samples, mc.population_share, ctx.seed)


def dp_settings(ctx: Context) -> DPSGDSettings:
    """The ``[dp_sgd]`` section."""
    section = ctx.config.section("dp_sgd")
    assert isinstance(section, DPSGDSettings)
    return section


def canary_set(ctx: Context, mc: MembershipSpec) -> Dataset | None:
    """The entry's canaries: held-out records neither evaluated nor in the population, each given a wrong label."""
    if not mc.canaries:
        return None
    idx = _split(ctx, mc).spare[: mc.canaries]
    if len(idx) < mc.canaries:
        raise ConfigError(f"{mc.canaries} canaries need as many spare held-out samples, only {len(idx)} are left")
    c = ctx.data.num_classes
    shift = torch.randint(1, c, (len(idx),), generator=torch.Generator().manual_seed(ctx.seed + 7919))
    return Dataset(ctx.test.x[idx], (ctx.test.y[idx] + shift) % c, list(ctx.data.classes), "canaries")


def _with_canaries(ctx: Context, canaries: Dataset | None) -> Dataset:
    """The training set, with the canaries appended when there are any."""
    if canaries is None:
        return ctx.train
    x, y = torch.cat([ctx.train.x, canaries.x]), torch.cat([ctx.train.y, canaries.y])
    return Dataset(x, y, list(ctx.data.classes), "train+canaries")


def _canary_key(mc: MembershipSpec) -> str:
    """What fixes the canaries: their number and the draw that leaves them spare."""
    return f"-canaries{mc.canaries}-n{mc.samples}-p{mc.population_share:g}" if mc.canaries else ""


def canary_artefact(ctx: Context, mc: MembershipSpec, canaries: Dataset) -> Artefact[tuple[Any, float]]:
    """The target retrained like it on its training set plus the canaries (a stored model)."""
    data = _with_canaries(ctx, canaries)
    key = {"canaries": mc.canaries, "samples": mc.samples, "population": mc.population_share}
    return model_artefact(_canary_key(mc)[1:], key, lambda: ctx.train_standard(data), ctx.build_model)


def _tpr_at(positives: Tensor, negatives: Tensor, fpr: float) -> float | None:
    """Share of ``positives`` scoring above the threshold that lets at most ``fpr`` of ``negatives`` through."""
    if len(negatives) < round(1.0 / fpr) or len(positives) == 0:
        return None
    allowed = int(np.floor(fpr * len(negatives) + 1e-9))
    threshold = torch.sort(negatives, descending=True).values[allowed]
    return float((positives > threshold).to(torch.float64).mean())


def _canary_rates(canary_scores: Tensor, non_member_scores: Tensor, n: int) -> dict[str, Any]:
    """The canaries' TPR at 1 % and 0.1 % FPR on the ordinary non-members."""
    if not n:
        return {}
    return {
        "canaries": n,
        "canary_tpr_at_1%_fpr": _tpr_at(canary_scores, non_member_scores, 0.01),
        "canary_tpr_at_0.1%_fpr": _tpr_at(canary_scores, non_member_scores, 0.001),
    }


def _exposed(ctx: Context, member_scores: Tensor, member_index: Tensor, ranked: bool) -> dict[str, Any]:
    """The :data:`EXPOSED` members with the highest scores: indices, scores, and pixels for image data."""
    if not ranked:
        return {}
    top = torch.argsort(member_scores, descending=True, stable=True)[:EXPOSED]
    idx = member_index[top]
    out: dict[str, Any] = {"exposed": idx.tolist(), "exposed_scores": member_scores[top].tolist()}
    if ctx.train.x.dim() == 4:
        lo, hi = ctx.config.data.bounds
        out["exposed_images"] = ((ctx.train.x[idx] - lo) / max(hi - lo, 1e-12)).clamp(0, 1).round(decimals=3).tolist()
        out["exposed_labels"] = ctx.train.y[idx].tolist()
    return out


def _is_dp(spec: str) -> bool:
    """Whether a defence spec is DP-SGD (else a regularisation, an output hardening, ...)."""
    return spec.partition(":")[0] in PRIVATE_TRAINING


def retrained_artefact(ctx: Context, spec: str, mc: MembershipSpec) -> Artefact[tuple[Any, dict[str, Any]]]:
    """The target retrained by a training defence: DP-SGD or a regularisation."""
    return private_artefact(ctx, spec, mc) if _is_dp(spec) else regularised_artefact(ctx, spec, mc)


def regularised_artefact(ctx: Context, spec: str, mc: MembershipSpec) -> Artefact[tuple[Any, dict[str, Any]]]:
    """The target retrained with one regularisation (``weight_decay:W``, ``label_smoothing:S``, ``dropout:P``, ...).

    Trains on the training set plus the entry's canaries, if any, with the configured
    settings except the one the defence changes.
    """
    defence = REGULARISATION.build(spec)

    def build_module() -> torch.nn.Module:
        if defence.dropout is None:
            return ctx.build_model()
        shape, classes = ctx.data.input_shape, ctx.data.num_classes
        return build_zoo(ctx.model_name, shape, classes, seed=ctx.seed, dropout=defence.dropout)

    def build(ctx: Context) -> tuple[Any, dict[str, Any]]:
        ctx.log(f"  training the target with {spec}")
        data = _with_canaries(ctx, canary_set(ctx, mc))
        out = fit(build_module(), data, defence.config(ctx.train_config()), desc=spec)
        return ctx.wrap(out.model), {"defence_seconds": out.seconds}

    params = {"defence": spec, **defence.get_params(), "canaries": _canary_key(mc)}
    return _model_and_info(f"model-{spec}{_canary_key(mc)}", params, build, build_module, "regularised.json")


def private_artefact(ctx: Context, spec: str, mc: MembershipSpec) -> Artefact[tuple[Any, dict[str, Any]]]:
    """The target's architecture trained with DP-SGD (``dp_sgd:EPS``, ``[dp_sgd]`` settings), and its ε spent.

    Trains on the training set plus the entry's canaries, if any.
    """
    settings = dp_settings(ctx)
    eps = PRIVATE_TRAINING.build(spec).epsilon
    defence = DPSGD(eps, delta=settings.delta, max_grad_norm=settings.max_grad_norm)

    def build_module() -> torch.nn.Module:
        return fix_module(ctx.build_model())

    def build(ctx: Context) -> tuple[Any, dict[str, Any]]:
        ctx.log(f"  training the target with {spec} (Opacus)")
        data = _with_canaries(ctx, canary_set(ctx, mc))
        out = defence.train(ctx.build_model(), data, ctx.train_config(settings.epochs))
        info = {
            "epsilon": out.epsilon,
            "delta": out.delta,
            "noise_multiplier": out.noise_multiplier,
            "defence_seconds": out.seconds,
            "max_grad_norm": defence.max_grad_norm,
            "batchnorm_replaced": out.batchnorm_replaced,
        }
        return ctx.wrap(out.model), info

    params = {"defence": spec, **defence.get_params(), "epochs": settings.epochs, "canaries": _canary_key(mc)}
    return _model_and_info(f"model-{spec}{_canary_key(mc)}", params, build, build_module, "private.json")


def _model_and_info(
    name: str,
    params: dict[str, Any],
    build: Callable[[Context], tuple[Any, dict[str, Any]]],
    build_module: Callable[[], torch.nn.Module],
    info: str,
) -> Artefact[tuple[Any, dict[str, Any]]]:
    """A retrained target and what its training reported, stored as safetensors weights and the JSON file ``info``.

    ``build_module`` makes the untrained module the stored weights load into.
    """

    def save(value: tuple[Any, dict[str, Any]], folder: Path) -> None:
        save_tensors(folder / "model.safetensors", value[0].model.state_dict())
        save_json(folder / info, value[1])

    def load(ctx: Context, folder: Path) -> tuple[Any, dict[str, Any]]:
        import json

        module = build_module()
        module.load_state_dict(load_tensors(folder / "model.safetensors"))
        return ctx.wrap(module.eval()), dict(json.loads((folder / info).read_text()))

    return Artefact(name, params, build, save, load)


def references_artefact(ctx: Context, mc: MembershipSpec) -> Artefact[ReferenceModels]:
    """The reference models of an entry: a shared artefact, one per (offline/online, K, population, samples).

    Offline, the pool is the population only (no reference model sees an evaluated sample)
    and each model trains on its own random half (at most as many samples as the target's
    training set); online, the pool is the evaluated samples (members first, then
    non-members) followed by as much of the population as makes a half the size of the
    target's training set, each sample IN for half of the models. Every model trains with
    the target's settings from its own seed.
    """
    k, share = mc.n_references, mc.population_share
    mode = "online" if mc.online else "offline"
    name = f"membership-references-{mode}-k{k}-p{share:g}" + (f"-n{mc.samples}" if mc.online else "")
    params = {"mode": mode, "k": k, "population": share, "samples": mc.samples if mc.online else None}

    def pool_of(split: MembershipSplit) -> tuple[Dataset, int]:
        population = ctx.test.subset(split.population, "population")
        if not mc.online:
            return population, 0
        # Halves of the pool as large as the target's training set where the population allows: the
        # two-sided online test is sound only when the IN models resemble the target.
        population = population.subset(torch.arange(min(len(population), max(2, 2 * (len(ctx.train) - split.k)))))
        x = torch.cat([ctx.train.x[split.members], ctx.test.x[split.non_members], population.x])
        y = torch.cat([ctx.train.y[split.members], ctx.test.y[split.non_members], population.y])
        return Dataset(x, y, list(ctx.data.classes), "reference pool"), 2 * split.k

    def build(ctx: Context) -> ReferenceModels:
        pool, candidates = pool_of(_split(ctx, mc))
        if mc.online:
            keep = balanced_keep(k, len(pool), ctx.seed)
        else:
            keep = random_halves(k, len(pool), ctx.seed, size=len(ctx.train))
        ctx.log(f"  training {k} reference model(s) on random halves of {len(pool)} samples")
        return train_references(ctx.build_model, pool, keep, ctx.train_config(), candidates=candidates)

    def save(value: ReferenceModels, folder: Path) -> None:
        tensors = {f"{i}.{n}": t for i, m in enumerate(value.models) for n, t in m.state_dict().items()}
        save_tensors(folder / "models.safetensors", tensors)
        save_tensors(folder / "pool.safetensors", {"keep": value.keep, "x": value.pool.x, "y": value.pool.y})
        save_json(
            folder / "meta.json",
            {"seconds": value.seconds, "stacked": value.stacked, "candidates": value.candidates, "k": len(value)},
        )

    def load(ctx: Context, folder: Path) -> ReferenceModels:
        import json

        meta = json.loads((folder / "meta.json").read_text())
        weights = load_tensors(folder / "models.safetensors")
        models = []
        for i in range(int(meta["k"])):
            module = ctx.build_model()
            module.load_state_dict({n[len(f"{i}.") :]: t for n, t in weights.items() if n.startswith(f"{i}.")})
            models.append(module.eval())
        t = load_tensors(folder / "pool.safetensors")
        pool = Dataset(t["x"], t["y"], list(ctx.data.classes), "reference pool")
        return ReferenceModels(
            models, t["keep"].bool(), pool, int(meta["candidates"]), float(meta["seconds"]), bool(meta["stacked"])
        )

    return Artefact(name, params, build, save, load)


#: Non-members needed before a false-positive rate of 1 % can be told from 0 (one false positive in 100).
RESOLVES_1PCT = 100

FAMILY = MembershipFamily()
