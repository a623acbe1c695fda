"""Training-time defences (adversarial training, DP-SGD, augmentation)."""

from sparring.defenses.training.adversarial import AdversarialTraining

__all__ = ["AdversarialTraining"]
