"""DP-SGD through Opacus on mnist5k: clean accuracy, the accountant's ε and the membership leak at ε = 1, 4, 8, ∞.

Setting: the benchmarks' mnist5k split (4,000 training / 1,000 test images, seed 0); zoo
small_cnn, Adam lr 1e-3, batch 64 (Poisson-sampled under DP), 8 epochs; DP-SGD through
Opacus' ``make_private_with_epsilon`` (gradients clipped at norm 1, δ = 1e-5 < 1/N); ε = ∞ is
the same training without DP. Each model is attacked by the loss threshold, offline RMIA and
offline LiRA (fixed variance) with the same 2 reference models (trained without DP like the
membership family does, on halves of the 500 held-out images set aside as population); 500
members vs 500 non-members. Each attack's scores give the threshold audit's ε̂ (Jagielski et
al., NeurIPS 2020; 95 % confidence, threshold picked on one half, bounded on the other, at the
model's δ, 1e-5 for the non-private one); ``eps_hat_max`` is the largest over the three
attacks and ``audit_violation`` flags ε̂ > the accountant's ε (must never be true).
No peer library: Opacus is the implementation, its own full-MNIST README is the reference
(94.6 / 96.8 / 97.1 % at ε 1.16 / 2.91 / 6.86 on 60,000 images).

Usage: ``python benchmarks/privacy_dp.py [--threads 1] [--epochs 8] [--eps 1,4,8]``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from _common import accuracy_of, emit, environment, run_id, split
from sparring.attacks.privacy import evaluate_membership
from sparring.attacks.privacy.audit import threshold_audit
from sparring.attacks.privacy.reference import MembershipSplit, ReferenceModels, random_halves, train_references
from sparring.defenses.training.dp_sgd import DPSGD
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--eps", default="1,4,8")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rid = run_id()
    train, test = split("mnist5k", 0.2, seed=0)
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, seed=0, progress=False)

    def make() -> nn.Module:
        return build("small_cnn", train.input_shape, train.num_classes, seed=0)

    emit("privacy_dp", {"benchmark": "privacy_dp", **environment(), "epochs": args.epochs, "train": len(train)}, rid)
    cache: dict[str, ReferenceModels] = {}

    def refs(sp: MembershipSplit) -> ReferenceModels:
        if "refs" not in cache:
            pool = test.subset(sp.population)
            cache["refs"] = train_references(make, pool, random_halves(2, len(pool), 0, size=len(train)), cfg)
        return cache["refs"]

    spent: float | None
    delta: float | None
    for eps in [*(float(e) for e in args.eps.split(",")), float("inf")]:
        if eps == float("inf"):
            result = fit(make(), train, cfg)
            model, seconds, spent, delta = result.model, result.seconds, None, None
        else:
            out = DPSGD(eps, delta=1e-5).train(make(), train, cfg)
            model, seconds, spent, delta = out.model, out.seconds, out.epsilon, out.delta
        clf = TorchClassifier(model, train.input_shape, train.num_classes)
        row: dict[str, object] = {
            "target_epsilon": eps if spent is not None else "inf (no DP)",
            "epsilon_spent": round(spent, 3) if spent is not None else None,
            "delta": delta,
            "clean_accuracy": round(accuracy_of(model, test.x, test.y), 4),
            "train_seconds": round(seconds, 1),
        }
        eps_hat = 0.0
        for attack in ("loss_threshold", "rmia", "lira"):
            r = evaluate_membership(clf, train, test, attack, seed=0, population=0.5, references=refs)
            row[f"{attack}_auc"] = round(r.roc.auc, 4)
            row[f"{attack}_tpr_at_1%_fpr"] = round(r.roc.tpr_at_1_fpr, 4)
            audit = threshold_audit(r.scores, r.is_member, delta if delta is not None else 1e-5, seed=0)
            row[f"{attack}_eps_hat"] = round(audit.epsilon, 3)
            eps_hat = max(eps_hat, audit.epsilon)
        row["eps_hat_max"] = round(eps_hat, 3)
        row["audit_violation"] = spent is not None and eps_hat > spent
        emit("privacy_dp", row, rid)


if __name__ == "__main__":
    main()
