"""Inspection and repair of a trained model."""

from sparring.defenses.model.fine_pruning import FinePruning, FinePruningResult
from sparring.defenses.model.fine_tuning import FineTuning, RepairResult
from sparring.defenses.model.neural_cleanse import InspectionResult, NeuralCleanse, UnlearningResult, anomaly_index

__all__ = [
    "FinePruning",
    "FinePruningResult",
    "FineTuning",
    "InspectionResult",
    "NeuralCleanse",
    "RepairResult",
    "UnlearningResult",
    "anomaly_index",
]
