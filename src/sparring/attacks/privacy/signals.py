"""The per-sample statistics membership attacks compare: ``p_y`` (RMIA) and LiRA's scaled confidence."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sparring.attacks.privacy.membership import MIN_PROBABILITY, cross_entropy_from_scores
from sparring.models import Classifier


def true_class_probability(scores: Tensor, y: Tensor) -> Tensor:
    """``p_y`` per sample in float64, from :func:`cross_entropy_from_scores` (same stable arithmetic)."""
    return torch.exp(-cross_entropy_from_scores(scores, y))


def logit_confidence(scores: Tensor, y: Tensor) -> Tensor:
    """``log p_y - log(sum_{j != y} p_j)`` per sample in float64: LiRA's scaled confidence (Carlini et al.).

    Both logarithms are taken from the probabilities clamped at
    :data:`~sparring.attacks.privacy.membership.MIN_PROBABILITY`, so the value is finite
    for rounded or zeroed scores.
    """
    p = scores.detach().to(torch.float64)
    others = (p.sum(dim=1) - p.gather(1, y.long().view(-1, 1)).squeeze(1)).clamp_min(MIN_PROBABILITY)
    return -cross_entropy_from_scores(scores, y) - torch.log(others)


def reference_signals(
    references: Sequence[Classifier], x: Tensor, signal: Callable[[Tensor, Tensor], Tensor], y: Tensor
) -> Tensor:
    """``[K, N]``: ``signal(scores, y)`` of each reference classifier on ``x``."""
    if len(x) == 0:
        return torch.empty(len(references), 0, dtype=torch.float64)
    return torch.stack([signal(ref.predict_scores(x), y) for ref in references])
