"""Training-data attacks: label flips, backdoors, clean-label poisoning."""

from sparring.attacks.poisoning.badnets import BadNets
from sparring.attacks.poisoning.label_flip import RandomLabelFlip

__all__ = ["BadNets", "RandomLabelFlip"]
