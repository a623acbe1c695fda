"""Training-time defences: adversarial training, dissimilarity, robust aggregation, backdoor learning curves."""

from sparring.defenses.training.adversarial import AdversarialTraining
from sparring.defenses.training.aggregation import AGGREGATORS, CoordinateMedian, NormClipping, TrimmedMean
from sparring.defenses.training.dissimilarity import TeacherDissimilarity
from sparring.defenses.training.learning_curves import CurvePoint, LearningCurve, backdoor_learning_curve

__all__ = [
    "AGGREGATORS",
    "AdversarialTraining",
    "CoordinateMedian",
    "CurvePoint",
    "LearningCurve",
    "NormClipping",
    "TeacherDissimilarity",
    "TrimmedMean",
    "backdoor_learning_curve",
]
