"""Model inversion, judged against a reference model that never saw the evaluated members.

A white-box attacker reconstructs each class from the model: gradient inversion
(Fredrikson et al., CCS 2015; ART's MIFace) or DeepInversion (Yin et al., CVPR 2020), which
also matches the running statistics of BatchNorm layers (the zoo's ``small_cnn_bn``). A
reconstruction that looks like its class is not a leak by itself: any model of the
distribution yields a class prototype. So a *reference* model is trained like the target on
the training set minus the evaluated members (disjoint from every evaluated sample), and both
models' inversions get the same two tests: an independently trained evaluation classifier's
accuracy on them (another architecture, trained on every sample except the evaluated ones),
and the nearest-neighbour test (is an inversion nearer a same-class member of the target's
training set than a same-class sample neither model saw; equally many of each, so 50 % is
chance). The matrix rates the nearest-neighbour gap, target minus reference, with Newcombe's
interval over the effective number of inversions (those of one class tend to land near the
same samples; Kish's design effect). A model without BatchNorm (e.g. one trained with DP-SGD, whose BatchNorm Opacus
replaces by GroupNorm) leaves DeepInversion nothing to match: the entry is refused with one
line before anything runs. GMI (Zhang et al., CVPR 2020) searches the latent space of a small
GAN trained on the held-out split minus the nearest-neighbour test's unseen samples (data
neither model trained on); that one generator, an artefact built once, inverts both the
target and the reference, so the gap is the target's leak and not the GAN's.

Defence ``group_norm``: the target retrained with every BatchNorm layer replaced by
GroupNorm (Opacus' ``ModuleValidator.fix``, the architecture DP-SGD trains), judged by the
same attack; its reference is retrained the same way, so the gap compares a GroupNorm model
with a GroupNorm model that never saw the members. DeepInversion has no running statistics
to match on it and falls back to gradient inversion, saying so. On a model without BatchNorm
there is nothing to replace: the defended model is the model itself (the result says so).
Defence ``dp_sgd:EPS`` (``[dp_sgd]`` settings): the membership family's DP-SGD target (the same
stored model), and a reference trained with DP-SGD at the same ε on the training set minus
the members.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, field_validator

from sparring.assess.artefacts import load_module, save_json, save_module
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
from sparring.assess.htmlkit import esc, muted, pct, png, table
from sparring.assess.spec import Entry, WithDefences, defences_field, one_of
from sparring.attacks.privacy.gmi import GMI, GanPrior, TrainedGan
from sparring.attacks.privacy.inversion import (
    INVERSION_ATTACKS,
    InversionSplit,
    batch_norms,
    evaluate_inversion,
    gap_interval,
    inversion_split,
)
from sparring.attacks.privacy.reference import reinitialise
from sparring.data import Dataset
from sparring.defenses.training.dp_sgd import DPSGD, PRIVATE_TRAINING, fix_module, require_opacus
from sparring.errors import ConfigError, InputError
from sparring.metrics import Interval, accuracy, rate_interval
from sparring.models import Access, build
from sparring.models.zoo import ARCHITECTURES
from sparring.train import fit

RULE = Rule(
    "nearest-neighbour gap of model inversions",
    medium=0.1,
    high=0.25,
    note="share of inversions nearer a training member than an unseen sample, target minus a reference "
    "trained without the members; a class prototype scores 0",
)

#: The figures a scenario reports, by result field.
FIGURES = ("nn_gap", "eval_gap", "target_nn", "reference_nn", "target_eval_accuracy", "reference_eval_accuracy")

#: Inversions below which the gap is not rated (its interval spans every level).
RESOLVES = 10


class InversionSpec(Entry, WithDefences):
    """Model inversion of every class (or ``classes``), ``per_class`` reconstructions each.

    ``samples``: members and unseen samples per class in the nearest-neighbour test;
    ``evaluator``: the evaluation classifier's architecture (default: ``mlp``, or
    ``small_cnn`` for an MLP target on images); ``steps``, ``lr``, ``tv``, ``l2``: the
    descent and its priors; ``spread``: how noisy the starting images are (see
    :class:`~sparring.attacks.privacy.inversion.InversionAttack`); ``bn``: DeepInversion's
    weight on the BatchNorm statistics. GMI: ``prior`` (weight of ``-D(G(z))``), ``restarts``
    (latent starts per inversion), ``latent`` (code size) and ``gan_epochs`` (GAN training on the
    held-out samples outside the nearest-neighbour test); ``defences``: ``group_norm``, ``dp_sgd:EPS``
    (see the module).
    """

    attack: str = "gradient"
    per_class: int = Field(2, ge=1, le=64)
    classes: list[int] | None = None
    samples: int = Field(20, ge=1)
    steps: int = Field(200, ge=1)
    lr: float = Field(0.05, gt=0.0)
    tv: float = Field(0.1, ge=0.0)
    l2: float = Field(0.1, ge=0.0)
    spread: float = Field(0.2, ge=0.0, le=1.0)
    bn: float = Field(0.05, ge=0.0)
    evaluator: str | None = None
    prior: float = Field(0.1, ge=0.0)
    restarts: int = Field(5, ge=1, le=64)
    latent: int = Field(32, ge=2, le=512)
    gan_epochs: int = Field(60, ge=1, le=10_000)
    defences: list[str] = defences_field()

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, list(INVERSION_ATTACKS), "inversion attack")

    @field_validator("evaluator")
    @classmethod
    def _known_evaluator(cls, v: str | None) -> str | None:
        return None if v is None else one_of(v, list(ARCHITECTURES), "evaluator architecture")

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(c < 0 for c in v)):
            raise ValueError(f"classes must be a non-empty list of class indices, got {v}")
        return None if v is None else sorted(set(v))

    def attack_params(self) -> dict[str, Any]:
        """The attack's constructor arguments."""
        if self.attack == "gmi":
            return {"n": self.per_class, "steps": self.steps, "lr": self.lr, **self.gmi_params()}
        out: dict[str, Any] = {
            "n": self.per_class,
            "steps": self.steps,
            "lr": self.lr,
            "tv": self.tv,
            "l2": self.l2,
            "spread": self.spread,
        }
        return {**out, "bn": self.bn} if self.attack == "deep_inversion" else out

    def gmi_params(self) -> dict[str, Any]:
        """GMI's own settings (those of its GAN prior and its latent search)."""
        return {"prior": self.prior, "restarts": self.restarts, "latent": self.latent, "gan_epochs": self.gan_epochs}


