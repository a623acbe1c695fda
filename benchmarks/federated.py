"""Federated backdoors and robust aggregation: model replacement against median, trimmed mean, clipping.

Setting (Bagdasaryan et al., AISTATS 2020; Sun et al., 2019; Yin et al., ICML 2018): the
training split (80 %) of each dataset goes to 10 clients, IID or Dirichlet(0.5) non-IID;
FedAvg (all clients every round, sample-weighted mean, server lr 1, SGD lr 0.1, 2 local
epochs, batch 32) first trains ``--warmup`` benign rounds. From that model, ``--rounds`` more
rounds run in which client 0 mounts the model-replacement backdoor in round 1 (BadNets
checkerboard trigger, target 0, 30 % of its training data backdoored, ``--attack-epochs``
local epochs, update boosted by n / eta), under each aggregator: plain mean ("none"),
coordinate median, trimmed mean (beta 0.1), norm clipping and clipping plus Gaussian noise.
The clipping bound is the median update norm of the last warm-up round (the typical benign
norm, Sun et al.'s recipe). Each defence also runs without the attack (its clean cost).
Label flipping: 1 or 3 clients train on all-random labels every round, under mean and median.

No peer library implements this simulation, so every line has ``library: "sparring"`` and
the ``ratio`` line compares each defence's ASR with the undefended one.

Usage: ``python benchmarks/federated.py [--datasets mnist5k digits] [--arch mlp] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import copy
from functools import partial
from typing import Any

import torch

from _common import emit, environment, run_id
from sparring.attacks.poisoning import BadNets
from sparring.attacks.poisoning.federated import LabelFlipClient, ModelReplacementClient
from sparring.data import load_builtin
from sparring.defenses.training.aggregation import CoordinateMedian, NormClipping, TrimmedMean
from sparring.federated import Aggregator, FederatedConfig, MaliciousClient, evaluator, run_fedavg, split_clients
from sparring.models import build

NAME = "federated"


def r4(v: float) -> float:
    return round(float(v), 4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["mnist5k", "digits"])
    p.add_argument("--splits", nargs="+", default=["iid", "dirichlet:0.5"])
    p.add_argument("--arch", default="mlp", help="zoo architecture (default mlp)")
    p.add_argument("--n", type=int, default=10, help="number of clients (default 10)")
    p.add_argument("--warmup", type=int, default=10, help="benign rounds before the attack (default 10)")
    p.add_argument("--rounds", type=int, default=5, help="rounds from the attack on (attack in the first)")
    p.add_argument("--attack-epochs", type=int, default=10)
    p.add_argument("--noise", type=float, default=0.002, help="noise sigma of clipping+noise (default 0.002)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = run_id()
    cfg_warm = FederatedConfig(rounds=args.warmup, local_epochs=2, lr=0.1, batch_size=32, progress=False)
    cfg = FederatedConfig(rounds=args.rounds, local_epochs=2, lr=0.1, batch_size=32, progress=False)
    emit(
        NAME,
        {
            "benchmark": NAME,
            **environment(),
            "library": "sparring",
            "arch": args.arch,
            "clients": args.n,
            "warmup_rounds": args.warmup,
            "rounds": args.rounds,
            "attack_round": 1,
            "local": "sgd lr 0.1, 2 epochs, batch 32",
            "attack_epochs": args.attack_epochs,
            "poison_fraction": 0.3,
            "seed": args.seed,
        },
        run,
    )
    for ds in args.datasets:
        train, test = load_builtin(ds).split(0.2, seed=args.seed)
        trigger = BadNets(target=0, patch_size=3 if min(train.input_shape[-2:]) < 16 else 4).trigger(train.input_shape)
        evaluate = evaluator(test, trigger, 0)
        for split in args.splits:
            clients = split_clients(train, args.n, split, seed=args.seed)
            base = {"library": "sparring", "dataset": ds, "split": split, "arch": args.arch}
            warm = run_fedavg(
                partial(build, args.arch, train.input_shape, train.num_classes, seed=args.seed),
                clients,
                cfg_warm,
                evaluate=evaluate,
                seed=args.seed,
            )
            bound = warm.history[-1]["median_update_norm"]
            emit(
                NAME,
                {
                    **base,
                    "phase": "warmup",
                    "client_sizes": [len(c) for c in clients],
                    "accuracy": r4(warm.history[-1]["accuracy"]),
                    "asr": r4(warm.history[-1]["asr"]),
                    "clip_bound": r4(bound),
                    "seconds": round(warm.seconds, 2),
                },
                run,
            )
            defences: dict[str, Aggregator | None] = {
                "none": None,
                "median": CoordinateMedian(),
                "trimmed_mean": TrimmedMean(0.1),
                "clipping": NormClipping(bound),
                "clipping+noise": NormClipping(bound, args.noise, seed=args.seed),
            }
            asr_at: dict[str, float] = {}
            for name, agg in defences.items():
                for attacked in (False, True):
                    mal: dict[int, MaliciousClient] = {}
                    if attacked:
                        mal[0] = ModelReplacementClient(
                            trigger, 0, attack_round=1, poison_fraction=0.3, epochs=args.attack_epochs, seed=args.seed
                        )
                    res = run_fedavg(
                        partial(copy.deepcopy, warm.model),
                        clients,
                        cfg,
                        malicious=mal,
                        aggregator=agg,
                        evaluate=evaluate,
                        seed=args.seed + 1,
                    )
                    h = res.history
                    row: dict[str, Any] = {
                        **base,
                        "phase": "replacement" if attacked else "no_attack",
                        "defence": name,
                        "aggregator": repr(agg) if agg is not None else "Mean(weighted=True)",
                        "asr_before": r4(h[0]["asr"]),
                        "asr_attack_round": r4(h[1]["asr"]),
                        f"asr_after_{args.rounds - 1}_rounds": r4(h[-1]["asr"]),
                        "asr_per_round": [r4(x["asr"]) for x in h],
                        "accuracy_before": r4(h[0]["accuracy"]),
                        "accuracy_attack_round": r4(h[1]["accuracy"]),
                        "accuracy_final": r4(h[-1]["accuracy"]),
                        "attacker_update_norm": r4(h[1]["max_update_norm"]) if attacked else None,
                        "seconds": round(res.seconds, 2),
                    }
                    emit(NAME, row, run)
                    if attacked:
                        asr_at[name] = row["asr_attack_round"]
            ratio: dict[str, Any] = {"library": "ratio", "dataset": ds, "split": split, "asr_none": asr_at["none"]}
            for name, v in asr_at.items():
                if name != "none":
                    ratio[f"asr_{name}_minus_none"] = r4(v - asr_at["none"])
            emit(NAME, ratio, run)
            for n_flip in (0, 1, 3):
                for name, agg in (("none", None), ("median", CoordinateMedian())):
                    flips: dict[int, MaliciousClient] = {
                        k: LabelFlipClient(fraction=1.0, seed=args.seed + k) for k in range(n_flip)
                    }
                    res = run_fedavg(
                        partial(copy.deepcopy, warm.model),
                        clients,
                        cfg,
                        malicious=flips,
                        aggregator=agg,
                        evaluate=evaluate,
                        seed=args.seed + 1,
                    )
                    emit(
                        NAME,
                        {
                            **base,
                            "phase": "label_flip",
                            "flip_clients": n_flip,
                            "defence": name,
                            "accuracy_before": r4(res.history[0]["accuracy"]),
                            "accuracy_final": r4(res.history[-1]["accuracy"]),
                            "seconds": round(res.seconds, 2),
                        },
                        run,
                    )


if __name__ == "__main__":
    main()
