"""Training-data attacks: label flips, gradient poisoning, backdoors, clean-label and federated poisoning."""

from sparring.attacks.poisoning.badnets import BadNets
from sparring.attacks.poisoning.blended import Blended
from sparring.attacks.poisoning.clean_label import (
    BullseyePolytope,
    CleanLabelResult,
    ConvexPolytope,
    FeatureCollision,
    evaluate_clean_label,
)
from sparring.attacks.poisoning.federated import LabelFlipClient, ModelReplacementClient
from sparring.attacks.poisoning.gradient import LINEAR_MODELS, GradientPoisoning, RandomFlipCopies, fit_linear
from sparring.attacks.poisoning.hidden_trigger import HiddenTrigger, HiddenTriggerResult, evaluate_hidden_trigger
from sparring.attacks.poisoning.label_flip import LossLabelFlip, RandomLabelFlip, TargetedLabelFlip
from sparring.attacks.poisoning.teacher import TeacherBackdoor, TeacherBackdoorResult, backdoored_teacher

__all__ = [
    "LINEAR_MODELS",
    "BadNets",
    "Blended",
    "BullseyePolytope",
    "CleanLabelResult",
    "ConvexPolytope",
    "FeatureCollision",
    "GradientPoisoning",
    "HiddenTrigger",
    "HiddenTriggerResult",
    "LabelFlipClient",
    "LossLabelFlip",
    "ModelReplacementClient",
    "RandomFlipCopies",
    "RandomLabelFlip",
    "TargetedLabelFlip",
    "TeacherBackdoor",
    "TeacherBackdoorResult",
    "backdoored_teacher",
    "evaluate_clean_label",
    "evaluate_hidden_trigger",
    "fit_linear",
]
