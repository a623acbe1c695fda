"""Availability attacks: sponge examples and sponge poisoning, measured by costs that depend on the input.

Sponge examples at test time (Shumailov et al., IEEE EuroS&P 2021), sponge poisoning at
training time (Cinà et al., 2022).
"""

from sparring.attacks.availability.base import COSTS, Cost, EnergyCost, ExitCost, SpongeResult, cost_for
from sparring.attacks.availability.cost import (
    EnergyModel,
    EnergyReport,
    HardwareModel,
    UnsupportedLayerError,
    density_surrogate,
)
from sparring.attacks.availability.genetic import SpongeGA
from sparring.attacks.availability.gradient import SpongeGradient
from sparring.attacks.availability.poisoning import SpongePoisoning
from sparring.attacks.availability.uniform import UniformBaseline

__all__ = [
    "COSTS",
    "Cost",
    "EnergyCost",
    "EnergyModel",
    "EnergyReport",
    "ExitCost",
    "HardwareModel",
    "SpongeGA",
    "SpongeGradient",
    "SpongePoisoning",
    "SpongeResult",
    "UniformBaseline",
    "UnsupportedLayerError",
    "cost_for",
    "density_surrogate",
]
