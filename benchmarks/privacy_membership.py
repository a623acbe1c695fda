"""Membership inference on an overfit MNIST model: sparring's attacks beside ART's, in one process.

Setting (fixed before any figure was seen): mnist5k split with test_fraction 0.8 (seed 0), so
the target trains on 1,000 images; zoo small_cnn, 20 epochs, Adam lr 1e-3, batch 64, no weight
decay, no augmentation. The held-out 4,000 images are split by ``membership_split`` (seed 0,
population share 0.5): 1,000 members and 1,000 non-members are evaluated, the other 2,000
held-out images are the population the attacker may use (never evaluated).

- sparring: loss threshold and gap (Yeom et al.), offline RMIA with 1, 2 and 4 reference
  models, offline LiRA (fixed variance) with 2, 4 and 8, shadow models with 4. The eight
  reference models train like the target on random halves of the population (1,000 images
  each); a set of K is the first K of them (the draws and seeds are sequential, so they are
  exactly the models a K-model run would train), and its cost is the sum of their seconds.
- ART 1.20: ``ShadowModels`` (4 shadow models cloned from the target's architecture, each
  trained like the target, 20 epochs at batch 64, on a random half of the same population)
  feeding ``MembershipInferenceBlackBox`` with its "nn" and "rf" attack models, and
  ``MembershipInferenceBlackBoxRuleBased``.

Every attack is scored on the same 2,000 samples with sparring's ``roc`` (AUC, TPR at 1 % and
0.1 % FPR; 1,000 non-members resolve 0.1 %). Seconds include reference / shadow model training.

Label-only attacks (Choquette-Choo et al., ICML 2021), against the same target: sparring's
augmentation attack (1 + 4 one-pixel shifts + 16 noise draws at sigma 0.1) on the same 2,000
samples; the boundary-distance attacks, which need a HopSkipJump search per sample, on the
first ``--label-samples`` members and non-members of that draw (250 each by default):
sparring's HopSkipJump at 500 queries per sample against ART's ``LabelOnlyDecisionBoundary``
(its HopSkipJump with ``max_iter`` 2, ``init_eval`` 100, ``max_eval`` 1,000; queries counted
by a wrapper; its membership probability is a sigmoid of the distance, so the ROC is the
distance's, whatever threshold tau is set). ``--only label_only`` runs these alone.

Usage: ``python benchmarks/privacy_membership.py [--threads 1] [--epochs 20] [--only all|label_only]
[--label-samples 250]``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from _common import accuracy_of, emit, environment, ratio, run_id, split
from sparring.attacks.privacy import RMIA, LabelOnlyMembership, LiRA, ShadowModels, evaluate_membership
from sparring.attacks.privacy.reference import membership_split, random_halves, train_references
from sparring.metrics import roc
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit


def figures(scores: np.ndarray, is_member: np.ndarray) -> dict[str, float]:
    r = roc(scores, is_member)
    return {
        "auc": round(r.auc, 4),
        "tpr_at_1%_fpr": round(r.tpr_at_1_fpr, 4),
        "tpr_at_0.1%_fpr": round(r.tpr_at_0_1_fpr, 4),
    }


def label_only(
    clf: TorchClassifier,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    is_member: np.ndarray,
    n: int,
    record: Any,
    rid: str,
) -> None:
    """Label-only attacks: sparring's augmentation and boundary variants beside ART's LabelOnlyDecisionBoundary."""
    from art.attacks.inference.membership_inference import LabelOnlyDecisionBoundary
    from art.estimators.classification import PyTorchClassifier

    q0, t0 = clf.queries, time.perf_counter()
    scores = LabelOnlyMembership().fit(clf).score(x, y).numpy()
    record("sparring", "label_only-augmentation", scores, time.perf_counter() - t0, queries=clf.queries - q0)
    k = len(x) // 2
    sub = np.r_[np.arange(min(n, k)), k + np.arange(min(n, k))]
    xs, ys, ms = x[sub], y[sub], is_member[sub]
    rows: list[dict[str, Any]] = []

    def rec(library: str, attack: str, s: np.ndarray, seconds: float, queries: int) -> None:
        row = {"library": library, "attack": attack, **figures(s, ms), "seconds": round(seconds, 2)}
        row |= {"queries": queries, "members": int(ms.sum()), "non_members": int((~ms).sum())}
        rows.append(row)
        emit("privacy_membership", row, rid)

    q0, t0 = clf.queries, time.perf_counter()
    scores = LabelOnlyMembership("boundary", max_queries=500).fit(clf).score(xs, ys).numpy()
    rec("sparring", "label_only-boundary-hsj500", scores, time.perf_counter() - t0, clf.queries - q0)

    class Counting(PyTorchClassifier):  # type: ignore[misc]
        """ART's classifier, counting the samples it is asked to label."""

        queries = 0

        def predict(self, x: np.ndarray, batch_size: int = 128, **kwargs: Any) -> np.ndarray:
            Counting.queries += len(x)  # ART's HopSkipJump sends float64: the model takes float32
            return super().predict(x.astype(np.float32), batch_size=batch_size, **kwargs)

    art = Counting(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(clf.input_shape),
        nb_classes=clf.num_classes,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    np.random.seed(0)
    t0 = time.perf_counter()
    attack = LabelOnlyDecisionBoundary(art, distance_threshold_tau=1.0)
    onehot = np.eye(clf.num_classes, dtype=np.float32)[ys.numpy()]
    proba = attack.infer(
        xs.numpy(), onehot, probabilities=True, max_iter=2, init_eval=100, max_eval=1000, verbose=False
    )
    rec("art", "LabelOnlyDecisionBoundary-hsj2", np.asarray(proba)[:, 1], time.perf_counter() - t0, Counting.queries)
    emit(
        "privacy_membership",
        {
            "summary": "label_only",
            "auc_ratio_sparring_over_art": ratio(rows[0]["auc"], rows[1]["auc"]),
            "tpr_at_1%_fpr_sparring": rows[0]["tpr_at_1%_fpr"],
            "tpr_at_1%_fpr_art": rows[1]["tpr_at_1%_fpr"],
            "time_ratio": ratio(rows[0]["seconds"], rows[1]["seconds"]),
        },
        rid,
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--only", choices=("all", "label_only"), default="all")
    p.add_argument("--label-samples", type=int, default=250)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rid = run_id()
    train, held_out = split("mnist5k", 0.8, seed=0)
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, seed=0, progress=False)

    def make() -> nn.Module:
        return build("small_cnn", train.input_shape, train.num_classes, seed=0)

    target = fit(make(), train, cfg)
    clf = TorchClassifier(target.model, train.input_shape, train.num_classes)
    sp = membership_split(len(train), len(held_out), None, 0.5, 0)
    population = held_out.subset(sp.population)
    x = torch.cat([train.x[sp.members], held_out.x[sp.non_members]])
    y = torch.cat([train.y[sp.members], held_out.y[sp.non_members]])
    is_member = np.r_[np.ones(sp.k, bool), np.zeros(sp.k, bool)]
    emit(
        "privacy_membership",
        {
            "benchmark": "privacy_membership",
            **environment(),
            "model": f"small_cnn mnist5k-1000 e{args.epochs} s0",
            "train_accuracy": accuracy_of(target.model, train.x, train.y),
            "test_accuracy": accuracy_of(target.model, held_out.x[sp.non_members], held_out.y[sp.non_members]),
            "target_seconds": round(target.seconds, 2),
            "members": sp.k,
            "non_members": sp.k,
            "population": len(population),
        },
        rid,
    )
    rows: list[dict[str, Any]] = []

    def record(library: str, attack: str, scores: np.ndarray, seconds: float, **extra: Any) -> None:
        row = {
            "library": library,
            "attack": attack,
            **figures(scores, is_member),
            "seconds": round(seconds, 2),
            **extra,
        }
        rows.append(row)
        emit("privacy_membership", row, rid)

    for name in ("loss_threshold", "gap"):
        r = evaluate_membership(clf, train, held_out, name, seed=0, population=0.5)
        record("sparring", name, r.scores.numpy(), r.seconds)
    label_only(clf, target.model, x, y, is_member, args.label_samples, record, rid)
    if args.only == "label_only":
        return

    keep = random_halves(8, len(population), 0, size=len(train))
    refs = train_references(make, population, keep, cfg)
    per_model = refs.seconds / len(refs)
    views = [TorchClassifier(m, train.input_shape, train.num_classes) for m in refs.models]
    attacks: list[tuple[str, Any, int]] = [
        *((f"rmia-{k}", RMIA(), k) for k in (1, 2, 4)),
        *((f"lira-offline-{k}", LiRA(), k) for k in (2, 4, 8)),
        ("shadow-4", ShadowModels(), 4),
    ]
    for name, attack, k in attacks:
        t0 = time.perf_counter()
        attack.fit_references(views[:k], None, population, keep[:k]).fit(clf)
        scores = attack.score(x, y).numpy()
        record("sparring", name, scores, time.perf_counter() - t0 + per_model * k, references=k)

    # -- ART ------------------------------------------------------------------------------------
    from art.attacks.inference.membership_inference import (
        MembershipInferenceBlackBox,
        MembershipInferenceBlackBoxRuleBased,
    )
    from art.attacks.inference.membership_inference import (
        ShadowModels as ArtShadowModels,
    )
    from art.estimators.classification import PyTorchClassifier

    epochs = args.epochs

    class TrainedLikeTarget(PyTorchClassifier):  # type: ignore[misc]
        """ART's clone-and-fit, with the target's epochs and batch size (ShadowModels calls fit(x, y))."""

        def fit(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> None:
            super().fit(x, y, batch_size=64, nb_epochs=epochs)

    def art_classifier(model: nn.Module, cls: type = PyTorchClassifier) -> Any:
        return cls(
            model=model,
            loss=nn.CrossEntropyLoss(),
            input_shape=tuple(train.input_shape),
            nb_classes=train.num_classes,
            clip_values=(0.0, 1.0),
            device_type="cpu",
            optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        )

    np.random.seed(0)
    torch.manual_seed(0)
    art_target = art_classifier(target.model)
    xn, yn = x.numpy(), y.numpy()
    t0 = time.perf_counter()
    shadows = ArtShadowModels(art_classifier(make(), TrainedLikeTarget), num_shadow_models=4, random_state=0)
    (mx, my, mp), (nx, ny, npred) = shadows.generate_shadow_dataset(population.x.numpy(), population.y.numpy())
    shadow_seconds = time.perf_counter() - t0
    for kind in ("nn", "rf"):
        t0 = time.perf_counter()
        bb = MembershipInferenceBlackBox(art_target, attack_model_type=kind)
        bb.fit(mx, my, nx, ny, mp, npred)
        scores = np.asarray(bb.infer(xn, yn, probabilities=True)).reshape(len(xn), -1)[:, -1]
        record("art", f"shadow-4+blackbox-{kind}", scores, time.perf_counter() - t0 + shadow_seconds, references=4)
    t0 = time.perf_counter()
    rule = MembershipInferenceBlackBoxRuleBased(art_target)
    record("art", "rule_based", np.asarray(rule.infer(xn, yn), dtype=float).ravel(), time.perf_counter() - t0)

    best = {
        lib: max((r for r in rows if r["library"] == lib), key=lambda r: (r["tpr_at_1%_fpr"], r["auc"]))
        for lib in ("sparring", "art")
    }
    best_auc = {lib: max(r["auc"] for r in rows if r["library"] == lib) for lib in ("sparring", "art")}
    emit(
        "privacy_membership",
        {
            "summary": True,
            "sparring_best": best["sparring"]["attack"],
            "art_best": best["art"]["attack"],
            "tpr_at_1%_fpr_ratio": ratio(best["sparring"]["tpr_at_1%_fpr"], best["art"]["tpr_at_1%_fpr"]),
            "best_auc_sparring": best_auc["sparring"],
            "best_auc_art": best_auc["art"],
            "time_ratio_best": ratio(best["sparring"]["seconds"], best["art"]["seconds"]),
        },
        rid,
    )


if __name__ == "__main__":
    main()
