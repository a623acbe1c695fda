"""Redundancy (issue 16): diverse members with human review, judged by the adaptive attack; partition ensembles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sparring.assess import assess, parse_config
from sparring.data import Dataset
from sparring.defenses.inference.redundancy import RedundantEnsemble, certified_poisons, partition_of
from sparring.models import TorchClassifier


def test_dpa_certifies_half_the_winning_margin_with_the_tie_break() -> None:
    votes = torch.tensor([[7, 3, 0], [5, 5, 0], [0, 5, 5], [2, 4, 4], [10, 0, 0]])
    # margins 4 -> 2; a tie won by the smaller class -> 0; a tie the larger class would lose -> 0;
    # 4 vs 4 won by class 1 -> 0; 10 vs 0 -> 5
    assert certified_poisons(votes).tolist() == [2, 0, 0, 0, 5]


def test_partitions_are_disjoint_stable_and_follow_the_content() -> None:
    x = torch.rand(200, 1, 4, 4)
    parts = partition_of(x, 5)
    assert parts.min() >= 0 and parts.max() < 5 and len(set(parts.tolist())) == 5
    assert torch.equal(parts[torch.arange(199, -1, -1)], partition_of(x.flip(0), 5))  # order does not matter


def test_members_that_disagree_send_the_input_to_review(
    digits_cnn: TorchClassifier, digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    _, test = digits_split
    x = test.x[:200]
    ensemble = RedundantEnsemble([digits_cnn, digits_mlp], agreement=1.0)
    disagree = digits_cnn.predict_labels(x) != digits_mlp.predict_labels(x)
    assert torch.equal(ensemble.review(x), disagree)
    noise = torch.rand(200, *x.shape[1:])
    assert ensemble.review(noise).float().mean() > ensemble.review(x).float().mean()  # off-distribution: more review


def test_partition_aggregation_lowers_badnets_and_the_ensemble_faces_the_adaptive_attack(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "data": {"dataset": "digits"},
        "model": {"epochs": 4},
        "redundancy": [
            {"attack": "partition", "members": ["mlp"], "partitions": 5, "epochs": 8, "defences": ["partition"]},
            {"attack": "evasion", "members": ["mlp", "knn"], "samples": 80, "steps": 10, "defences": ["ensemble"]},
        ],
    }
    report, _ = assess(parse_config(config), tmp_path / "out", log=lambda _m: None)
    s = report["scenarios"]
    single, dpa = s["redundancy.partition"], s["redundancy.partition+partition"]
    assert single["asr"] > 0.5 and dpa["asr"] < single["asr"] - 0.3  # one poison reaches at most one vote
    assert 0 < dpa["certified"]["1"] and dpa["certified"]["20"] <= dpa["certified"]["1"]
    ens = s["redundancy.evasion+ensemble"]
    assert ens["adaptive_robust_accuracy"] is not None
    assert ens["robust_accuracy"] <= min(ens["adaptive_robust_accuracy"], ens["transfer_robust_accuracy"])
    assert 0 <= ens["review_rate_clean"] <= 1 and ens["query_ms"] is not None
