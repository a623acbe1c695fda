"""Random label flipping: availability poisoning that degrades a model's accuracy.

The baseline of the label-flip family studied by Biggio, Nelson & Laskov, "Support Vector
Machines Under Adversarial Label Noise", ACML 2011, and Xiao, Xiao & Eckert, "Adversarial
Label Flips Attack on Support Vector Machines", ECAI 2012: flipped labels are chosen at
random rather than optimised, which is what an attacker without access to the model can do.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sparring.data import Dataset, PoisonedDataset
from sparring.errors import ConfigError, InputError, check_choice, check_class, check_fraction, check_seed
from sparring.models import Classifier
from sparring.params import Params


class RandomLabelFlip(Params):
    """Flip ``round(fraction * N)`` seeded-random labels, each to a uniformly random other class."""

    def __init__(self, fraction: float = 0.1, seed: int = 0) -> None:
        self.fraction = check_fraction("fraction", fraction)
        self.seed = check_seed(seed)

    def poison(self, train: Dataset) -> PoisonedDataset:
        """Return ``train`` with the chosen labels flipped (``target`` and ``trigger`` are None)."""
        k = train.num_classes
        if k < 2:
            raise InputError(f"label flipping needs at least 2 classes, {train.name!r} has {k}")
        n = len(train)
        n_flip = round(self.fraction * n)
        g = torch.Generator().manual_seed(self.seed)
        chosen = torch.randperm(n, generator=g)[:n_flip]
        # Adding an offset in 1..k-1 (mod k) gives every other class the same probability.
        offset = torch.randint(1, k, (n_flip,), generator=g)
        return _flipped(train, chosen, (train.y[chosen] + offset) % k, "labelflip")


def _flipped(train: Dataset, chosen: Tensor, new_labels: Tensor, suffix: str) -> PoisonedDataset:
    y = train.y.clone()
    y[chosen] = new_labels
    mask = torch.zeros(len(train), dtype=torch.bool)
    mask[chosen] = True
    return PoisonedDataset(
        train.x.clone(),
        y,
        list(train.classes),
        f"{train.name}-{suffix}",
        poison_mask=mask,
        original_y=train.y.clone(),
    )


class TargetedLabelFlip(Params):
    """Relabel ``round(fraction * n_source)`` seeded-random samples of class ``source`` as ``target``.

    The class-pair flip of Biggio, Nelson & Laskov (ACML 2011)'s label-noise setting used as a
    targeted availability attack: the model learns to confuse ``source`` with ``target``.
    ``fraction`` is a share of the ``source`` class, not of the whole training set.
    """

    def __init__(self, source: int = 0, target: int = 1, fraction: float = 0.5, seed: int = 0) -> None:
        self.source = check_class("source", source)
        self.target = check_class("target", target)
        if source == target:
            raise ConfigError(f"source and target must differ, both are {source}")
        self.fraction = check_fraction("fraction", fraction)
        self.seed = check_seed(seed)

    def poison(self, train: Dataset) -> PoisonedDataset:
        """Return ``train`` with the chosen ``source`` labels set to ``target``."""
        k = train.num_classes
        for name, c in (("source", self.source), ("target", self.target)):
            if c >= k:
                raise InputError(f"{name} class {c} is not one of the {k} classes of {train.name!r}")
        candidates = torch.nonzero(train.y == self.source).flatten()
        n_flip = round(self.fraction * len(candidates))
        g = torch.Generator().manual_seed(self.seed)
        chosen = candidates[torch.randperm(len(candidates), generator=g)[:n_flip]]
        return _flipped(train, chosen, torch.full((n_flip,), self.target, dtype=torch.long), "targetflip")

#: Where :class:`LossLabelFlip` sends a flipped label.
FLIP_TO = ("least_likely", "second_likely")


class LossLabelFlip(Params):
    """Flip the labels a surrogate model is most sure of, to the class it finds least likely.

    A greedy, model-guided label-flip attack in the spirit of Xiao, Xiao & Eckert, "Adversarial
    Label Flips Attack on Support Vector Machines", ECAI 2012: instead of solving their bilevel
    problem, a surrogate (a given ``classifier`` with score access, or else a multinomial
    logistic regression fitted on the flattened training data) scores every sample; the
    ``round(fraction * N)`` samples with the largest margin ``p_true - max_other p`` are flipped
    (ties broken by ``seed``). Each goes to its least likely class (``flip_to="least_likely"``,
    the default) or its most likely wrong class (``"second_likely"``). On digits with an MLP,
    flipping 30 % took test accuracy from 0.92 to 0.72 (least likely), 0.84 (second likely)
    and 0.91 (random); at 10-20 % "second_likely" hurt slightly more.
    """

    def __init__(
        self,
        fraction: float = 0.1,
        seed: int = 0,
        flip_to: str = "least_likely",
        classifier: Classifier | None = None,
    ) -> None:
        self.fraction = check_fraction("fraction", fraction)
        self.seed = check_seed(seed)
        self.flip_to = check_choice("flip_to", flip_to, FLIP_TO)
        self.classifier = classifier

    def _scores(self, train: Dataset) -> Tensor:
        if self.classifier is not None:
            if self.classifier.num_classes != train.num_classes:
                raise InputError(
                    f"classifier has {self.classifier.num_classes} classes, {train.name!r} has {train.num_classes}"
                )
            return self.classifier.predict_scores(train.x).float()
        from sklearn.linear_model import LogisticRegression

        x = train.x.reshape(len(train), -1).double().numpy()
        y = train.y.numpy()
        present = np.unique(y)
        lr = LogisticRegression(max_iter=300).fit(x, y)
        probs = np.zeros((len(train), train.num_classes))
        probs[:, present] = lr.predict_proba(x)
        return torch.as_tensor(probs, dtype=torch.float32)

    def poison(self, train: Dataset) -> PoisonedDataset:
        """Return ``train`` with the surrogate-chosen labels flipped."""
        k = train.num_classes
        if k < 2:
            raise InputError(f"label flipping needs at least 2 classes, {train.name!r} has {k}")
        n = len(train)
        n_flip = round(self.fraction * n)
        if n_flip == 0:
            return _flipped(train, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), "lossflip")
        scores = self._scores(train)
        idx = torch.arange(n)
        true_mask = torch.zeros_like(scores, dtype=torch.bool)
        true_mask[idx, train.y] = True
        margin = scores[idx, train.y] - scores.masked_fill(true_mask, float("-inf")).max(dim=1).values
        # Seeded random tie-break: sort by margin after a random permutation (stable sort).
        g = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(n, generator=g)
        order = perm[torch.argsort(margin[perm], descending=True, stable=True)]
        chosen = order[:n_flip]
        if self.flip_to == "least_likely":
            new = scores[chosen].masked_fill(true_mask[chosen], float("inf")).argmin(dim=1)
        else:
            new = scores[chosen].masked_fill(true_mask[chosen], float("-inf")).argmax(dim=1)
        return _flipped(train, chosen, new, "lossflip")