class InversionScenarioResult(ScenarioResult):
    """Both models' inversion scores, their gaps and a few inversions beside their nearest members."""

    requested: str
    fallback_reason: str | None = None
    clean_accuracy: float
    reference_accuracy: float
    evaluator: str
    evaluator_accuracy: float
    n: int
    per_class: int
    samples: int
    target_eval_accuracy: float
    reference_eval_accuracy: float
    eval_gap: float
    target_nn: float
    reference_nn: float
    nn_gap: float
    #: Kish's effective sample sizes of the two nearest-neighbour rates (inversions of a class cluster); the
    #: intervals use them.
    target_nn_effective_n: float | None = None
    reference_nn_effective_n: float | None = None
    target_confidence: float
    reference_confidence: float
    seconds: float
    reference_seconds: float
    queries: int
    #: GMI: seconds to train its GAN prior and the public samples it trained on (None for the other attacks).
    gan_seconds: float | None = None
    gan_public: int | None = None
    #: One inversion per class of the target and of the reference, and the target's nearest members (values in bounds).
    classes: list[int]
    target_images: list[Any]
    reference_images: list[Any]
    nearest_members: list[Any]
    #: ``group_norm``: the BatchNorm layers replaced by GroupNorm (0: none, the model itself was attacked) and the
    #: defended target's training seconds.
    replaced_layers: int | None = None
    defence_seconds: float | None = None
    #: ``dp_sgd:EPS``: the accountant's ε spent at δ by the defended target.
    epsilon: float | None = None
    delta: float | None = None


