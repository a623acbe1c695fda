"""Backdoor scenarios: BadNets, and defences that find the poison and retrain without it."""

from __future__ import annotations

from typing import Any

from sparring.assess.config import BackdoorConfig
from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.attacks.poisoning import BadNets
from sparring.data import PoisonedDataset
from sparring.defenses.data import ActivationClustering, sanitise_and_retrain
from sparring.metrics import accuracy, attack_success_rate, detection_rates
from sparring.models import Classifier, TorchClassifier


def _poisoned(ctx: Context, sc: Scenario) -> tuple[PoisonedDataset, TorchClassifier, float]:
    bd = sc.spec
    assert isinstance(bd, BackdoorConfig)
    attack = BadNets(
        target=bd.target, poison_fraction=bd.poison_fraction, patch_size=bd.patch_size, seed=ctx.config.seed
    )
    data = attack.poison(ctx.train)
    clf, seconds = ctx.cached_model(f"backdoor-{sc.index}", sc.params(), lambda: ctx.train_standard(data))
    return data, clf, seconds


def _figures(ctx: Context, clf: Classifier, data: PoisonedDataset) -> dict[str, float]:
    assert data.trigger is not None and data.target is not None
    test = ctx.test
    keep = test.y != data.target
    return {
        "clean_accuracy": accuracy(clf, test.x, test.y),
        "asr": attack_success_rate(clf, test.x, test.y, data.trigger, data.target),
        "triggered_accuracy": accuracy(clf, data.trigger.apply(test.x[keep]), test.y[keep]),
    }


def run(ctx: Context, sc: Scenario) -> dict[str, Any]:
    """Poison, train, measure ASR and clean accuracy; with a defence, detect, retrain and measure again."""
    data, clf, train_seconds = _poisoned(ctx, sc)
    before = _figures(ctx, clf, data)
    out: dict[str, Any] = {
        "kind": "backdoor",
        "attack": sc.spec.attack,  # type: ignore[attr-defined]
        "defence": sc.defence,
        "params": sc.params(),
        "n_poisoned": data.n_poisoned,
        "n_train": len(data),
        "train_seconds": train_seconds,
        **before,
    }
    if sc.defence is None:
        clean_clf, _ = ctx.target()
        assert data.trigger is not None and data.target is not None
        out["clean_model_accuracy"] = accuracy(clean_clf, ctx.test.x, ctx.test.y)
        out["clean_model_asr"] = attack_success_rate(clean_clf, ctx.test.x, ctx.test.y, data.trigger, data.target)
        idx = data.poison_mask.nonzero().flatten()[:6]
        out["examples"] = data.x[idx].round(decimals=3).tolist() if len(data.input_shape) == 3 else []
        out["example_labels"] = [int(data.original_y[i]) for i in idx]
        return out
    ctx.log(f"    {sc.defence}: detecting and retraining")
    result = sanitise_and_retrain(
        ActivationClustering(seed=ctx.config.seed), data, clf, ctx.build_model, ctx.train_config()
    )
    after = _figures(ctx, result.classifier, data)
    out.update(
        {
            "before": before,
            **after,
            **{f"detector_{k}": v for k, v in detection_rates(result.flagged, data.poison_mask).items()},
            "passes": result.passes,
            "defence_seconds": result.seconds,
        }
    )
    return out
