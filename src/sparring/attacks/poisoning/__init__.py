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
from sparring.params import Params, Registry

#: Backdoors that poison the training data directly, by the name a config uses.
BACKDOOR_ATTACKS: Registry[Params] = Registry("backdoor attack")
BACKDOOR_ATTACKS.add("badnets", BadNets)
BACKDOOR_ATTACKS.add("blended", Blended)

#: Availability poisoning of the training set, by the name a config uses.
POISONING_ATTACKS: Registry[Params] = Registry("poisoning attack")
POISONING_ATTACKS.add("label_flip", RandomLabelFlip)
POISONING_ATTACKS.add("targeted_label_flip", TargetedLabelFlip)
POISONING_ATTACKS.add("loss_label_flip", LossLabelFlip)
POISONING_ATTACKS.add("gradient", GradientPoisoning)

#: Clean-label targeted poisoning, by the name a config uses.
CLEAN_LABEL_ATTACKS: Registry[Params] = Registry("clean-label attack")
CLEAN_LABEL_ATTACKS.add("feature_collision", FeatureCollision)
CLEAN_LABEL_ATTACKS.add("convex_polytope", ConvexPolytope)
CLEAN_LABEL_ATTACKS.add("bullseye_polytope", BullseyePolytope)

#: Malicious federated clients, by the name a config uses.
FEDERATED_ATTACKS: Registry[Params] = Registry("federated attack")
FEDERATED_ATTACKS.add("model_replacement", ModelReplacementClient)
FEDERATED_ATTACKS.add("label_flip", LabelFlipClient)

__all__ = [
    "BACKDOOR_ATTACKS",
    "CLEAN_LABEL_ATTACKS",
    "FEDERATED_ATTACKS",
    "LINEAR_MODELS",
    "POISONING_ATTACKS",
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