def _split(ctx: Context, e: InversionSpec) -> InversionSplit:
    return inversion_split(ctx.train.y, ctx.test.y, ctx.data.num_classes, e.samples, ctx.seed)


def _evaluator_arch(ctx: Context, e: InversionSpec) -> str:
    if e.evaluator is not None:
        return e.evaluator
    return "small_cnn" if ctx.model_name == "mlp" and len(ctx.data.input_shape) == 3 else "mlp"


def _without(ctx: Context, split: InversionSplit) -> tuple[Dataset, Dataset]:
    """The training set minus the members, and every sample except the evaluated ones."""
    keep = torch.ones(len(ctx.train), dtype=torch.bool)
    keep[split.members] = False
    held = torch.ones(len(ctx.test), dtype=torch.bool)
    held[split.non_members] = False
    rest = Dataset(
        torch.cat([ctx.train.x[keep], ctx.test.x[held]]),
        torch.cat([ctx.train.y[keep], ctx.test.y[held]]),
        list(ctx.data.classes),
        "evaluator data",
    )
    return ctx.train.subset(keep, "reference data"), rest


def reference_artefact(ctx: Context, e: InversionSpec, defence: str | None = None) -> Artefact[Any]:
    """The target's architecture trained like it on the training set minus the evaluated members.

    Under ``group_norm`` the reference is the GroupNorm architecture the defended target has;
    under ``dp_sgd:EPS`` it is trained with DP-SGD like the defended target.
    """
    if _is_dp(defence):
        assert defence is not None
        return private_reference_artefact(ctx, e, defence)
    build_module = _builder(ctx, defence)
    suffix = "-group_norm" if defence == "group_norm" and _replaced(ctx) else ""

    def train() -> tuple[torch.nn.Module, float]:
        data, _ = _without(ctx, _split(ctx, e))
        cfg = ctx.train_config()
        cfg = dataclasses.replace(cfg, seed=cfg.seed + 1, progress=False)
        r = fit(reinitialise(build_module(), ctx.seed + 1), data, cfg, desc=f"inversion reference{suffix}")
        return r.model, r.seconds

    key = {"samples": e.samples, **({"defence": defence} if suffix else {})}
    return model_artefact(f"inversion-reference-s{e.samples}{suffix}", key, train, build_module)


# -- defence: GroupNorm in place of BatchNorm (what DP-SGD trains) -----------------------


def _replaced(ctx: Context) -> int:
    """How many BatchNorm layers ``group_norm`` replaces in the configured architecture."""
    return len(batch_norms(ctx.build_model()))


def _builder(ctx: Context, defence: str | None) -> Callable[[], torch.nn.Module]:
    """The untrained module of a target or reference under ``defence`` (GroupNorm for BatchNorm: ``group_norm``)."""
    if defence != "group_norm" or not _replaced(ctx):
        return ctx.build_model
    return lambda: fix_module(ctx.build_model())


def group_norm_artefact(ctx: Context) -> Artefact[Any]:
    """The target retrained like it (same data, settings and seed) with GroupNorm in place of each BatchNorm."""
    build_module = _builder(ctx, "group_norm")

    def train() -> tuple[torch.nn.Module, float]:
        cfg = dataclasses.replace(ctx.train_config(), progress=False)
        r = fit(build_module(), ctx.train, cfg, desc="target with group_norm")
        return r.model, r.seconds

    return model_artefact("inversion-target-group_norm", {"defence": "group_norm"}, train, build_module)


# -- defence: DP-SGD (the membership family's private target; a reference trained alike) ---


def _is_dp(defence: str | None) -> bool:
    return defence is not None and defence.partition(":")[0] in PRIVATE_TRAINING


def private_target_artefact(ctx: Context, defence: str) -> Artefact[Any]:
    """The membership family's DP-SGD target (the same stored model: training set, ``[dp_sgd]`` settings)."""
    from sparring.assess.families.membership import MembershipSpec, private_artefact

    return private_artefact(ctx, defence, MembershipSpec())


