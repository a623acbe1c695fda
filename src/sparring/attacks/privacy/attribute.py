"""Attribute inference: recover a record's sensitive feature from the rest of it and the model.

The attacker knows a training record's other features and its label, sees what the model
outputs on it, and guesses the sensitive feature (bucketed: :class:`SensitiveColumn`).
Attacks (``attack.fit(classifier, known, column)``, then ``attack.infer(x, y)`` → bucket
per record):

- :class:`BlackBox`: an attack model over the known features, the label and the model's
  output (scores, or the predicted label when only labels are exposed), trained on
  auxiliary records whose sensitive value the attacker knows — the idea of Fredrikson et
  al. (USENIX Security 2014) as ART's ``AttributeInferenceBlackBox`` implements it;
- :class:`LossGuess`: substitute each candidate value, query the model, and take the value
  under which the true label is most likely, weighted by the value's prior (Fredrikson et
  al.'s MAP estimator; the loss-based attack of Yeom et al., IEEE CSF 2018). It needs scores
  and nothing the attack model learns;
- :class:`GradientGuess` (white-box): the candidate value at which the per-record gradient of
  the loss with respect to the parameters is smallest (a trained model is near a stationary
  point on its training records), weighted by the prior.

Beside every attack run two baselines that never query the model: :class:`Imputation`,
the same attack model without the model's output (Jayaraman & Evans, "Are Attribute
Inference Attacks Just Imputation?", ACM CCS 2022), and :class:`Majority`, the most
common value. What the model leaks is the attack's accuracy *over imputation* on its
training members; non-members are the contrast (a gap there is distributional
inference, not a leak of the training records). :func:`evaluate_attribute` runs the
protocol: members from the training set, an auxiliary share of held-out data for the
attacker, non-members from the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError, check_positive_int
from sparring.models import Access, Classifier
from sparring.params import Params

#: Attack models an :class:`Imputation` / :class:`BlackBox` attack can fit.
ATTACK_MODELS = ("boosting", "logistic")


def flat(x: Tensor) -> Tensor:
    """Records as ``[N, F]`` (image-shaped inputs flattened)."""
    return x.reshape(len(x), -1)


@dataclass(frozen=True)
class SensitiveColumn:
    """Feature ``index`` of the flattened records, cut into buckets at ``thresholds``.

    A value ``v`` falls in bucket ``b`` = the number of thresholds below ``v`` (so ``v <=
    thresholds[0]`` is bucket 0). ``values[b]`` is the bucket's median in the data the cut
    was fitted on: the value :class:`LossGuess` substitutes for it.
    """

    index: int
    thresholds: Tensor
    values: Tensor

    @property
    def buckets(self) -> int:
        """Number of buckets."""
        return len(self.values)

    def bucket(self, x: Tensor) -> Tensor:
        """The bucket of each record's sensitive value, ``[N]`` long."""
        return torch.searchsorted(self.thresholds, flat(x)[:, self.index].contiguous(), side="left")

    def known(self, x: Tensor) -> Tensor:
        """The records' features without the sensitive one, ``[N, F - 1]``."""
        f = flat(x)
        return torch.cat([f[:, : self.index], f[:, self.index + 1 :]], dim=1)

    def with_value(self, x: Tensor, value: float) -> Tensor:
        """``x`` with the sensitive feature set to ``value`` (same shape as ``x``)."""
        f = flat(x).clone()
        f[:, self.index] = value
        return f.reshape(x.shape)


def sensitive_column(x: Tensor, index: int, buckets: int = 2) -> SensitiveColumn:
    """Cut feature ``index`` of ``x`` at its quantiles into at most ``buckets`` non-empty buckets.

    Each cut is the observed value whose share of records at or below it is closest to
    ``1/b, 2/b, ...``; ``buckets = 2`` splits as near the middle as the values allow. Columns with fewer distinct
    values than buckets keep one bucket per value. Raises :class:`InputError` for a missing
    or constant column.
    """
    check_positive_int("buckets", buckets)
    f = flat(x)
    if not 0 <= index < f.shape[1]:
        raise InputError(f"attribute column {index} is out of range: the records have {f.shape[1]} features")
    col = f[:, index].double()
    distinct = torch.unique(col)
    if len(distinct) < 2:
        raise InputError(f"attribute column {index} is constant in the attacker's data: nothing to infer")
    if len(distinct) <= buckets:
        cuts = distinct[:-1]
    else:  # at the observed values whose share at or below comes closest to 1/b, 2/b, ... (discrete columns too)
        below = (col[None, :] <= distinct[:-1, None]).double().mean(dim=1)
        q = torch.linspace(0, 1, buckets + 1, dtype=torch.float64)[1:-1]
        cuts = torch.unique(distinct[:-1][(below[None, :] - q[:, None]).abs().argmin(dim=1)])
    cuts = cuts.to(f.dtype)
    b = torch.searchsorted(cuts, f[:, index].contiguous(), side="left")
    values = torch.stack([f[b == k, index].median() for k in range(len(cuts) + 1)])
    return SensitiveColumn(index, cuts, values)


