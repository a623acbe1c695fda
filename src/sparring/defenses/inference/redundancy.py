"""Redundant, diverse models with a human in the loop, and partition ensembles against poisoning.

:class:`RedundantEnsemble` joins diverse members (a CNN, an MLP, a scikit-learn model ...)
by majority vote; when the majority's share of the votes falls below ``agreement``, the
input is routed to human review instead of answered (the BSI guideline's redundancy with a
human in the loop). Its differentiable view is the log of the differentiable members' mean
probabilities, so an adaptive attacker can descend the sum of their losses (He et al.,
"Adversarial Example Defenses: Ensembles of Weak Defenses are not Strong", WOOT 2017) — a
defence judged without that attack is not judged.

:func:`partition_members` and :func:`certified_poisons` implement Deep Partition
Aggregation (Levine & Feizi, ICLR 2021): ``k`` members trained on hash-disjoint partitions of
the training set; a poisoned sample lands in one partition, so it can change at most one vote,
and a prediction whose winning margin is ``m`` votes survives ``m // 2`` poisoned samples
(ties break to the smaller class, which costs one vote when the runner-up is smaller).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sparring.data import Dataset
from sparring.errors import ConfigError, check_fraction
from sparring.models import Access, Classifier


class RedundantEnsemble(Classifier):
    """Majority vote of diverse ``members``; :meth:`review` flags inputs whose majority share is below ``agreement``.

    Access is what every member grants (labels at least; scores if all give scores;
    gradients through the members that have them, see :meth:`_logits`).
    """

    def __init__(self, members: Sequence[Classifier], agreement: float = 1.0) -> None:
        if len(members) < 2:
            raise ConfigError(f"a redundant ensemble needs at least 2 members, got {len(members)}")
        first = members[0]
        for m in members[1:]:
            if m.input_shape != first.input_shape or m.num_classes != first.num_classes:
                raise ConfigError("ensemble members must share input shape and number of classes")
        self.members = list(members)
        self.agreement = check_fraction("agreement", agreement)
        common = Access.LABELS
        if all(Access.SCORES in m.access for m in members):
            common |= Access.SCORES
        self.differentiable = [m for m in members if Access.GRADIENTS in m.access]
        if self.differentiable:
            common |= Access.GRADIENTS
        super().__init__(
            input_shape=first.input_shape, num_classes=first.num_classes, access=common, bounds=first.bounds
        )

    def votes(self, x: Tensor) -> Tensor:
        """Vote counts per class, ``[N, num_classes]``."""
        labels = torch.stack([m.predict_labels(x) for m in self.members], dim=1)
        return torch.nn.functional.one_hot(labels, self.num_classes).sum(dim=1)

    def review(self, x: Tensor) -> Tensor:
        """True where the majority holds less than ``agreement`` of the votes: a person decides."""
        votes = self.votes(x)
        return votes.max(dim=1).values.float() / len(self.members) < self.agreement - 1e-9

    def _labels(self, x: Tensor) -> Tensor:
        return self.votes(x).argmax(dim=1)  # ties go to the smaller class

    def _scores(self, x: Tensor) -> Tensor:
        return torch.stack([m.predict_scores(x) for m in self.members]).mean(dim=0)

    def _logits(self, x: Tensor) -> Tensor:
        """Log of the differentiable members' mean probabilities (the adaptive attacker's target)."""
        probs = torch.stack([torch.softmax(m.logits(x), dim=1) for m in self.differentiable]).mean(dim=0)
        return torch.log(probs.clamp_min(1e-12))


def partition_of(x: Tensor, k: int) -> Tensor:
    """Each sample's partition: a hash of its bytes modulo ``k`` (stable across runs and orderings)."""
    out = []
    for row in x.detach().cpu().contiguous():
        digest = hashlib.sha256(row.numpy().tobytes()).digest()
        out.append(int.from_bytes(digest[:8], "big") % k)
    return torch.tensor(out, dtype=torch.long)


def partition_members(
    train: Dataset, k: int, fit_member: Callable[[Dataset, int], Classifier]
) -> tuple[list[Classifier], Tensor]:
    """``k`` members, member ``i`` trained by ``fit_member(part_i, i)`` on the samples hashed to ``i``."""
    if k < 2:
        raise ConfigError(f"a partition ensemble needs k >= 2 partitions, got {k}")
    parts = partition_of(train.x, k)
    members = []
    for i in range(k):
        index = torch.nonzero(parts == i).flatten()
        if len(index) == 0:
            raise ConfigError(f"partition {i} of {k} is empty: use fewer partitions for {len(train)} samples")
        members.append(fit_member(train.subset(index, f"{train.name}-part{i}"), i))
    return members, parts


def certified_poisons(votes: Tensor) -> Tensor:
    """Per input, the number of poisoned training samples its vote certainly survives (DPA's bound)."""
    top = votes.argmax(dim=1)
    n_top = votes.gather(1, top[:, None]).squeeze(1)
    rest = votes.clone()
    rest.scatter_(1, top[:, None], -1)
    second = rest.argmax(dim=1)
    n_second = rest.gather(1, second[:, None]).squeeze(1)
    margin = n_top - n_second - (second < top).long()  # the tie-break to the smaller class costs a vote
    return torch.div(margin, 2, rounding_mode="floor").clamp_min(0)
