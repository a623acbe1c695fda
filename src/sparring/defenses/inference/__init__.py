"""Inference-time defences: ``wrap(classifier) -> Classifier``, and input detectors (fit, score, detect)."""

from sparring.defenses.inference.ablation import DerandomizedSmoothing, SmoothedClassifier
from sparring.defenses.inference.detector import Detector, threshold_at
from sparring.defenses.inference.feature_squeezing import FeatureSqueezing, SqueezingResult
from sparring.defenses.inference.masking import RandomMasking
from sparring.defenses.inference.output_hardening import (
    HARDENING,
    HARDENING_NAMES,
    LabelOnly,
    OutputHardening,
    ReverseSigmoid,
    RoundScores,
    TopKScores,
    harden,
)
from sparring.defenses.inference.purification import Purification
from sparring.defenses.inference.strip import STRIP
from sparring.defenses.inference.transforms import (
    TRANSFORM_NAMES,
    TRANSFORMS,
    BitDepth,
    GaussianNoise,
    JpegCompression,
    MedianSmoothing,
    parse_transform,
    transform_defence,
)
from sparring.params import Registry

#: Input detectors by the name a config uses.
DETECTORS: Registry[Detector] = Registry("detector")
DETECTORS.add("feature_squeezing", FeatureSqueezing)
DETECTORS.add("strip", STRIP)
DETECTORS.add("random_masking", RandomMasking)

__all__ = [
    "DETECTORS",
    "HARDENING",
    "HARDENING_NAMES",
    "STRIP",
    "TRANSFORMS",
    "TRANSFORM_NAMES",
    "BitDepth",
    "DerandomizedSmoothing",
    "Detector",
    "FeatureSqueezing",
    "GaussianNoise",
    "JpegCompression",
    "LabelOnly",
    "MedianSmoothing",
    "OutputHardening",
    "Purification",
    "RandomMasking",
    "ReverseSigmoid",
    "RoundScores",
    "SmoothedClassifier",
    "SqueezingResult",
    "TopKScores",
    "harden",
    "parse_transform",
    "threshold_at",
    "transform_defence",
]
