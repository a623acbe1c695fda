"""Clean-label targeted poisoning in the transfer-learning case: sparring against ART, in one process.

Setting: ``transfer_learning_setup`` on the mnist5k train split (small_cnn teacher on the
public half, ``--teacher-epochs``; student with all but the head frozen, on the private
half). For ``--n`` targets of ``--target-class`` (test images the student gets right) and
``--poisons`` bases of ``--base-class`` from the public half per target, chosen by
``select_targets_and_bases`` (the same targets and bases for every attack and library),
each attack crafts poisons at the teacher's ``fc1`` features (white box) or at two
surrogate teachers trained with other seeds (gray box); the victim then retrains its head
(``frozen``) or every layer (``end_to_end``) on the private data plus the poisons, and a
target counts as a success when the victim labels it ``--base-class``.

ART 1.20 runs ``FeatureCollisionAttack`` (its defaults except ``max_iter``) and
``BullseyePolytopeAttackPyTorch`` (``epsilon``, ``max_iter``, ``learning_rate`` as
sparring's; ``endtoend=True``, because its ``endtoend=False`` branch detaches the loss and
raises in ART 1.20) on a ``PyTorchClassifier`` around an ``nn.Sequential``
whose first block returns the same ``fc1`` features (ART reads activations by running a
Sequential's children in order). Its poisons are evaluated by the same victim.

End to end, the victim fine-tunes every layer for ``--end-to-end-epochs`` (Adam,
``--end-to-end-lr``); that is slow on CPU, so it runs on ``--n-end-to-end`` targets. ``--parts``
runs a subset (``frozen``, ``art``, ``end_to_end``); the ratio line needs the first two.

Usage: ``python benchmarks/poisoning_clean_label.py [--n 20] [--eps 0.3] [--parts ...] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from _common import art_estimator, emit, environment, ratio, run_id, split
from sparring.attacks.poisoning.clean_label import (
    BullseyePolytope,
    CleanLabelAttack,
    CleanLabelResult,
    ConvexPolytope,
    FeatureCollision,
    Victim,
    evaluate_clean_label,
    select_targets_and_bases,
    train_surrogates,
)
from sparring.models.hooks import layer_features
from sparring.transfer import TransferSetup, transfer_learning_setup

NAME = "poisoning_clean_label"
PARTS = ("frozen", "art", "end_to_end")


class _Features(nn.Module):
    """The teacher's features at ``layer`` as a module (for ART's Sequential activation reader)."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        self.inner = model
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return layer_features(self.inner, self.layer)(x.float())


def _sequential(model: nn.Module, layer: str) -> nn.Module:
    fc2 = getattr(model, "fc2", None)
    head = fc2 if isinstance(fc2, nn.Module) else nn.Identity()
    return nn.Sequential(OrderedDict(features=_Features(model, layer), relu=nn.ReLU(), head=head)).eval()


def run_art(
    setup: TransferSetup, kind: str, targets: Tensor, bases: Tensor, base_class: int, args: argparse.Namespace
) -> dict[str, Any]:
    from art.attacks.poisoning import BullseyePolytopeAttackPyTorch, FeatureCollisionAttack

    est = art_estimator(_sequential(setup.teacher.model, setup.layer), tuple(setup.test.input_shape))
    victim = Victim(setup, "frozen", args.victim_epochs, args.victim_lr, 0)
    wins, crafted, linf = [], 0.0, 0.0
    for i in range(len(targets)):
        t_x = setup.test.x[targets[i]][None].numpy()
        b_x = setup.teacher_data.x[bases[i]].numpy()
        start = time.perf_counter()
        if kind == "fc":
            attack: Any = FeatureCollisionAttack(
                est, target=t_x, feature_layer="features", max_iter=args.steps, verbose=False
            )
            out, _ = attack.poison(b_x)
        else:
            attack = BullseyePolytopeAttackPyTorch(
                est,
                target=t_x,
                feature_layer="features",
                max_iter=args.steps,
                learning_rate=args.lr,
                epsilon=args.eps,
                endtoend=True,
                verbose=False,
            )
            out, _ = attack.poison(b_x, y=np.full(len(b_x), base_class))
        crafted += time.perf_counter() - start
        poisons = torch.as_tensor(np.asarray(out), dtype=torch.float32).reshape(b_x.shape)
        linf = max(linf, float((poisons - torch.as_tensor(b_x)).abs().max()))
        model = victim.train(poisons, base_class)
        with torch.no_grad():
            label = int(model(setup.test.x[targets[i]][None]).argmax(1))
        wins.append(label == base_class)
    return {
        "library": "art",
        "attack": "FeatureCollisionAttack" if kind == "fc" else "BullseyePolytopeAttackPyTorch",
        "success_rate": round(sum(wins) / len(wins), 4),
        "craft_seconds": round(crafted, 2),
        "seconds_per_target": round(crafted / len(wins), 3),
        "max_linf": round(linf, 4),
    }


