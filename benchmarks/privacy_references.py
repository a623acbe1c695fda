"""What reference models cost: K = 1, 2, 4, 8, 16 trained one after another and stacked through ``torch.func.vmap``.

LiRA and RMIA pay for their power with reference models trained like the target. Setting:
each K trains on random halves of a population pool (the held-out part of the seeded split
not used as non-members), the way the membership family builds them, once with
``train_references(..., stacked=False)`` (sparring's ``fit`` per model) and once stacked
(parameters stacked along a new axis, one optimiser step for all K through ``vmap`` over
``functional_call``). A warm-up run of each mode precedes the timings. The speed-up is
sequential seconds / stacked seconds; both trainings give the same models when the halves
are equal in size (tests/attacks/privacy/test_reference_attacks.py).

Usage: ``python benchmarks/privacy_references.py [--threads 1] [--dataset digits|mnist5k] [--epochs E]``.
"""

from __future__ import annotations

import argparse

import torch

from _common import emit, environment, ratio, run_id, split
from sparring.attacks.privacy.reference import membership_split, random_halves, train_references
from sparring.models import build
from sparring.train import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--test-fraction", type=float, default=0.8)
    p.add_argument("--ks", default="1,2,4,8,16")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rid = run_id()
    train, held_out = split(args.dataset, args.test_fraction, seed=0)
    arch = "small_cnn"
    pool = held_out.subset(membership_split(len(train), len(held_out), None, 0.5, 0).population)
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, seed=0, progress=False)
    emit(
        "privacy_references",
        {
            "benchmark": "privacy_references",
            **environment(),
            "dataset": args.dataset,
            "architecture": arch,
            "epochs": args.epochs,
            "pool": len(pool),
            "target_train": len(train),
        },
        rid,
    )

    def make() -> torch.nn.Module:
        return build(arch, train.input_shape, train.num_classes, seed=0)

    warm = random_halves(2, len(pool), 0, size=len(train))
    for stacked in (False, True):  # warm-up (vmap's first trace, allocator)
        train_references(make, pool, warm, TrainConfig(epochs=1, seed=0, progress=False), stacked=stacked)
    for k in (int(v) for v in args.ks.split(",")):
        keep = random_halves(k, len(pool), 0, size=len(train))
        seq = train_references(make, pool, keep, cfg, stacked=False)
        stk = train_references(make, pool, keep, cfg, stacked=True)
        emit(
            "privacy_references",
            {
                "k": k,
                "half": int(keep[0].sum()),
                "sequential_seconds": round(seq.seconds, 2),
                "stacked_seconds": round(stk.seconds, 2),
                "stacked_ran": stk.stacked,
                "speed_up": ratio(seq.seconds, stk.seconds),
            },
            rid,
        )


if __name__ == "__main__":
    main()
