"""Training-set sanitisation: score and flag suspicious samples."""

from sparring.defenses.data.activation_clustering import ActivationClustering, ClassAnalysis
from sparring.defenses.data.base import DataDetector, Detection
from sparring.defenses.data.retrain import SanitiseResult, sanitise_and_retrain

__all__ = [
    "ActivationClustering",
    "ClassAnalysis",
    "DataDetector",
    "Detection",
    "SanitiseResult",
    "sanitise_and_retrain",
]
