"""Training-time defences: adversarial training, dissimilarity, robust aggregation, backdoor learning curves."""

from sparring.defenses.training.adversarial import AdversarialTraining
from sparring.defenses.training.aggregation import AGGREGATORS, CoordinateMedian, NormClipping, TrimmedMean
from sparring.defenses.training.dissimilarity import TeacherDissimilarity
from sparring.defenses.training.learning_curves import CurvePoint, LearningCurve, backdoor_learning_curve
from sparring.defenses.training.universal import UniversalAdversarialTraining, UniversalTrainResult

__all__ = [
    "AGGREGATORS",
    "AdversarialTraining",
    "CoordinateMedian",
    "CurvePoint",
    "LearningCurve",
    "NormClipping",
    "TeacherDissimilarity",
    "TrimmedMean",
    "UniversalAdversarialTraining",
    "UniversalTrainResult",
    "backdoor_learning_curve",
]
