"""Backdoor scenarios: poison, train, measure; then each defence by how it acts.

Defences fall in five groups (``BACKDOOR_*`` in :mod:`sparring.assess.config`): data
sanitisation detects the poison and retrains without it; input filters reject triggered
inputs at a chosen false-rejection rate; purification cleans inputs before classifying;
inspection gives a verdict and a reconstructed trigger without changing the model;
repair edits the model on a small clean set; training defences retrain with strong
augmentation. Every defended result carries the undefended figures under ``before`` and
states its own cost, so the report treats them alike.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import torch

from sparring.assess.config import (
    BACKDOOR_DATA_DEFENCES,
    BACKDOOR_FILTERS,
    BACKDOOR_INSPECTORS,
    BACKDOOR_PURIFIERS,
    BACKDOOR_REPAIRS,
    TRANSFER_BACKDOORS,
    BackdoorConfig,
)
from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.data import Dataset, PoisonedDataset
from sparring.metrics import accuracy, attack_success_rate, detection_rates
from sparring.models import Classifier, TorchClassifier
from sparring.models.student import param_layers
from sparring.train import fit


def _spec(sc: Scenario) -> BackdoorConfig:
    assert isinstance(sc.spec, BackdoorConfig)
    return sc.spec


def _poison(ctx: Context, bd: BackdoorConfig) -> PoisonedDataset:
    from sparring.attacks.poisoning import BadNets, Blended

    seed = ctx.config.seed
    if bd.attack == "blended":
        return Blended(
            target=bd.target, poison_fraction=bd.poison_fraction, alpha=bd.alpha, all_to_all=bd.all_to_all, seed=seed
        ).poison(ctx.train)
    return BadNets(
        target=bd.target,
        poison_fraction=bd.poison_fraction,
        patch_size=bd.patch_size,
        all_to_all=bd.all_to_all,
        seed=seed,
    ).poison(ctx.train)


class _Victim:
    """The backdoored model, the poisoned data it was trained on, and what the attack cost.

    ``triggered`` are the test inputs the trigger is tried on (all of ``test``, or the source
    class of a source-specific backdoor); ``reference`` the control's figures when the attack
    measured them itself (else the clean model's are computed).
    """

    def __init__(
        self,
        classifier: TorchClassifier,
        data: PoisonedDataset,
        seconds: float,
        test: Dataset,
        triggered: Dataset | None = None,
        reference: dict[str, float] | None = None,
    ) -> None:
        self.classifier, self.data, self.seconds, self.test = classifier, data, seconds, test
        self.triggered = triggered if triggered is not None else test
        self.reference = reference


def _victim(ctx: Context, sc: Scenario) -> _Victim:
    bd = _spec(sc)
    if bd.attack in TRANSFER_BACKDOORS:
        return _transfer_victim(ctx, sc)
    data = _poison(ctx, bd)
    clf, seconds = ctx.cached_model(f"backdoor-{sc.index}", sc.params(), lambda: ctx.train_standard(data))
    return _Victim(clf, data, seconds, ctx.test)


def _transfer_victim(ctx: Context, sc: Scenario) -> _Victim:
    """The student of a public teacher, backdoored by hidden-trigger poisons or through the teacher."""
    from sparring.assess.scenarios.transfer_learning import shared_setup
    from sparring.attacks.poisoning import HiddenTrigger, backdoored_teacher

    bd = _spec(sc)
    key = f"backdoor-transfer-{sc.index}"
    if key not in ctx.memo:
        seed = ctx.config.seed
        setup = shared_setup(ctx, bd.teacher_fraction)
        if bd.attack == "hidden_trigger":
            source = bd.source if bd.source is not None else (bd.target + 1) % ctx.data.num_classes
            ctx.log(f"    crafting hidden-trigger poisons (class {bd.target}) against patched class {source}")
            attack = HiddenTrigger(
                target=bd.target,
                source=source,
                eps=bd.eps,
                poison_fraction=bd.poison_fraction,
                patch_size=bd.patch_size,
                seed=seed,
            )
            h = attack.evaluate(setup, epochs=10, seed=seed)
            ctx.memo[key] = _Victim(
                h.student,
                h.data,
                h.seconds,
                ctx.test,
                triggered=ctx.test.subset((ctx.test.y == source).nonzero().flatten()),
                reference={"clean_accuracy": h.control_accuracy, "asr": h.control_asr},
            )
        else:
            ctx.log("    training a backdoored public teacher and fine-tuning a student from it")
            t = backdoored_teacher(
                ctx.train,
                ctx.test,
                architecture=ctx.model_name,
                target=bd.target,
                poison_fraction=bd.poison_fraction,
                patch_size=bd.patch_size,
                teacher_fraction=bd.teacher_fraction,
                teacher_epochs=6,  # as the clean teacher and student of shared_setup, the control
                student_epochs=4,
                seed=seed,
            )
            ctx.memo[key] = _Victim(t.student, t.data, t.seconds, ctx.test)
    victim = ctx.memo[key]
    assert isinstance(victim, _Victim)
    return victim


def _figures(clf: Classifier, v: _Victim) -> dict[str, float]:
    """Clean accuracy on the test set; ASR and accuracy on triggered inputs (true labels)."""
    data, test, tried = v.data, v.test, v.triggered
    assert data.trigger is not None
    aim = data.target_of(tried.y)
    keep = tried.y != aim
    return {
        "clean_accuracy": accuracy(clf, test.x, test.y),
        "asr": attack_success_rate(clf, tried.x, tried.y, data.trigger, aim),
        "triggered_accuracy": accuracy(clf, data.trigger.apply(tried.x[keep]), tried.y[keep]),
    }


def _trusted_clean(ctx: Context, v: _Victim, fraction: float) -> Dataset:
    """The defender's small trusted clean set: unpoisoned training samples (``fraction`` of the set)."""
    clean = (~v.data.poison_mask).nonzero().flatten()
    g = torch.Generator().manual_seed(ctx.config.seed + 7)
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


# -- defences, one handler per group ---------------------------------------------------------


def _sanitise(ctx: Context, sc: Scenario, v: _Victim) -> dict[str, Any]:
    from sparring.defenses.data import ActivationClustering, SpectralSignatures, sanitise_and_retrain
    from sparring.defenses.data.autoencoder import AutoencoderDetector

    seed = ctx.config.seed
    detector: Any
    if sc.defence == "activation_clustering":
        detector = ActivationClustering(seed=seed)
    elif sc.defence == "spectral_signatures":
        # epsilon: the poison rate the defender budgets for (Tran et al. use the true rate as the bound)
        detector = SpectralSignatures(epsilon=max(_spec(sc).poison_fraction, 0.01))
    else:
        detector = AutoencoderDetector(seed=seed)
    ctx.log(f"    {sc.defence}: detecting and retraining")
    result = sanitise_and_retrain(detector, v.data, v.classifier, ctx.build_model, ctx.train_config())
    rates = detection_rates(result.flagged, v.data.poison_mask)
    return {
        **_figures(result.classifier, v),
        **{f"detector_{k}": x for k, x in rates.items()},
        "passes": result.passes,
        "defence_seconds": result.seconds,
        "cost_note": f"detection and retraining; removes {rates['fpr']:.1%} of clean training samples",
    }


def _filter(ctx: Context, sc: Scenario, v: _Victim) -> dict[str, Any]:
    from sparring.defenses.inference import STRIP
    from sparring.defenses.inference.masking import RandomMasking

    bd, data, test = _spec(sc), v.data, v.test
    assert data.trigger is not None
    seed = ctx.config.seed
    trusted = _trusted_clean(ctx, v, bd.clean_fraction)
    start = time.perf_counter()
    filt: Any = STRIP(frr=bd.frr, seed=seed) if sc.defence == "strip" else RandomMasking(frr=bd.frr, seed=seed)
    filt.fit(v.classifier, trusted.x)
    aim = data.target_of(v.triggered.y)
    keep = v.triggered.y != aim
    triggered = data.trigger.apply(v.triggered.x[keep])
    caught = filt.detect(triggered)
    rejected = filt.detect(test.x)
    hit = v.classifier.predict_labels(triggered) == aim[keep]
    out: dict[str, Any] = dict(_figures(v.classifier, v))
    tpr, frr = float(caught.float().mean()), float(rejected.float().mean())
    out.update(
        {
            "asr": float((hit & ~caught).float().mean()),
            "filter_tpr": tpr,
            "filter_frr": frr,
            "clean_accepted_accuracy": accuracy(v.classifier, test.x[~rejected], test.y[~rejected])
            if bool((~rejected).any())
            else 0.0,
            "defence_seconds": time.perf_counter() - start,
            "cost_note": f"rejects {frr:.1%} of clean test inputs (target {bd.frr:.0%}); runs at every query",
        }
    )
    return out


def _purify(ctx: Context, sc: Scenario, v: _Victim) -> dict[str, Any]:
    from sparring.defenses.inference.purification import Purification

    start = time.perf_counter()
    purified = Purification().wrap(v.classifier)
    out = _figures(purified, v)
    seconds = time.perf_counter() - start
    return {**out, "defence_seconds": seconds, "cost_note": "saliency, masking and filling at every query"}


def _neural_cleanse(ctx: Context, sc: Scenario, regulariser: str = "neural_cleanse") -> Any:
    """Neural Cleanse (all classes optimised at once) with the entry's ``inspection_steps``."""
    from sparring.defenses.model.neural_cleanse import NeuralCleanse

    return NeuralCleanse(steps=_spec(sc).inspection_steps, regulariser=regulariser, seed=ctx.config.seed)


def _inspection(ctx: Context, sc: Scenario, v: _Victim, regulariser: str, clf: Classifier, which: str) -> Any:
    """One inspection per entry, regulariser and model (unlearning reuses Neural Cleanse's)."""
    key = f"backdoor-{sc.index}-{regulariser}-{which}"
    if key not in ctx.memo:
        trusted = _trusted_clean(ctx, v, _spec(sc).clean_fraction)
        ctx.log(f"    {regulariser}: reconstructing a trigger per class on the {which} model")
        ctx.memo[key] = _neural_cleanse(ctx, sc, regulariser).inspect(clf, trusted)
    return ctx.memo[key]


def _inspect(ctx: Context, sc: Scenario, v: _Victim) -> dict[str, Any]:
    bd = _spec(sc)
    regulariser = "tabor" if sc.defence == "tabor" else "neural_cleanse"
    found = _inspection(ctx, sc, v, regulariser, v.classifier, "backdoored")
    clean_clf = _clean_student(ctx, sc) if bd.attack in TRANSFER_BACKDOORS else ctx.target()[0]
    control = _inspection(ctx, sc, v, regulariser, clean_clf, "clean")
    shown = found.flagged_classes[0] if found.flagged_classes else int(found.anomaly_index.argmax())
    trigger = found.trigger_image(shown)
    return {
        **_figures(v.classifier, v),
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


def _clean_student(ctx: Context, sc: Scenario) -> Classifier:
    from sparring.assess.scenarios.transfer_learning import shared_setup

    return shared_setup(ctx, _spec(sc).teacher_fraction).student


def _repair(ctx: Context, sc: Scenario, v: _Victim) -> dict[str, Any]:
    from sparring.defenses.model import FinePruning
    from sparring.defenses.model.fine_tuning import FineTuning

    bd = _spec(sc)
    trusted = _trusted_clean(ctx, v, bd.clean_fraction)
    repairer: Any
    if sc.defence == "fine_pruning":
        repairer = FinePruning(layer=_last_conv(v.classifier), seed=ctx.config.seed)
    else:
        repairer = FineTuning(seed=ctx.config.seed)
    ctx.log(f"    {sc.defence}: repairing on {len(trusted)} trusted clean samples")
    if sc.defence == "unlearning":  # Neural Cleanse's repair: unlearn the reversed trigger
        found = _inspection(ctx, sc, v, "neural_cleanse", v.classifier, "backdoored")
        result = _neural_cleanse(ctx, sc).repair(v.classifier, trusted, inspection=found)
        seconds = found.seconds + result.seconds
    else:
        result = repairer.repair(v.classifier, trusted)
        seconds = result.seconds
    return {
        **_figures(result.classifier, v),
        "trusted_samples": len(trusted),
        "defence_seconds": seconds,
        "cost_note": f"repair on {len(trusted)} trusted clean samples",
    }


def _augment(ctx: Context, sc: Scenario, v: _Victim) -> dict[str, Any]:
    cfg = dataclasses.replace(ctx.train_config(), mix=f"{sc.defence}:1.0")

    def train() -> tuple[torch.nn.Module, float]:
        r = fit(ctx.build_model(), v.data, cfg, desc=f"train with {sc.defence}")
        return r.model, r.seconds

    clf, seconds = ctx.cached_model(f"backdoor-{sc.index}-{sc.defence}", {**sc.params(), "mix": cfg.mix}, train)
    return {
        **_figures(clf, v),
        "defence_seconds": seconds,
        "cost_note": f"training with {sc.defence} (standard training: {v.seconds:.1f} s)",
    }


HANDLERS: dict[str, tuple[str, Callable[[Context, Scenario, _Victim], dict[str, Any]]]] = {
    **{d: ("data", _sanitise) for d in BACKDOOR_DATA_DEFENCES},
    **{d: ("detector", _filter) for d in BACKDOOR_FILTERS},
    **{d: ("inference", _purify) for d in BACKDOOR_PURIFIERS},
    **{d: ("inspection", _inspect) for d in BACKDOOR_INSPECTORS},
    **{d: ("repair", _repair) for d in BACKDOOR_REPAIRS},
    "mixup": ("training", _augment),
    "cutmix": ("training", _augment),
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


def _learning_curve(ctx: Context, sc: Scenario, v: _Victim) -> list[dict[str, float]]:
    from sparring.defenses.training.learning_curves import backdoor_learning_curve

    lc = _spec(sc).learning_curve
    assert lc is not None
    ctx.log(f"    learning curve: {len(lc.betas)} betas x {len(lc.weight_decay)} weight decays")
    curve = backdoor_learning_curve(
        v.data,
        ctx.build_model,
        ctx.train_config(),
        v.test,
        betas=lc.betas,
        weight_decays=lc.weight_decay,
        seed=ctx.config.seed,
    )
    return [dict(p) for p in curve.as_rows()]


def run(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """The undefended backdoor (with references), or one defence against it."""
    bd = _spec(sc)
    v = _victim(ctx, sc)
    before = _figures(v.classifier, v)
    out: dict[str, Any] = {
        "kind": "backdoor",
        "attack": bd.attack,
        "defence": sc.defence,
        "params": sc.params(),
        "n_poisoned": v.data.n_poisoned,
        "n_train": len(v.data),
        "train_seconds": v.seconds,
        **before,
    }
    out["model"] = "student of a public teacher" if bd.attack in TRANSFER_BACKDOORS else ctx.model_name
    if sc.defence is None:
        if v.reference is not None:
            ref = v.reference
        else:
            ref = _figures(_clean_student(ctx, sc) if bd.attack in TRANSFER_BACKDOORS else ctx.target()[0], v)
        out["clean_model_accuracy"] = ref["clean_accuracy"]
        out["clean_model_asr"] = ref["asr"]
        out.update(_examples(v.data))
        if bd.learning_curve is not None:
            out["learning_curve"] = _learning_curve(ctx, sc, v)
        return out
    group, handler = HANDLERS[sc.defence]
    out.update({"defence_type": group, "before": before, **handler(ctx, sc, v)})
    return out
