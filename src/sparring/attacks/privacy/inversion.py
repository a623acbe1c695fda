"""Model inversion: reconstruct what a class looks like to a model, and judge it against a reference.

The verb is ``attack.invert(classifier, target_class) -> images``: ``n`` reconstructions per
class (``target_class`` one class or several), in the model's input domain, class by class.

- :class:`GradientInversion` (Fredrikson, Jha and Ristenpart, "Model Inversion Attacks that
  Exploit Confidence Information and Basic Countermeasures", CCS 2015; ART calls it MIFace):
  from ``n`` random initialisations, descend the cross-entropy of the target class (Adam,
  projected onto the input bounds: the range prior), with a total-variation prior (Mahendran
  and Vedaldi, CVPR 2015) and an L2 prior on the input.
- :class:`DeepInversion` (Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via
  DeepInversion", CVPR 2020): the same objective plus the distance between the batch
  statistics at every BatchNorm layer's input and that layer's running mean and variance,
  with random jitter of the images; all classes are optimised in one batch, as the running
  statistics describe a mix of classes. It needs a model with BatchNorm layers (the zoo's
  ``small_cnn_bn``); on one without (a GroupNorm model, as DP-SGD trains) it is not
  applicable and says so.

A reconstruction that looks like its class is not by itself a leak: a model trained on
other data of the same distribution yields a class prototype too. :func:`evaluate_inversion`
scores the inversions of the target and of a *reference* model trained without the
evaluated samples with the same two tests: an independently trained evaluation classifier's
accuracy on them, and the nearest-neighbour test (the share of inversions whose nearest
same-class sample among equally many target members and unseen samples is a member; 0.5
when the inversion is no closer to the training set than to the distribution). The gap
target minus reference is the leak.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import (
    InputError,
    check_nonnegative,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
    check_seed,
)
from sparring.metrics import Interval
from sparring.models import Access, Classifier, TorchClassifier
from sparring.params import Params, Registry


def _classes(classifier: Classifier, target_class: int | Sequence[int]) -> list[int]:
    values = [target_class] if isinstance(target_class, int) else list(target_class)
    if not values:
        raise InputError("model inversion needs at least one target class")
    for c in values:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < classifier.num_classes:
            raise InputError(f"target class must be an integer in [0, {classifier.num_classes - 1}], got {c!r}")
    return values


def total_variation(x: Tensor) -> Tensor:
    """``[N]`` mean absolute difference between neighbouring pixels of images ``[N, C, H, W]`` (0 otherwise)."""
    if x.dim() != 4:
        return torch.zeros(len(x), dtype=x.dtype)
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


class InversionAttack(Params, ABC):
    """Base of model-inversion attacks: :meth:`invert` returns ``n`` reconstructions per class.

    Each reconstruction starts from the middle of the input range plus uniform noise ``spread``
    times the range wide (``spread = 1``: uniform over the bounds; 0: every start the same,
    ART's MIFace starts from zeros), a different start per image.
    """

    requires: ClassVar[Access] = Access.GRADIENTS

    def __init__(
        self,
        n: int = 4,
        steps: int = 200,
        lr: float = 0.05,
        tv: float = 0.1,
        l2: float = 0.1,
        seed: int = 0,
        spread: float = 0.2,
    ) -> None:
        self.n = check_positive_int("n", n)
        self.steps = check_positive_int("steps", steps)
        self.lr = check_positive("lr", lr)
        self.tv = check_nonnegative("tv", tv)
        self.l2 = check_nonnegative("l2", l2)
        self.seed = check_seed(seed)
        if not 0.0 <= spread <= 1.0:
            raise InputError(f"spread must be in [0, 1], got {spread}")
        self.spread = float(spread)

    def invert(self, classifier: Classifier, target_class: int | Sequence[int]) -> Tensor:
        """``n`` reconstructions of each class in ``target_class``, ``[n * classes, *input_shape]``, class by class."""
        classifier.require(self.requires, type(self).__name__)
        classes = _classes(classifier, target_class)
        self._check(classifier)
        labels = torch.tensor(classes).repeat_interleave(self.n)
        g = torch.Generator().manual_seed(self.seed)
        lo, hi = classifier.bounds
        noise = torch.rand((len(labels), *classifier.input_shape), generator=g) - 0.5
        x = lo + (hi - lo) * (0.5 + self.spread * noise)
        return self._descend(classifier, x, labels, g)

    def _check(self, classifier: Classifier) -> None:
        """Raise when the attack cannot run against ``classifier`` (beyond its access)."""

    def _prior(self, x: Tensor) -> Tensor:
        """``[N]`` the image priors: total variation and L2."""
        return self.tv * total_variation(x) + self.l2 * x.flatten(1).pow(2).mean(1)

    @abstractmethod
    def _descend(self, classifier: Classifier, x: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        """Optimise the starting images ``x`` towards ``labels``."""


class GradientInversion(InversionAttack):
    """Fredrikson et al.'s gradient model inversion (CCS 2015), ART's MIFace, with image priors.

    Each of the ``n`` reconstructions per class starts from its own noisy image (see
    :class:`InversionAttack`) and takes ``steps`` Adam steps of size ``lr`` on ``CE(target class) + tv * TV(x) + l2 *
    mean(x^2)``, projected back into the bounds after each step. Images are independent, so
    every class is optimised in one batch.
    """

    def _descend(self, classifier: Classifier, x: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        lo, hi = classifier.bounds
        x = x.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=self.lr)
        for _ in range(self.steps):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(classifier.logits(x), labels, reduction="none") + self._prior(x)
            loss.sum().backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(lo, hi)
        return x.detach()


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``module`` that keep running statistics."""
    return [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None and m.running_var is not None
    ]


class DeepInversion(InversionAttack):
    """DeepInversion (Yin et al., CVPR 2020): gradient inversion plus BatchNorm statistics matching.

    The loss adds ``bn`` times, summed over the model's BatchNorm layers, ``||mean(a) -
    running_mean||_2 + ||var(a) - running_var||_2`` of the batch of activations ``a`` entering
    each layer; every class of the call is one batch (the running statistics are those of
    the training mix of classes). Each step shifts the images by a random offset of up to
    ``jitter`` pixels (rolled back after the step), as Yin et al. do. Needs gradient and
    internals access to a :class:`~sparring.models.TorchClassifier` with BatchNorm layers.
    """

    requires: ClassVar[Access] = Access.GRADIENTS | Access.INTERNALS

    def __init__(
        self,
        n: int = 4,
        steps: int = 200,
        lr: float = 0.05,
        tv: float = 0.1,
        l2: float = 0.1,
        seed: int = 0,
        spread: float = 0.2,
        bn: float = 0.05,
        jitter: int = 1,
    ) -> None:
        super().__init__(n=n, steps=steps, lr=lr, tv=tv, l2=l2, seed=seed, spread=spread)
        self.bn = check_nonnegative("bn", bn)
        self.jitter = check_nonnegative_int("jitter", jitter)

    def _check(self, classifier: Classifier) -> None:
        module = getattr(classifier, "model", None)
        if not isinstance(classifier, TorchClassifier) or not isinstance(module, nn.Module):
            raise InputError("DeepInversion needs a PyTorch model (it reads the BatchNorm running statistics)")
        if not batch_norms(module):
            raise InputError(
                "DeepInversion is not applicable: the model has no BatchNorm layer whose running statistics it "
                "could match (use gradient inversion)"
            )

    def _descend(self, classifier: Classifier, x: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        assert isinstance(classifier, TorchClassifier)
        lo, hi = classifier.bounds
        layers = batch_norms(classifier.model)
        seen: list[Tensor] = []

        def hook(m: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            a = inputs[0]
            dims = [0, *range(2, a.dim())]
            assert isinstance(m, nn.modules.batchnorm._BatchNorm)
            assert m.running_mean is not None and m.running_var is not None
            mean, var = a.mean(dims), a.var(dims, unbiased=False)
            seen.append((mean - m.running_mean).norm() + (var - m.running_var).norm())

        handles = [m.register_forward_hook(hook) for m in layers]
        x = x.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=self.lr)
        image = x.dim() == 4 and self.jitter > 0
        try:
            for _ in range(self.steps):
                opt.zero_grad(set_to_none=True)
                seen.clear()
                xin = x
                if image:
                    dy, dx = (int(v) for v in torch.randint(-self.jitter, self.jitter + 1, (2,), generator=g))
                    xin = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
                loss = F.cross_entropy(classifier.logits(xin), labels, reduction="none") + self._prior(x)
                total = loss.sum() + self.bn * len(x) * torch.stack(seen).sum()
                total.backward()
                opt.step()
                with torch.no_grad():
                    x.clamp_(lo, hi)
        finally:
            for h in handles:
                h.remove()
        return x.detach()


#: Model-inversion attacks by the name a config uses.
INVERSION_ATTACKS: Registry[InversionAttack] = Registry("inversion attack")
INVERSION_ATTACKS.add("gradient", GradientInversion)
INVERSION_ATTACKS.add("deep_inversion", DeepInversion)


# -- the honest metric -------------------------------------------------------------------


@dataclass(frozen=True)
class InversionSplit:
    """Evaluated samples: ``members`` (indices into the training set) and ``non_members`` (into held-out data).

    Both hold ``per_class`` samples of every class, so a random image is as likely to be
    nearer a member as a non-member.
    """

    members: Tensor
    non_members: Tensor
    per_class: int


def inversion_split(train_y: Tensor, held_y: Tensor, num_classes: int, per_class: int, seed: int) -> InversionSplit:
    """``min(per_class, rarest class on either side)`` members and non-members of every class, drawn at random."""
    check_positive_int("per_class", per_class)
    g = torch.Generator().manual_seed(seed)
    counts = [min(int((train_y == c).sum()), int((held_y == c).sum())) for c in range(num_classes)]
    k = min(per_class, *counts)
    if k < 1:
        raise InputError(
            "the nearest-neighbour test needs at least one training and one held-out sample of every class"
        )
    members: list[Tensor] = []
    non_members: list[Tensor] = []
    for c in range(num_classes):
        for y, out in ((train_y, members), (held_y, non_members)):
            idx = torch.nonzero(y == c).flatten()
            out.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return InversionSplit(torch.cat(members), torch.cat(non_members), k)


@dataclass(frozen=True)
class NearestNeighbours:
    """The nearest-neighbour test of inversions: per inversion, its nearest member and the two distances."""

    closer_to_member: float
    nearest_member: Tensor
    member_distance: Tensor
    non_member_distance: Tensor
    #: Inversions of one class tend to land near the same samples: the sample size the rate is worth (see
    #: :func:`effective_n`), for its interval.
    effective_n: float = 0.0


def nearest_neighbour_test(
    inversions: Tensor, labels: Tensor, members: Dataset, non_members: Dataset
) -> NearestNeighbours:
    """Is each inversion nearer (L2) a same-class member than a same-class non-member? Ties count half."""
    flat = inversions.flatten(1).float()
    d_m = torch.cdist(flat, members.x.flatten(1).float())
    d_n = torch.cdist(flat, non_members.x.flatten(1).float())
    d_m = d_m.masked_fill(members.y[None, :] != labels[:, None], torch.inf)
    d_n = d_n.masked_fill(non_members.y[None, :] != labels[:, None], torch.inf)
    best_m, idx = d_m.min(dim=1)
    best_n = d_n.min(dim=1).values
    closer = (best_m < best_n).float() + 0.5 * (best_m == best_n).float()
    return NearestNeighbours(float(closer.mean()), idx, best_m, best_n, effective_n(closer, labels))


def effective_n(outcomes: Tensor, groups: Tensor) -> float:
    """Kish's effective sample size of ``outcomes`` clustered in ``groups``: ``n / (1 + (m - 1) * icc)``.

    ``icc`` is the one-way ANOVA intra-class correlation (clipped to [0, 1]) and ``m`` the mean
    group size. Inversions of one class start apart but often end near the same training
    samples, so their nearest-neighbour outcomes are not independent: an interval over ``n``
    of them as if they were would be too narrow.
    """
    values = outcomes.double()
    ids = torch.unique(groups)
    n, k = len(values), len(ids)
    if k < 2 or n <= k:
        return float(n)
    sizes = torch.stack([(groups == g).sum() for g in ids]).double()
    means = torch.stack([values[groups == g].mean() for g in ids])
    within = sum(float(((values[groups == g] - means[i]) ** 2).sum()) for i, g in enumerate(ids)) / (n - k)
    between = float((sizes * (means - values.mean()) ** 2).sum()) / (k - 1)
    m = (n - float((sizes**2).sum()) / n) / (k - 1)
    icc = 0.0 if between + (m - 1) * within <= 0 else (between - within) / (between + (m - 1) * within)
    return n / (1.0 + (m - 1.0) * min(1.0, max(0.0, icc)))


@dataclass
class InversionScore:
    """One model's inversions and how they score."""

    images: Tensor
    labels: Tensor
    #: The evaluation classifier's accuracy on the inversions (their target class as the truth).
    eval_accuracy: float
    #: The inverted model's own mean confidence in the target class.
    confidence: float
    nn: NearestNeighbours
    seconds: float


@dataclass
class InversionResult:
    """The target's and the reference's inversions scored alike; the gaps are the leak."""

    attack: str
    target: InversionScore
    reference: InversionScore

    @property
    def n(self) -> int:
        """Inversions per model."""
        return len(self.target.labels)

    @property
    def eval_gap(self) -> float:
        """Evaluation accuracy on the target's inversions minus on the reference's."""
        return self.target.eval_accuracy - self.reference.eval_accuracy

    @property
    def nn_gap(self) -> float:
        """Nearest-neighbour closer-to-member rate of the target's inversions minus the reference's."""
        return self.target.nn.closer_to_member - self.reference.nn.closer_to_member


def score_inversions(
    attack: InversionAttack,
    classifier: Classifier,
    classes: Sequence[int],
    evaluator: Classifier,
    members: Dataset,
    non_members: Dataset,
) -> InversionScore:
    """Invert ``classifier`` for ``classes`` with ``attack`` and score the images (see :func:`evaluate_inversion`)."""
    t0 = time.perf_counter()
    images = attack.invert(classifier, list(classes))
    seconds = time.perf_counter() - t0
    labels = torch.tensor(list(classes)).repeat_interleave(attack.n)
    eval_acc = float((evaluator.predict_labels(images) == labels).float().mean())
    with torch.no_grad():
        conf = float(classifier.logits(images).softmax(1)[torch.arange(len(labels)), labels].mean())
    nn_test = nearest_neighbour_test(images, labels, members, non_members)
    return InversionScore(images, labels, eval_acc, conf, nn_test, seconds)


def evaluate_inversion(
    attack: InversionAttack,
    target: Classifier,
    reference: Classifier,
    evaluator: Classifier,
    members: Dataset,
    non_members: Dataset,
    classes: Sequence[int] | None = None,
    name: str = "",
) -> InversionResult:
    """Invert ``target`` and ``reference`` alike and score both.

    ``members`` are training samples of the target that ``reference`` never saw,
    ``non_members`` equally many samples per class that neither saw; ``evaluator`` is a
    classifier trained independently of both (another architecture, data neither
    inversion is tested against). The leak is :attr:`InversionResult.eval_gap` and
    :attr:`InversionResult.nn_gap`.
    """
    chosen = list(range(target.num_classes)) if classes is None else list(classes)
    t = score_inversions(attack, target, chosen, evaluator, members, non_members)
    r = score_inversions(attack, reference, chosen, evaluator, members, non_members)
    return InversionResult(name or type(attack).__name__, t, r)


def gap_interval(p1: float, n1: float, p2: float, n2: float, confidence: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval (Statistics in Medicine 1998, method 10) of ``p1 - p2``.

    ``n1`` and ``n2`` may be effective sample sizes (:func:`effective_n`); the interval's ``n``
    is their sum, rounded.
    """
    from scipy.stats import norm

    check_positive("n1", n1)
    check_positive("n2", n2)
    z = float(norm.ppf(0.5 + confidence / 2.0))

    def wilson(p: float, n: float) -> tuple[float, float]:
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half

    (l1, u1), (l2, u2) = wilson(p1, n1), wilson(p2, n2)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Interval(max(-1.0, low), min(1.0, high), max(1, round(n1 + n2)), "newcombe", confidence)
