"""Square Attack (scores only) on one MNIST CNN: sparring against ART, in one process.

Setting: the small_cnn trained as in ``evasion_pgd.py`` (mnist5k, 8 epochs, seed 0, cached),
attacked on the first ``--n`` test images, Linf, p_init 0.8, margin loss, one restart, a
budget of ``--queries`` per sample. Queries are counted the same way for both libraries: by
a wrapper around the model's forward pass (samples sent to the model).

Budgets are matched two ways. sparring spends one query per iteration and sample (plus the
clean and the initial query) and stops a sample once it is misclassified. ART's
``SquareAttack`` re-evaluates every input each iteration (a prediction of the whole batch and
a loss of the old and the new point of each robust sample), so ``max_iter = queries`` gives
it the same number of iterations (the paper's accounting) at about three times the real
queries; the line ``art@real`` runs ART with ``max_iter`` chosen so that its real queries per
sample stay within the budget. Success is measured by the benchmark: the model's prediction
on each library's ``x_adv``, over the images the model classifies correctly.

Usage: ``python benchmarks/evasion_square.py [--n 500] [--eps 0.1 0.3] [--queries 1000] [--threads N]``.
"""

from __future__ import annotations

import argparse
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
    standard_case,
    timer,
)
from sparring.attacks.evasion import Square
from sparring.models import Access, TorchClassifier

NAME = "evasion_square"


def run_sparring(model: nn.Module, x: Tensor, y: Tensor, eps: float, queries: int, batch: int) -> Tensor:
    clf = TorchClassifier(model, x.shape[1:], 10).restrict(Access.SCORES)
    return Square("linf", eps, max_queries=queries, p_init=0.8, batch_size=batch, seed=0).run(clf, x, y).x_adv


def run_art(model: nn.Module, x: Tensor, y: Tensor, eps: float, max_iter: int, batch: int) -> Tensor:
    from art.attacks.evasion import SquareAttack

    est = art_estimator(model, tuple(x.shape[1:]))
    attack = SquareAttack(
        est, norm=np.inf, eps=eps, max_iter=max_iter, p_init=0.8, nb_restarts=1, batch_size=batch, verbose=False
    )
    return torch.as_tensor(attack.generate(x.numpy(), y=y.numpy()))



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="test images attacked (default 500)")
    p.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.3], help="Linf radii (default 0.1 0.3)")
    p.add_argument("--queries", type=int, default=1000, help="query budget per sample (default 1000)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--libraries", nargs="+", default=["sparring", "art", "art@real"])
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = run_id()
    model, x, y, header = standard_case(NAME, args.n)
    correct = predict(model, x) == y
    emit(NAME, {**header, "queries": args.queries, "batch_size": args.batch_size}, run)
    for eps in args.eps:
        rows: dict[str, dict[str, Any]] = {}
        for lib in args.libraries:
            counted = CountingModule(model).eval()
            if lib == "sparring":
                setting = {"max_queries": args.queries}
                with timer() as t:
                    x_adv = run_sparring(counted, x, y, eps, args.queries, args.batch_size)
            else:
                max_iter = args.queries if lib == "art" else (args.queries - 2) // 3
                setting = {"max_iter": max_iter}
                with timer() as t:
                    x_adv = run_art(counted, x, y, eps, max_iter, args.batch_size)
            fooled = (predict(model, x_adv) != y) & correct
            rows[lib] = {
                "library": lib,
                "attack": "Square" if lib == "sparring" else "SquareAttack",
                **setting,
                "eps": eps,
                "n": len(x),
                "seconds": round(t["seconds"], 3),
                "success_rate": round(float(fooled.sum()) / max(1, int(correct.sum())), 4),
                "queries_per_sample": round(counted.count / len(x), 1),
                "ms_per_query": round(1000 * t["seconds"] / max(1, counted.count), 3),
                "max_linf": round(float((x_adv - x).abs().max()), 6),
                "in_bounds": bool(x_adv.min() >= 0 and x_adv.max() <= 1),
            }
            emit(NAME, rows[lib], run)
        if "sparring" in rows:
            s = rows["sparring"]
            line: dict[str, Any] = {"library": "ratio", "eps": eps, "n": len(x)}
            for k, v in rows.items():
                if k != "sparring":
                    line[f"sparring_over_{k}_seconds"] = ratio(s["seconds"], v["seconds"])
                    line[f"sparring_minus_{k}_success"] = round(s["success_rate"] - v["success_rate"], 4)
            emit(NAME, line, run)


if __name__ == "__main__":
    main()