def private_reference_artefact(ctx: Context, e: InversionSpec, defence: str) -> Artefact[Any]:
    """A reference trained with DP-SGD at the same ε and ``[dp_sgd]`` settings, without the evaluated members."""
    from sparring.assess.families.membership import dp_settings

    settings = dp_settings(ctx)
    dp = DPSGD(PRIVATE_TRAINING.build(defence).epsilon, delta=settings.delta, max_grad_norm=settings.max_grad_norm)

    def build_module() -> torch.nn.Module:
        return fix_module(ctx.build_model())

    def train() -> tuple[torch.nn.Module, float]:
        data, _ = _without(ctx, _split(ctx, e))
        cfg = dataclasses.replace(ctx.train_config(settings.epochs), seed=ctx.seed + 1, progress=False)
        out = dp.train(reinitialise(ctx.build_model(), ctx.seed + 1), data, cfg)
        return out.model, out.seconds

    key = {"samples": e.samples, "defence": defence, **dp.get_params(), "epochs": settings.epochs}
    return model_artefact(f"inversion-reference-s{e.samples}-{defence}", key, train, build_module)


def _defended(ctx: Context, defence: str, target: Any) -> tuple[Any, dict[str, Any]]:
    """The model the defence yields and what the result records about it (the model itself if nothing changes)."""
    if _is_dp(defence):
        clf, info = ctx.artefact(private_target_artefact(ctx, defence))
        keep = ("epsilon", "delta", "defence_seconds")
        return clf, {**{k: info[k] for k in keep}, "replaced_layers": _replaced(ctx)}
    replaced = _replaced(ctx)
    if not replaced:
        return target, {"replaced_layers": 0, "defence_seconds": 0.0}
    clf, seconds = ctx.artefact(group_norm_artefact(ctx))
    return clf, {"replaced_layers": replaced, "defence_seconds": float(seconds)}


def evaluator_artefact(ctx: Context, e: InversionSpec) -> Artefact[Any]:
    """The evaluation classifier: another architecture, trained on every sample except the evaluated ones."""
    arch = _evaluator_arch(ctx, e)

    def make() -> torch.nn.Module:
        return build(arch, ctx.data.input_shape, ctx.data.num_classes, seed=ctx.seed + 2)

    def train() -> tuple[torch.nn.Module, float]:
        _, data = _without(ctx, _split(ctx, e))
        cfg = dataclasses.replace(ctx.train_config(), seed=ctx.seed + 2, progress=False)
        r = fit(make(), data, cfg, desc="inversion evaluator")
        return r.model, r.seconds

    key = {"samples": e.samples, "architecture": arch}
    return model_artefact(f"inversion-evaluator-{arch}-s{e.samples}", key, train, make)


#: Held-out samples, besides the nearest-neighbour test's, below which GMI has no public data to train its GAN on.
GMI_PUBLIC = 32


def _public(ctx: Context, split: InversionSplit) -> Dataset:
    """GMI's public data: the held-out split minus the unseen samples of the nearest-neighbour test."""
    held = torch.ones(len(ctx.test), dtype=torch.bool)
    held[split.non_members] = False
    return ctx.test.subset(held, "gmi public data")


def gan_artefact(ctx: Context, e: InversionSpec) -> Artefact[TrainedGan]:
    """GMI's GAN prior, trained once on the public data and shared by the target's and the reference's inversion."""
    attack = GMI(seed=ctx.seed, latent=e.latent, gan_epochs=e.gan_epochs)
    bounds = ctx.config.data.bounds

    def build(c: Context) -> TrainedGan:
        c.log("  training GMI's GAN prior")
        return attack.fit(_public(ctx, _split(ctx, e)), bounds)

    def save(value: TrainedGan, folder: Path) -> None:
        save_module(folder / "gan.safetensors", value.gan)
        save_json(folder / "gan.json", {"seconds": value.seconds, "d_loss": value.d_loss, "g_loss": value.g_loss})

    def load(c: Context, folder: Path) -> TrainedGan:
        gan = load_module(folder / "gan.safetensors", GanPrior(ctx.data.input_shape, e.latent, attack.width, bounds))
        meta = json.loads((folder / "gan.json").read_text())
        assert isinstance(gan, GanPrior)
        return TrainedGan(gan, float(meta["seconds"]), list(meta["d_loss"]), list(meta["g_loss"]))

    key = {"samples": e.samples, "latent": e.latent, "gan_epochs": e.gan_epochs}
    return Artefact(f"inversion-gmi-gan-s{e.samples}-l{e.latent}-e{e.gan_epochs}", key, build, save, load)


