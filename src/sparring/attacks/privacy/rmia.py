"""RMIA: Zarifzadeh et al., "Low-Cost High-Power Membership Inference Attacks", ICML 2024.

A sample ``x`` is scored by how many population samples ``z`` it dominates:
``LR(x, z) = (p(x | target) / p(x)) / (p(z | target) / p(z))`` and the score is the share of
``z`` with ``LR(x, z) >= gamma``. ``p(. | model)`` is the probability the model gives the true
class; ``p(z)`` averages the reference models. Offline, no reference model trained on ``x``,
so ``p(x)`` is approximated from the OUT average as ``((1 + a) * p_out(x) + (1 - a)) / 2``
(the paper's linear approximation; ``a`` is a setting, 0.3 by default, not fitted here).
Online, half of the reference models trained on each scored sample, and ``p(x)`` is the plain
average over all of them (IN and OUT), with no approximation.

For a fixed population the score is a non-decreasing step function of
``p(x | target) / p(x)``; ties between samples that dominate the same number of ``z`` are
broken by that ratio itself (a term below one step), which changes no ordering the share
makes and keeps the ROC resolvable at low false-positive rates. ``gamma`` therefore shifts
only the hard decision, not the ROC.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparring.attacks.privacy.membership import MEMBERSHIP_ATTACKS, ReferenceAttack
from sparring.attacks.privacy.signals import reference_signals, true_class_probability
from sparring.errors import ConfigError, InputError

#: Floor of a probability in a ratio.
MIN_P = 1e-30


def rmia_scores(
    target_x: Tensor,
    reference_x: Tensor,
    target_z: Tensor,
    reference_z: Tensor,
    a: float = 0.3,
    gamma: float = 1.0,
    online: bool = False,
) -> Tensor:
    """RMIA scores from true-class probabilities.

    Target ``[N]`` and references ``[K, N]`` on the scored samples (all OUT offline; half IN
    for each sample when ``online``), target ``[M]`` and references ``[K, M]`` on the population.
    """
    if reference_x.shape[0] < 1 or target_z.numel() < 1:
        raise InputError("RMIA needs at least one reference model and one population sample")
    mean_x = reference_x.to(torch.float64).mean(dim=0)
    p_x = mean_x if online else 0.5 * ((1.0 + a) * mean_x + (1.0 - a))
    ratio_x = target_x.to(torch.float64) / p_x.clamp_min(MIN_P)
    ratio_z = target_z.to(torch.float64) / reference_z.to(torch.float64).mean(dim=0).clamp_min(MIN_P)
    sorted_z, _ = torch.sort(ratio_z)
    dominated = torch.searchsorted(sorted_z, ratio_x / gamma, right=True).to(torch.float64)
    tie_break = torch.sigmoid(torch.log(ratio_x.clamp_min(MIN_P)))  # in (0, 1): within one step
    return (dominated + tie_break) / (len(sorted_z) + 1)


class RMIA(ReferenceAttack):
    """RMIA (Zarifzadeh et al., ICML 2024): pairwise likelihood ratios against population samples.

    Offline, works with one to a few reference models; ``a`` sets the offline approximation of
    ``p(x)``. ``online`` needs ``keep`` from :meth:`fit_references` (at least one IN and one
    OUT model per scored sample). ``gamma`` is the threshold on each pairwise ratio. Needs the
    population from :meth:`fit_references` (data neither the target nor the scored set contains).
    """

    def __init__(self, a: float = 0.3, gamma: float = 1.0, online: bool = False) -> None:
        super().__init__()
        if not 0.0 <= a <= 1.0:
            raise ConfigError(f"RMIA's a must be in [0, 1], got {a}")
        if not gamma > 0:
            raise ConfigError(f"RMIA's gamma must be > 0, got {gamma}")
        self.a = a
        self.gamma = gamma
        self.online = online

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """RMIA score per sample (float64, in (0, 1)); higher means more likely a member."""
        classifier, x, y = self._validated(x, y)
        if len(y) == 0:
            return torch.empty(0, dtype=torch.float64)
        population = self.population_
        if population is None or len(population) == 0:
            raise ConfigError("RMIA needs population samples: call fit_references(..., population=...)")
        keep = self._keep_for(len(y), self.online)
        if keep is not None and not bool((keep.any(dim=0) & (~keep).any(dim=0)).all()):
            raise ConfigError("online RMIA needs, for every scored sample, a reference model IN and one OUT")
        target_x = true_class_probability(classifier.predict_scores(x), y)
        target_z = true_class_probability(classifier.predict_scores(population.x), population.y)
        ref_x = reference_signals(self.references_, x, true_class_probability, y)
        ref_z = reference_signals(self.references_, population.x, true_class_probability, population.y)
        return rmia_scores(target_x, ref_x, target_z, ref_z, self.a, self.gamma, self.online)


MEMBERSHIP_ATTACKS.add("rmia", RMIA)
