"""Training-time defences (adversarial training, DP-SGD, augmentation)."""

from sparring.defenses.training.adversarial import AdversarialTraining
from sparring.defenses.training.dissimilarity import TeacherDissimilarity

__all__ = ["AdversarialTraining", "TeacherDissimilarity"]
