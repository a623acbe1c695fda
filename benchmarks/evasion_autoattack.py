"""AutoAttack on an adversarially trained MNIST CNN: sparring's worst-case ensemble against ART's AutoAttack.

Setting: the small_cnn trained the way the assessment trains it
(``AdversarialTraining(norm="linf", eps=0.15, steps=2)``, ``TrainConfig(epochs=4, seed=0)``,
mnist5k train split, seed 0; weights cached in ``benchmarks/.cache/``), attacked on the
first ``--n`` (default 500) test images at Linf eps 0.1 (and whatever ``--eps`` adds).

Rows, all on the same model, inputs and batch size, robust accuracy measured by the benchmark
on each returned ``x_adv``:

- ``sparring PGD-40``: ``PGD("linf", eps, steps=40, step_size=0.01)`` (the reference figure);
- ``sparring autoattack-standard`` / ``autoattack-fast``: ``sparring.attacks.evasion.autoattack``
  (APGD-CE, APGD-T with 9 / 3 target classes, Square with 5,000 / 1,000 queries); the line also
  carries the per-member breakdown;
- ``art AutoAttack``: ``art.attacks.evasion.AutoAttack(estimator, norm=inf, eps, batch_size)``
  with ART's default attack list (APGD-CE and APGD-DLR with 100 iterations and 5 random
  starts each, DeepFool, Square with 5,000 iterations and 5 restarts) and default ``eps_step``.

Usage: ``python benchmarks/evasion_autoattack.py [--n 500] [--eps 0.1] [--versions standard fast]
[--batch-size 256] [--threads N] [--libraries sparring art]``. Lines are printed and appended to
``benchmarks/results/evasion_autoattack.jsonl``; the ratio line compares the standard (else fast)
ensemble with PGD-40 and ART: targets are robust accuracy <= both and time <= ART's.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from _common import CACHE, accuracy_of, art_estimator, emit, environment, ratio, run_id, split, timer
from sparring.attacks.evasion import PGD, WorstCaseEnsemble, autoattack
from sparring.data import Dataset
from sparring.defenses.training import AdversarialTraining
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig

NAME = "evasion_autoattack"
#: Adversarial training as the assessment does it: Linf, eps 0.15, 2 PGD steps, 4 epochs, seed 0.
AT_NORM, AT_EPS, AT_STEPS, AT_EPOCHS, SEED = "linf", 0.15, 2, 4, 0


def robust_trained_model(train: Dataset) -> tuple[nn.Module, float, bool]:
    """The assessment's adversarially trained small_cnn, cached like ``_common.trained_model``."""
    from safetensors.torch import load_file, save_file

    key = (
        f"{train.name}-{len(train)}-small_cnn-at-{AT_NORM}-{AT_EPS}-k{AT_STEPS}-e{AT_EPOCHS}"
        f"-s{SEED}-torch{torch.__version__}"
    )
    path = CACHE / f"{key}.safetensors"
    model = build("small_cnn", train.input_shape, train.num_classes, seed=SEED)
    if path.is_file():
        model.load_state_dict(load_file(str(path)))
        meta = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").is_file() else {}
        return model.eval(), float(meta.get("seconds", float("nan"))), True
    defence = AdversarialTraining(norm=AT_NORM, eps=AT_EPS, steps=AT_STEPS, seed=SEED)
    result = defence.fit(model, train, TrainConfig(epochs=AT_EPOCHS, seed=SEED, progress=False))
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps({"seconds": result.seconds}))
    return result.model.eval(), result.seconds, False


def run_pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float, args: argparse.Namespace) -> Tensor:
    clf = TorchClassifier(model, x.shape[1:], 10)
    return PGD("linf", eps=eps, steps=40, step_size=0.01, batch_size=args.batch_size, seed=0).run(clf, x, y).x_adv


def run_ensemble(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, version: str, args: argparse.Namespace
) -> tuple[Tensor, list[dict[str, Any]]]:
    clf = TorchClassifier(model, x.shape[1:], 10)
    ens: WorstCaseEnsemble = autoattack("linf", eps, seed=0, version=version, batch_size=args.batch_size)  # type: ignore[arg-type]
    x_adv = ens.run(clf, x, y).x_adv
    members = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in ens.last_report]
    return x_adv, members


