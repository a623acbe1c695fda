"""Attribute inference on ``fair``: sparring's attacks beside ART's, on the same split, in one process.

Setting (fixed before any figure was seen): the ``fair`` built-in (statsmodels' survey,
6,366 respondents, label affairs > 0), split with test_fraction 0.2 (seed 0); target: zoo
``mlp``, 8 epochs, Adam lr 1e-3, batch 64 (the assessment's defaults). ``attribute_split``
(seed 0, auxiliary share 0.5): 1,000 training members are attacked, the attacker knows
half of the held-out records in full (637), the other 636 are the non-members. Each
sensitive column (religious, rate_marriage, children) is cut into two buckets near its
middle (``sensitive_column``, fitted on the attacker's records); every attack is scored on
that bucket.

- sparring: ``black_box`` (gradient boosting over known features, label and the model's
  scores), the same on a labels-only view of the model, ``loss`` (MAP over candidate values),
  ``gradient`` (white-box: smallest per-record parameter gradient), and the two baselines,
  imputation (the same boosting model without the model's output) and
  the majority bucket.
- ART 1.20: ``AttributeInferenceBlackBox`` (its default "nn" attack model, and "rf"), fitted on
  the attacker's records with the raw sensitive value and given the model's predicted labels
  (ART feeds a classifier's argmax, not its scores), and ``AttributeInferenceBaseline`` (no
  model output, no label). ART infers the raw value; it is bucketed like sparring's.

Usage: ``python benchmarks/privacy_attribute.py [--threads 1]``. Timings are noisy on a
shared machine.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from _common import accuracy_of, art_estimator, emit, environment, run_id, split, timed
from sparring.attacks.privacy.attribute import AttributeSplit, attribute_split, evaluate_attribute, sensitive_column
from sparring.data import FEATURES, SENSITIVE, Dataset
from sparring.models import Access, TorchClassifier, build
from sparring.train import TrainConfig, fit


def one_attribute(
    name: str, clf: TorchClassifier, model: torch.nn.Module, train: Dataset, held: Dataset, sp: AttributeSplit
) -> dict[str, Any]:
    """Every attack and baseline, sparring's and ART's, on one sensitive column of ``fair``."""
    from art.attacks.inference.attribute_inference import AttributeInferenceBaseline, AttributeInferenceBlackBox

    known, members, non_members = held.subset(sp.auxiliary), train.subset(sp.members), held.subset(sp.non_members)
    index = FEATURES["fair"].index(name)
    column = sensitive_column(known.x, index)
    row: dict[str, Any] = {"benchmark": "privacy_attribute", "attribute": name, "buckets": column.buckets}
    for attack, view in (
        ("black_box", clf),
        ("black_box_labels", clf.restrict(Access.LABELS)),
        ("loss", clf),
        ("gradient", clf),
    ):
        r = evaluate_attribute(view, train, held, index, attack.removesuffix("_labels"))
        row[f"sparring_{attack}"] = round(r.outcomes[r.attack].accuracy, 4)
        row[f"sparring_{attack}_non_members"] = round(r.outcomes[r.attack].accuracy_non_members, 4)
        row[f"sparring_{attack}_seconds"] = round(r.seconds, 3)
        if attack == "black_box":
            row["imputation"] = round(r.outcomes["imputation"].accuracy, 4)
            row["imputation_non_members"] = round(r.outcomes["imputation"].accuracy_non_members, 4)
            row["majority"] = round(r.outcomes["majority"].accuracy, 4)
            row["sparring_advantage"] = round(r.advantage(), 4)
    truth = column.bucket(members.x).numpy()
    truth_n = column.bucket(non_members.x).numpy()
    estimator = art_estimator(model, (8,), 2)
    x_known, y_known = known.x.numpy(), known.y.numpy()

    def art_pred(x: torch.Tensor) -> np.ndarray:
        return np.argmax(estimator.predict(x.numpy()), axis=1).reshape(-1, 1)

    def bucket(values: np.ndarray) -> np.ndarray:
        return np.searchsorted(column.thresholds.numpy(), values.astype(np.float32), side="left")

    without = [i for i in range(8) if i != index]
    for kind in ("nn", "rf"):
        np.random.seed(0)
        torch.manual_seed(0)

        def art_black_box(kind: str = kind) -> tuple[np.ndarray, np.ndarray]:
            attack = AttributeInferenceBlackBox(estimator, attack_model_type=kind, attack_feature=index)
            attack.fit(x_known, y_known)
            out = []
            for d in (members, non_members):
                out.append(attack.infer(d.x.numpy()[:, without], d.y.numpy(), pred=art_pred(d.x)))
            return out[0], out[1]

        (inf_m, inf_n), secs = timed(art_black_box)
        row[f"art_black_box_{kind}"] = round(float((bucket(inf_m) == truth).mean()), 4)
        row[f"art_black_box_{kind}_non_members"] = round(float((bucket(inf_n) == truth_n).mean()), 4)
        row[f"art_black_box_{kind}_seconds"] = round(secs, 3)

    def art_baseline() -> tuple[np.ndarray, np.ndarray]:
        base = AttributeInferenceBaseline(attack_feature=index)
        base.fit(x_known)
        return base.infer(members.x.numpy()[:, without]), base.infer(non_members.x.numpy()[:, without])

    np.random.seed(0)
    torch.manual_seed(0)
    (base_m, base_n), secs = timed(art_baseline)
    row["art_baseline"] = round(float((bucket(base_m) == truth).mean()), 4)
    row["art_baseline_non_members"] = round(float((bucket(base_n) == truth_n).mean()), 4)
    row["art_baseline_seconds"] = round(secs, 3)
    best_art = max(row["art_black_box_nn"], row["art_black_box_rf"])
    row["sparring_best_minus_art_best"] = round(
        max(row["sparring_black_box"], row["sparring_loss"], row["sparring_gradient"]) - best_art, 4
    )
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rid = run_id()
    train, held = split("fair", 0.2, seed=0)
    model = fit(build("mlp", (8,), 2, seed=0), train, TrainConfig(epochs=8, seed=0, progress=False)).model.eval()
    clf = TorchClassifier(model, (8,), 2)
    sp = attribute_split(len(train), len(held), 1000, 0.5, 0)
    known, members, non_members = held.subset(sp.auxiliary), train.subset(sp.members), held.subset(sp.non_members)
    emit(
        "privacy_attribute",
        {
            "benchmark": "privacy_attribute",
            **environment(),
            "model": "mlp fair e8 s0",
            "train_accuracy": round(accuracy_of(model, train.x, train.y), 4),
            "test_accuracy": round(accuracy_of(model, held.x, held.y), 4),
            "members": len(members),
            "non_members": len(non_members),
            "attacker_records": len(known),
        },
        rid,
    )
    for name in SENSITIVE["fair"]:
        emit("privacy_attribute", one_attribute(name, clf, model, train, held, sp), rid)


if __name__ == "__main__":
    main()
