"""Neural Cleanse and TABOR model inspection: does the MAD test flag backdoored models and not clean ones?

Setting: for each dataset (mnist5k, digits; seeded 80/20 split) three small_cnn models are
trained with sparring's loop (8 epochs on mnist5k, 10 on digits, seed 0): on the clean
training split, with 10 % BadNets poison (3x3 checkerboard, target 0) and with 10 % Blended
poison (uniform-noise key, alpha 0.1, target 0). Each model is inspected by sparring's
``NeuralCleanse`` with Neural Cleanse's L1 regulariser and with TABOR's regularisers, on
``--n`` clean test samples, ``--steps`` mini-batch updates of ``--batch-size`` (all classes
optimised together). Every line records the anomaly index of the smallest mask, the flagged
classes, whether the target (0) is flagged, each class's mask norm, the reconstructed
triggers' attack success and the wall time; model lines carry clean accuracy and ASR.

There is no peer run: ART's Neural Cleanse (``art.estimators.poison_mitigation``) is
implemented for Keras/TensorFlow only, and TensorFlow is not installed; no PyTorch peer of
both methods is installed either.

Usage: ``python benchmarks/model_inspection.py [--datasets mnist5k digits] [--n 200] [--steps 200] [--threads 1]``.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from _common import accuracy_of, emit, environment, run_id, split, trained_model
from sparring.attacks.poisoning import BadNets, Blended
from sparring.data import Dataset
from sparring.defenses.model.neural_cleanse import NeuralCleanse
from sparring.metrics import attack_success_rate
from sparring.models import TorchClassifier

NAME = "model_inspection"
EPOCHS = {"mnist5k": 8, "digits": 10}


def models(train: Dataset, epochs: int) -> dict[str, tuple[TorchClassifier, Any]]:
    """The clean, BadNets and Blended models (cached) with their triggers (None for clean)."""
    out: dict[str, tuple[TorchClassifier, Any]] = {}
    attacks: dict[str, Any] = {
        "clean": None,
        "badnets": BadNets(target=0, poison_fraction=0.1, seed=0),
        "blended": Blended(target=0, poison_fraction=0.1, alpha=0.1, seed=0),
    }
    for name, attack in attacks.items():
        data = train if attack is None else attack.poison(train)
        model, _, _ = trained_model(data, "small_cnn", epochs=epochs, seed=0)
        clf = TorchClassifier(model, train.input_shape, train.num_classes)
        out[name] = (clf, None if attack is None else attack.trigger(train.input_shape))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["mnist5k", "digits"])
    p.add_argument("--n", type=int, default=200, help="clean samples the inspection uses (default 200)")
    p.add_argument("--steps", type=int, default=200, help="mini-batch updates per inspection (default 200)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--regularisers", nargs="+", default=["neural_cleanse", "tabor"])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = run_id()
    emit(
        NAME,
        {
            "benchmark": NAME,
            **environment(),
            "n": args.n,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "peer": "none: ART's NeuralCleanse is Keras/TensorFlow-only (TensorFlow not installed)",
        },
        run,
    )
    for dataset in args.datasets:
        train, test = split(dataset, 0.2, seed=0)
        clean = test.subset(torch.arange(min(args.n, len(test))))
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for model_name, (clf, trigger) in models(train, EPOCHS[dataset]).items():
            asr = float("nan") if trigger is None else attack_success_rate(clf, test.x, test.y, trigger, 0)
            emit(
                NAME,
                {
                    "dataset": dataset,
                    "model": f"small_cnn {model_name} e{EPOCHS[dataset]} s0",
                    "clean_accuracy": round(accuracy_of(clf.model, test.x, test.y), 4),
                    "asr": round(asr, 4),
                },
                run,
            )
            for reg in args.regularisers:
                nc = NeuralCleanse(
                    steps=args.steps,
                    samples=args.n,
                    batch_size=args.batch_size,
                    regulariser=reg,
                    seed=0,
                    progress=False,
                )
                r = nc.inspect(clf, clean)
                row = {
                    "library": "sparring",
                    "dataset": dataset,
                    "model": model_name,
                    "regulariser": reg,
                    "max_anomaly_index": round(r.max_anomaly_index, 3),
                    "anomaly_index_target": round(float(r.anomaly_index[0]), 3),
                    "flagged_classes": r.flagged_classes,
                    "flagged_target": 0 in r.flagged_classes,
                    "is_backdoored": r.is_backdoored,
                    "norms": [round(float(v), 2) for v in r.norms],
                    "trigger_success": [round(float(v), 3) for v in r.attack_success],
                    "seconds": round(r.seconds, 2),
                }
                rows[(model_name, reg)] = row
                emit(NAME, row, run)
        for reg in args.regularisers:
            verdicts = {m: rows[(m, reg)]["is_backdoored"] for m in ("clean", "badnets", "blended")}
            emit(
                NAME,
                {
                    "library": "summary",
                    "dataset": dataset,
                    "regulariser": reg,
                    "clean_flagged": verdicts["clean"],
                    "badnets_target_flagged": rows[("badnets", reg)]["flagged_target"],
                    "blended_target_flagged": rows[("blended", reg)]["flagged_target"],
                    "figure_holds_badnets": rows[("badnets", reg)]["flagged_target"] and not verdicts["clean"],
                },
                run,
            )


if __name__ == "__main__":
    main()
