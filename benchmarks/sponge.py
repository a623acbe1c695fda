"""Sponge examples and sponge poisoning: the figures of issue 15, as JSON lines.

No peer library implements sponge examples for these models, so every line sets sparring's
attacks beside the two controls that matter: natural inputs and the uniform baseline
(flat-colour inputs; Müller & Quiring, IEEE S&P Workshops 2024).

* ``energy`` lines: the modelled zero-skipping ASIC of Shumailov et al. (EuroS&P 2021;
  1950 pJ per DRAM access, 3.7 pJ per multiply, Horowitz ISSCC 2014), weights read once per
  input (``batch`` 1) and once per 32 inputs; energy ratio (zero-skipping / dense) and
  post-activation density of natural inputs, the baseline and each attack, on the zoo's
  small CNN and the early-exit CNN, for digits and mnist5k.
* ``exits`` lines: the early-exit CNN's executed MACs and one-thread latency (mean over inputs
  of each input's median of repeated timings), natural inputs against sponges; then the cost
  cut-off at two percentiles: worst case after, false-trigger rate, accuracy cost.
* ``poisoning`` lines: the small CNN trained with Cinà et al.'s sponge term (2022) against
  the same CNN trained cleanly; energy ratio and density on clean test inputs, accuracies.

Usage: ``python benchmarks/sponge.py [--datasets digits mnist5k] [--samples 50]``.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from _common import emit, environment, run_id, split
from sparring.assess.families.sponge import latency_us
from sparring.attacks.availability import (
    EnergyModel,
    HardwareModel,
    SpongeGA,
    SpongeGradient,
    SpongePoisoning,
    SpongeResult,
    UniformBaseline,
)
from sparring.data import Dataset
from sparring.defenses.inference.cost_cutoff import CostCutoff
from sparring.metrics import accuracy
from sparring.models import EarlyExitCNN, TorchClassifier, build, early_exit_cnn
from sparring.train import TrainConfig, fit

NAME = "sponge"


def _attacks(cost: str) -> dict[str, Any]:
    return {
        "uniform": UniformBaseline(cost),
        "genetic": SpongeGA(cost, population=100, generations=30, keep=10, seed=0),
        "lbfgs": SpongeGradient(cost, optimizer="lbfgs", steps=30),
        "adam": SpongeGradient(cost, optimizer="adam", steps=100, lr=0.5),
    }


def energy_lines(ds: str, model_name: str, clf: TorchClassifier, x: torch.Tensor, rid: str) -> None:
    results: dict[str, SpongeResult] = {name: a.run(clf, x) for name, a in _attacks("energy").items()}
    for batch in (1, 32):
        em = EnergyModel(HardwareModel(batch=batch))
        nat = em.measure(clf.model, x)
        nat_mean = float(nat.ratio.mean())
        reps = {name: em.measure(clf.model, r.x_sponge) for name, r in results.items()}
        base_max = float(reps["uniform"].ratio.max())
        for name, rep in [("natural", nat), *reps.items()]:
            r = results.get(name)
            emit(
                NAME,
                {
                    "kind": "energy",
                    "dataset": ds,
                    "model": model_name,
                    "batch": batch,
                    "inputs": name,
                    "ratio_mean": round(float(rep.ratio.mean()), 5),
                    "ratio_max": round(float(rep.ratio.max()), 5),
                    "density_mean": round(float(rep.density.mean()), 4),
                    "density_max": round(float(rep.density.max()), 4),
                    "increase_over_natural": round(float(rep.ratio.max()) / nat_mean - 1, 5),
                    "increase_over_baseline": round(float(rep.ratio.max()) / base_max - 1, 5),
                    "queries": None if r is None else r.queries,
                    "seconds": None if r is None else round(r.seconds, 2),
                    "n": len(x),
                },
                rid,
            )


def exit_lines(ds: str, clf: TorchClassifier, train: Dataset, test: Dataset, x: torch.Tensor, rid: str) -> None:
    net = clf.model
    assert isinstance(net, EarlyExitCNN)
    torch.set_num_threads(1)
    nat_exits = torch.bincount(net.exit_index(x), minlength=3).tolist()
    nat_lat = latency_us(net, x)
    worst: torch.Tensor | None = None
    worst_cost = -1.0
    for name, attack in _attacks("exits").items():
        r = attack.run(clf, x)
        lat = latency_us(net, r.x_sponge)
        if float(r.cost_after.mean()) > worst_cost:
            worst, worst_cost = r.x_sponge, float(r.cost_after.mean())
        emit(
            NAME,
            {
                "kind": "exits",
                "dataset": ds,
                "inputs": name,
                "macs_natural_mean": float(r.cost_before.mean()),
                "macs_mean": float(r.cost_after.mean()),
                "macs_increase": round(float(r.cost_after.mean() / r.cost_before.mean()) - 1, 4),
                "exits_natural": nat_exits,
                "exits": torch.bincount(net.exit_index(r.x_sponge), minlength=3).tolist(),
                "latency_natural_us": round(nat_lat, 1),
                "latency_us": round(lat, 1),
                "latency_ratio": round(lat / nat_lat, 3),
                "queries": r.queries,
                "seconds": round(r.seconds, 2),
                "n": len(x),
            },
            rid,
        )
    assert worst is not None
    acc = accuracy(clf, test.x, test.y)
    for pct in (90.0, 75.0, 50.0):
        cut = CostCutoff(pct, "exits").fit(clf, train.take(min(500, len(train)), seed=1).x)
        capped = cut.wrap(clf)
        assert isinstance(capped, TorchClassifier) and isinstance(capped.model, EarlyExitCNN)
        emit(
            NAME,
            {
                "kind": "cutoff",
                "dataset": ds,
                "percentile": pct,
                "budget_macs": cut.budget,
                "max_exit": cut.max_exit,
                "worst_macs_before": float(net.macs(net.exit_index(worst)).max()),
                "worst_macs_after": float(cut.apply(worst).cost.max()),
                "latency_sponge_after_us": round(latency_us(capped.model, worst), 1),
                "false_trigger": round(float(cut.apply(test.x).triggered.float().mean()), 4),
                "accuracy_before": round(acc, 4),
                "accuracy_after": round(accuracy(capped, test.x, test.y), 4),
            },
            rid,
        )


def poisoning_lines(ds: str, train: Dataset, test: Dataset, epochs: int, rid: str) -> None:
    shape, k = train.input_shape, train.num_classes
    cfg = TrainConfig(epochs=epochs, progress=False)
    clean = fit(build("small_cnn", shape, k), train, cfg).model
    for lam in (1.0, 5.0):
        poisoned = SpongePoisoning(fraction=0.5, lam=lam).fit(build("small_cnn", shape, k), train, cfg).model
        for batch in (1, 32):
            em = EnergyModel(HardwareModel(batch=batch))
            ec, ep = em.measure(clean, test.x), em.measure(poisoned, test.x)
            emit(
                NAME,
                {
                    "kind": "poisoning",
                    "dataset": ds,
                    "fraction": 0.5,
                    "lam": lam,
                    "batch": batch,
                    "ratio_clean": round(float(ec.ratio.mean()), 5),
                    "ratio_poisoned": round(float(ep.ratio.mean()), 5),
                    "energy_increase": round(float(ep.ratio.mean() / ec.ratio.mean()) - 1, 5),
                    "density_clean": round(float(ec.density.mean()), 4),
                    "density_poisoned": round(float(ep.density.mean()), 4),
                    "accuracy_clean": round(accuracy(TorchClassifier(clean, shape, k), test.x, test.y), 4),
                    "accuracy_poisoned": round(accuracy(TorchClassifier(poisoned, shape, k), test.x, test.y), 4),
                },
                rid,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist5k"])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rid = run_id()
    emit(NAME, {"kind": "environment", **environment()}, rid)
    for ds in args.datasets:
        train, test = split(ds, 0.2, seed=0)
        x = test.take(args.samples, seed=0).x
        shape, k = train.input_shape, train.num_classes
        cnn = fit(build("small_cnn", shape, k), train, TrainConfig(epochs=args.epochs, progress=False)).model
        energy_lines(ds, "small_cnn", TorchClassifier(cnn, shape, k), x, rid)
        net = early_exit_cnn(shape, k, seed=0)
        fit(net, train, TrainConfig(epochs=args.epochs, progress=False), penalty=_exit_penalty)
        ee = TorchClassifier(net, shape, k)
        energy_lines(ds, "early_exit_cnn", ee, x, rid)
        exit_lines(ds, ee, train, test, x, rid)
        poisoning_lines(ds, train, test, args.epochs, rid)


def _exit_penalty(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    assert isinstance(model, EarlyExitCNN)
    return model.exit_loss(x, y)


if __name__ == "__main__":
    main()
