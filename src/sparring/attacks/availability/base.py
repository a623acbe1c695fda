"""What sponge attacks share: the cost they raise, its differentiable stand-in, and their result.

A cost maps inputs to a per-input figure that really depends on the input (never wall time
of a dense network): :class:`EnergyCost` is the modelled energy ratio on a zero-skipping
accelerator (:mod:`sparring.attacks.availability.cost`), :class:`ExitCost` the
multiply-accumulates an early-exit network executes. A black-box attacker sees only
:meth:`Cost.measure` (in the field, an energy meter or a timing side channel); a white-box
attacker also has :meth:`Cost.surrogate`, a differentiable figure that rises with the cost.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sparring.attacks.availability.cost import EnergyModel, density_surrogate, module_of
from sparring.errors import InputError, check_choice
from sparring.models import Classifier, EarlyExitCNN

#: Costs a sponge attack can raise, by name.
COSTS = ("energy", "exits")


class Cost(ABC):
    """A per-input cost of one model (higher is worse for the defender)."""

    #: Short name (``energy``, ``exits``) and the unit of :meth:`measure`.
    name: str
    unit: str

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        self.queries = 0

    @abstractmethod
    def _measure(self, x: Tensor) -> Tensor: ...

    def measure(self, x: Tensor) -> Tensor:
        """``[N]`` cost of each input (float64); counts one query per input."""
        self.queries += len(x)
        return self._measure(x)

    @abstractmethod
    def surrogate(self, x: Tensor) -> Tensor:
        """``[N]`` a differentiable figure that rises with the cost.

        Take input gradients with ``torch.autograd.grad``, which leaves the weights' ``.grad`` alone.
        """


class EnergyCost(Cost):
    """Energy with zero-skipping over energy without, on Shumailov et al.'s modelled ASIC."""

    name = "energy"
    unit = "energy ratio"

    def __init__(self, model: nn.Module, energy: EnergyModel | None = None) -> None:
        super().__init__(model)
        self.energy = energy or EnergyModel()
        self.energy.check(model)
        self._surrogate = density_surrogate(model)

    def _measure(self, x: Tensor) -> Tensor:
        return self.energy.measure(self.model, x).ratio

    def surrogate(self, x: Tensor) -> Tensor:
        return self._surrogate(x)


class ExitCost(Cost):
    """Multiply-accumulates an :class:`~sparring.models.EarlyExitCNN` executes per input.

    The surrogate is DeepSloth's (Hong et al., ICLR 2021): how close each internal exit's
    softmax is to uniform (minus the cross-entropy from the uniform distribution), so no
    internal exit is confident enough to let the input leave.
    """

    name = "exits"
    unit = "MACs executed"

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, EarlyExitCNN):
            raise InputError(f"the 'exits' cost needs an EarlyExitCNN, got {type(model).__name__}")
        super().__init__(model)
        self.net = model

    def _measure(self, x: Tensor) -> Tensor:
        return self.net.macs(self.net.exit_index(x))

    def surrogate(self, x: Tensor) -> Tensor:
        exits = self.net.exit_logits(x)[:-1]
        return sum((torch.log_softmax(z, 1).mean(1) for z in exits), torch.zeros(len(x)))


def cost_for(classifier: Classifier | nn.Module, kind: str) -> Cost:
    """The cost ``kind`` (``energy`` or ``exits``) of the model behind ``classifier``."""
    check_choice("cost", kind, COSTS)
    model = module_of(classifier, f"the {kind!r} sponge cost")
    return EnergyCost(model) if kind == "energy" else ExitCost(model)


@dataclass
class SpongeResult:
    """Sponge inputs and the cost of the natural inputs before and of the sponges after.

    ``cost_before`` is ``[N]`` over the natural inputs the attack started from (or was
    compared with), ``cost_after`` ``[M]`` over ``x_sponge``; ``queries`` counts the cost
    measurements (or forward passes) the attack made.
    """

    x_sponge: Tensor
    cost_before: Tensor
    cost_after: Tensor
    cost: str
    unit: str
    queries: int
    seconds: float

    @property
    def increase(self) -> float:
        """Mean sponge cost over mean natural cost, minus 1."""
        return float(self.cost_after.mean() / self.cost_before.mean() - 1.0)


class Timer:
    """Seconds since creation."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
