"""Training-set sanitisation: score and flag suspicious samples."""

from sparring.defenses.data.activation_clustering import ActivationClustering, ClassAnalysis
from sparring.defenses.data.autoencoder import AutoencoderDetector
from sparring.defenses.data.base import DataDetector, Detection
from sparring.defenses.data.knn import KNNLabelConsistency
from sparring.defenses.data.retrain import SanitiseResult, sanitise_and_retrain
from sparring.defenses.data.spectral import SpectralClass, SpectralSignatures

__all__ = [
    "ActivationClustering",
    "AutoencoderDetector",
    "ClassAnalysis",
    "DataDetector",
    "Detection",
    "KNNLabelConsistency",
    "SanitiseResult",
    "SpectralClass",
    "SpectralSignatures",
    "sanitise_and_retrain",
]
