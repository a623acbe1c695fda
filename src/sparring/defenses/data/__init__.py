"""Training-set sanitisation: score and flag suspicious samples."""

from sparring.defenses.data.activation_clustering import ActivationClustering, ClassAnalysis
from sparring.defenses.data.autoencoder import AutoencoderDetector
from sparring.defenses.data.base import DataDetector, Detection
from sparring.defenses.data.knn import KNNLabelConsistency
from sparring.defenses.data.retrain import SanitiseResult, sanitise_and_retrain
from sparring.defenses.data.spectral import SpectralClass, SpectralSignatures
from sparring.params import Registry

#: Training-set detectors by the name a config uses.
DATA_DEFENCES: Registry[DataDetector] = Registry("training-set detector")
DATA_DEFENCES.add("activation_clustering", ActivationClustering)
DATA_DEFENCES.add("spectral_signatures", SpectralSignatures)
DATA_DEFENCES.add("autoencoder", AutoencoderDetector)
DATA_DEFENCES.add("knn_label_consistency", KNNLabelConsistency)

__all__ = [
    "DATA_DEFENCES",
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