def run_art(model: nn.Module, x: Tensor, y: Tensor, eps: float, args: argparse.Namespace) -> Tensor:
    from art.attacks.evasion import AutoAttack

    est = art_estimator(model, tuple(x.shape[1:]))
    attack = AutoAttack(est, norm=np.inf, eps=eps, batch_size=args.batch_size)
    for member in attack.attacks:  # the default list, with its progress bars silenced
        member.verbose = False
    return torch.as_tensor(attack.generate(x.numpy(), y=y.numpy()))



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="test images attacked (default 500)")
    p.add_argument("--eps", type=float, nargs="+", default=[0.1], help="Linf radii (default 0.1)")
    p.add_argument("--versions", nargs="+", default=["standard", "fast"], choices=["standard", "fast"])
    p.add_argument("--batch-size", type=int, default=256, help="the same for every library (default 256)")
    p.add_argument("--libraries", nargs="+", default=["sparring", "art"], choices=["sparring", "art"])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    run = run_id()
    train, test = split("mnist5k", 0.2, seed=0)
    model, train_seconds, cached = robust_trained_model(train)
    for q in model.parameters():  # as a user hands a trained model to a library
        q.requires_grad_(True)
    x, y = test.x[: args.n], test.y[: args.n]
    emit(
        NAME,
        {
            "benchmark": NAME,
            **environment(),
            "model": "small_cnn mnist5k AT linf eps0.15 k2 e4 s0",
            "train_seconds": round(train_seconds, 2),
            "weights_from_cache": cached,
            "n": len(x),
            "clean_accuracy": accuracy_of(model, x, y),
            "batch_size": args.batch_size,
        },
        run,
    )
    xw = x[:64].clone().requires_grad_(True)  # warm-up: one-off kernel set-up
    nn.functional.cross_entropy(model(xw), y[:64]).backward()
    model.zero_grad(set_to_none=True)

    for eps in args.eps:
        rows: dict[str, dict[str, Any]] = {}
        jobs: list[tuple[str, str]] = []
        if "sparring" in args.libraries:
            jobs += [("sparring", "PGD-40")] + [("sparring", f"autoattack-{v}") for v in args.versions]
        if "art" in args.libraries:
            jobs.append(("art", "AutoAttack"))
        for lib, attack in jobs:
            before = {k: v.clone() for k, v in model.state_dict().items()}
            members: list[dict[str, Any]] | None = None
            with timer() as t:
                if attack == "PGD-40":
                    x_adv = run_pgd(model, x, y, eps, args)
                elif lib == "sparring":
                    x_adv, members = run_ensemble(model, x, y, eps, attack.split("-", 1)[1], args)
                else:
                    x_adv = run_art(model, x, y, eps, args)
            model.zero_grad(set_to_none=True)
            assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), f"{lib} changed weights"
            assert not model.training, f"{lib} left the model in training mode"
            row: dict[str, Any] = {
                "library": lib,
                "attack": attack,
                "eps": eps,
                "n": len(x),
                "batch_size": args.batch_size,
                "seconds": round(t["seconds"], 3),
                "robust_accuracy": accuracy_of(model, x_adv, y),
                "max_linf": round(float((x_adv - x).abs().max()), 6),
                "in_bounds": bool(x_adv.min() >= 0 and x_adv.max() <= 1),
            }
            if members is not None:
                row["members"] = members
            if lib == "art":
                row["art_attacks"] = "APGD-CE(5 starts), APGD-DLR(5 starts), DeepFool, Square(5000 it, 5 restarts)"
            rows[attack] = row
            emit(NAME, row, run)
        ens_key = next((f"autoattack-{v}" for v in ("standard", "fast") if f"autoattack-{v}" in rows), None)
        if ens_key is None:
            continue
        ens = rows[ens_key]
        line: dict[str, Any] = {"library": "ratio", "eps": eps, "n": len(x), "ensemble": ens_key}
        if "PGD-40" in rows:
            d = round(ens["robust_accuracy"] - rows["PGD-40"]["robust_accuracy"], 4)
            line["ensemble_minus_pgd40_robust_accuracy"] = d
            line["target_robust_accuracy_le_pgd40"] = d <= 0
        if "AutoAttack" in rows:
            art = rows["AutoAttack"]
            d = round(ens["robust_accuracy"] - art["robust_accuracy"], 4)
            line["ensemble_minus_art_robust_accuracy"] = d
            line["ensemble_over_art_seconds"] = ratio(ens["seconds"], art["seconds"])
            line["target_robust_accuracy_le_art"] = d <= 0
            line["target_seconds_le_art"] = ens["seconds"] <= art["seconds"]
        emit(NAME, line, run)


if __name__ == "__main__":
    main()
