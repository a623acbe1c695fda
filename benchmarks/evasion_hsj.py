"""HopSkipJump (labels only, L2, untargeted) on one MNIST CNN: sparring, ART and foolbox in one process.

Setting: the small_cnn trained as in ``evasion_pgd.py`` (mnist5k, 8 epochs, seed 0, cached),
attacked on the first ``--n`` test images at budgets of ``--queries`` label queries per
sample. Reported per library: median L2 norm of the adversarials over the images the model
classifies correctly (a failure counts as an infinite norm), success rate, seconds, and the
real queries per sample, counted by a wrapper around the model's forward pass.

Matching budgets. sparring takes the budget itself (``max_queries``, a hard per-sample cap).
ART (``max_iter``) and foolbox (``steps``) take a number of iterations; iteration ``t`` costs
``100 * sqrt(t)`` gradient queries plus a step-size and a binary search, and the start costs
some more. The benchmark measures both libraries' real queries on ``--calib`` images at one
and two iterations, fits ``start + sum_t (100 sqrt(t) + per_iteration)`` to them, and runs each
library with the most iterations whose predicted cost fits the budget. The measured queries
per sample of the full run are reported next to the budget, so any overshoot shows.

Usage: ``python benchmarks/evasion_hsj.py [--n 100] [--queries 1000 5000] [--threads N]``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from _common import (
    CountingModule,
    art_estimator,
    emit,
    predict,
    ratio,
    run_id,
    split,
    standard_case,
    timer,
)
from sparring.attacks.evasion import HopSkipJump
from sparring.models import Access, TorchClassifier

NAME = "evasion_hsj"


def run_sparring(model: nn.Module, x: Tensor, y: Tensor, budget: int) -> Tensor:
    clf = TorchClassifier(model, x.shape[1:], 10).restrict(Access.LABELS)
    return HopSkipJump("l2", max_queries=budget, seed=0).run(clf, x, y).x_adv


def run_art(model: nn.Module, x: Tensor, y: Tensor, iterations: int) -> Tensor:
    from art.attacks.evasion import HopSkipJump as ArtHSJ

    est = art_estimator(model, tuple(x.shape[1:]))
    attack = ArtHSJ(est, norm=2, max_iter=iterations, max_eval=10000, init_eval=100, init_size=100, verbose=False)
    return torch.as_tensor(attack.generate(x.numpy(), y=y.numpy()))


def run_foolbox(model: nn.Module, x: Tensor, y: Tensor, iterations: int) -> Tensor:
    from foolbox.attacks.hop_skip_jump import HopSkipJumpAttack
    from foolbox.models.pytorch import PyTorchModel

    torch.manual_seed(0)
    np.random.seed(0)
    fmodel = PyTorchModel(model, bounds=(0.0, 1.0))
    attack = HopSkipJumpAttack(steps=iterations, initial_gradient_eval_steps=100, max_gradient_eval_steps=10000)
    parts = []
    for xb, yb in zip(x.split(100), y.split(100), strict=True):
        _, clipped, _ = attack(fmodel, xb, yb, epsilons=None)
        parts.append(clipped.detach())
    return torch.cat(parts)


PEERS: dict[str, Callable[[nn.Module, Tensor, Tensor, int], Tensor]] = {"art": run_art, "foolbox": run_foolbox}
ATTACK = {"sparring": "HopSkipJump", "art": "HopSkipJump", "foolbox": "HopSkipJumpAttack"}


def evals(k: int) -> float:
    """Gradient-estimate queries of iterations 1..k (both peers: 100 * sqrt(t), capped at 10,000)."""
    return float(sum(min(int(100 * math.sqrt(t)), 10000) for t in range(1, k + 1)))


def calibrate(model: nn.Module, lib: str, x: Tensor, y: Tensor, budget: int) -> tuple[int, dict[str, float]]:
    """Iterations for ``lib`` that keep its predicted queries per sample within ``budget``."""
    per: dict[int, float] = {}
    for k in (1, 2):
        counted = CountingModule(model).eval()
        PEERS[lib](counted, x, y, k)
        per[k] = counted.count / len(x)
    step = max(0.0, per[2] - per[1] - (evals(2) - evals(1)))
    start = per[1] - evals(1) - step
    k = 1
    while start + evals(k + 1) + (k + 1) * step <= budget:
        k += 1
    return k, {"calib_start": round(start, 1), "calib_per_iteration": round(step, 1)}



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100, help="test images attacked (default 100)")
    p.add_argument("--queries", type=int, nargs="+", default=[1000, 5000], help="budgets per sample")
    p.add_argument("--calib", type=int, default=4, help="images used to calibrate the peers' iterations")
    p.add_argument("--libraries", nargs="+", default=["sparring", "art", "foolbox"])
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = run_id()
    model, x, y, header = standard_case(NAME, args.n)
    _, test = split("mnist5k", 0.2, seed=0)
    xc, yc = test.x[-args.calib :], test.y[-args.calib :]  # calibration images are not attacked images
    correct = predict(model, x) == y
    emit(NAME, header, run)
    for budget in args.queries:
        rows: dict[str, dict[str, Any]] = {}
        for lib in args.libraries:
            setting: dict[str, Any] = {}
            if lib != "sparring":
                iterations, info = calibrate(model, lib, xc, yc, budget)
                setting = {"iterations": iterations, **info}
            counted = CountingModule(model).eval()
            with timer() as t:
                if lib == "sparring":
                    x_adv = run_sparring(counted, x, y, budget)
                else:
                    x_adv = PEERS[lib](counted, x, y, setting["iterations"])
            fooled = (predict(model, x_adv) != y)[correct]
            l2 = (x_adv - x).flatten(1).norm(dim=1)[correct]
            l2 = torch.where(fooled, l2, torch.inf)
            rows[lib] = {
                "library": lib,
                "attack": ATTACK[lib],
                "budget": budget,
                **setting,
                "n": len(x),
                "seconds": round(t["seconds"], 3),
                "median_l2": round(float(l2.median()), 4),
                "mean_l2": round(float(l2.mean()), 4),
                "success_rate": round(float(fooled.float().mean()), 4),
                "queries_per_sample": round(counted.count / len(x), 1),
                "ms_per_query": round(1000 * t["seconds"] / max(1, counted.count), 3),
                "in_bounds": bool(x_adv.min() >= 0 and x_adv.max() <= 1),
            }
            emit(NAME, rows[lib], run)
        if "sparring" in rows:
            s = rows["sparring"]
            line: dict[str, Any] = {"library": "ratio", "budget": budget, "n": len(x)}
            for k, v in rows.items():
                if k != "sparring":
                    line[f"sparring_over_{k}_seconds"] = ratio(s["seconds"], v["seconds"])
                    line[f"sparring_over_{k}_median_l2"] = ratio(s["median_l2"], v["median_l2"])
            emit(NAME, line, run)


if __name__ == "__main__":
    main()
