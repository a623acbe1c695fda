"""Membership inference: tell whether a sample was in the model's training set.

The verb is ``attack.fit(classifier, train=None)`` then ``attack.score(x, y)`` (higher =
more likely a member); :func:`evaluate_membership` runs an attack on a balanced member /
non-member set and reports the ROC with TPR at 0.1 % and 1 % FPR and AUC (the protocol of
Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022).

Both attacks here are those of Yeom, Giacomelli, Fredrikson and Jha, "Privacy Risk in
Machine Learning: Analyzing the Connection to Overfitting", IEEE CSF 2018: the loss
threshold attack (needs scores) and the gap attack (needs labels only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from sparring.data import Dataset
from sparring.errors import AccessError, ConfigError, InputError, check_positive_int
from sparring.metrics import ROC, roc
from sparring.models import Access, Classifier, check_batch, check_labels, describe_access
from sparring.params import Params, Registry

#: Smallest probability used inside a logarithm, so rounded or zeroed scores give finite losses.
MIN_PROBABILITY = 1e-12

#: A score row whose sum is within this of 1 is treated as a full probability vector.
_SUM_TOLERANCE = 1e-4


def cross_entropy_from_scores(scores: Tensor, y: Tensor) -> Tensor:
    """Per-sample cross-entropy ``-log p_y`` of probability rows ``scores`` at labels ``y``, in float64.

    For rows that sum to one, ``-log p_y`` is computed as ``log1p(sum_{j != y} p_j / p_y)``,
    which keeps the resolution of the small losses of confidently classified samples (where
    ``p_y`` rounds to 1.0 in float32 but the other classes' probabilities do not vanish);
    this is the same concern as the stable logit scaling of Carlini et al. (S&P 2022).
    Rows that do not sum to one (e.g. scores zeroed or rounded by an output defence) use
    ``-log p_y`` as given. ``p_y`` is clamped to :data:`MIN_PROBABILITY`, so the loss is
    always finite.
    """
    p = scores.detach().to(torch.float64)
    p_y = p.gather(1, y.long().view(-1, 1)).squeeze(1)
    total = p.sum(dim=1)
    others = (total - p_y).clamp_min(0.0)
    p_y_safe = p_y.clamp_min(MIN_PROBABILITY)
    stable = torch.log1p(others / p_y_safe)
    plain = -torch.log(p_y_safe)
    normalised = (total - 1.0).abs() <= _SUM_TOLERANCE
    return torch.where(normalised, stable, plain)


class MembershipAttack(Params):
    """Base of membership attacks: ``fit`` checks access and stores the classifier, ``score`` rates samples.

    ``requires`` names the access an attack needs; :meth:`fit` raises
    :class:`~sparring.errors.AccessError` naming what is missing before any query is made.
    ``threshold_`` (set by :meth:`fit` when it is given the training set, or fixed by the
    attack) turns scores into a hard decision via :meth:`predict`.
    """

    requires: ClassVar[Access] = Access.SCORES

    classifier_: Classifier | None
    threshold_: float | None

    def __init__(self) -> None:
        self.classifier_ = None
        self.threshold_ = None

    def fit(self, classifier: Classifier, train: Dataset | None = None) -> MembershipAttack:
        """Check that ``classifier`` grants :attr:`requires` and keep it for :meth:`score`."""
        classifier.require(self.requires, type(self).__name__)
        self.classifier_ = classifier
        return self

    def _fitted(self) -> Classifier:
        if self.classifier_ is None:
            raise ConfigError(f"{type(self).__name__} is not fitted: call fit(classifier) before score()")
        return self.classifier_

    def _validated(self, x: Tensor, y: Tensor) -> tuple[Classifier, Tensor, Tensor]:
        classifier = self._fitted()
        x = check_batch(x, classifier.input_shape)
        return classifier, x, check_labels(y, len(x), classifier.num_classes)

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """Membership score per sample, shape ``[N]`` (float64); higher means more likely a member."""
        raise NotImplementedError

    def predict(self, x: Tensor, y: Tensor) -> Tensor:
        """Hard member (True) / non-member decision per sample from ``threshold_``."""
        if self.threshold_ is None:
            raise ConfigError(
                f"{type(self).__name__} has no decision threshold: call fit(classifier, train) with the training set"
            )
        return self.score(x, y) >= self._score_threshold(self.threshold_)

    def _score_threshold(self, threshold: float) -> float:
        return threshold


class LossThreshold(MembershipAttack):
    """Loss threshold attack (Yeom et al., IEEE CSF 2018): members have lower loss.

    The score is the negative cross-entropy of the classifier's scores at the true label
    (see :func:`cross_entropy_from_scores`). Given the training set, :meth:`fit` sets
    ``threshold_`` to the mean training loss, Yeom et al.'s rule: a sample whose loss is at
    most that mean is called a member (:meth:`predict`).
    """

    requires: ClassVar[Access] = Access.SCORES

    def fit(self, classifier: Classifier, train: Dataset | None = None) -> LossThreshold:
        """Check score access, keep ``classifier``; with ``train``, set ``threshold_`` to its mean loss."""
        super().fit(classifier, train)
        self.threshold_ = None
        if train is not None:
            if len(train) == 0:
                raise InputError("LossThreshold.fit: the training set is empty")
            self.threshold_ = float(-self.score(train.x, train.y).mean())
        return self

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """Negative cross-entropy per sample (float64, finite); higher means more likely a member."""
        classifier, x, y = self._validated(x, y)
        if len(y) == 0:
            return torch.empty(0, dtype=torch.float64)
        return -cross_entropy_from_scores(classifier.predict_scores(x), y)

    def _score_threshold(self, threshold: float) -> float:
        # Member iff loss <= threshold, i.e. score = -loss >= -threshold.
        return -threshold


class LabelOnlyGap(MembershipAttack):
    """Gap attack (Yeom et al., IEEE CSF 2018): a sample is a member iff it is classified correctly.

    Needs labels only. Its advantage equals the gap between training and test accuracy; the
    score is 1.0 (correct) or 0.0 (wrong), so its ROC has a single operating point.
    ``threshold_`` is fixed at 0.5; ``train`` is accepted for a uniform interface and unused.
    """

    requires: ClassVar[Access] = Access.LABELS

    def fit(self, classifier: Classifier, train: Dataset | None = None) -> LabelOnlyGap:
        """Check label access and keep ``classifier``."""
        super().fit(classifier, train)
        self.threshold_ = 0.5
        return self

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """1.0 where the predicted label equals ``y``, else 0.0 (float64)."""
        classifier, x, y = self._validated(x, y)
        if len(y) == 0:
            return torch.empty(0, dtype=torch.float64)
        return (classifier.predict_labels(x) == y).to(torch.float64)


#: Membership attacks by the name an assessment config uses.
MEMBERSHIP_ATTACKS: Registry[MembershipAttack] = Registry("membership attack")
MEMBERSHIP_ATTACKS.add("loss_threshold", LossThreshold)
MEMBERSHIP_ATTACKS.add("gap", LabelOnlyGap)


@dataclass
class MembershipResult:
    """Outcome of :func:`evaluate_membership` on a balanced member / non-member set.

    ``attack`` is the attack that ran, ``requested`` the one asked for; they differ only when
    the classifier lacked the requested attack's access and a weaker attack was used, and
    ``fallback_reason`` then says why. ``queries`` counts samples sent to the classifier.
    ``scores`` and ``is_member`` hold the per-sample scores (members first) behind ``roc``.
    """

    attack: str
    requested: str
    fallback_reason: str | None
    roc: ROC
    n_members: int
    n_non_members: int
    seconds: float
    queries: int
    scores: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.float64), repr=False)
    is_member: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.bool), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Figures for a report: the ROC summary plus what ran and what it cost."""
        return {
            "attack": self.attack,
            "requested": self.requested,
            "fallback_reason": self.fallback_reason,
            **self.roc.as_dict(),
            "n_members": self.n_members,
            "n_non_members": self.n_non_members,
            "seconds": self.seconds,
            "queries": self.queries,
        }


def _resolve_attack(classifier: Classifier, attack: str) -> tuple[str, str | None]:
    """The attack to run on ``classifier`` for the requested name, and why it differs if it does."""
    if attack not in MEMBERSHIP_ATTACKS:
        raise ConfigError(f"unknown membership attack {attack!r}; valid attacks: {', '.join(MEMBERSHIP_ATTACKS)}")
    cls = MEMBERSHIP_ATTACKS[attack]
    if cls is LossThreshold and cls.requires not in classifier.access:
        if LabelOnlyGap.requires not in classifier.access:
            raise AccessError(
                f"membership attack {attack!r} needs scores access (or labels, for the label-only gap attack), "
                f"but this classifier only exposes {describe_access(classifier.access)}"
            )
        reason = (
            f"classifier exposes only {describe_access(classifier.access)}, so the loss attack cannot run; "
            "used the label-only gap attack"
        )
        return "gap", reason
    classifier.require(cls.requires, cls.__name__)
    return attack, None


def evaluate_membership(
    classifier: Classifier,
    members: Dataset,
    non_members: Dataset,
    attack: str = "loss_threshold",
    n: int | None = None,
    seed: int = 0,
) -> MembershipResult:
    """Run a membership attack on a balanced set and return its ROC.

    Draws ``min(n, len(members), len(non_members))`` samples from each side with a generator
    seeded by ``seed`` (all of the smaller side when ``n`` is None), scores them and computes
    the ROC (AUC, TPR at 0.1 % and 1 % FPR). If the loss attack is asked for but the
    classifier exposes only labels, the label-only gap attack runs instead and the result
    says so in ``fallback_reason``. An unknown ``attack`` raises
    :class:`~sparring.errors.ConfigError` listing the valid names; missing access that no
    fallback covers raises :class:`~sparring.errors.AccessError`.
    """
    ran, reason = _resolve_attack(classifier, attack)
    if n is not None:
        check_positive_int("n", n)
    k = min(len(members), len(non_members))
    if n is not None:
        k = min(k, n)
    if k == 0:
        raise InputError(
            f"membership evaluation needs members and non-members, got {len(members)} and {len(non_members)}"
        )
    g = torch.Generator().manual_seed(seed)
    member_idx = torch.randperm(len(members), generator=g)[:k]
    non_member_idx = torch.randperm(len(non_members), generator=g)[:k]
    x = torch.cat([members.x[member_idx], non_members.x[non_member_idx]])
    y = torch.cat([members.y[member_idx], non_members.y[non_member_idx]])
    is_member = torch.cat([torch.ones(k, dtype=torch.bool), torch.zeros(k, dtype=torch.bool)])

    q0, t0 = classifier.queries, time.perf_counter()
    runner = MEMBERSHIP_ATTACKS[ran]().fit(classifier)
    scores = runner.score(x, y)
    seconds = time.perf_counter() - t0
    return MembershipResult(
        attack=ran,
        requested=attack,
        fallback_reason=reason,
        roc=roc(scores.numpy(), is_member.numpy()),
        n_members=k,
        n_non_members=k,
        seconds=seconds,
        queries=classifier.queries - q0,
        scores=scores,
        is_member=is_member,
    )
