"""Training-time backdoor defences: mixup / CutMix, backdoor learning curves, autoencoder sanitisation.

Setting: BadNets (3x3 checkerboard, bottom right) and Blended (seeded uniform noise, alpha 0.1),
both all-to-one with target 0 and 10 % poison, on the seeded train split (80 %) of each
dataset, evaluated on its test split. For each dataset and attack:

- ``mix``: ASR and clean accuracy of the model trained plainly, with ``mix="mixup:1.0"`` and
  with ``mix="cutmix:1.0"`` (Borgnia et al., ICASSP 2021, use alpha 1 for both), and the
  training time of each;
- ``curve``: the backdoor learning curve (Cinà et al. 2021) over ``--betas`` for no weight
  decay and ``--strong-wd`` (the mlp; slope = finite-difference ASR slope at the two smallest
  betas, area = mean ASR over the beta range);
- ``autoencoder``: recall / FPR of ``AutoencoderDetector`` (defaults: flags the top 15 %),
  per class and global, with the ROC AUC of its scores.

No peer line: ART 1.20's ``Mixup`` / ``CutMix`` preprocessors run once over the whole training
set inside ``PyTorchClassifier.fit`` (one mixing draw for the entire set, before the epochs),
which is a different procedure from per-batch mixing, and ART has neither learning curves nor
an autoencoder poison detector, so there is nothing like-for-like to run. ``--n`` caps the
training samples (seeded subset).

Usage: ``python benchmarks/backdoor_training.py [--datasets digits mnist5k] [--n 2000] [--threads 1]``.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

import torch

from _common import emit, environment, run_id, split, timer
from sparring.attacks.poisoning import BadNets, Blended
from sparring.data import Dataset, PoisonedDataset
from sparring.defenses.data.autoencoder import AutoencoderDetector
from sparring.defenses.training.learning_curves import backdoor_learning_curve
from sparring.metrics import attack_success_rate, dataset_accuracy, detection_rates, roc
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit

NAME = "backdoor_training"


def attacks() -> dict[str, Any]:
    return {
        "badnets": BadNets(target=0, poison_fraction=0.1, seed=0),
        "blended": Blended(target=0, poison_fraction=0.1, seed=0),
    }


def mix_rows(p: PoisonedDataset, test: Dataset, arch: str, epochs: int) -> list[dict[str, Any]]:
    assert p.trigger is not None
    rows = []
    for mix in (None, "mixup:1.0", "cutmix:1.0"):
        model = build(arch, p.input_shape, 10, seed=0)
        result = fit(model, p, TrainConfig(epochs=epochs, mix=mix, progress=False))
        clf = TorchClassifier(result.model, p.input_shape, 10)
        rows.append(
            {
                "mix": mix or "none",
                "asr": round(attack_success_rate(clf, test.x, test.y, p.trigger, 0), 4),
                "clean_accuracy": round(dataset_accuracy(clf, test), 4),
                "train_seconds": round(result.seconds, 2),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "mnist5k"])
    ap.add_argument("--n", type=int, default=2000, help="training samples used (seeded subset; default 2000)")
    ap.add_argument("--mix-arch", default="small_cnn", help="architecture of the mix comparison")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0])
    ap.add_argument("--strong-wd", type=float, default=1e-2, help="the strong weight decay of the curves")
    ap.add_argument("--parts", nargs="+", default=["mix", "curve", "autoencoder"])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = run_id()
    emit(NAME, {"benchmark": NAME, **environment(), "n": args.n, "epochs": args.epochs, "betas": args.betas}, run)
    for ds in args.datasets:
        train, test = split(ds, 0.2, seed=0)
        if len(train) > args.n:
            train = train.take(args.n, seed=0)
        for atk_name, atk in attacks().items():
            p = atk.poison(train)
            base = {"dataset": ds, "n_train": len(p), "n_test": len(test), "attack": atk_name}
            if "mix" in args.parts:
                for row in mix_rows(p, test, args.mix_arch, args.epochs):
                    emit(NAME, {**base, "part": "mix", "arch": args.mix_arch, **row}, run)
            if "curve" in args.parts:
                wds = (0.0, args.strong_wd)
                cfg = TrainConfig(epochs=args.epochs, progress=False)
                with timer() as t:
                    factory = partial(build, "mlp", p.input_shape, 10)
                    curve = backdoor_learning_curve(p, factory, cfg, test, args.betas, wds, seed=0)
                secs = t["seconds"]
                for wd in wds:
                    pts = curve.curve(wd)
                    emit(
                        NAME,
                        {
                            **base,
                            "part": "curve",
                            "arch": "mlp",
                            "weight_decay": wd,
                            "beta": [pt.beta for pt in pts],
                            "asr": [round(pt.asr, 4) for pt in pts],
                            "backdoor_loss": [round(pt.backdoor_loss, 4) for pt in pts],
                            "clean_accuracy": [round(pt.clean_accuracy, 4) for pt in pts],
                            "slope": round(curve.slope(wd), 3),
                            "area": round(curve.area(wd), 4),
                            "seconds": round(secs, 1),
                        },
                        run,
                    )
            if "autoencoder" in args.parts:
                for per_class in (True, False):
                    with timer() as t:
                        det = AutoencoderDetector(per_class=per_class).detect(p)
                    secs = t["seconds"]
                    rates = detection_rates(det.flagged, p.poison_mask)
                    emit(
                        NAME,
                        {
                            **base,
                            "part": "autoencoder",
                            "per_class": per_class,
                            "recall": round(rates["recall"], 4),
                            "fpr": round(rates["fpr"], 4),
                            "flagged": rates["flagged"],
                            "auc": round(roc(det.scores, p.poison_mask).auc, 4),
                            "seconds": round(secs, 2),
                        },
                        run,
                    )


if __name__ == "__main__":
    main()
