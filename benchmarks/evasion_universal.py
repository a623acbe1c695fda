"""Universal perturbations and adversarial patches on one MNIST CNN: sparring against ART, in one process.

Setting: the small_cnn of ``evasion_pgd.py`` (mnist5k, 8 epochs, seed 0, cached). Every
perturbation or patch is crafted on ``--craft`` training images and judged on the first
``--n`` test images (patches at whole-pixel placements drawn from one generator, the same for
both libraries), so the figures are held-out fooling rates and robust accuracies.

Parts (``--parts``):

- ``uap``: Linf universal perturbations at each ``--eps``. sparring's ``UniversalPGD``
  (``--epochs`` passes of batched sign-gradient ascent) and ``DeepFoolUAP`` (``--passes``
  passes of the CVPR 2017 algorithm) against ART's ``UniversalPerturbation`` with its default
  DeepFool attacker and the same number of passes (``max_iter``).
- ``patch``: untargeted square patches covering each ``--area`` (a side of whole pixels).
  sparring's ``AdversarialPatch`` (``--steps`` sign steps on batches of 64, EOT over
  placement, scale 0.8-1, rotation ±15°, brightness ±10 %) against ART's
  ``AdversarialPatchPyTorch`` (square, sign-gradient "pgd" optimiser at ``--art-lr``, the same
  number of batches, rotation ±15°, scale 0.8-1 of the side; ART has no brightness
  transformation). Both patches are judged by sparring's placement on the same inputs.
- ``uat``: universal adversarial training (Shafahi et al., AAAI 2020) against standard
  training: clean accuracy, training time, and the held-out fooling rate of a fresh
  ``UniversalPGD`` perturbation at each ``--eps`` on each model.
- ``smoothing``: derandomised smoothing (column ablation, ``--band`` columns): clean
  accuracy, certified accuracy, and robust accuracy under the naive patch and an adaptive patch
  crafted through the vote (``--adaptive-steps`` batches of 32) at each area, against the
  undefended model under its own patch.

Usage: ``python benchmarks/evasion_universal.py [--n 500] [--craft 1000] [--parts uap patch uat smoothing]``.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from _common import art_estimator, emit, ratio, run_id, split, standard_case, timer
from sparring.attacks.evasion import AdversarialPatch, DeepFoolUAP, Patch, UniversalPerturbation, UniversalPGD, get_norm
from sparring.attacks.evasion.patch import patch_side
from sparring.defenses.inference import DerandomizedSmoothing
from sparring.defenses.training import UniversalAdversarialTraining
from sparring.metrics import accuracy
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit

NAME = "evasion_universal"
#: Operator schemas defined for torchvision's import (kept alive; see :func:`import_torchvision`).
SCHEMAS: list[Any] = []
EVAL_SEED = 7919


def judged(u: UniversalPerturbation | Patch, clf: TorchClassifier, x: Tensor, y: Tensor) -> dict[str, float]:
    e = u.evaluate(clf, x, y, seed=EVAL_SEED)
    return {"fooling_rate": round(e.fooling_rate, 4), "robust_accuracy": round(e.robust_accuracy, 4)}


def art_uap(model: nn.Module, x: Tensor, eps: float, passes: int) -> Tensor:
    from art.attacks.evasion import UniversalPerturbation as ArtUAP

    est = art_estimator(model, tuple(x.shape[1:]))
    attack = ArtUAP(est, attacker="deepfool", delta=0.2, max_iter=passes, eps=eps, norm=np.inf, verbose=False)
    attack.generate(x.numpy())
    return torch.as_tensor(attack.noise[0], dtype=torch.float32)


def import_torchvision() -> None:
    """Import torchvision for ART's patch, which uses its transforms only (no compiled operators).

    Where torchvision's compiled operators do not load with this torch (the only torchvision
    wheel on the benchmark machine is a CUDA build), its import fails on registering fake
    kernels for two operators; defining their schemas first lets the pure-Python part import.
    """
    import sys

    try:
        import torchvision
    except RuntimeError:
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        SCHEMAS.append(lib)  # a Library drops its definitions when collected
        import torchvision  # noqa: F401


def art_patch(model: nn.Module, x: Tensor, y: Tensor, side: int, steps: int, lr: float) -> Tensor:
    import_torchvision()
    from art.attacks.evasion import AdversarialPatchPyTorch

    est = art_estimator(model, tuple(x.shape[1:]))
    scale = side / min(x.shape[-2:])
    batches = math.ceil(len(x) / 64)
    attack = AdversarialPatchPyTorch(
        est,
        rotation_max=15.0,
        scale_min=0.8 * scale,
        scale_max=scale,
        learning_rate=lr,
        max_iter=max(1, round(steps / batches)),
        batch_size=64,
        patch_shape=(int(x.shape[1]), side, side),
        patch_type="square",
        optimizer="pgd",
        targeted=False,
        verbose=False,
    )
    onehot = np.eye(10, dtype=np.float32)[y.numpy()]
    patch, _mask = attack.generate(x.numpy(), y=onehot)
    return torch.as_tensor(patch, dtype=torch.float32).clamp(0, 1)


def part_uap(args: argparse.Namespace, model: nn.Module, craft: Any, x: Tensor, y: Tensor, run: str) -> None:
    clf = TorchClassifier(model, x.shape[1:], 10)
    for eps in args.eps:
        rows: dict[str, dict[str, Any]] = {}
        with timer() as t:
            u = UniversalPGD("linf", eps=eps, epochs=args.epochs).craft(clf, craft.x, craft.y)
        rows["sparring"] = {
            "attack": "UniversalPGD",
            "epochs": args.epochs,
            "seconds": t["seconds"],
            **judged(u, clf, x, y),
        }
        with timer() as t:
            d = DeepFoolUAP("linf", eps=eps, max_passes=args.passes).craft(clf, craft.x, craft.y)
        rows["sparring-deepfool"] = {
            "attack": "DeepFoolUAP",
            "passes": args.passes,
            "seconds": t["seconds"],
            **judged(d, clf, x, y),
        }
        with timer() as t:
            noise = art_uap(model, craft.x, eps, args.passes)
        art = UniversalPerturbation(get_norm("linf").project(noise[None], eps)[0], get_norm("linf"), eps)
        rows["art"] = {
            "attack": "UniversalPerturbation(deepfool)",
            "max_iter": args.passes,
            "seconds": t["seconds"],
            **judged(art, clf, x, y),
        }
        for lib, row in rows.items():
            emit(NAME, {"part": "uap", "library": lib, "eps": eps, **row, "seconds": round(row["seconds"], 2)}, run)
        line: dict[str, Any] = {"part": "uap", "library": "ratio", "eps": eps}
        for lib in ("sparring", "sparring-deepfool"):
            line[f"{lib}_over_art_seconds"] = ratio(rows[lib]["seconds"], rows["art"]["seconds"])
            line[f"{lib}_minus_art_fooling"] = round(rows[lib]["fooling_rate"] - rows["art"]["fooling_rate"], 4)
        emit(NAME, line, run)


def part_patch(args: argparse.Namespace, model: nn.Module, craft: Any, x: Tensor, y: Tensor, run: str) -> None:
    clf = TorchClassifier(model, x.shape[1:], 10)
    for area in args.area:
        side = patch_side(area, x.shape[1:])
        real = side * side / (x.shape[-1] * x.shape[-2])
        with timer() as t:
            p = AdversarialPatch(area=area, steps=args.steps).craft(clf, craft.x, craft.y)
        ours = {"seconds": t["seconds"], **judged(p, clf, x, y)}
        with timer() as t:
            pattern = art_patch(model, craft.x, craft.y, side, args.steps, args.art_lr)
        theirs = {"seconds": t["seconds"], **judged(Patch(pattern, real), clf, x, y)}
        gen = torch.Generator().manual_seed(5)
        noise = judged(Patch(torch.rand(pattern.shape, generator=gen), real), clf, x, y)
        common = {"part": "patch", "area": area, "real_area": round(real, 4), "side": side}
        emit(
            NAME,
            {**common, "library": "sparring", "steps": args.steps, **ours, "seconds": round(ours["seconds"], 2)},
            run,
        )
        emit(
            NAME, {**common, "library": "art", "lr": args.art_lr, **theirs, "seconds": round(theirs["seconds"], 2)}, run
        )
        emit(NAME, {**common, "library": "random patch", **noise}, run)
        emit(
            NAME,
            {
                **common,
                "library": "ratio",
                "sparring_over_art_seconds": ratio(ours["seconds"], theirs["seconds"]),
                "sparring_minus_art_fooling": round(ours["fooling_rate"] - theirs["fooling_rate"], 4),
            },
            run,
        )


def part_uat(
    args: argparse.Namespace, model: nn.Module, train: Any, craft: Any, x: Tensor, y: Tensor, run: str
) -> None:
    cfg = TrainConfig(epochs=8, seed=0, progress=False)
    with timer() as s:  # standard training timed beside it, under the same load
        fit(build("small_cnn", train.input_shape, 10, seed=0), train, cfg)
    std_seconds = s["seconds"]
    with timer() as t:
        result = UniversalAdversarialTraining(eps=args.uat_eps).fit(
            build("small_cnn", train.input_shape, 10, seed=0), train, cfg
        )
    models = {
        "standard": TorchClassifier(model, x.shape[1:], 10),
        "uat": TorchClassifier(result.model, x.shape[1:], 10),
    }
    emit(
        NAME,
        {
            "part": "uat",
            "train_eps": args.uat_eps,
            "uat_seconds": round(t["seconds"], 2),
            "standard_seconds": round(std_seconds, 2),
            "cost_ratio": ratio(t["seconds"], std_seconds),
            **{f"clean_{k}": round(accuracy(m, x, y), 4) for k, m in models.items()},
        },
        run,
    )
    for eps in args.eps:
        row: dict[str, Any] = {"part": "uat", "eps": eps}
        for k, m in models.items():
            u = UniversalPGD("linf", eps=eps, epochs=args.epochs).craft(m, craft.x, craft.y)
            row.update({f"{k}_{n}": v for n, v in judged(u, m, x, y).items()})
        emit(NAME, row, run)


def part_smoothing(
    args: argparse.Namespace, model: nn.Module, train: Any, craft: Any, x: Tensor, y: Tensor, run: str
) -> None:
    ds = DerandomizedSmoothing("column", args.band)
    with timer() as t:
        base = ds.fit(
            build("small_cnn", train.input_shape, 10, seed=0), train, TrainConfig(epochs=8, seed=0, progress=False)
        )
    vote = ds.wrap(TorchClassifier(base.model, x.shape[1:], 10))
    plain = TorchClassifier(model, x.shape[1:], 10)
    emit(
        NAME,
        {
            "part": "smoothing",
            "band": args.band,
            "train_seconds": round(t["seconds"], 2),
            "clean_standard": round(accuracy(plain, x, y), 4),
            "clean_smoothed": round(accuracy(vote, x, y), 4),
        },
        run,
    )
    for area in args.area:
        side = patch_side(area, x.shape[1:])
        naive = AdversarialPatch(area=area, steps=args.steps).craft(plain, craft.x, craft.y)
        with timer() as t:
            adaptive = AdversarialPatch(area=area, steps=args.adaptive_steps, batch_size=32).craft(
                vote, craft.x, craft.y
            )
        n = naive.evaluate(vote, x, y, seed=EVAL_SEED).result.success
        a = adaptive.evaluate(vote, x, y, seed=EVAL_SEED).result.success
        emit(
            NAME,
            {
                "part": "smoothing",
                "area": area,
                "side": side,
                "undefended_robust_accuracy": judged(naive, plain, x, y)["robust_accuracy"],
                "certified_accuracy": round(float(vote.certify(x, y, side).float().mean()), 4),
                "naive_robust_accuracy": round(1 - float(n.float().mean()), 4),
                "adaptive_robust_accuracy": round(1 - float(a.float().mean()), 4),
                "worst_robust_accuracy": round(1 - float((n | a).float().mean()), 4),
                "adaptive_seconds": round(t["seconds"], 2),
            },
            run,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="held-out test images (default 500)")
    p.add_argument("--craft", type=int, default=1000, help="training images the attacks craft on (default 1000)")
    p.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    p.add_argument("--area", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    p.add_argument("--epochs", type=int, default=5, help="UniversalPGD passes (default 5)")
    p.add_argument("--passes", type=int, default=1, help="DeepFool UAP passes, both libraries (default 1)")
    p.add_argument("--steps", type=int, default=320, help="patch batches, both libraries (default 320)")
    p.add_argument("--art-lr", type=float, default=0.1, help="ART's sign-step size (default 0.1)")
    p.add_argument("--uat-eps", type=float, default=0.2)
    p.add_argument("--band", type=int, default=4)
    p.add_argument("--adaptive-steps", type=int, default=100)
    p.add_argument("--parts", nargs="+", default=["uap", "patch", "uat", "smoothing"])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = run_id()
    model, x, y, header = standard_case(NAME, args.n)
    train, _ = split("mnist5k", 0.2, seed=0)
    craft = train.take(args.craft, 1)
    emit(NAME, {**header, "craft": len(craft), **{k: v for k, v in vars(args).items() if k != "parts"}}, run)
    if "uap" in args.parts:
        part_uap(args, model, craft, x, y, run)
    if "patch" in args.parts:
        part_patch(args, model, craft, x, y, run)
    if "uat" in args.parts:
        part_uat(args, model, train, craft, x, y, run)
    if "smoothing" in args.parts:
        part_smoothing(args, model, train, craft, x, y, run)


if __name__ == "__main__":
    main()
