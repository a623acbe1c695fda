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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import AccessError, ConfigError, InputError
from sparring.metrics import ROC, roc
from sparring.models import Access, Classifier, TorchClassifier, check_batch, check_labels, describe_access
from sparring.params import Params, Registry

if TYPE_CHECKING:
    from sparring.attacks.privacy.reference import MembershipSplit, ReferenceModels

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


class ReferenceAttack(MembershipAttack):
    """Base of attacks that compare the target with reference models (LiRA, RMIA; see ``reference.py``).

    :meth:`fit_references` gives the reference classifiers (each behind the same output
    hardening as the target, if any), ``keep`` (``[K, N]``: reference ``k`` trained on the
    ``i``-th sample :meth:`score` will be given; None when no reference saw any of them, the
    offline setting), ``population`` (data the target never saw) and ``population_keep``
    (``[K, len(population)]``: which population samples each reference model trained on).
    """

    requires: ClassVar[Access] = Access.SCORES

    references_: list[Classifier]
    keep_: Tensor | None
    population_: Dataset | None
    population_keep_: Tensor | None

    def __init__(self) -> None:
        super().__init__()
        self.references_ = []
        self.keep_ = None
        self.population_ = None
        self.population_keep_ = None

    def fit_references(
        self,
        references: Sequence[Classifier],
        keep: Tensor | None = None,
        population: Dataset | None = None,
        population_keep: Tensor | None = None,
    ) -> ReferenceAttack:
        """Keep the reference classifiers, who saw which scored sample, the population and who saw which of it."""
        if not references:
            raise ConfigError(f"{type(self).__name__} needs at least one reference model")
        for ref in references:
            ref.require(Access.SCORES, f"{type(self).__name__}'s reference model")
        if keep is not None and keep.shape[0] != len(references):
            raise InputError(f"keep has {keep.shape[0]} rows for {len(references)} reference models")
        self.references_ = list(references)
        self.keep_ = keep
        self.population_ = population
        self.population_keep_ = population_keep
        return self

    def _keep_for(self, n: int, needed: bool) -> Tensor | None:
        """``keep`` checked against ``n`` scored samples; None (offline) unless ``needed``."""
        if not needed:
            return None
        if self.keep_ is None:
            raise ConfigError(f"{type(self).__name__} needs keep (which reference model saw which sample)")
        if self.keep_.shape[1] != n:
            raise InputError(f"keep covers {self.keep_.shape[1]} samples, score() was given {n}")
        return self.keep_.bool()


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
    #: Indices of the evaluated members in the members' dataset (aligned with the first half of ``scores``).
    member_index: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long), repr=False)
    #: Reference models the attack used (0 for attacks without) and the seconds their training took.
    references: int = 0
    reference_seconds: float = 0.0
    #: Scores of the ``extra`` samples (e.g. canaries), by the same fitted attack.
    extra_scores: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.float64), repr=False)

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
            "references": self.references,
            "reference_seconds": self.reference_seconds,
        }


#: The attack run when a score-based attack is asked for but the classifier shows labels only.
LABEL_FALLBACK = "label_only"


def _resolve_attack(classifier: Classifier, attack: str) -> tuple[str, str | None]:
    """The attack to run on ``classifier`` for the requested name, and why it differs if it does.

    Without scores, a score-based attack gives way to the label-only attack of
    Choquette-Choo et al. (ICML 2021), the strongest that still applies.
    """
    if attack not in MEMBERSHIP_ATTACKS:
        raise ConfigError(f"unknown membership attack {attack!r}; valid attacks: {', '.join(MEMBERSHIP_ATTACKS)}")
    cls = MEMBERSHIP_ATTACKS[attack]
    if cls.requires is Access.SCORES and cls.requires not in classifier.access:
        if Access.LABELS not in classifier.access:
            raise AccessError(
                f"membership attack {attack!r} needs scores access (or labels, for the label-only attacks), "
                f"but this classifier only exposes {describe_access(classifier.access)}"
            )
        reason = (
            f"classifier exposes only {describe_access(classifier.access)}, so the {attack} attack cannot run; "
            "used the label-only attack (augmentation robustness, Choquette-Choo et al. 2021)"
        )
        return LABEL_FALLBACK, reason
    classifier.require(cls.requires, cls.__name__)
    return attack, None


