"""Watermarks as proof of ownership: trigger set (Adi et al. 2018) against entangled (EWE, Jia et al. 2021).

On mnist5k (small CNN, 8 epochs, the benchmarks' split) each watermark is embedded in a
model trained like the clean one; a line per scheme and seed (``--seeds``: the watermark's
and the model's initialisation; the thief starts from the next seed since run
2026-12-02, never from its victim's weights) gives the clean-accuracy cost against the
standard model of that seed, the verification (hits of the verification queries, one-sided
binomial p-value against the base rate of ``--clean`` independently trained clean models),
the same test on copies stolen by sparring's Knockoff Nets (small CNN surrogate, the
victim's probabilities, random sampling; ``--thief plain`` trains it for exactly ``--epochs``
on the answers as they are, without the default's step floor and shifted queries) at each
budget, and the false-claim rate: the share of the clean models whose p-value (base rate
from the other clean models) falls below ``--alpha``. No peer library implements either
watermark, so there is no side-by-side.

The in-distribution pool is the victim's 4,000 training inputs followed by copies shifted
by one or two pixels, so a 5,000-query budget is met with in-distribution inputs.

The clean models have seeds 100, 101, ... (never one of ``--seeds``), shared by every line.

Usage: ``python benchmarks/privacy_watermark.py [--seeds 0 1 2] [--schemes trigger ewe] [--budgets 1000 5000]
[--clean 10] [--epochs 10] [--thief default|plain]``.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import torch

from _common import emit, environment, run_id, split, trained_model
from sparring.attacks.privacy.extraction import KnockoffNets, thief_seed
from sparring.defenses.training.watermark import EntangledWatermark, TriggerSetWatermark, Watermark, base_rate
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, augment_batch

NAME = "privacy_watermark"
#: Seed of the first clean model (the watermarked models' seeds stay below it).
CLEAN_SEED = 100


def main() -> None:
    """Run both watermarks and emit one JSON line per scheme."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--clean", type=int, default=10, help="independently trained clean models")
    parser.add_argument("--epochs", type=int, default=10, help="surrogate training epochs")
    parser.add_argument("--alpha", type=float, default=0.01, help="claim threshold on the p-value")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one line per scheme and seed")
    parser.add_argument("--schemes", nargs="+", choices=["trigger", "ewe"], default=["trigger", "ewe"])
    parser.add_argument(
        "--thief",
        choices=["default", "plain"],
        default="default",
        help="Knockoff Nets as configured by default (400-step floor, queries shifted by up to 2 pixels), "
        "or plain (exactly --epochs over the answers as they are)",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rid = run_id()
    train, test = split("mnist5k")

    def wrap(m: torch.nn.Module) -> TorchClassifier:
        return TorchClassifier(m, train.input_shape, train.num_classes)

    def acc(c: TorchClassifier) -> float:
        return float((c.predict_labels(test.x) == test.y).float().mean())

    clean = [wrap(trained_model(train, seed=CLEAN_SEED + s)[0]) for s in range(args.clean)]
    extra = max(0, max(args.budgets) - len(train))
    g = torch.Generator().manual_seed(0)
    shifted = augment_batch(train.x[torch.randperm(len(train), generator=g)[:extra]], "shift:2", g)
    pool = torch.cat([train.x, shifted])
    for seed, name in itertools.product(args.seeds, args.schemes):
        if seed >= CLEAN_SEED:
            raise SystemExit(f"seeds must stay below {CLEAN_SEED} (the clean models' seeds)")
        standard = wrap(trained_model(train, seed=seed)[0])
        wm: Watermark = TriggerSetWatermark(seed=seed) if name == "trigger" else EntangledWatermark(seed=seed)
        model = build("small_cnn", train.input_shape, 10, seed=seed)
        trained = wm.embed(model, train, TrainConfig(epochs=8, seed=seed))
        victim = wrap(trained.model)
        hits = [wm.hits(c) for c in clean]
        wm.calibrate(clean)
        n = len(wm.verification_x) if wm.verification_x is not None else 0
        false_p = []
        for i in range(len(hits)):
            others = hits[:i] + hits[i + 1 :]
            false_p.append(wm.verify(clean[i], base=base_rate(others, n)).p_value)
        own = wm.verify(victim)
        stolen: list[dict[str, Any]] = []
        for b in args.budgets:
            plain: dict[str, Any] = {} if args.thief == "default" else {"steps": 0, "augment": None}
            thief = KnockoffNets(architecture="small_cnn", epochs=args.epochs, seed=thief_seed(seed), **plain)
            r = thief.steal(victim, b, pool=pool, test=test)
            v = wm.verify(r.surrogate)
            point = r.curve[-1]
            stolen.append(
                {
                    "budget": b,
                    "queries": point.queries,
                    "accuracy": point.accuracy,
                    "fidelity": point.fidelity,
                    "hits": v.hits,
                    "p_value": v.p_value,
                    "claimed": v.claimed(args.alpha),
                }
            )
        emit(
            NAME,
            {
                "scheme": name,
                "seed": seed,
                "params": repr(wm),
                "data": "mnist5k",
                "clean_accuracy": acc(standard),
                "watermarked_accuracy": acc(victim),
                "cost_points": 100 * (acc(standard) - acc(victim)),
                "embed_seconds": trained.seconds,
                "verification_queries": own.queries,
                "hits": own.hits,
                "p_value": own.p_value,
                "base_rate": own.base_rate,
                "clean_models": len(clean),
                "clean_hits": hits,
                "clean_p_min": min(false_p),
                "false_claim_rate": sum(p < args.alpha for p in false_p) / len(false_p),
                "alpha": args.alpha,
                "stolen": stolen,
                "surrogate": "small_cnn",
                "thief": args.thief,
                "access": "probabilities",
                "env": environment(),
            },
            rid,
        )


if __name__ == "__main__":
    main()
