"""LiRA: Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022.

The target's scaled confidence ``phi = log p_y - log(1 - p_y)`` on a sample is compared with
the same statistic of reference models that did not train on it (OUT) and, online, of those
that did (IN), each fitted by a Gaussian. Online, the score is the log-likelihood ratio
``log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)``; offline (no IN models), the one-sided
test ``(phi - mu_out) / s_out``. With few reference models the per-sample variances are
noisy, and the paper's fixed-variance option (one variance per side, pooled over all
samples) is the stronger choice; it is the default here. The paper's query augmentations
(flips and shifts of the input) are not used.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sparring.attacks.privacy.membership import MEMBERSHIP_ATTACKS, ReferenceAttack
from sparring.attacks.privacy.signals import logit_confidence, reference_signals
from sparring.errors import ConfigError

#: Floor of a standard deviation, so a degenerate (constant) reference statistic stays finite.
MIN_STD = 1e-6


def _masked_moments(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-column mean, unbiased variance and count of ``values[mask]`` (``[K, N]`` each)."""
    m = mask.to(values.dtype)
    count = m.sum(dim=0)
    mean = (values * m).sum(dim=0) / count.clamp_min(1)
    var = (((values - mean) ** 2) * m).sum(dim=0) / (count - 1).clamp_min(1)
    return mean, var, count


def _pooled_std(values: Tensor, mask: Tensor, mean: Tensor) -> Tensor:
    """One standard deviation of ``values[mask]`` around each column's ``mean``, pooled over all columns."""
    m = mask.to(values.dtype)
    dof = max(float(m.sum()) - float((m.sum(dim=0) > 0).sum()), 1.0)
    return torch.sqrt((((values - mean) ** 2) * m).sum() / dof).clamp_min(MIN_STD)


def _gaussian(values: Tensor, mask: Tensor, fixed_variance: bool, who: str, which: str) -> tuple[Tensor, Tensor]:
    """Per-column mean and standard deviation of ``values[mask]``.

    The deviation is pooled over all columns with ``fixed_variance``, or where a column has
    fewer than two values; a column with none raises, naming ``who`` and the ``which`` models missing.
    """
    mean, var, count = _masked_moments(values, mask)
    if bool((count == 0).any()):
        raise ConfigError(f"{who} needs at least one reference model that {which}")
    pooled = _pooled_std(values, mask, mean)
    std = pooled.expand_as(mean) if fixed_variance else torch.where(count >= 2, var.sqrt(), pooled)
    return mean, std.clamp_min(MIN_STD)


def _log_normal(x: Tensor, mu: Tensor, std: Tensor) -> Tensor:
    return -0.5 * ((x - mu) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)


def lira_scores(target: Tensor, reference: Tensor, keep: Tensor | None, fixed_variance: bool = True) -> Tensor:
    """LiRA scores from the target's statistic ``[N]`` and the reference models' ``[K, N]``.

    ``keep[k, i]`` (online) says reference ``k`` trained on sample ``i``; None means none
    did (offline). Per-sample variances need two models on that side; a side with fewer
    uses the pooled variance.
    """
    target, reference = target.to(torch.float64), reference.to(torch.float64)
    out_mask = torch.ones_like(reference, dtype=torch.bool) if keep is None else ~keep
    mu_out, std_out = _gaussian(reference, out_mask, fixed_variance, "LiRA", "did not train on each sample (OUT)")
    if keep is None:
        return (target - mu_out) / std_out
    mu_in, std_in = _gaussian(reference, keep, fixed_variance, "online LiRA", "trained on each sample (IN)")
    return _log_normal(target, mu_in, std_in) - _log_normal(target, mu_out, std_out)


class LiRA(ReferenceAttack):
    """LiRA (Carlini et al., IEEE S&P 2022): a Gaussian likelihood-ratio test against reference models.

    ``online`` uses reference models that trained on each scored sample (IN) beside those
    that did not (OUT); it needs ``keep`` from :meth:`fit_references`. ``fixed_variance``
    pools the variance over all samples (the paper's choice with few reference models).
    """

    def __init__(self, online: bool = False, fixed_variance: bool = True) -> None:
        super().__init__()
        self.online = online
        self.fixed_variance = fixed_variance

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """LiRA score per sample (float64); higher means more likely a member."""
        classifier, x, y = self._validated(x, y)
        if len(y) == 0:
            return torch.empty(0, dtype=torch.float64)
        keep = self._keep_for(len(y), self.online)
        target = logit_confidence(classifier.predict_scores(x), y)
        return lira_scores(
            target, reference_signals(self.references_, x, logit_confidence, y), keep, self.fixed_variance
        )


MEMBERSHIP_ATTACKS.add("lira", LiRA)
