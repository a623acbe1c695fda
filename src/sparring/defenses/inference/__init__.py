"""Inference-time defences: wrappers that return a hardened classifier."""

from sparring.defenses.inference.output_hardening import (
    HARDENING_NAMES,
    LabelOnly,
    RoundScores,
    TopKScores,
    harden,
    parse_hardening,
)

__all__ = [
    "HARDENING_NAMES",
    "LabelOnly",
    "RoundScores",
    "TopKScores",
    "harden",
    "parse_hardening",
]
