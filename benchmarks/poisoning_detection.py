"""Backdoor poison detection on MNIST: sparring's data defences against ART's, in one process.

Setting: the mnist5k train/test split every benchmark uses; the training set is poisoned by
BadNets (3x3 checkerboard, target 0) at 5 % and 10 % and by Blended (noise key, alpha 0.1,
target 0) at 10 %; a zoo small_cnn (seed 0) is trained on each poisoned set (cached under
``benchmarks/.cache``). On that model and that data the benchmark runs

- sparring ``ActivationClustering()`` (its defaults) and ``SpectralSignatures(epsilon=f)``,
- ART ``ActivationDefence`` (k-means, 2 clusters, PCA to 10 dims) with its ``relative-size`` (size
  threshold 0.35; see ``run_art`` for a work-around of an ART 1.20 bug)
  and its ``distance`` analysis, and ART ``SpectralSignatureDefense(expected_pp_poison=f,
  eps_multiplier=1.5)``,

where ``f`` is the poisoning rate (the expected share of poison, as both libraries call
it). Layers: sparring reads its default ``"penultimate"`` (the 128-unit hidden layer); ART
reads layer ``nb_layers - 1`` of its layer list, which for a PyTorch model that is not an
``nn.Sequential`` is its last registered child module, here ``fc2`` (the logits). Recall is the share
of poison flagged, FPR the share of clean samples flagged, precision the share of flagged
samples that are poison; seconds is the detector's wall time (model forward passes included).

Usage: ``python benchmarks/poisoning_detection.py [--epochs 8] [--threads N]``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from _common import CACHE, accuracy_of, art_estimator, emit, environment, ratio, run_id, split
from sparring.attacks.poisoning import BadNets, Blended
from sparring.data import PoisonedDataset
from sparring.defenses.data import ActivationClustering, SpectralSignatures
from sparring.metrics import attack_success_rate, detection_rates
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit

NAME = "poisoning_detection"
CASES: dict[str, tuple[str, float]] = {
    "badnets-0.05": ("badnets", 0.05),
    "badnets-0.10": ("badnets", 0.10),
    "blended-0.10": ("blended", 0.10),
}


def poisoned_model(train: PoisonedDataset, case: str, epochs: int) -> tuple[nn.Module, float, bool]:
    """small_cnn trained on ``train`` (seed 0), cached by case and epochs: (model, seconds, from cache)."""
    from safetensors.torch import load_file, save_file

    key = f"{NAME}-{case}-{len(train)}-small_cnn-e{epochs}-s0-torch{torch.__version__}"
    path = CACHE / f"{key}.safetensors"
    model = build("small_cnn", train.input_shape, train.num_classes, seed=0)
    if path.is_file():
        model.load_state_dict(load_file(str(path)))
        meta = json.loads(path.with_suffix(".json").read_text())
        return model.eval(), float(meta["seconds"]), True
    result = fit(model, train, TrainConfig(epochs=epochs, seed=0, progress=False))
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps({"seconds": result.seconds}))
    return result.model.eval(), result.seconds, False


def rates(flagged: Tensor, truth: Tensor) -> dict[str, Any]:
    r = detection_rates(flagged, truth)
    hit = int((flagged & truth).sum())
    return {
        "recall": round(r["recall"], 4),
        "fpr": round(r["fpr"], 4),
        "precision": round(hit / r["flagged"], 4) if r["flagged"] else float("nan"),
        "flagged": r["flagged"],
    }


def run_art(detector: str, model: nn.Module, data: PoisonedDataset, fraction: float) -> Tensor:
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense

    est = art_estimator(model, tuple(data.input_shape))
    x, y = data.x.numpy(), np.eye(10)[data.y.numpy()]
    if detector == "spectral":
        defence: Any = SpectralSignatureDefense(est, x, y, expected_pp_poison=fraction, eps_multiplier=1.5)
        _, clean = defence.detect_poison()
    elif detector == "distance":
        defence = ActivationDefence(est, x, y)
        _, clean = defence.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis="distance")
    else:
        # ART 1.20's relative-size analyser fails on its own report step (``cluster_id in`` an
        # empty index array), so ART clusters (its "smaller" run) and its relative-size rule is
        # applied here: a cluster holding under 35 % of its class (rounded to 2 decimals) is poison.
        defence = ActivationDefence(est, x, y)
        defence.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis="smaller")
        poison = np.zeros(len(x), dtype=bool)
        labels = data.y.numpy()
        for c, clusters in enumerate(defence.clusters_by_class):
            idx = np.flatnonzero(labels == c)
            shares = np.round(np.bincount(clusters, minlength=2) / len(clusters), 2)
            poison[idx] = shares[clusters] < 0.35
        return torch.as_tensor(poison)
    return torch.as_tensor(np.asarray(clean) == 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None, help="training samples used (default: all 4000)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs of each poisoned model (default 8)")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = run_id()
    train, test = split("mnist5k", 0.2, seed=0)
    if args.n:
        train = train.take(args.n, seed=0)
    emit(NAME, {"benchmark": NAME, **environment(), "n_train": len(train), "epochs": args.epochs}, run)
    for case in args.cases:
        kind, fraction = CASES[case]
        attack: Any = (
            BadNets(target=0, poison_fraction=fraction, seed=0)
            if kind == "badnets"
            else Blended(target=0, poison_fraction=fraction, alpha=0.1, seed=0)
        )
        data = attack.poison(train)
        model, train_seconds, cached = poisoned_model(data, case, args.epochs)
        clf = TorchClassifier(model, data.input_shape, 10)
        assert data.trigger is not None
        emit(
            NAME,
            {
                "case": case,
                "n": len(data),
                "n_poison": data.n_poisoned,
                "clean_accuracy": round(accuracy_of(model, test.x, test.y), 4),
                "attack_success": round(attack_success_rate(clf, test.x, test.y, data.trigger, 0), 4),
                "train_seconds": round(train_seconds, 1),
                "weights_from_cache": cached,
            },
            run,
        )
        rows: dict[str, dict[str, Any]] = {}
        detectors: list[tuple[str, str, Any]] = [
            ("sparring", "ActivationClustering", ActivationClustering()),
            ("sparring", "SpectralSignatures", SpectralSignatures(epsilon=fraction)),
            ("art", "ActivationDefence/relative-size", "relative-size"),
            ("art", "ActivationDefence/distance", "distance"),
            ("art", "SpectralSignatureDefense", "spectral"),
        ]
        for lib, detector, impl in detectors:
            start = time.perf_counter()
            if lib == "sparring":
                flagged = impl.detect(data, clf).flagged
            else:
                flagged = run_art(impl, model, data, fraction)
            seconds = time.perf_counter() - start
            rows[detector] = {
                "case": case,
                "library": lib,
                "detector": detector,
                "setting": repr(impl) if lib == "sparring" else impl,
                **rates(flagged, data.poison_mask),
                "seconds": round(seconds, 3),
            }
            emit(NAME, rows[detector], run)
        pairs = {
            "ac": ("ActivationClustering", "ActivationDefence/relative-size"),
            "ac_vs_distance": ("ActivationClustering", "ActivationDefence/distance"),
            "spectral": ("SpectralSignatures", "SpectralSignatureDefense"),
        }
        line: dict[str, Any] = {"case": case, "library": "ratio"}
        for key, (ours, theirs) in pairs.items():
            line[f"{key}_sparring_minus_art_recall"] = round(rows[ours]["recall"] - rows[theirs]["recall"], 4)
            line[f"{key}_sparring_minus_art_fpr"] = round(rows[ours]["fpr"] - rows[theirs]["fpr"], 4)
            line[f"{key}_sparring_over_art_seconds"] = ratio(rows[ours]["seconds"], rows[theirs]["seconds"])
        emit(NAME, line, run)


if __name__ == "__main__":
    main()
