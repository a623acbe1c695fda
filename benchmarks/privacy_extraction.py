"""Model extraction: sparring's Knockoff Nets against ART's CopycatCNN and KnockoffNets, and equation solving.

* ``knockoff`` lines: the benchmarks' MNIST victim (cached small CNN, mnist5k, 8 epochs) is
  stolen by each library with the same surrogate (a fresh small CNN from seed 1, not the victim's seed 0, Adam
  1e-3, batch 64), the same query pool and the same budgets; task accuracy and fidelity
  (agreement with the victim's labels, Jagielski et al., USENIX Security 2020) on the 1,000
  test images, queries and wall time. ART trains for ``--epochs``; sparring's attacker trains
  for at least that and at least 400 optimiser steps, on its queries shifted by up to 2
  pixels (its default recipe, see ``KnockoffNets``); ``--holdout 0.2`` instead chooses at
  each budget, on a fifth of the answers held out (no extra query), whether to shift and for
  how many epochs. Each line records the recipe used. Pools of ``max(budgets)`` images:
  ``in_distribution`` (the victim's 4,000 training inputs, the upper bound) and ``other``
  (scikit-learn's 1,797 digits upsampled to 28x28), both topped up with shifted copies.
  Access ``probabilities`` (ART: ``use_probability=True``; note that ART's PyTorchClassifier
  reduces probability targets to labels when it fits with cross-entropy), ``labels`` and
  ``top_k:3`` (sparring only: ART has no top-k access). Random sampling is compared with
  ART's CopycatCNN and random KnockoffNets, adaptive sampling with ART's adaptive
  KnockoffNets (given sparring's k-means clusters of the pool as its groups).
* ``reverse_sigmoid`` lines: sparring's attacker with probabilities and with labels against
  the victim behind sparring's reverse sigmoid (beta 5, gamma 0.1).
* ``sampling`` lines: random against adaptive sampling (sparring's and ART's KnockoffNets,
  ART given sparring's k-means clusters as its pool groups) on a pool that is mostly photo
  crops and noise, with 300 in-distribution images among 2,100.
* ``equation_solving`` lines: Tramèr et al.'s attack (USENIX Security 2016) on scikit-learn
  ``LogisticRegression`` victims (digits, breast_cancer): queries against the (d + 1)·k
  bound, fidelity, largest probability difference. No peer library implements it.

Usage: ``python benchmarks/privacy_extraction.py [--budgets 250 500 1000 2000 5000] [--epochs 10]``.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from _common import emit, environment, ratio, run_id, split, timer, trained_model
from sparring.attacks.privacy.extraction import EquationSolving, KnockoffNets, query_pool, thief_seed
from sparring.data import load_builtin
from sparring.defenses.inference import HARDENING
from sparring.models import SklearnClassifier, TorchClassifier, build

NAME = "privacy_extraction"

#: Both libraries' thieves start from this seed, not the victim's (0): no attacker starts from the victim's weights.
THIEF = thief_seed(0)


def _art_steal(
    kind: str,
    victim: nn.Module,
    pool: np.ndarray,
    budget: int,
    probabilities: bool,
    epochs: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> tuple[nn.Module, int]:
    """ART's CopycatCNN or KnockoffNets (random) with a fresh small CNN; returns it and the victim queries."""
    from art.attacks.extraction import CopycatCNN, KnockoffNets
    from art.estimators.classification import PyTorchClassifier

    from _common import CountingModule

    counting = CountingModule(nn.Sequential(victim, nn.Softmax(dim=1)))
    np.random.seed(seed)
    torch.manual_seed(seed)
    victim_art = PyTorchClassifier(
        counting, nn.CrossEntropyLoss(), (1, 28, 28), 10, clip_values=(0.0, 1.0), device_type="cpu"
    )
    thief = build("small_cnn", (1, 28, 28), 10, seed=seed)
    thief_art = PyTorchClassifier(
        thief,
        nn.CrossEntropyLoss(),
        (1, 28, 28),
        10,
        optimizer=torch.optim.Adam(thief.parameters(), lr=1e-3),
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    common: dict[str, Any] = {
        "batch_size_fit": 64,
        "batch_size_query": 256,
        "nb_epochs": epochs,
        "nb_stolen": budget,
        "use_probability": probabilities,
    }
    strategy = "random"
    if kind == "copycat":
        attack: Any = CopycatCNN(victim_art, **common)
    else:
        strategy = "adaptive" if kind == "knockoff_adaptive" else "random"
        attack = KnockoffNets(victim_art, **common, sampling_strategy=strategy, reward="all", verbose=False)
    attack.extract(pool, y=groups if strategy == "adaptive" else None, thieved_classifier=thief_art)
    return thief.eval(), counting.count


def _agreement(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((torch.cat([model(b).argmax(1) for b in x.split(500)]) == labels).float().mean())


def knockoff(
    budgets: list[int],
    epochs: int,
    rid: str,
    with_other: bool = True,
    only: list[str] | None = None,
    holdout: float = 0.0,
) -> None:
    from sklearn.cluster import KMeans

    train, test = split("mnist5k", 0.2, seed=0)
    model, _, cached = trained_model(train, "small_cnn", epochs=8, seed=0)
    victim = TorchClassifier(model, train.input_shape, train.num_classes)
    truth = victim.predict_labels(test.x)
    header = {"benchmark": NAME, **environment(), "victim": "small_cnn mnist5k e8 s0", "cached": cached}
    emit(NAME, {**header, "victim_accuracy": float((truth == test.y).float().mean()), "n_test": len(test)}, rid)
    # pools of max(budgets) images: the 4,000 training images (1,797 digits) topped up with shifted copies
    pools = {
        "in_distribution": query_pool("in_distribution", (1, 28, 28), max(budgets), 0, held_out=train.x),
        "other": query_pool("other", (1, 28, 28), max(budgets), 0),
    }
    cases = [
        ("in_distribution", "probabilities", "random"),
        ("in_distribution", "probabilities", "adaptive"),
        ("in_distribution", "labels", "random"),
        ("in_distribution", "top_k:3", "random"),
        ("other", "probabilities", "random"),
    ]
    if not with_other:
        cases = [c for c in cases if c[0] != "other"]
    if only:
        cases = [c for c in cases if "/".join(c) in only]
    for pool_name, access, sampling in cases:
        pool = pools[pool_name]
        # ART has no top-k access: its lines are left out there; its adaptive strategy needs a group per
        # pool input, so it gets the k-means clusters sparring's adaptive strategy computes
        art_kinds: tuple[str, ...] = {"random": ("copycat", "knockoff_random"), "adaptive": ("knockoff_adaptive",)}[
            sampling
        ]
        if (pool_name, access) != ("in_distribution", "probabilities"):
            art_kinds = art_kinds[-1:]  # ART's CopycatCNN selects the same inputs as its random KnockoffNets
        if access.startswith("top_k"):
            art_kinds = ()
        groups = None
        if sampling == "adaptive":
            flat = pool.reshape(len(pool), -1).double().numpy()
            groups = KMeans(10, n_init=3, random_state=0).fit_predict(flat)
        victim.reset_queries()
        thief = KnockoffNets(
            access=access, architecture="small_cnn", epochs=epochs, seed=THIEF, sampling=sampling, holdout=holdout
        )
        r = thief.steal(victim, budgets, pool=pool, test=test)
        previous = 0.0
        for p, recipe in zip(r.curve, r.recipes, strict=True):
            row: dict[str, Any] = {
                "case": "knockoff",
                "pool": pool_name,
                "access": access,
                "sampling": sampling,
                "budget": p.budget,
                "epochs": epochs,
                "holdout": holdout,
                "sparring": {"accuracy": p.accuracy, "fidelity": p.fidelity, "queries": p.queries, "recipe": recipe},
            }
            for kind in art_kinds:
                with timer() as t:
                    stolen, q = _art_steal(
                        kind, copy.deepcopy(model), pool.numpy(), p.budget, access != "labels", epochs, THIEF, groups
                    )
                row[f"art_{kind}"] = {
                    "accuracy": _agreement(stolen, test.x, test.y),
                    "fidelity": _agreement(stolen, test.x, truth),
                    "queries": q,
                    "seconds": round(t["seconds"], 2),
                }
            # sparring queries once for every budget and trains a copy per budget; ART runs each budget
            # on its own, so the first point carries all of sparring's queries
            row["sparring"]["seconds_this_budget"] = round(p.seconds - previous, 2)
            row["sparring"]["seconds_to_here"] = round(p.seconds, 2)
            peer = f"art_knockoff_{sampling}"
            if peer in row:
                row["time_ratio_vs_art_knockoff"] = ratio(p.seconds - previous, row[peer]["seconds"])
                row["fidelity_ratio_vs_art_knockoff"] = ratio(p.fidelity or 0.0, row[peer]["fidelity"])
            previous = p.seconds
            emit(NAME, row, rid)


def hardened(budgets: list[int], epochs: int, rid: str) -> None:
    """sparring's attacker with probabilities and with labels against the victim behind reverse sigmoid."""
    train, test = split("mnist5k", 0.2, seed=0)
    model, _, _ = trained_model(train, "small_cnn", epochs=8, seed=0)
    victim = TorchClassifier(model, train.input_shape, train.num_classes)
    defended = HARDENING.build("reverse_sigmoid:5").wrap(victim)
    pool = query_pool("in_distribution", (1, 28, 28), max(budgets), 0, held_out=train.x)
    for access in ("probabilities", "labels"):
        r = KnockoffNets(access=access, architecture="small_cnn", epochs=epochs, seed=THIEF).steal(
            defended, budgets, pool=pool, test=test
        )
        for p in r.curve:
            emit(
                NAME,
                {
                    "case": "reverse_sigmoid",
                    "defence": "reverse_sigmoid:5",
                    "access": access,
                    "budget": p.budget,
                    "sparring": {"accuracy": p.accuracy, "fidelity": p.fidelity},
                },
                rid,
            )


def adaptive(budgets: list[int], epochs: int, rid: str) -> None:
    """Random against adaptive sampling on a pool that is mostly useless (photo crops and noise)."""
    from sklearn.cluster import KMeans

    train, test = split("mnist5k", 0.2, seed=0)
    model, _, _ = trained_model(train, "small_cnn", epochs=8, seed=0)
    victim = TorchClassifier(model, train.input_shape, train.num_classes)
    truth = victim.predict_labels(test.x)
    shape = (1, 28, 28)
    pool = torch.cat(
        [
            query_pool("in_distribution", shape, 300, 0, held_out=train.x),
            query_pool("photos", shape, 900, 1),
            query_pool("noise", shape, 900, 2),
        ]
    )
    # ART's adaptive strategy needs a group per pool input: give it the k-means clusters sparring computes
    groups = KMeans(10, n_init=3, random_state=0).fit_predict(pool.reshape(len(pool), -1).double().numpy())
    for sampling in ("random", "adaptive"):
        r = KnockoffNets(architecture="small_cnn", epochs=epochs, seed=THIEF, sampling=sampling).steal(
            victim, budgets, pool=pool, test=test
        )
        for p in r.curve:
            row: dict[str, Any] = {
                "case": "sampling",
                "pool": "300 in-distribution + 900 photo crops + 900 noise",
                "sampling": sampling,
                "budget": p.budget,
                "epochs": epochs,
                "sparring": {
                    "accuracy": p.accuracy,
                    "fidelity": p.fidelity,
                    "queries": p.queries,
                    "seconds_to_here": round(p.seconds, 2),
                },
            }
            with timer() as ta:
                stolen, q = _art_steal(
                    f"knockoff_{sampling}", copy.deepcopy(model), pool.numpy(), p.budget, True, epochs, THIEF, groups
                )
            row[f"art_knockoff_{sampling}"] = {
                "accuracy": _agreement(stolen, test.x, test.y),
                "fidelity": _agreement(stolen, test.x, truth),
                "queries": q,
                "seconds": round(ta["seconds"], 2),
            }
            emit(NAME, row, rid)


def equation_solving(rid: str) -> None:
    from sklearn.linear_model import LogisticRegression

    for name in ("digits", "breast_cancer"):
        train, test = load_builtin(name).split(0.3, seed=0)
        x = train.x.reshape(len(train), -1).numpy()
        victim = SklearnClassifier(LogisticRegression(max_iter=5000).fit(x, train.y.numpy()), train.input_shape)
        d, k = x.shape[1], train.num_classes
        with timer() as t:
            r = EquationSolving().steal(victim, (d + 1) * k, test=test)
        seconds = t["seconds"]
        diff = float((r.surrogate.predict_scores(test.x) - victim.predict_scores(test.x)).abs().max())
        emit(
            NAME,
            {
                "case": "equation_solving",
                "data": name,
                "d": d,
                "k": k,
                "queries": r.queries,
                "bound_(d+1)k": (d + 1) * k,
                "fidelity": r.curve[-1].fidelity,
                "max_probability_difference": diff,
                "victim_accuracy": float((victim.predict_labels(test.x) == test.y).float().mean()),
                "stolen_accuracy": r.curve[-1].accuracy,
                "seconds": round(seconds, 3),
            },
            rid,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=int, nargs="+", default=[250, 500, 1000, 2000, 5000])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["equation_solving", "knockoff", "reverse_sigmoid", "sampling"], default=None)
    ap.add_argument("--no-other-pool", action="store_true", help="leave out the digits pool's knockoff lines")
    ap.add_argument("--holdout", type=float, default=0.0, help="sparring's held-out share for its recipe choice")
    ap.add_argument("--cases", nargs="+", default=None, help="knockoff cases pool/access/sampling (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rid = run_id()
    if args.only in (None, "equation_solving"):
        equation_solving(rid)
    if args.only in (None, "knockoff"):
        knockoff(
            sorted(args.budgets),
            args.epochs,
            rid,
            with_other=not args.no_other_pool,
            only=args.cases,
            holdout=args.holdout,
        )
    if args.only in (None, "reverse_sigmoid"):
        hardened(sorted(args.budgets), args.epochs, rid)
    if args.only in (None, "sampling"):
        adaptive(sorted(args.budgets)[:2], args.epochs, rid)


if __name__ == "__main__":
    main()
