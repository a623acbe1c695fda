"""Training-data attacks: label flips, backdoors, clean-label poisoning."""

from sparring.attacks.poisoning.badnets import BadNets
from sparring.attacks.poisoning.blended import Blended
from sparring.attacks.poisoning.label_flip import LossLabelFlip, RandomLabelFlip, TargetedLabelFlip

__all__ = ["BadNets", "Blended", "LossLabelFlip", "RandomLabelFlip", "TargetedLabelFlip"]
