"""The cost cut-off: a per-input budget calibrated on natural inputs, against sponge examples.

Shumailov et al. ("Sponge Examples: Energy-Latency Attacks on Neural Networks", IEEE EuroS&P
2021) recommend bounding the worst case: set a budget at a chosen percentile of the cost of
natural inputs, and when an input would exceed it, take the cheap path or refuse. For an
early-exit network (``cost="exits"``) the cheap path is the deepest exit the budget affords
(the network answers from it); on a zero-skipping accelerator (``cost="energy"``) the
input is refused once the energy spent so far, layer by layer, passes the budget (it is
charged the energy of the layers it ran). Either way the cap does not depend on the input,
so an attacker who knows it cannot push the cost past it: worst-case cost after is the cap
over any input. The price is the false-trigger rate (natural inputs cut) and the accuracy it
costs (an answer from a shallower exit, or a refusal counted as an error).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from sparring.attacks.availability.base import COSTS, Cost, EnergyCost, ExitCost, cost_for
from sparring.attacks.availability.cost import EnergyModel, HardwareModel
from sparring.errors import ConfigError, check_choice, check_positive_int
from sparring.models import Classifier, EarlyExitCNN, TorchClassifier
from sparring.params import Params


@dataclass
class CutoffOutcome:
    """Cost of each input under the cut-off, and whether the cut-off triggered for it."""

    cost: Tensor
    triggered: Tensor


class CostCutoff(Params):
    """Budget = the ``percentile`` of natural inputs' ``cost``; :meth:`fit` calibrates it.

    ``batch`` inputs share one read of the weights in the energy model (``cost="energy"``).
    """

    def __init__(self, percentile: float = 95.0, cost: str = "exits", batch: int = 1) -> None:
        if isinstance(percentile, bool) or not isinstance(percentile, int | float) or not 0 < percentile <= 100:
            raise ConfigError(f"percentile must be in (0, 100], got {percentile!r}")
        self.percentile = float(percentile)
        self.cost = check_choice("cost", cost, COSTS)
        self.batch = check_positive_int("batch", batch)
        self.budget: float | None = None
        self._classifier: Classifier | None = None

    def fit(self, classifier: Classifier, natural: Tensor) -> CostCutoff:
        """Set the budget from the cost of ``natural`` inputs on ``classifier``."""
        c = self._cost(classifier).measure(natural)
        self.budget = float(torch.quantile(c.double(), self.percentile / 100.0))
        self._classifier = classifier
        return self

    def _cost(self, classifier: Classifier) -> Cost:
        if self.cost == "energy":
            return EnergyCost(_module(classifier), EnergyModel(HardwareModel(batch=self.batch)))
        return cost_for(classifier, self.cost)

    def _fitted(self) -> tuple[Classifier, float]:
        if self.budget is None or self._classifier is None:
            raise ConfigError("CostCutoff is not calibrated: call fit(classifier, natural) first")
        return self._classifier, self.budget

    @property
    def max_exit(self) -> int:
        """For ``cost="exits"``: the deepest exit (0-based) within the budget (at least the first)."""
        clf, budget = self._fitted()
        net = ExitCost(_module(clf)).net
        cumulative = torch.tensor(net.block_macs, dtype=torch.float64).cumsum(0)
        return max(0, int((cumulative <= budget + 1e-9).sum()) - 1)

    def apply(self, x: Tensor) -> CutoffOutcome:
        """The cost of each input of ``x`` with the cut-off in place."""
        clf, budget = self._fitted()
        if self.cost == "exits":
            net = ExitCost(_module(clf)).net
            taken = net.exit_index(x)
            capped = taken.clamp(max=self.max_exit)
            return CutoffOutcome(net.macs(capped), taken > capped)
        cost = self._cost(clf)
        assert isinstance(cost, EnergyCost)
        energy = cost.energy.measure(_module(clf), x)
        dense = float(energy.dense_pj.sum())
        spent = energy.sparse_pj.cumsum(1) / dense  # in energy-ratio units
        over = spent > budget
        triggered = over.any(1)
        last = torch.full((len(x),), spent.shape[1] - 1, dtype=torch.long)
        first = torch.where(triggered, over.float().argmax(1), last)
        return CutoffOutcome(spent[torch.arange(len(x)), first], triggered)

    def wrap(self, classifier: Classifier) -> Classifier:
        """For ``cost="exits"``: the network capped at :attr:`max_exit` (answers from the cheap path)."""
        if self.cost != "exits":
            raise ConfigError("the energy cut-off refuses inputs and has no classifier form: use apply(x)")
        self._fitted()
        net = copy.deepcopy(_module(classifier))
        assert isinstance(net, EarlyExitCNN)
        net.max_exit = self.max_exit
        return TorchClassifier(net, classifier.input_shape, classifier.num_classes, bounds=classifier.bounds)

    def labels(self, x: Tensor, outcome: CutoffOutcome | None = None) -> Tensor:
        """Predicted labels under the cut-off; a refused input gets -1 (counted as an error).

        ``outcome`` is :meth:`apply` on the same ``x``, if already computed.
        """
        clf, _ = self._fitted()
        if self.cost == "exits":
            return self.wrap(clf).predict_labels(x)
        labels = clf.predict_labels(x)
        triggered = (outcome or self.apply(x)).triggered
        return torch.where(triggered, torch.full_like(labels, -1), labels)


def _module(classifier: Classifier) -> torch.nn.Module:
    if not isinstance(classifier, TorchClassifier):
        raise ConfigError(f"the cost cut-off needs a PyTorch model, got {type(classifier).__name__}")
    return classifier.model
