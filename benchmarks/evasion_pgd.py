"""PGD-40 (Linf) on one MNIST CNN: sparring against ART, foolbox and a bare torch loop, in one process.

Setting: the small_cnn (conv32-conv64-fc128) trained by ``sparring.train.fit`` for 8
epochs on the mnist5k train split (seed 0; weights cached in ``benchmarks/.cache/``),
attacked on the first ``--n`` (default 1,000) test images. Every library runs PGD with 40
steps of 0.01 from a uniform random start in the eps-ball, untargeted, on the cross-entropy
loss, with the same batch size (ART's ``batch_size``, sparring's ``batch_size``; foolbox
has none, so it is called on chunks of that size). Robust accuracy is measured the same way
for all: the model's prediction on each library's returned ``x_adv``.

``bare`` is a hand-written torch PGD loop (the same steps, start and batches, input gradients
only, no early stop): the reference for what this CPU can do, so the cost of sparring's one
gradient loop (objective and criterion as parameters) shows as ``sparring_full`` (sparring's
PGD with ``early_stop=False``, the same work) over ``bare``. ``sparring`` stops each sample
once it is misclassified, as it does by default.

Usage: ``python benchmarks/evasion_pgd.py [--n 1000] [--eps 0.3 0.1] [--batch-size 256] [--repeat 3] [--threads N]``.
Lines are printed and appended to ``benchmarks/results/evasion_pgd.jsonl``; each carries the
run's UTC start time under ``run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from _common import accuracy_of, art_estimator, emit, ratio, run_id, standard_case, timer
from sparring.attacks.evasion import PGD
from sparring.models import TorchClassifier

NAME = "evasion_pgd"


def run_sparring(model: nn.Module, x: Tensor, y: Tensor, eps: float, args: argparse.Namespace) -> Tensor:
    clf = TorchClassifier(model, x.shape[1:], 10)
    attack = PGD("linf", eps=eps, steps=args.steps, step_size=args.step_size, batch_size=args.batch_size, seed=0)
    return attack.run(clf, x, y).x_adv


def run_sparring_full(model: nn.Module, x: Tensor, y: Tensor, eps: float, args: argparse.Namespace) -> Tensor:
    clf = TorchClassifier(model, x.shape[1:], 10)
    attack = PGD(
        "linf", eps=eps, steps=args.steps, step_size=args.step_size, batch_size=args.batch_size, early_stop=False
    )
    return attack.run(clf, x, y).x_adv


def run_bare(model: nn.Module, x: Tensor, y: Tensor, eps: float, args: argparse.Namespace) -> Tensor:
    """PGD as one writes it by hand in torch: random start, sign steps, clip to the ball and the box."""
    g = torch.Generator().manual_seed(0)
    parts = []
    for xb, yb in zip(x.split(args.batch_size), y.split(args.batch_size), strict=True):
        xa = (xb + (2 * torch.rand(xb.shape, generator=g) - 1) * eps).clamp(0.0, 1.0)
        for _ in range(args.steps):
            xa.requires_grad_(True)
            loss = nn.functional.cross_entropy(model(xa), yb)
            (grad,) = torch.autograd.grad(loss, xa)
            with torch.no_grad():
                xa = torch.minimum(torch.maximum(xa + args.step_size * grad.sign(), xb - eps), xb + eps).clamp(0, 1)
        parts.append(xa.detach())
    return torch.cat(parts)


def run_art(model: nn.Module, x: Tensor, y: Tensor, eps: float, args: argparse.Namespace) -> Tensor:
    from art.attacks.evasion import ProjectedGradientDescent

    est = art_estimator(model, tuple(x.shape[1:]))
    attack = ProjectedGradientDescent(
        est,
        norm=np.inf,
        eps=eps,
        eps_step=args.step_size,
        max_iter=args.steps,
        num_random_init=1,
        batch_size=args.batch_size,
        verbose=False,
    )
    return torch.as_tensor(attack.generate(x.numpy(), y=y.numpy()))


def run_foolbox(model: nn.Module, x: Tensor, y: Tensor, eps: float, args: argparse.Namespace) -> Tensor:
    from foolbox.attacks.projected_gradient_descent import LinfProjectedGradientDescentAttack as LinfPGD
    from foolbox.models.pytorch import PyTorchModel

    torch.manual_seed(0)
    fmodel = PyTorchModel(model, bounds=(0.0, 1.0))
    attack = LinfPGD(abs_stepsize=args.step_size, steps=args.steps, random_start=True)
    parts = []
    for xb, yb in zip(x.split(args.batch_size), y.split(args.batch_size), strict=True):
        _, clipped, _ = attack(fmodel, xb, yb, epsilons=eps)
        parts.append(clipped.detach())
    return torch.cat(parts)


LIBRARIES: dict[str, Callable[[nn.Module, Tensor, Tensor, float, argparse.Namespace], Tensor]] = {
    "sparring": run_sparring,
    "sparring_full": run_sparring_full,
    "bare": run_bare,
    "art": run_art,
    "foolbox": run_foolbox,
}
ATTACK = {
    "sparring": "PGD",
    "sparring_full": "PGD(early_stop=False)",
    "bare": "hand-written torch loop",
    "art": "ProjectedGradientDescent",
    "foolbox": "LinfPGD",
}



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="test images attacked (default 1000)")
    p.add_argument("--eps", type=float, nargs="+", default=[0.3, 0.1], help="Linf radii (default 0.3 0.1)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--step-size", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=256, help="the same for every library (default 256)")
    p.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES))
    p.add_argument("--repeat", type=int, default=3, help="rounds over the libraries; the fastest counts (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    run = run_id()
    model, x, y, header = standard_case(NAME, args.n)
    for q in model.parameters():  # as a user hands a trained model to a library
        q.requires_grad_(True)
    emit(NAME, {**header, "batch_size": args.batch_size}, run)
    # Warm-up: the first forward/backward pays one-off kernel set-up; no library should pay it.
    xw = x[:64].clone().requires_grad_(True)
    nn.functional.cross_entropy(model(xw), y[:64]).backward()
    model.zero_grad(set_to_none=True)

    for eps in args.eps:
        rows: dict[str, dict[str, Any]] = {}
        times: dict[str, list[float]] = {lib: [] for lib in args.libraries}
        outputs: dict[str, Tensor] = {}
        # Repeats go round the libraries in turn, so a drift in the machine's speed hits all alike.
        for _ in range(args.repeat):
            for lib in args.libraries:
                before = {k: v.clone() for k, v in model.state_dict().items()}
                with timer() as t:
                    outputs[lib] = LIBRARIES[lib](model, x, y, eps, args)
                times[lib].append(round(t["seconds"], 3))
                model.zero_grad(set_to_none=True)  # peers leave weight gradients behind
                assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), f"{lib} changed weights"
                assert not model.training, f"{lib} left the model in training mode"
        for lib in args.libraries:
            x_adv = outputs[lib]
            delta = float((x_adv - x).abs().max())
            rows[lib] = {
                "library": lib,
                "attack": ATTACK[lib],
                "eps": eps,
                "steps": args.steps,
                "step_size": args.step_size,
                "n": len(x),
                "batch_size": args.batch_size,
                "seconds": min(times[lib]),
                "all_seconds": times[lib],
                "robust_accuracy": accuracy_of(model, x_adv, y),
                "max_linf": round(delta, 6),
                "in_bounds": bool(x_adv.min() >= 0 and x_adv.max() <= 1),
            }
            emit(NAME, rows[lib], run)
        if "sparring" in rows and len(rows) > 1:
            s = rows["sparring"]
            peers = {k: v for k, v in rows.items() if k not in ("sparring", "sparring_full", "bare")}
            line: dict[str, Any] = {"library": "ratio", "eps": eps, "n": len(x)}
            for k, v in peers.items():
                line[f"sparring_over_{k}_seconds"] = ratio(s["seconds"], v["seconds"])
                line[f"sparring_minus_{k}_robust_accuracy"] = round(s["robust_accuracy"] - v["robust_accuracy"], 4)
            if "bare" in rows:
                line["sparring_over_bare_seconds"] = ratio(s["seconds"], rows["bare"]["seconds"])
                if "sparring_full" in rows:
                    full = rows["sparring_full"]["seconds"]
                    line["sparring_full_over_bare_seconds"] = ratio(full, rows["bare"]["seconds"])
            if peers:
                best = min(v["robust_accuracy"] for v in peers.values())
                line["sparring_minus_best_peer_robust_accuracy"] = round(s["robust_accuracy"] - best, 4)
            emit(NAME, line, run)


if __name__ == "__main__":
    main()
