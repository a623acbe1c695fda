"""Property inference: telling a training share of 0.5 from 0.1, 0.9 and a small shift (0.4).

Setting (fixed before any figure was seen): Suri & Evans' distinguishing game as
``evaluate_property`` plays it. Every model is a zoo ``mlp`` trained 8 epochs (Adam lr 1e-3,
batch 64); shadow models train on draws from the held-out split, victims on draws from the
training split, each draw at its ratio; the meta-classifier reads the log-probabilities of
100 held-out records drawn at 0.5. 16 victims per ratio (32 judged per pair); shadow
models per ratio K = 16 and 64.

- ``fair`` (split 0.2, seed 0), property: the respondent has children (``children`` above
  its smallest value; 62 % of respondents) — a covariate shift, the label's dependence on the
  features unchanged.
- ``mnist5k`` (split 0.5, seed 0), property: the image is a 0 — a label shift.

Accuracy is the share of the 32 victims whose ratio the meta-classifier names (beside it the
loss test, which trains no shadow model, and the threshold test, the loss test calibrated on
the shadow models); chance is 50 %, and with 32 victims the 95 % interval
is about ±17 points. Time includes training every shadow and victim model (one after
another, one thread; noisy on a shared machine).

Usage: ``python benchmarks/privacy_property.py [--threads 1] [--shadows 16,64]``.
"""

from __future__ import annotations

import argparse

import torch

from _common import emit, environment, run_id, split
from sparring.attacks.privacy.property import Property, evaluate_property
from sparring.data import FEATURES
from sparring.metrics import rate_interval
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig

RATIOS = (0.1, 0.9, 0.4)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shadows", default="16,64")
    p.add_argument("--victims", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rid = run_id()
    emit("privacy_property", {"benchmark": "privacy_property", **environment(), "model": "mlp e8"}, rid)
    cases = (
        ("fair", 0.2, Property(column=FEATURES["fair"].index("children"), above=0.0, name="has children")),
        ("mnist5k", 0.5, Property(classes=(0,), name="class 0")),
    )
    for dataset, fraction, prop in cases:
        train, held = split(dataset, fraction, seed=0)
        shape, n_classes = train.input_shape, train.num_classes

        def make(shape: tuple[int, ...] = shape, n_classes: int = n_classes) -> torch.nn.Module:
            return build("mlp", shape, n_classes, seed=0)

        def wrap(m: torch.nn.Module, shape: tuple[int, ...] = shape, n_classes: int = n_classes) -> TorchClassifier:
            return TorchClassifier(m.eval(), shape, n_classes)

        for k in (int(s) for s in args.shadows.split(",")):
            r = evaluate_property(
                make,
                wrap,
                held,
                train,
                prop,
                TrainConfig(epochs=8, seed=0, progress=False),
                ratios=RATIOS,
                shadows=k,
                victims=args.victims,
                queries=100,
            )
            row: dict[str, object] = {
                "benchmark": "privacy_property",
                "dataset": dataset,
                "property": prop.name,
                "share_in_training_set": round(float(prop.mask(train).double().mean()), 4),
                "records_per_model": r.size,
                "shadows_per_ratio": k,
                "victims_per_ratio": args.victims,
                "models_trained": (k + args.victims) * (len(RATIOS) + 1),
            }
            for x in r.rows:
                ci = rate_interval(x.accuracy, x.victims)
                row[f"meta_0.5_vs_{x.ratio:g}"] = round(x.accuracy, 4)
                row[f"meta_0.5_vs_{x.ratio:g}_ci"] = [round(ci.low, 3), round(ci.high, 3)]
                row[f"loss_test_0.5_vs_{x.ratio:g}"] = round(x.loss_test, 4)
                row[f"threshold_test_0.5_vs_{x.ratio:g}"] = round(x.threshold_test, 4)
            row["train_seconds"] = round(r.train_seconds, 2)
            row["seconds"] = round(r.seconds, 2)
            emit("privacy_property", row, rid)


if __name__ == "__main__":
    main()
