"""Backdoor defences on mnist5k: STRIP (sparring and ART), random masking, purification, repair.

Setting: mnist5k split 80/20 (seed 0); a small_cnn (seed 0) trained for ``--epochs`` on the
training part poisoned with BadNets (3x3 checkerboard, 10 %, target 0) and, separately,
Blended (uniform-noise key, alpha 0.1, 10 %, target 0). The test part is split in two
(seed 1): the defender's clean set (fits detectors, repairs models) and the first ``--n``
images of the other half (evaluation). Detection: TPR is the share of triggered evaluation
images (true class not the target) flagged; FRR the share of clean evaluation images
flagged, with thresholds set for 5 % FRR on the defender's clean set. ART's STRIP
(``art.defences.transformer.poisoning.STRIP``, 0.5 blend, threshold from a normal fit, 20
overlays, on the model's softmax) runs on the same model and images; an input counts as flagged when ART abstains.
Purification and repair report attack success rate (ASR) and clean accuracy on the
evaluation images; fine-tuning runs on clean sets of 5 % and 12.5 % of the training size.

Usage: ``python benchmarks/backdoor_inference.py [--n 500] [--epochs 8] [--threads N]``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from _common import art_estimator, emit, environment, ratio, run_id, split, timer
from sparring.attacks.poisoning import BadNets, Blended
from sparring.data import Dataset, Trigger
from sparring.defenses.inference.masking import RandomMasking
from sparring.defenses.inference.purification import Purification
from sparring.defenses.inference.strip import STRIP
from sparring.defenses.model.fine_pruning import FinePruning
from sparring.defenses.model.fine_tuning import FineTuning
from sparring.metrics import accuracy, attack_success_rate
from sparring.models import Classifier, TorchClassifier, build
from sparring.train import TrainConfig, fit

NAME = "backdoor_inference"


def art_strip(clf: TorchClassifier, clean_x: Tensor, xs: list[Tensor], frr: float) -> list[Tensor]:
    """ART's STRIP fitted on ``clean_x``: flagged mask per batch in ``xs``."""
    from art.defences.transformer.poisoning import STRIP as ArtSTRIP

    # ART's STRIP takes the entropy of what ``predict`` returns, so the estimator must output probabilities.
    est = art_estimator(nn.Sequential(clf.model, nn.Softmax(dim=1)), tuple(clean_x.shape[1:]))
    defended = ArtSTRIP(est)(num_samples=20, false_acceptance_rate=frr)
    defended.mitigate(clean_x.numpy())
    return [torch.as_tensor(np.abs(defended.predict(x.numpy())).sum(axis=1) == 0) for x in xs]


def rate(flags: Tensor) -> float:
    return round(float(flags.float().mean()), 4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="evaluation images (default 500)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--frr", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = run_id()
    train, test = split("mnist5k", 0.2, seed=0)
    defender, evaluation = test.split(0.5, seed=1)
    ev: Dataset = evaluation.subset(torch.arange(min(args.n, len(evaluation))))
    emit(
        NAME,
        {
            "benchmark": NAME,
            **environment(),
            "n": len(ev),
            "n_clean_defender": len(defender),
            "epochs": args.epochs,
            "frr": args.frr,
        },
        run,
    )
    for attack in (
        BadNets(target=0, poison_fraction=0.1, seed=0),
        Blended(target=0, poison_fraction=0.1, alpha=0.1, seed=0),
    ):
        aname = type(attack).__name__
        poisoned = attack.poison(train)
        assert poisoned.trigger is not None
        trigger = poisoned.trigger
        model = fit(
            build("small_cnn", train.input_shape, 10, seed=0),
            poisoned,
            TrainConfig(epochs=args.epochs, seed=0, progress=False),
        ).model
        clf = TorchClassifier(model, train.input_shape, 10)
        triggered = trigger.apply(ev.x[ev.y != 0])

        def figures(c: Classifier, trigger: Trigger = trigger) -> dict[str, float]:
            return {
                "asr": round(attack_success_rate(c, ev.x, ev.y, trigger, 0), 4),
                "clean_accuracy": round(accuracy(c, ev.x, ev.y), 4),
            }

        base = figures(clf)
        emit(NAME, {"attack": aname, "library": "none", "defence": "none", **base}, run)
        rows: dict[str, dict[str, Any]] = {}
        detectors: dict[str, STRIP | RandomMasking] = {
            "strip_add": STRIP(n_overlays=20, frr=args.frr, seed=0),
            "strip_blend": STRIP(n_overlays=20, mode="blend", alpha=0.5, frr=args.frr, seed=0),
            "random_masking": RandomMasking(n_masks=32, patch=0.5, frr=args.frr, seed=0),
        }
        for dname, det in detectors.items():
            with timer() as t:
                det.fit(clf, defender.x)
                tpr, frr = rate(det.detect(triggered)), rate(det.detect(ev.x))
            rows[dname] = {
                "attack": aname,
                "library": "sparring",
                "defence": dname,
                "tpr": tpr,
                "frr": frr,
                "seconds": round(t["seconds"], 3),
            }
            emit(NAME, rows[dname], run)
        with timer() as t:
            art_t, art_c = art_strip(clf, defender.x, [triggered, ev.x], args.frr)
        rows["art"] = {
            "attack": aname,
            "library": "art",
            "defence": "STRIP",
            "tpr": rate(art_t),
            "frr": rate(art_c),
            "seconds": round(t["seconds"], 3),
        }
        emit(NAME, rows["art"], run)
        for layer in (None, "conv2"):
            with timer() as t:
                after = figures(Purification(layer=layer, patch=0.375).wrap(clf))
            emit(
                NAME,
                {
                    "attack": aname,
                    "library": "sparring",
                    "defence": f"purification:{layer or 'input_gradient'}",
                    **after,
                    "seconds": round(t["seconds"], 3),
                },
                run,
            )
        fp = FinePruning(seed=0).repair(clf, defender)
        emit(
            NAME,
            {
                "attack": aname,
                "library": "sparring",
                "defence": "fine_pruning",
                **figures(fp.classifier),
                "pruned": len(fp.pruned),
                "n_channels": fp.n_channels,
                "seconds": round(fp.seconds, 3),
            },
            run,
        )
        for share in (0.05, 0.125):
            n_clean = round(share * len(train))
            ft = FineTuning(seed=0).repair(clf, defender.subset(torch.arange(n_clean)))
            emit(
                NAME,
                {
                    "attack": aname,
                    "library": "sparring",
                    "defence": "fine_tuning",
                    "n_clean": n_clean,
                    "clean_share_of_train": share,
                    **figures(ft.classifier),
                    "seconds": round(ft.seconds, 3),
                },
                run,
            )
        s, a = rows["strip_blend"], rows["art"]
        emit(
            NAME,
            {
                "attack": aname,
                "library": "ratio",
                "sparring_blend_minus_art_tpr": round(s["tpr"] - a["tpr"], 4),
                "sparring_add_minus_art_tpr": round(rows["strip_add"]["tpr"] - a["tpr"], 4),
                "sparring_blend_over_art_seconds": ratio(s["seconds"], a["seconds"]),
            },
            run,
        )


if __name__ == "__main__":
    main()
