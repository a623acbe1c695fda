"""Backdoors: poison, train, measure; then each defence by how it acts.

Defences fall in six groups: data sanitisation detects the poison and retrains without it;
input filters reject triggered inputs at a chosen false-rejection rate; purification cleans
inputs before classifying; inspection gives a verdict and a reconstructed trigger without
changing the model; repair edits the model on a small clean set; training defences retrain
with strong augmentation. Every defended result carries the undefended figures under
``before`` and states its own cost, so the report treats them alike. ``hidden_trigger``
and ``teacher`` attack a student fine-tuned from a public teacher (the BSI transfer-learning
case); the clean student of the same teacher is their control.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import BaseModel, Field, field_validator, model_validator

from sparring.assess.artefacts import (
    load_module,
    load_poisoned,
    load_tensors,
    save_json,
    save_module,
    save_poisoned,
    save_tensors,
)
from sparring.assess.context import Artefact, Context, model_artefact
from sparring.assess.families.transfer_learning import setup_artefact
from sparring.assess.family import TRAIN_INTEGRITY, Defences, Family, Rating, Rule, Scenario, ScenarioResult, rated
from sparring.assess.htmlkit import curve_plot, esc, image_grid, muted, pct, png, table
from sparring.assess.spec import Entry, Strict, WithDefences, defences_field, one_of
from sparring.attacks.poisoning import BACKDOOR_ATTACKS, HiddenTrigger, backdoored_teacher
from sparring.data import Dataset, PoisonedDataset
from sparring.defenses.data import DATA_DEFENCES, sanitise_and_retrain
from sparring.defenses.inference import DETECTORS, Purification
from sparring.defenses.model import FinePruning, FineTuning, InspectionResult, NeuralCleanse
from sparring.errors import ConfigError, InputError
from sparring.metrics import Interval, accuracy, attack_success_rate, detection_rates, rate_interval
from sparring.models import Classifier, TorchClassifier, build, param_layers
from sparring.train import fit

RULE = Rule("attack success rate (ASR)", medium=0.1, high=0.5)
ATTACKS = ("badnets", "blended", "hidden_trigger", "teacher")
#: Attacks on a student of a public teacher rather than on the assessed model's training data.
TRANSFER_ATTACKS = ("hidden_trigger", "teacher")
SANITISERS = ("activation_clustering", "spectral_signatures", "autoencoder")
#: Sanitisers that read the model's features ([model] feature_layer).
FEATURE_SPACE = ("activation_clustering", "spectral_signatures")
FILTERS = ("strip", "random_masking")
INSPECTORS = ("neural_cleanse", "tabor")
REPAIRS = ("fine_pruning", "fine_tuning", "unlearning")
MIXES = ("mixup", "cutmix")
#: Defences that retrain on the poisoned set: they do not apply to a student of a public teacher.
RETRAINING = (*SANITISERS, *MIXES)


class LearningCurveConfig(Strict):
    """Backdoor learning curves (Cinà et al. 2021): ASR as the poisoned samples' loss weight goes 0 -> 1.

    One curve per weight decay (weak and strong regularisation).
    """

    betas: list[float] = Field([0.0, 0.05, 0.2, 0.5, 1.0], min_length=2)
    weight_decay: list[float] = Field([0.0, 0.01], min_length=1)

    @field_validator("betas")
    @classmethod
    def _unit(cls, v: list[float]) -> list[float]:
        for b in v:
            if not 0.0 <= b <= 1.0:
                raise ValueError(f"beta must be in [0, 1], got {b}")
        return sorted(v)

    @field_validator("weight_decay")
    @classmethod
    def _nonnegative(cls, v: list[float]) -> list[float]:
        for w in v:
            if not w >= 0.0:
                raise ValueError(f"weight decay must be >= 0, got {w}")
        return sorted(v)


class BackdoorSpec(Entry, WithDefences):
    """A backdoor attack on the training data, against the model and each listed defence.

    ``badnets`` stamps a white patch (Gu et al. 2017), ``blended`` blends a noise pattern at
    ``alpha`` (Chen et al. 2017); ``all_to_all`` relabels class i to i + 1 instead of one
    target. ``hidden_trigger`` (Saha et al., AAAI 2020: correctly labelled ``target``-class
    poisons within ``eps`` whose features match patched ``source`` images) and ``teacher`` (a
    backdoored public teacher, BSI) attack a student fine-tuned from a teacher sparring
    trains. Defences that need trusted clean data get ``clean_fraction`` of the training
    set; input filters reject ``frr`` of clean inputs; Neural Cleanse and TABOR optimise
    for ``inspection_steps`` (300 flag BadNets on mnist5k).
    """

    attack: str = "badnets"
    poison_fraction: float = Field(0.05, ge=0, le=1)
    target: int = Field(0, ge=0)
    source: int | None = Field(None, ge=0)
    patch_size: int = Field(3, ge=1)
    alpha: float = Field(0.1, gt=0, le=1)
    eps: float = Field(16 / 255, gt=0, le=1)
    all_to_all: bool = False
    teacher_fraction: float = Field(0.5, gt=0, lt=1)
    clean_fraction: float = Field(0.05, gt=0, lt=1)
    frr: float = Field(0.05, gt=0, lt=1)
    inspection_steps: int = Field(300, ge=1)
    learning_curve: LearningCurveConfig | None = None
    defences: list[str] = defences_field()

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, list(ATTACKS), "backdoor attack")

    @field_validator("defences")
    @classmethod
    def _listed_once(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a defence is listed twice")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> BackdoorSpec:
        if self.all_to_all and self.attack not in ("badnets", "blended"):
            raise ValueError("all_to_all applies to badnets and blended")
        if self.attack in TRANSFER_ATTACKS:
            bad = [d for d in self.defences if d in RETRAINING]
            if bad:
                usable = [n for g in FAMILY.defences for n in g.names if n not in RETRAINING]
                raise ValueError(
                    f"{self.attack} attacks a student of a public teacher; defences that retrain on the poisoned set "
                    f"({', '.join(bad)}) do not apply: use {', '.join(usable)}"
                )
            if self.learning_curve is not None:
                raise ValueError(f"learning_curve applies to badnets and blended, not {self.attack}")
        return self


class BackdoorResult(ScenarioResult):
    """Clean accuracy, ASR and accuracy on triggered inputs; for a defence, what it saw and cost."""

    model: str
    n_poisoned: int
    n_train: int
    train_seconds: float
    clean_accuracy: float
    asr: float
    triggered_accuracy: float
    #: Test inputs the trigger was tried on (those not of the target class): the ASR's sample size.
    n_triggered: int | None = None
    clean_model_accuracy: float | None = None
    clean_model_asr: float | None = None
    examples: list[Any] | None = None
    example_labels: list[int] | None = None
    example_poison_labels: list[int] | None = None
    learning_curve: list[dict[str, float]] | None = None
    before: dict[str, float] | None = None
    defence_seconds: float | None = None
    cost_note: str | None = None
    # sanitisation
    detector_recall: float | None = None
    detector_fpr: float | None = None
    detector_flagged: int | None = None
    passes: int | None = None
    # input filters
    filter_tpr: float | None = None
    filter_frr: float | None = None
    clean_accepted_accuracy: float | None = None
    # inspection
    max_anomaly_index: float | None = None
    flagged_classes: list[int] | None = None
    is_backdoored: bool | None = None
    target_flagged: bool | None = None
    mask_norms: list[float] | None = None
    clean_model_anomaly_index: float | None = None
    clean_model_flagged: bool | None = None
    trigger_class: int | None = None
    trigger_image: list[Any] | None = None
    # repair
    trusted_samples: int | None = None


@dataclasses.dataclass
class Victim:
    """The backdoored model, the poisoned data it was trained on, and what the attack cost.

    ``triggered`` are the test inputs the trigger is tried on (all of ``test``, or the source
    class of a source-specific backdoor); ``reference`` the control's figures when the attack
    measured them itself (else the clean model's are computed).
    """

    classifier: TorchClassifier
    data: PoisonedDataset
    seconds: float
    triggered: Dataset
    reference: dict[str, float] | None = None


def _spec(sc: Scenario) -> BackdoorSpec:
    assert isinstance(sc.spec, BackdoorSpec)
    return sc.spec


def _poison(ctx: Context, bd: BackdoorSpec) -> PoisonedDataset:
    attack = BACKDOOR_ATTACKS.build(
        bd.attack,
        target=bd.target,
        poison_fraction=bd.poison_fraction,
        alpha=bd.alpha,
        patch_size=bd.patch_size,
        all_to_all=bd.all_to_all,
        seed=ctx.seed,
    )
    poisoned = attack.poison(ctx.train)  # type: ignore[attr-defined]
    assert isinstance(poisoned, PoisonedDataset)
    return poisoned


def _source(ctx: Context, bd: BackdoorSpec) -> int:
    return bd.source if bd.source is not None else (bd.target + 1) % ctx.data.num_classes


def victim_artefact(ctx: Context, sc: Scenario) -> Artefact[Victim]:
    """The backdoored model of an entry (shared by the entry's defences)."""
    bd = _spec(sc)
    params = sc.params()
    if bd.attack not in TRANSFER_ATTACKS:
        poisoned = model_artefact(
            f"backdoor-{sc.label}", params, lambda: ctx.train_standard(_poison(ctx, bd)), ctx.build_model
        )

        def from_model(c: Context) -> Victim:
            clf, seconds = c.artefact(poisoned)
            return Victim(clf, _poison(c, bd), seconds, c.test)

        return Artefact(f"backdoor-victim-{sc.label}", params, from_model)  # its model is the stored artefact

    def transfer_victim(c: Context) -> Victim:
        setup = c.artefact(setup_artefact(c, bd.teacher_fraction))
        if bd.attack == "hidden_trigger":
            source = _source(c, bd)
            c.log(f"    crafting hidden-trigger poisons (class {bd.target}) against patched class {source}")
            attack = HiddenTrigger(
                target=bd.target,
                source=source,
                eps=bd.eps,
                poison_fraction=bd.poison_fraction,
                patch_size=bd.patch_size,
                seed=c.seed,
            )
            h = attack.evaluate(setup, epochs=10, seed=c.seed)
            reference = {"clean_accuracy": h.control_accuracy, "asr": h.control_asr}
            return Victim(h.student, h.data, h.seconds, _source_images(c, source), reference)
        c.log("    training a backdoored public teacher and fine-tuning a student from it")
        t = backdoored_teacher(
            c.train,
            c.test,
            architecture=c.model_name,
            target=bd.target,
            poison_fraction=bd.poison_fraction,
            patch_size=bd.patch_size,
            teacher_fraction=bd.teacher_fraction,
            teacher_epochs=6,  # as the clean teacher and student of the shared setup, the control
            student_epochs=4,
            seed=c.seed,
        )
        return Victim(t.student, t.data, t.seconds, c.test)

    def save(v: Victim, folder: Path) -> None:
        save_module(folder / "student.safetensors", v.classifier.model)
        save_poisoned(folder, v.data)
        save_json(folder / "victim.json", {"seconds": v.seconds, "reference": v.reference})

    def load(c: Context, folder: Path) -> Victim:
        meta = json.loads((folder / "victim.json").read_text())
        module = build(c.model_name, c.data.input_shape, c.data.num_classes, seed=c.seed)
        student = TorchClassifier(load_module(folder / "student.safetensors", module), c.data.input_shape,
                                  c.data.num_classes)
        triggered = _source_images(c, _source(c, bd)) if bd.attack == "hidden_trigger" else c.test
        return Victim(student, load_poisoned(folder), float(meta["seconds"]), triggered, meta["reference"])

    return Artefact(f"backdoor-victim-{sc.label}", params, transfer_victim, save, load)


def _source_images(ctx: Context, source: int) -> Dataset:
    return ctx.test.subset((ctx.test.y == source).nonzero().flatten())


def _figures(ctx: Context, clf: Classifier, v: Victim) -> dict[str, float]:
    """Clean accuracy on the test set; ASR and accuracy on triggered inputs (true labels)."""
    data, tried = v.data, v.triggered
    assert data.trigger is not None
    aim = data.target_of(tried.y)
    keep = tried.y != aim
    return {
        "clean_accuracy": accuracy(clf, ctx.test.x, ctx.test.y),
        "asr": attack_success_rate(clf, tried.x, tried.y, data.trigger, aim),
        "triggered_accuracy": accuracy(clf, data.trigger.apply(tried.x[keep]), tried.y[keep]),
        "n_triggered": int(keep.sum()),
    }


def _trusted_clean(ctx: Context, v: Victim, fraction: float) -> Dataset:
    """The defender's small trusted clean set: unpoisoned training samples (``fraction`` of the set)."""
    clean = (~v.data.poison_mask).nonzero().flatten()
    g = torch.Generator().manual_seed(ctx.seed + 7)
    n = max(ctx.data.num_classes, round(fraction * len(v.data)))
    pick = clean[torch.randperm(len(clean), generator=g)[:n]]
    return Dataset(v.data.x[pick], v.data.original_y[pick], list(v.data.classes), f"{v.data.name}-trusted")


def _feature_layer(clf: TorchClassifier) -> str:
    """The last hidden layer (where the data detectors and fine-pruning look)."""
    return param_layers(clf.model)[-2]


def _last_conv(clf: TorchClassifier) -> str:
    """The last convolution (fine-pruning's layer, Liu et al.), else the last hidden layer."""
    convs = [n for n, m in clf.model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    return convs[-1] if convs else _feature_layer(clf)


def _clean_control(ctx: Context, bd: BackdoorSpec) -> Classifier:
    """The model the backdoored one is compared with: the clean target, or the clean student of the teacher."""
    if bd.attack in TRANSFER_ATTACKS:
        return ctx.artefact(setup_artefact(ctx, bd.teacher_fraction)).student
    return ctx.target()[0]


def inspection_artefact(
    ctx: Context, sc: Scenario, v: Victim, regulariser: str, which: str
) -> Artefact[InspectionResult]:
    """One Neural Cleanse / TABOR inspection per entry, regulariser and model (unlearning reuses it)."""
    bd = _spec(sc)

    def inspect(c: Context) -> InspectionResult:
        clf = v.classifier if which == "backdoored" else _clean_control(c, bd)
        trusted = _trusted_clean(c, v, bd.clean_fraction)
        c.log(f"    {regulariser}: reconstructing a trigger per class on the {which} model")
        return NeuralCleanse(steps=bd.inspection_steps, regulariser=regulariser, seed=c.seed).inspect(clf, trusted)

    def save(r: InspectionResult, folder: Path) -> None:
        tensors = {k: getattr(r, k) for k in ("norms", "anomaly_index", "masks", "patterns", "attack_success")}
        save_tensors(folder / "inspection.safetensors", {**tensors, "reached": r.reached})
        meta = {k: getattr(r, k) for k in ("flagged_classes", "is_backdoored", "max_anomaly_index", "seconds")}
        save_json(folder / "inspection.json", {**meta, "regulariser": r.regulariser})

    def load(_c: Context, folder: Path) -> InspectionResult:
        t = load_tensors(folder / "inspection.safetensors")
        meta = json.loads((folder / "inspection.json").read_text())
        return InspectionResult(
            norms=t["norms"],
            anomaly_index=t["anomaly_index"],
            flagged_classes=[int(c) for c in meta["flagged_classes"]],
            is_backdoored=bool(meta["is_backdoored"]),
            max_anomaly_index=float(meta["max_anomaly_index"]),
            masks=t["masks"],
            patterns=t["patterns"],
            attack_success=t["attack_success"],
            seconds=float(meta["seconds"]),
            regulariser=str(meta["regulariser"]),
            reached=t["reached"],
        )

    params = {**sc.params(), "regulariser": regulariser, "which": which}
    return Artefact(f"inspection-{sc.label}-{regulariser}-{which}", params, inspect, save, load)


# -- defences, one handler per group ---------------------------------------------------------


def _sanitise(ctx: Context, sc: Scenario, v: Victim) -> dict[str, Any]:
    assert sc.defence is not None
    # epsilon: the poison rate the defender budgets for (Tran et al. use the true rate as the bound)
    layer = {"layer": ctx.feature_layer()} if sc.defence in FEATURE_SPACE else {}
    detector = DATA_DEFENCES.build(sc.defence, seed=ctx.seed, epsilon=max(_spec(sc).poison_fraction, 0.01), **layer)
    ctx.log(f"    {sc.defence}: detecting and retraining")
    result = sanitise_and_retrain(detector, v.data, v.classifier, ctx.build_model, ctx.train_config())
    rates = detection_rates(result.flagged, v.data.poison_mask)
    return {
        **_figures(ctx, result.classifier, v),
        **{f"detector_{k}": x for k, x in rates.items()},
        "passes": result.passes,
        "defence_seconds": result.seconds,
        "cost_note": f"detection and retraining; removes {rates['fpr']:.1%} of clean training samples",
    }


def _filter(ctx: Context, sc: Scenario, v: Victim) -> dict[str, Any]:
    assert sc.defence is not None
    bd, data, test = _spec(sc), v.data, ctx.test
    assert data.trigger is not None
    trusted = _trusted_clean(ctx, v, bd.clean_fraction)
    start = time.perf_counter()
    filt = DETECTORS.build(sc.defence, frr=bd.frr, seed=ctx.seed).fit(v.classifier, trusted.x)
    aim = data.target_of(v.triggered.y)
    keep = v.triggered.y != aim
    triggered = data.trigger.apply(v.triggered.x[keep])
    caught = filt.detect(triggered)
    rejected = filt.detect(test.x)
    hit = v.classifier.predict_labels(triggered) == aim[keep]
    tpr, frr = float(caught.float().mean()), float(rejected.float().mean())
    return {
        **_figures(ctx, v.classifier, v),
        "asr": float((hit & ~caught).float().mean()),
        "filter_tpr": tpr,
        "filter_frr": frr,
        "clean_accepted_accuracy": accuracy(v.classifier, test.x[~rejected], test.y[~rejected])
        if bool((~rejected).any())
        else 0.0,
        "defence_seconds": time.perf_counter() - start,
        "cost_note": f"rejects {frr:.1%} of clean test inputs (target {bd.frr:.0%}); runs at every query",
    }


def _purify(ctx: Context, sc: Scenario, v: Victim) -> dict[str, Any]:
    start = time.perf_counter()
    out = _figures(ctx, Purification().wrap(v.classifier), v)
    seconds = time.perf_counter() - start
    return {**out, "defence_seconds": seconds, "cost_note": "saliency, masking and filling at every query"}


def _inspect(ctx: Context, sc: Scenario, v: Victim) -> dict[str, Any]:
    bd = _spec(sc)
    regulariser = "tabor" if sc.defence == "tabor" else "neural_cleanse"
    found = ctx.artefact(inspection_artefact(ctx, sc, v, regulariser, "backdoored"))
    control = ctx.artefact(inspection_artefact(ctx, sc, v, regulariser, "clean"))
    shown = found.flagged_classes[0] if found.flagged_classes else int(found.anomaly_index.argmax())
    trigger = found.trigger_image(shown)
    return {
        **_figures(ctx, v.classifier, v),
        "max_anomaly_index": found.max_anomaly_index,
        "flagged_classes": found.flagged_classes,
        "is_backdoored": found.is_backdoored,
        "target_flagged": bd.target in found.flagged_classes,
        "mask_norms": found.norms.tolist(),
        "clean_model_anomaly_index": control.max_anomaly_index,
        "clean_model_flagged": control.is_backdoored,
        "trigger_class": shown,
        "trigger_image": trigger.round(decimals=3).tolist() if trigger.dim() == 3 else [],
        "defence_seconds": found.seconds,
        "cost_note": "a verdict: the model is unchanged (inspection of the clean model as control)",
    }


def _repair(ctx: Context, sc: Scenario, v: Victim) -> dict[str, Any]:
    bd = _spec(sc)
    trusted = _trusted_clean(ctx, v, bd.clean_fraction)
    ctx.log(f"    {sc.defence}: repairing on {len(trusted)} trusted clean samples")
    if sc.defence == "unlearning":  # Neural Cleanse's repair: unlearn the reversed trigger
        found = ctx.artefact(inspection_artefact(ctx, sc, v, "neural_cleanse", "backdoored"))
        nc = NeuralCleanse(steps=bd.inspection_steps, seed=ctx.seed)
        unlearned = nc.repair(v.classifier, trusted, inspection=found)
        repaired, seconds = unlearned.classifier, found.seconds + unlearned.seconds
    else:
        repairer = (
            FinePruning(layer=_last_conv(v.classifier), seed=ctx.seed)
            if sc.defence == "fine_pruning"
            else FineTuning(seed=ctx.seed)
        )
        result = repairer.repair(v.classifier, trusted)
        repaired, seconds = result.classifier, result.seconds
    return {
        **_figures(ctx, repaired, v),
        "trusted_samples": len(trusted),
        "defence_seconds": seconds,
        "cost_note": f"repair on {len(trusted)} trusted clean samples",
    }


def _augment(ctx: Context, sc: Scenario, v: Victim) -> dict[str, Any]:
    cfg = dataclasses.replace(ctx.train_config(), mix=f"{sc.defence}:1.0")

    def train() -> tuple[torch.nn.Module, float]:
        r = fit(ctx.build_model(), v.data, cfg, desc=f"train with {sc.defence}")
        return r.model, r.seconds

    name = f"backdoor-{sc.label}-{sc.defence}"
    clf, seconds = ctx.artefact(model_artefact(name, {**sc.params(), "mix": cfg.mix}, train, ctx.build_model))
    return {
        **_figures(ctx, clf, v),
        "defence_seconds": seconds,
        "cost_note": f"training with {sc.defence} (standard training: {v.seconds:.1f} s)",
    }


HANDLERS: dict[str, Callable[[Context, Scenario, Victim], dict[str, Any]]] = {
    "data": _sanitise,
    "detector": _filter,
    "inference": _purify,
    "inspection": _inspect,
    "repair": _repair,
    "training": _augment,
}


def _examples(data: PoisonedDataset) -> dict[str, Any]:
    """Up to six poisoned training samples for the report's grid."""
    idx = data.poison_mask.nonzero().flatten()[:6]
    images = data.x[idx].round(decimals=3).tolist() if len(data.input_shape) == 3 else []
    return {
        "examples": images,
        "example_labels": [int(data.original_y[i]) for i in idx],
        "example_poison_labels": [int(data.y[i]) for i in idx],
    }


def _learning_curve(ctx: Context, sc: Scenario, v: Victim) -> list[dict[str, float]]:
    from sparring.defenses.training.learning_curves import backdoor_learning_curve

    lc = _spec(sc).learning_curve
    assert lc is not None
    ctx.log(f"    learning curve: {len(lc.betas)} betas x {len(lc.weight_decay)} weight decays")
    curve = backdoor_learning_curve(
        v.data,
        ctx.build_model,
        ctx.train_config(),
        ctx.test,
        betas=lc.betas,
        weight_decays=lc.weight_decay,
        seed=ctx.seed,
    )
    return [dict(p) for p in curve.as_rows()]


# -- HTML ---------------------------------------------------------------------------------------

ASR_NOTE = (
    '<p class="muted">ASR: share of triggered test inputs whose true class is not their backdoor target that the '
    "model assigns to the target (all-to-all: class i to i + 1). Accuracy on triggered inputs is against their true "
    "labels. Detector recall and FPR are computed against the known poison mask; an input filter's ASR counts only "
    "triggered inputs it lets through.</p>"
)


def _target(p: dict[str, Any]) -> str:
    return "i → i + 1" if p.get("all_to_all") else f"→ class {p['target']}"


def _defence_cell(r: dict[str, Any]) -> str:
    """The figure that says what the defence saw, by its type."""
    kind = r.get("defence_type")
    if kind == "data":
        return f"recall {pct(r['detector_recall'])}, FPR {pct(r['detector_fpr'])}"
    if kind == "detector":
        return f"catches {pct(r['filter_tpr'])} of triggered inputs at {pct(r['filter_frr'])} clean rejection"
    if kind == "inspection":
        flagged = ", ".join(map(str, r["flagged_classes"])) or "none"
        return (
            f"anomaly index {r['max_anomaly_index']:.2f} (flags {flagged}); clean model "
            f"{r['clean_model_anomaly_index']:.2f} ({'flagged' if r['clean_model_flagged'] else 'not flagged'})"
        )
    if kind == "repair":
        return f"on {r['trusted_samples']} trusted samples"
    return "—"


def _bars(base: dict[str, Any], defended: list[dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * (len(defended) + 1)), 3.2))
    names = ["no defence"] + [d["defence"] for d in defended]
    vals = [base, *defended]
    xs = np.arange(len(names))
    ax.bar(xs - 0.18, [v["clean_accuracy"] for v in vals], 0.36, label="clean accuracy")
    ax.bar(xs + 0.18, [v["asr"] for v in vals], 0.36, label="attack success rate")
    ax.set_xticks(xs, names, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title(f"{base['attack']}: clean accuracy and ASR per defence")
    return png(fig)


def _learning_curves(r: dict[str, Any]) -> str:
    """ASR against the poisoned samples' loss weight, one line per weight decay (Cinà et al. 2021)."""
    lines = []
    decays = sorted({p["weight_decay"] for p in r["learning_curve"]})
    for i, wd in enumerate(decays):
        pts = sorted((p for p in r["learning_curve"] if p["weight_decay"] == wd), key=lambda p: p["beta"])
        lines.append((f"ASR, weight decay {wd:g}", [p["beta"] for p in pts], [p["asr"] for p in pts], "-", i))
        lines.append(
            (f"clean acc., weight decay {wd:g}", [p["beta"] for p in pts], [p["clean_accuracy"] for p in pts], ":", i)
        )
    return curve_plot(
        f"{r['attack']}: backdoor learning curve", "weight β of the poisoned samples' loss", lines, ylabel="rate"
    )


def _html(results: list[dict[str, Any]]) -> str:
    base = [r for r in results if r["defence"] is None]
    if not base:
        return ""
    out = ["<h3>Backdoors</h3>"]
    rows = []
    for r in base:
        p = r["params"]
        rows.append(
            [
                f"{esc(r['attack'])} {_target(p)}",
                esc(r.get("model", "")),
                f"{pct(p['poison_fraction'])} ({r['n_poisoned']} samples)",
                f"{pct(r['clean_accuracy'])} {muted('clean model ' + pct(r['clean_model_accuracy']))}",
                f"{pct(r['asr'])} {muted('clean model ' + pct(r['clean_model_asr']))}",
                pct(r["triggered_accuracy"]),
            ]
        )
    out.append(table(["attack", "victim", "poison", "clean acc.", "ASR", "acc. on triggered"], rows))
    defended = [r for r in results if r["defence"] is not None]
    if defended:
        rows = [
            [
                esc(r["attack"]),
                f"{esc(r['defence'])} <span class='muted'>({esc(r['defence_type'])})</span>",
                f"{pct(r['before']['clean_accuracy'])} → {pct(r['clean_accuracy'])}",
                f"{pct(r['before']['asr'])} → {pct(r['asr'])}",
                pct(r["triggered_accuracy"]),
                _defence_cell(r),
                f"{r['defence_seconds']:.1f} s <span class='muted'>{esc(r['cost_note'])}</span>",
            ]
            for r in defended
        ]
        out.append(
            "<h4>Defences</h4>"
            + table(["attack", "defence", "clean acc.", "ASR", "acc. on triggered", "what it saw", "cost"], rows)
        )
    for r in base:
        mine = [d for d in defended if d["params"] == r["params"] and d["attack"] == r["attack"]]
        if mine:
            out.append(_bars(r, mine))
        if r.get("examples"):
            labels = [f"{a}→{b}" for a, b in zip(r["example_labels"], r.get("example_poison_labels", []), strict=False)]
            title = f"{r['attack']}: poisoned training samples (true label → training label)"
            out.append(image_grid(r["examples"], labels or r["example_labels"], title, prefix=""))
        if r.get("learning_curve"):
            out.append(f"<h4>{esc(r['attack'])}: backdoor learning curve</h4>" + _learning_curves(r))
    triggers = [d for d in defended if d.get("trigger_image")]
    if triggers:
        out.append("<h4>Triggers reconstructed by model inspection</h4>")
        out.append(
            image_grid(
                [d["trigger_image"] for d in triggers],
                [d["trigger_class"] for d in triggers],
                "mask × pattern of the most anomalous class ("
                + "; ".join(f"{d['attack']}/{d['defence']}" for d in triggers)
                + ")",
                prefix="class ",
            )
        )
    out.append(ASR_NOTE)
    return "".join(out)


# -- the family -----------------------------------------------------------------------------------


class BackdoorFamily(Family[BackdoorSpec, BackdoorResult]):
    """``[[backdoor]]``: a backdoor in the training data (or in a public teacher), and the defences against it."""

    key = "backdoor"
    title = "backdoor"
    section = "Training data: poisoning and backdoors"
    order = 30
    spec = BackdoorSpec
    result = BackdoorResult
    threats = {TRAIN_INTEGRITY: "backdoors"}
    rules = {TRAIN_INTEGRITY: RULE}
    defences = (
        Defences("data", SANITISERS, summary="find the poison, retrain without it"),
        Defences("detector", FILTERS, summary="reject triggered inputs at frr"),
        Defences("inference", ("purification",), summary="Februus-style saliency mask and fill"),
        Defences("inspection", INSPECTORS, summary="verdict and reconstructed trigger"),
        Defences("repair", REPAIRS, summary="repair on clean_fraction trusted data"),
        Defences("training", MIXES, summary="train with strong augmentation"),
    )
    attacks = ATTACKS
    smoke = {"backdoor": [{"poison_fraction": 0.1, "patch_size": 2, "defences": ["strip"]}]}

    def label(self, entry: BackdoorSpec) -> str:
        return f"{entry.attack}-all_to_all" if entry.all_to_all else entry.attack

    def check_config(self, config: Any, entries: Any) -> None:
        retrains = [e for e in entries if e.attack not in TRANSFER_ATTACKS]
        if retrains and not config.model.trains_here:
            raise ValueError(
                "backdoor scenarios on the target retrain the model, so [model] needs 'architecture' or a 'factory' "
                "without 'weights'"
            )
        if len(retrains) < len(entries) and not config.model.zoo:
            raise ValueError(
                "backdoor (hidden_trigger, teacher) trains a zoo teacher and student: [model] needs 'architecture' "
                "(or nothing)"
            )
        shared = config.family_defences(self.key)
        if len(retrains) < len(entries) and any(d in RETRAINING for d in shared):
            raise ValueError(
                "[defences] backdoor lists a defence that retrains on the poisoned set, which does not apply to "
                "hidden_trigger or teacher entries: list it on the entries it applies to"
            )

    def check(self, ctx: Context, index: int, entry: BackdoorSpec) -> None:
        k = ctx.data.num_classes
        for name in ("target", "source"):
            c = getattr(entry, name)
            if c is not None and c >= k:
                raise ConfigError(f"backdoor[{index}].{name}: class {c} does not exist (the data has {k})")
        if entry.attack != "blended" and len(ctx.data.input_shape) != 3:
            raise ConfigError(
                f"backdoor[{index}]: {entry.attack} stamps a patch trigger on images [C, H, W]; the data is not "
                "image-shaped (attack = \"blended\" blends a trigger into feature vectors)"
            )
        if any(d in FEATURE_SPACE for d in [*entry.defences, *ctx.config.family_defences(self.key)]):
            try:
                ctx.feature_layer()
            except InputError as e:
                raise InputError(f"backdoor[{index}]: {e}") from None

    def artefacts(self, ctx: Context, sc: Scenario) -> list[Artefact[Any]]:
        return [victim_artefact(ctx, sc)]

    def run(self, ctx: Context, sc: Scenario) -> BackdoorResult:
        bd = _spec(sc)
        v = ctx.artefact(victim_artefact(ctx, sc))
        before = _figures(ctx, v.classifier, v)
        common: dict[str, Any] = {
            "kind": self.key,
            "attack": bd.attack,
            "defence": sc.defence,
            "params": sc.params(),
            "model": "student of a public teacher" if bd.attack in TRANSFER_ATTACKS else ctx.model_name,
            "n_poisoned": v.data.n_poisoned,
            "n_train": len(v.data),
            "train_seconds": v.seconds,
        }
        if sc.defence is None:
            ref = v.reference if v.reference is not None else _figures(ctx, _clean_control(ctx, bd), v)
            extra = {"clean_model_accuracy": ref["clean_accuracy"], "clean_model_asr": ref["asr"], **_examples(v.data)}
            if bd.learning_curve is not None:
                extra["learning_curve"] = _learning_curve(ctx, sc, v)
            return BackdoorResult(**common, **before, **extra)
        kind = self.defence_kind(sc.defence)
        figures = {**before, **HANDLERS[kind](ctx, sc, v)}
        return BackdoorResult(**common, defence_type=kind, before=before, **figures)

    def rate(self, result: BackdoorResult) -> Rating:
        n = result.n_triggered
        ci = rate_interval(result.asr, n) if n else None
        return rated(RULE, result.asr, f"ASR {result.asr:.1%}, clean accuracy {result.clean_accuracy:.1%}", ci)

    def intervals(self, key: str, result: BackdoorResult) -> dict[str, Interval]:
        n = result.n_triggered
        return {f"{key}.asr": rate_interval(result.asr, n)} if n else {}

    def figures(self, key: str, result: BackdoorResult) -> dict[str, float]:
        return headline_figures(key, result)

    def expected_figures(self, sc: Scenario) -> list[str]:
        return expected_headlines(sc)

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(list(results.values())) if results else ""


#: Scalar figures of training-data results that ``--fail-on`` can gate, when present.
HEADLINES = (
    "asr",
    "clean_accuracy",
    "triggered_accuracy",
    "detector_recall",
    "detector_fpr",
    "filter_tpr",
    "filter_frr",
    "max_anomaly_index",
    "clean_model_anomaly_index",
    "success_rate",
    "asr_after_rounds",
)


def headline_figures(key: str, result: BaseModel) -> dict[str, float]:
    """The :data:`HEADLINES` a result has, and its learning curve's ASR per beta and weight decay."""
    out = {f"{key}.{name}": float(v) for name in HEADLINES if isinstance(v := getattr(result, name, None), int | float)}
    for p in getattr(result, "learning_curve", None) or []:
        out[f"{key}.asr@beta={p['beta']:g},wd={p['weight_decay']:g}"] = float(p["asr"])
    return out


def expected_headlines(sc: Scenario) -> list[str]:
    """The figure keys :func:`headline_figures` can give for ``sc``."""
    return [*(f"{sc.key}.{name}" for name in HEADLINES), f"{sc.key}.asr@beta=*"]


FAMILY = BackdoorFamily()