def _one_hot(y: Tensor, n: int) -> Tensor:
    return torch.nn.functional.one_hot(y.long(), n).to(torch.float32)


class AttributeAttack(Params):
    """Base of attribute-inference attacks: ``fit`` on known records, ``infer`` a bucket per record.

    ``requires`` is the model access the attack needs (checked by :meth:`fit` before any
    query). :meth:`infer` receives the records as the deployed model sees them; an attack
    reads only the known features (:meth:`SensitiveColumn.known`) and the model's outputs.
    """

    requires: ClassVar[Access] = Access(0)

    def fit(self, classifier: Classifier, known: Dataset, column: SensitiveColumn) -> AttributeAttack:
        """Check access, keep the classifier and learn from ``known`` (records with their sensitive value)."""
        if self.requires:
            classifier.require(self.requires, type(self).__name__)
        self.classifier_ = classifier
        self.column_ = column
        self._learn(known)
        return self

    def _learn(self, known: Dataset) -> None:
        raise NotImplementedError

    def infer(self, x: Tensor, y: Tensor) -> Tensor:
        """The inferred bucket of each record, ``[N]`` long."""
        raise NotImplementedError


class Majority(AttributeAttack):
    """The most common bucket among the known records, for everyone (no model, no features)."""

    def __init__(self) -> None:
        pass

    def _learn(self, known: Dataset) -> None:
        counts = torch.bincount(self.column_.bucket(known.x), minlength=self.column_.buckets)
        self.majority_ = int(counts.argmax())

    def infer(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.full((len(x),), self.majority_, dtype=torch.long)


class Imputation(AttributeAttack):
    """An attack model over the known features and the label only (Jayaraman & Evans, CCS 2022): no model queried.

    ``model``: ``boosting`` (scikit-learn's histogram gradient boosting) or ``logistic``.
    """

    uses_output: ClassVar[bool] = False

    def __init__(self, model: str = "boosting", seed: int = 0) -> None:
        self.model = model
        self.seed = seed

    def _inputs(self, x: Tensor, y: Tensor) -> np.ndarray:
        column, n = self.column_, self.classifier_.num_classes
        parts = [column.known(x), _one_hot(y, n)]
        if self.uses_output:
            clf = self.classifier_
            out = clf.predict_scores(x) if Access.SCORES in clf.access else _one_hot(clf.predict_labels(x), n)
            parts.append(out.float())
        return torch.cat(parts, dim=1).numpy().astype(np.float64)

    def _learn(self, known: Dataset) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression

        if self.model not in ATTACK_MODELS:
            raise ConfigError(f"unknown attack model {self.model!r}; accepted: {', '.join(ATTACK_MODELS)}")
        target = self.column_.bucket(known.x).numpy()
        self.constant_: int | None = int(target[0]) if len(np.unique(target)) == 1 else None
        if self.constant_ is not None:
            return
        est: Any = (
            HistGradientBoostingClassifier(max_iter=100, random_state=self.seed)
            if self.model == "boosting"
            else LogisticRegression(max_iter=2000)
        )
        self.estimator_ = est.fit(self._inputs(known.x, known.y), target)

    def infer(self, x: Tensor, y: Tensor) -> Tensor:
        if self.constant_ is not None:
            return torch.full((len(x),), self.constant_, dtype=torch.long)
        return torch.as_tensor(self.estimator_.predict(self._inputs(x, y)), dtype=torch.long)


class BlackBox(Imputation):
    """:class:`Imputation`'s attack model given the model's output too (Fredrikson et al. 2014; ART's black-box).

    With scores it reads the probability vector; with labels only, the predicted label.
    """

    requires: ClassVar[Access] = Access.LABELS
    uses_output: ClassVar[bool] = True


class LossGuess(AttributeAttack):
    """The candidate value under which the model finds the true label most likely, times its prior.

    For each bucket ``b`` the record is queried with the sensitive feature set to the bucket's
    median; the guess maximises ``log p_model(y | x_b) + log prior(b)`` (Fredrikson et al.,
    USENIX Security 2014; Yeom et al., IEEE CSF 2018 use the loss the same way). Needs scores.
    """

    requires: ClassVar[Access] = Access.SCORES

    def __init__(self) -> None:
        pass

    def _learn(self, known: Dataset) -> None:
        counts = torch.bincount(self.column_.bucket(known.x), minlength=self.column_.buckets).double()
        self.log_prior_ = torch.log((counts + 1) / (counts.sum() + len(counts)))

    def infer(self, x: Tensor, y: Tensor) -> Tensor:
        from sparring.attacks.privacy.membership import cross_entropy_from_scores

        column = self.column_
        losses = torch.stack(
            [
                cross_entropy_from_scores(self.classifier_.predict_scores(column.with_value(x, float(v))), y)
                for v in column.values
            ]
        )
        return torch.argmax(self.log_prior_[:, None] - losses, dim=0)


class GradientGuess(LossGuess):
    """White-box: the candidate value at which the model's parameters are closest to a stationary point.

    A model has (nearly) stopped learning from its training records, so at a member's true
    value the per-record gradient of the loss with respect to the parameters is small (the
    signal of Nasr et al.'s white-box membership attack, IEEE S&P 2019, used for the
    attribute as Yeom et al. use the loss). The guess minimises ``log ||grad|| - log prior``.
    Needs a PyTorch model with internals access.
    """

    requires: ClassVar[Access] = Access.INTERNALS

    def infer(self, x: Tensor, y: Tensor) -> Tensor:
        from torch.func import functional_call, grad, vmap

        from sparring.models import TorchClassifier

        clf = self.classifier_
        if not isinstance(clf, TorchClassifier):
            raise InputError("the gradient attribute attack needs a PyTorch model (TorchClassifier)")
        module = clf.model
        params = {k: v.detach() for k, v in module.named_parameters()}
        buffers = {k: v.detach() for k, v in module.named_buffers()}

        def loss(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
            out = functional_call(module, {**p, **buffers}, (xb.unsqueeze(0),))
            return torch.nn.functional.cross_entropy(out, yb.unsqueeze(0))

        per_record = vmap(grad(loss), in_dims=(None, 0, 0))
        scores = []
        for v in self.column_.values:
            xv = self.column_.with_value(x, float(v))
            clf._count(len(xv))
            norms = torch.zeros(len(xv), dtype=torch.float64)
            for s in range(0, len(xv), 256):
                g = per_record(params, xv[s : s + 256], y[s : s + 256].long())
                norms[s : s + 256] = torch.sqrt(sum(t.flatten(1).double().pow(2).sum(1) for t in g.values()))
            scores.append(torch.log(norms.clamp_min(1e-30)))
        return torch.argmax(self.log_prior_[:, None] - torch.stack(scores), dim=0)


#: Attribute-inference attacks by the name a config uses (the baselines always run beside them).
ATTRIBUTE_ATTACKS: dict[str, type[AttributeAttack]] = {
    "black_box": BlackBox,
    "loss": LossGuess,
    "gradient": GradientGuess,
}


def build_attack(name: str, model: str = "boosting", seed: int = 0) -> AttributeAttack:
    """The attack ``name`` (:data:`ATTRIBUTE_ATTACKS`, or the baselines ``imputation`` and ``majority``)."""
    if name in ("black_box", "imputation"):
        return (BlackBox if name == "black_box" else Imputation)(model=model, seed=seed)
    if name == "loss":
        return LossGuess()
    if name == "gradient":
        return GradientGuess()
    if name == "majority":
        return Majority()
    raise ConfigError(f"unknown attribute attack {name!r}; accepted: {', '.join(ATTRIBUTE_ATTACKS)}")


@dataclass(frozen=True)
class AttributeSplit:
    """Indices of an evaluation: ``members`` (into the training set), ``auxiliary`` and ``non_members`` (held-out)."""

    members: Tensor
    auxiliary: Tensor
    non_members: Tensor


def attribute_split(n_train: int, n_held_out: int, n: int, auxiliary: float, seed: int) -> AttributeSplit:
    """``n`` members, an ``auxiliary`` share of held-out data (the attacker's), <= ``n`` non-members from the rest."""
    check_positive_int("samples", n)
    if not 0.0 < auxiliary < 1.0:
        raise InputError(f"auxiliary share must be in (0, 1), got {auxiliary}")
    g = torch.Generator().manual_seed(seed)
    members = torch.randperm(n_train, generator=g)[:n]
    held = torch.randperm(n_held_out, generator=g)
    n_aux = round(auxiliary * n_held_out)
    if n_aux < 2 or n_held_out - n_aux < 1:
        raise InputError(
            f"attribute inference needs held-out data for the attacker and as non-members; {n_held_out} held-out "
            f"samples with auxiliary = {auxiliary} leave {n_aux} and {n_held_out - n_aux}"
        )
    return AttributeSplit(members, held[:n_aux], held[n_aux:][:n])


@dataclass(frozen=True)
class Outcome:
    """One method's hits on members and on non-members (boolean per record)."""

    members: Tensor
    non_members: Tensor

    @property
    def accuracy(self) -> float:
        """Share of members whose bucket was inferred."""
        return float(self.members.float().mean())

    @property
    def accuracy_non_members(self) -> float:
        """Share of non-members whose bucket was inferred."""
        return float(self.non_members.float().mean())


@dataclass(frozen=True)
class AttributeResult:
    """The attack and its two baselines on the same records, and what the attack cost."""

    attack: str
    column: SensitiveColumn
    outcomes: dict[str, Outcome]
    n_members: int
    n_non_members: int
    n_auxiliary: int
    seconds: float
    queries: int

    def advantage(self, members: bool = True) -> float:
        """The attack's accuracy minus imputation's (on members, or on non-members)."""
        a, i = self.outcomes[self.attack], self.outcomes["imputation"]
        return a.accuracy - i.accuracy if members else a.accuracy_non_members - i.accuracy_non_members

    def discordant(self) -> tuple[int, int]:
        """Members only the attack got right, and members only imputation got right (the paired counts)."""
        a, i = self.outcomes[self.attack].members, self.outcomes["imputation"].members
        return int((a & ~i).sum()), int((i & ~a).sum())


def evaluate_attribute(
    classifier: Classifier,
    train: Dataset,
    held_out: Dataset,
    index: int,
    attack: str = "black_box",
    *,
    buckets: int = 2,
    n: int = 1000,
    auxiliary: float = 0.5,
    model: str = "boosting",
    seed: int = 0,
) -> AttributeResult:
    """Run ``attack`` and both baselines on the members and non-members of one seeded :func:`attribute_split`.

    The attacker's known records are the auxiliary share of ``held_out`` (never evaluated);
    the sensitive column is bucketed on them (:func:`sensitive_column`).
    """
    if attack not in ATTRIBUTE_ATTACKS:
        raise ConfigError(f"unknown attribute attack {attack!r}; accepted: {', '.join(ATTRIBUTE_ATTACKS)}")
    split = attribute_split(len(train), len(held_out), n, auxiliary, seed)
    known = held_out.subset(split.auxiliary, "auxiliary")
    column = sensitive_column(known.x, index, buckets)
    members = train.subset(split.members)
    non_members = held_out.subset(split.non_members)
    truth_m, truth_n = column.bucket(members.x), column.bucket(non_members.x)
    outcomes: dict[str, Outcome] = {}
    seconds, queries = 0.0, 0
    for name in (attack, "imputation", "majority"):
        method = build_attack(name, model, seed)
        before = classifier.queries
        start = time.perf_counter()
        method.fit(classifier, known, column)
        hits_m = method.infer(members.x, members.y) == truth_m
        hits_n = method.infer(non_members.x, non_members.y) == truth_n
        if name == attack:
            seconds, queries = time.perf_counter() - start, classifier.queries - before
        outcomes[name] = Outcome(hits_m, hits_n)
    return AttributeResult(attack, column, outcomes, len(members), len(non_members), len(known), seconds, queries)
