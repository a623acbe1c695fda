"""Inference-time defences: wrappers that return a hardened classifier."""

from sparring.defenses.inference.feature_squeezing import FeatureSqueezing, SqueezingResult
from sparring.defenses.inference.masking import RandomMasking
from sparring.defenses.inference.output_hardening import (
    HARDENING_NAMES,
    LabelOnly,
    RoundScores,
    TopKScores,
    harden,
    parse_hardening,
)
from sparring.defenses.inference.purification import Purification
from sparring.defenses.inference.strip import STRIP, FRRDetector, frr_threshold
from sparring.defenses.inference.transforms import (
    TRANSFORM_NAMES,
    BitDepth,
    GaussianNoise,
    JpegCompression,
    MedianSmoothing,
    parse_transform,
    transform_defence,
)

__all__ = [
    "HARDENING_NAMES",
    "STRIP",
    "TRANSFORM_NAMES",
    "BitDepth",
    "FRRDetector",
    "FeatureSqueezing",
    "GaussianNoise",
    "JpegCompression",
    "LabelOnly",
    "MedianSmoothing",
    "Purification",
    "RandomMasking",
    "RoundScores",
    "SqueezingResult",
    "TopKScores",
    "frr_threshold",
    "harden",
    "parse_hardening",
    "parse_transform",
    "transform_defence",
]
