"""Redundancy on mnist5k: a vote of diverse members with human review, and Deep Partition Aggregation.

Runs the ``[[redundancy]]`` family (the same code the assessment runs) and writes, per scenario, the
clean accuracy, robust accuracy under the transfer attack, Square through the vote and the adaptive
attack, the review rates, and DPA's BadNets ASR and certified fractions.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch

from _common import emit, run_id
from sparring.assess import assess, parse_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config: dict[str, Any] = {
        "data": {"dataset": "mnist5k"},
        "model": {"epochs": 6},
        "redundancy": [
            {
                "attack": "evasion",
                "members": ["small_cnn", "mlp", "knn"],
                "eps": 0.1,
                "samples": args.samples,
                "max_queries": 300,
                "defences": ["ensemble"],
            },
            {
                "attack": "partition",
                "members": ["small_cnn"],
                "partitions": 10,
                "samples": args.samples,
                "defences": ["partition"],
            },
        ],
    }
    run = run_id()
    with tempfile.TemporaryDirectory() as tmp:
        report, _ = assess(parse_config(config), Path(tmp) / "out", log=lambda _m: None)
    keep = (
        "model",
        "clean_accuracy",
        "transfer_robust_accuracy",
        "square_robust_accuracy",
        "adaptive_robust_accuracy",
        "robust_accuracy",
        "review_rate_clean",
        "review_share_of_successes",
        "asr",
        "certified",
        "train_seconds",
        "query_ms",
        "wall_seconds",
    )
    for key, r in report["scenarios"].items():
        emit("redundancy", {"scenario": key, **{k: r[k] for k in keep if r.get(k) is not None}}, run)


if __name__ == "__main__":
    main()