#: ``references(split) -> ReferenceModels``: builds (or loads) the reference models for a split.
ReferenceSource = Callable[["MembershipSplit"], "ReferenceModels"]


def evaluate_membership(
    classifier: Classifier,
    members: Dataset,
    non_members: Dataset,
    attack: str = "loss_threshold",
    n: int | None = None,
    seed: int = 0,
    population: float = 0.0,
    references: ReferenceSource | None = None,
    wrap: Callable[[nn.Module], Classifier] | None = None,
    options: Mapping[str, Any] | None = None,
    extra: Dataset | None = None,
) -> MembershipResult:
    """Run a membership attack on a balanced set and return its ROC.

    Draws ``min(n, len(members), available non-members)`` samples from each side with a
    generator seeded by ``seed`` (see :func:`~sparring.attacks.privacy.reference.membership_split`;
    ``population`` is the share of ``non_members`` set aside as data the target never saw,
    for reference-model attacks), scores them and computes the ROC (AUC, TPR at 0.1 % and
    1 % FPR). ``options`` are the attack's constructor arguments. A reference-model attack
    (:class:`ReferenceAttack`) calls ``references(split)`` for its models and views each
    through ``wrap`` (e.g. behind the same output hardening as the target; default a plain
    :class:`~sparring.models.TorchClassifier`). If a score-based attack is asked for but the
    classifier exposes only labels, the label-only attack (augmentation robustness) runs instead (no reference
    model is built) and the result says so in ``fallback_reason``. An unknown ``attack``
    raises :class:`~sparring.errors.ConfigError` listing the valid names; missing access
    that no fallback covers raises :class:`~sparring.errors.AccessError`. ``extra`` samples
    (e.g. canaries) are scored by the same fitted attack, into ``extra_scores``, outside the ROC.
    """
    from sparring.attacks.privacy.reference import membership_split

    ran, reason = _resolve_attack(classifier, attack)
    split = membership_split(len(members), len(non_members), n, population, seed)
    k = split.k
    x = torch.cat([members.x[split.members], non_members.x[split.non_members]])
    y = torch.cat([members.y[split.members], non_members.y[split.non_members]])
    is_member = torch.cat([torch.ones(k, dtype=torch.bool), torch.zeros(k, dtype=torch.bool)])

    runner = MEMBERSHIP_ATTACKS[ran](**dict(options or {})) if ran == attack else MEMBERSHIP_ATTACKS[ran]()
    n_refs, ref_seconds = 0, 0.0
    if isinstance(runner, ReferenceAttack):
        if references is None:
            raise ConfigError(f"membership attack {ran!r} needs reference models (references=...)")
        refs = references(split)
        view = wrap or (lambda m: TorchClassifier(m, classifier.input_shape, classifier.num_classes))
        keep = None
        if refs.candidates:
            if refs.candidates != 2 * k:
                raise InputError(f"the reference models cover {refs.candidates} evaluated samples, expected {2 * k}")
            keep = refs.keep[:, : refs.candidates]
        runner.fit_references([view(m) for m in refs.models], keep, refs.population, refs.keep[:, refs.candidates :])
        n_refs, ref_seconds = len(refs), refs.seconds
    q0, t0 = classifier.queries, time.perf_counter()
    runner.fit(classifier)
    scores = runner.score(x, y)
    seconds = time.perf_counter() - t0
    extra_scores = runner.score(extra.x, extra.y) if extra is not None and len(extra) else torch.empty(0)
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
        member_index=split.members,
        references=n_refs,
        reference_seconds=ref_seconds,
        extra_scores=extra_scores.to(torch.float64),
    )