def _rows(images: torch.Tensor, per_class: int) -> list[Any]:
    """The first inversion of each class, rounded to 2 decimals, as nested lists ([] unless images ``[N, C, H, W]``)."""
    if images.dim() != 4:
        return []
    return [[[[round(float(v), 2) for v in row] for row in ch] for ch in img] for img in images[::per_class]]


def _mosaic(key: str, r: Mapping[str, Any]) -> str:
    """One picture: the model's inversion of each class, its nearest member, and the reference's inversion."""
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [np.asarray(r[k], dtype=np.float32) for k in ("target_images", "nearest_members", "reference_images")]
    n, c, h, w = rows[0].shape
    pad = max(1, h // 8)
    canvas = np.ones((3 * (h + pad) - pad, n * (w + pad) - pad, c), dtype=np.float32)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            canvas[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = np.transpose(img, (1, 2, 0))
    fig, ax = plt.subplots(figsize=(min(12.0, 1.1 * n + 1.5), 3.6))
    ax.imshow(canvas[:, :, 0] if c == 1 else canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([j * (w + pad) + w / 2 - 0.5 for j in range(n)], [f"class {k}" for k in r["classes"]], fontsize=7)
    names = ["model's inversion", "nearest member", "reference's inversion"]
    ax.set_yticks([i * (h + pad) + h / 2 - 0.5 for i in range(3)], names, fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"{key} ({r['attack']}): inversions beside their nearest training members", fontsize=9)
    return png(fig)


def _html(results: Mapping[str, dict[str, Any]]) -> str:
    out = []
    rows = []
    for key, r in results.items():
        rows.append(
            [
                esc(key),
                esc(r["defence"] or "no defence"),
                esc(r["attack"]),
                f"{r['n']}",
                pct(r["target_eval_accuracy"]),
                pct(r["reference_eval_accuracy"]),
                pct(r["target_nn"]),
                pct(r["reference_nn"]),
                f"{100 * r['nn_gap']:+.1f} pts",
                pct(r["clean_accuracy"]),
            ]
        )
    header = [
        "scenario",
        "defence",
        "attack run",
        "inversions",
        "eval. acc. (target)",
        "eval. acc. (reference)",
        "nearer a member (target)",
        "nearer a member (reference)",
        "gap (the leak)",
        "model acc.",
    ]
    out.append(table(header, rows))
    for key, r in results.items():
        if r.get("target_images"):
            out.append(_mosaic(key, r))
    for key, r in results.items():
        if r.get("fallback_reason"):
            out.append(f"<p class='muted'>{esc(key)}: {esc(r['fallback_reason'])}</p>")
        if r.get("gan_seconds") is not None:
            out.append(
                f"<p class='muted'>{esc(key)}: GMI's GAN prior trained in {r['gan_seconds']:.1f} s on "
                f"{r['gan_public']} held-out samples outside the nearest-neighbour test; the same generator "
                "inverted the model and the reference.</p>"
            )
    out.append(_group_norm_html(results))
    first = next(iter(results.values()))
    out.append(
        muted(
            f"Each model is inverted for every class; an evaluation classifier ({first['evaluator']}, accuracy "
            f"{pct(first['evaluator_accuracy'])} on the evaluated samples, which it never saw) labels the inversions. "
            f"The nearest-neighbour test compares, per inversion, its nearest of {first['samples']} members of its "
            f"class with its nearest of {first['samples']} unseen samples of its class (50 % is chance). The "
            "reference trains like the model on the training set minus those members, so its inversions show "
            "what a class prototype scores; the gap, model minus reference, is the leak (Fredrikson et al., CCS "
            "2015; Yin et al., CVPR 2020)."
        )
    )
    return "".join(out)


def _group_norm_html(results: Mapping[str, dict[str, Any]]) -> str:
    """What the ``group_norm`` or ``dp_sgd`` defence changed, per defended scenario, beside the undefended gap."""
    out = []
    for key, r in results.items():
        if r.get("defence") != "group_norm" and r.get("epsilon") is None:
            continue
        base = results.get(key.rsplit("+", 1)[0])
        before = f" (undefended: {100 * base['nn_gap']:+.1f} pts with {esc(base['attack'])})" if base else ""
        if r.get("epsilon") is not None:
            gn = f"; its {r['replaced_layers']} BatchNorm layers became GroupNorm" if r.get("replaced_layers") else ""
            what = (
                f"the target was trained with DP-SGD (the membership family's model; accountant's ε "
                f"{r['epsilon']:.2f} at δ {r['delta']:.0e}{gn}), and its reference with DP-SGD at the same ε"
            )
        elif not r.get("replaced_layers"):
            what = "the model has no BatchNorm layer, so there was nothing to replace: the model itself was attacked"
        else:
            what = (
                f"the target was retrained with its {r['replaced_layers']} BatchNorm layers replaced by GroupNorm "
                "(Opacus' ModuleValidator.fix, the architecture DP-SGD trains), and its reference the same way, so "
                "the gap compares like with like"
            )
        out.append(
            f"<p>{esc(key)}: {what}; model accuracy {pct(r['clean_accuracy'])}, {esc(r['attack'])} inversion, gap "
            f"{100 * r['nn_gap']:+.1f} pts{before}.</p>"
        )
    return "".join(out)


class InversionFamily(Family[InversionSpec, InversionScenarioResult]):
    """``[[inversion]]``: reconstruct classes from the model and measure what the reconstructions leak."""

    key = "inversion"
    title = "inversion"
    section = "Model inversion (test-time privacy)"
    order = 74
    spec = InversionSpec
    result = InversionScenarioResult
    threats = {TEST_PRIVACY: "model inversion"}
    rules = {TEST_PRIVACY: RULE}
    defences = (
        Defences(
            "training",
            names=("group_norm",),
            summary="the target and its reference retrained with GroupNorm in place of BatchNorm (as DP-SGD trains)",
        ),
        Defences(
            "training",
            registry=PRIVATE_TRAINING,
            settings="dp_sgd",
            summary="the target and its reference trained with DP-SGD through Opacus (extra 'privacy')",
        ),
    )
    attacks = tuple(INVERSION_ATTACKS)
    smoke = {
        "inversion": [{"per_class": 1, "steps": 20, "samples": 5, "defences": ["group_norm"]}],
    }

    def label(self, entry: InversionSpec) -> str:
        return entry.attack

    def check_config(self, config: Any, entries: Any) -> None:
        for e in entries:
            if not (config.model.trains_here or config.model.factory):
                raise ValueError(
                    f"inversion attack {e.attack!r} trains a reference model like the target: give [model] "
                    "'architecture' or 'factory' (a skops or ONNX model cannot be retrained)"
                )

    def check(self, ctx: Context, index: int, entry: InversionSpec) -> None:
        where = f"inversion[{index}]"
        if ctx.loaded is not None and Access.GRADIENTS not in ctx.loaded.access:
            raise ConfigError(f"{where}: model inversion needs gradients, and the loaded model gives none")
        if entry.classes is not None and max(entry.classes) >= ctx.data.num_classes:
            raise ConfigError(f"{where}.classes: class indices must be below {ctx.data.num_classes}")
        if entry.attack == "deep_inversion" and not batch_norms(ctx.build_model()):
            raise ConfigError(
                f"{where}.attack: deep_inversion is not applicable, the model ({ctx.model_name}) has no BatchNorm "
                "layer; use [model] architecture 'small_cnn_bn' or attack 'gradient'"
            )
        try:
            split = _split(ctx, entry)
        except InputError as err:
            raise ConfigError(f"{where}: {err}") from None
        if entry.attack == "gmi" and len(ctx.test) - len(split.non_members) < GMI_PUBLIC:
            raise ConfigError(
                f"{where}.attack: gmi trains its GAN on the held-out samples outside the nearest-neighbour test, "
                f"{len(ctx.test) - len(split.non_members)} here (needs {GMI_PUBLIC}); lower 'samples' or hold out more"
            )
        if "group_norm" in entry.defences and _replaced(ctx):
            require_opacus(f"{where}: defence group_norm (Opacus' ModuleValidator.fix)")
        if any(_is_dp(d) for d in entry.defences):
            from sparring.assess.families.membership import dp_settings

            require_opacus(f"{where}: defence dp_sgd")
            n, delta = len(ctx.train), dp_settings(ctx).delta
            if delta >= 1.0 / n:
                raise ConfigError(
                    f"[dp_sgd] delta = {delta:g} is not below 1/N = {1.0 / n:.3g} for N = {n} training records; "
                    "lower delta"
                )

    def artefacts(self, ctx: Context, sc: Scenario) -> list[Artefact[Any]]:
        e = sc.spec
        assert isinstance(e, InversionSpec)
        needed = [reference_artefact(ctx, e, sc.defence), evaluator_artefact(ctx, e)]
        if e.attack == "gmi":
            needed.append(gan_artefact(ctx, e))
        if sc.defence == "group_norm" and _replaced(ctx):
            needed.append(group_norm_artefact(ctx))
        if _is_dp(sc.defence):
            assert sc.defence is not None
            needed.append(private_target_artefact(ctx, sc.defence))
        return needed

    def run(self, ctx: Context, sc: Scenario) -> InversionScenarioResult:
        e = sc.spec
        assert isinstance(e, InversionSpec)
        clf: Any
        clf, _ = ctx.target()
        defended: dict[str, Any] = {}
        if sc.defence is not None:
            clf, defended = _defended(ctx, sc.defence, clf)
        reference, ref_seconds = ctx.artefact(reference_artefact(ctx, e, sc.defence))
        evaluator, _ = ctx.artefact(evaluator_artefact(ctx, e))
        split = _split(ctx, e)
        members = ctx.train.subset(split.members, "members")
        unseen = ctx.test.subset(split.non_members, "unseen")
        attack_name, why = e.attack, None
        params = e.attack_params()
        if e.attack == "deep_inversion" and not batch_norms(getattr(clf, "model", torch.nn.Identity())):
            attack_name, why = (
                "gradient",
                (
                    "DeepInversion is not applicable to this model (no BatchNorm running statistics to match); "
                    "gradient inversion ran instead"
                ),
            )
            params.pop("bn")
        attack = INVERSION_ATTACKS[attack_name](seed=ctx.seed, **params)
        gan: TrainedGan | None = None
        if isinstance(attack, GMI):
            gan = ctx.artefact(gan_artefact(ctx, e))
            attack.use(gan.gan)
        q0 = clf.queries
        r = evaluate_inversion(attack, clf, reference, evaluator, members, unseen, e.classes, attack_name)
        queries = clf.queries - q0
        nearest = members.x[r.target.nn.nearest_member]
        return InversionScenarioResult(
            kind=self.key,
            attack=attack_name,
            requested=e.attack,
            fallback_reason=why,
            defence=sc.defence,
            defence_type=self.defence_kind(sc.defence) if sc.defence else None,
            params=sc.params(),
            clean_accuracy=accuracy(clf, ctx.test.x, ctx.test.y),
            reference_accuracy=accuracy(reference, ctx.test.x, ctx.test.y),
            evaluator=_evaluator_arch(ctx, e),
            evaluator_accuracy=accuracy(evaluator, torch.cat([members.x, unseen.x]), torch.cat([members.y, unseen.y])),
            n=r.n,
            per_class=e.per_class,
            samples=split.per_class,
            target_eval_accuracy=r.target.eval_accuracy,
            reference_eval_accuracy=r.reference.eval_accuracy,
            eval_gap=r.eval_gap,
            target_nn=r.target.nn.closer_to_member,
            reference_nn=r.reference.nn.closer_to_member,
            nn_gap=r.nn_gap,
            target_nn_effective_n=r.target.nn.effective_n,
            reference_nn_effective_n=r.reference.nn.effective_n,
            target_confidence=r.target.confidence,
            reference_confidence=r.reference.confidence,
            seconds=r.target.seconds,
            reference_seconds=float(ref_seconds),
            queries=queries,
            gan_seconds=None if gan is None else gan.seconds,
            gan_public=None if gan is None else len(ctx.test) - len(split.non_members),
            classes=sorted(set(r.target.labels.tolist())),
            target_images=_rows(r.target.images, e.per_class),
            reference_images=_rows(r.reference.images, e.per_class),
            nearest_members=_rows(nearest, e.per_class),
            **defended,
        )

    def rate(self, result: InversionScenarioResult) -> Rating:
        g = result.nn_gap
        text = (
            f"{result.attack} inversion: {result.target_nn:.0%} of {result.n} inversions nearer a training member "
            f"than an unseen sample vs {result.reference_nn:.0%} for a reference that never saw them (gap "
            f"{100 * g:+.0f} pts); evaluation accuracy {result.target_eval_accuracy:.0%} vs "
            f"{result.reference_eval_accuracy:.0%}"
        )
        if result.n < RESOLVES:
            return not_measurable(g, f"{text}; not measurable with {result.n} inversions (needs {RESOLVES})")
        return rated(RULE, g, text, self._gap_interval(result))

    @staticmethod
    def _gap_interval(result: InversionScenarioResult) -> Interval:
        n_t, n_r = result.target_nn_effective_n or result.n, result.reference_nn_effective_n or result.n
        return gap_interval(result.target_nn, n_t, result.reference_nn, n_r)

    def intervals(self, key: str, result: InversionScenarioResult) -> dict[str, Interval]:
        if result.n < RESOLVES:
            return {}
        n = result.n
        return {
            f"{key}.nn_gap": self._gap_interval(result),
            f"{key}.target_nn": rate_interval(result.target_nn, max(1, round(result.target_nn_effective_n or n))),
            f"{key}.target_eval_accuracy": rate_interval(result.target_eval_accuracy, result.n),
            f"{key}.eval_gap": gap_interval(
                result.target_eval_accuracy, result.n, result.reference_eval_accuracy, result.n
            ),
        }

    def cost(self, key: str, result: InversionScenarioResult, base: InversionScenarioResult) -> CostRow:
        row = super().cost(key, result, base)
        if result.epsilon is not None:
            note = f"DP-SGD training (its reference too); accountant's ε {result.epsilon:.2f} at δ {result.delta:.0e}"
        elif result.replaced_layers == 0:
            note = "no BatchNorm to replace: the model itself"
        else:
            note = "the target retrained with GroupNorm in place of BatchNorm (its reference too)"
        return dataclasses.replace(row, seconds_note=note)

    def mitigates(self, result: InversionScenarioResult) -> bool:
        # group_norm on a model without BatchNorm changed nothing: not a defended model of the cell.
        return super().mitigates(result) and not (result.defence == "group_norm" and result.replaced_layers == 0)

    def figures(self, key: str, result: InversionScenarioResult) -> dict[str, float]:
        return {f"{key}.{n}": float(getattr(result, n)) for n in FIGURES}

    def expected_figures(self, sc: Scenario) -> list[str]:
        return [f"{sc.key}.{n}" for n in FIGURES]

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(results) if results else ""


FAMILY = InversionFamily()