def row(r: CleanLabelResult) -> dict[str, Any]:
    return {
        "library": "sparring",
        "attack": r.attack,
        "training": r.training,
        "knowledge": r.knowledge,
        "success_rate": round(r.success_rate, 4),
        "successes": int(r.success.sum()),
        "n": len(r.success),
        "clean_accuracy_before": round(r.clean_accuracy_before, 4),
        "clean_accuracy_after": round(r.clean_accuracy_after, 4),
        "craft_seconds": round(r.craft_seconds, 2),
        "seconds_per_target": round(r.seconds_per_target, 3),
        "max_linf": round(r.max_linf, 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20, help="targets (default 20)")
    p.add_argument("--n-end-to-end", type=int, default=5, help="targets for the end-to-end runs (default 5)")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--poisons", type=int, default=10)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.02, help="Adam step of the polytope attacks")
    p.add_argument("--target-class", type=int, default=1)
    p.add_argument("--base-class", type=int, default=7)
    p.add_argument("--teacher-epochs", type=int, default=6)
    p.add_argument("--victim-epochs", type=int, default=60)
    p.add_argument("--victim-lr", type=float, default=0.01)
    p.add_argument("--end-to-end-epochs", type=int, default=3, help="victim epochs when every layer trains")
    p.add_argument("--end-to-end-lr", type=float, default=1e-3)
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = run_id()
    train, test = split(args.dataset, 0.2, seed=0)
    setup = transfer_learning_setup(train, test, teacher_epochs=args.teacher_epochs, seed=0)
    emit(
        NAME,
        {
            "benchmark": NAME,
            **environment(),
            **{k: v for k, v in vars(args).items() if k != "threads"},
            "layer": setup.layer,
            "setup_seconds": round(setup.seconds, 2),
        },
        run,
    )
    tc, bc = args.target_class, args.base_class
    targets, bases = select_targets_and_bases(setup, tc, bc, args.n, args.poisons, seed=0)
    common: dict[str, Any] = dict(
        target_class=tc,
        base_class=bc,
        n_targets=args.n,
        n_poisons=args.poisons,
        epochs=args.victim_epochs,
        lr=args.victim_lr,
        seed=0,
        feature_layer=setup.layer,
        progress=False,
    )
    kw = dict(n_poisons=args.poisons, eps=args.eps, steps=args.steps)
    attacks: dict[str, CleanLabelAttack] = {
        "fc": FeatureCollision(**kw),
        "cp": ConvexPolytope(**kw, lr=args.lr),
        "bp": BullseyePolytope(**kw, lr=args.lr),
    }
    mine: dict[str, dict[str, Any]] = {}
    theirs: dict[str, dict[str, Any]] = {}
    if "frozen" in args.parts:
        emit(NAME, row(evaluate_clean_label(None, setup, **common)), run)
        surrogates = train_surrogates(setup, 2, args.teacher_epochs, seed=1000)
        for knowledge in ("white_box", "gray_box"):
            for key, attack in attacks.items():
                r = evaluate_clean_label(attack, setup, knowledge=knowledge, surrogates=surrogates, **common)
                mine[f"{key}-{knowledge}"] = row(r)
                emit(NAME, mine[f"{key}-{knowledge}"], run)
    if "art" in args.parts:
        for kind in ("fc", "bp"):
            theirs[kind] = run_art(setup, kind, targets, bases, bc, args)
            emit(NAME, theirs[kind], run)
    if "end_to_end" in args.parts:
        e2e = dict(common, n_targets=args.n_end_to_end, epochs=args.end_to_end_epochs, lr=args.end_to_end_lr)
        for attack_or_none in (None, attacks["bp"]):
            emit(NAME, row(evaluate_clean_label(attack_or_none, setup, training="end_to_end", **e2e)), run)
    if mine and theirs:
        line: dict[str, Any] = {"library": "ratio", "n": args.n}
        for kind in ("fc", "bp"):
            s, a = mine[f"{kind}-white_box"], theirs[kind]
            line[f"{kind}_sparring_minus_art_success"] = round(s["success_rate"] - a["success_rate"], 4)
            line[f"{kind}_sparring_over_art_seconds"] = ratio(s["craft_seconds"], a["craft_seconds"])
        gray = {k: mine[f"{k}-gray_box"]["success_rate"] for k in attacks}
        line["gray_box_polytope_minus_fc_success"] = round(max(gray["cp"], gray["bp"]) - gray["fc"], 4)
        emit(NAME, line, run)


if __name__ == "__main__":
    main()
