"""k-nearest-neighbour label consistency: a flipped label disagrees with the sample's neighbours.

Paudice, Muñoz-González & Lupu, "Label Sanitization against Label Flipping Poisoning Attacks",
ECML PKDD 2018 Workshops (Nemesis). A sample is suspicious when the most common label among
its ``k`` nearest neighbours (in input space, or in a layer's feature space) differs from its
own and carries at least a ``threshold`` share of the vote. The paper relabels such samples to
the neighbours' label; here they are flagged, and the suggested label is returned in
``details["suggested"]``.

Limits: it needs inputs (or features) whose nearest neighbours share their class, and it
cannot see flips into the class a sample's neighbourhood already votes for. When flips are so
dense that a neighbourhood is mostly flipped, the vote itself is poisoned.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sparring.data import Dataset
from sparring.defenses.data.base import Detection
from sparring.errors import ConfigError, InputError, check_positive_int
from sparring.models import Access, Classifier
from sparring.params import Params

#: Query rows per distance block (bounds memory at block x N distances).
BLOCK = 512


class KNNLabelConsistency(Params):
    """Flag samples whose k nearest neighbours vote for another label (Paudice et al., ECML PKDD-W 2018).

    ``k`` neighbours (10 in the paper) vote, the sample itself excluded. A sample is flagged
    when the winning label differs from its own and wins at least ``threshold`` of the votes
    (the paper's confidence threshold). ``layer`` None searches the raw inputs (flattened), and
    the classifier is not used; a layer name searches that layer's activations instead (needs
    internals access). ``standardize`` scales every input feature to unit variance first.
    """

    def __init__(
        self, k: int = 10, threshold: float = 0.5, layer: str | None = None, standardize: bool = False
    ) -> None:
        if not 0.0 < float(threshold) <= 1.0:
            raise ConfigError(f"threshold must be in (0, 1], got {threshold}")
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise ConfigError(f"layer must be None or a non-empty layer name, got {layer!r}")
        self.k = check_positive_int("k", k)
        self.threshold = float(threshold)
        self.layer = layer
        self.standardize = bool(standardize)

    @property
    def requires(self) -> Access:
        """The access the detector needs: internals when it searches a layer, else none."""
        return Access.INTERNALS if self.layer is not None else Access.NONE

    # -- the verb ----------------------------------------------------------------------
    def detect(self, train: Dataset, classifier: Classifier) -> Detection:
        """Vote every sample's label among its ``k`` nearest other samples.

        ``scores`` are the share of a sample's neighbours whose label differs from its own;
        ``details["suggested"]`` is the winning neighbour label per sample (long ``[N]``) and
        ``details["agreement"]`` the mean share of neighbours agreeing with their sample.
        """
        n = len(train)
        if n < 2:
            raise InputError(f"k-NN label consistency needs at least 2 samples, got {n}")
        k = min(self.k, n - 1)
        x = self._points(train, classifier)
        y = train.y.long()
        num_classes = max(int(y.max()) + 1, train.num_classes)
        agree = torch.empty(n)
        winner = torch.empty(n, dtype=torch.long)
        share = torch.empty(n)
        for q in torch.arange(n).split(BLOCK):
            d = torch.cdist(x[q], x)
            d[torch.arange(len(q)), q] = math.inf  # leave the sample itself out
            votes = y[d.topk(k, dim=1, largest=False).indices]
            counts = torch.zeros(len(q), num_classes).scatter_add_(1, votes, torch.ones(votes.shape))
            agree[q] = counts.gather(1, y[q].view(-1, 1)).squeeze(1) / k
            best = counts.max(dim=1)
            winner[q], share[q] = best.indices, best.values / k
        flagged = (winner != y) & (share >= self.threshold)
        return Detection(1.0 - agree, flagged, {"suggested": winner, "agreement": float(agree.mean()), "k": k})

    def _points(self, train: Dataset, classifier: Classifier) -> Tensor:
        """The points the neighbours are searched among: flattened inputs or a layer's activations."""
        if self.layer is not None:
            classifier.require(self.requires, type(self).__name__)
            if tuple(train.input_shape) != tuple(classifier.input_shape):
                raise InputError(
                    f"training inputs have shape {train.input_shape}, the classifier expects {classifier.input_shape}"
                )
            x = classifier.features(train.x, self.layer).float()
        else:
            x = train.x.flatten(1).float()
        if not bool(torch.isfinite(x).all()):
            raise InputError("k-NN label consistency needs finite inputs/features")
        if self.standardize:
            sd = x.std(dim=0)
            x = (x - x.mean(dim=0)) / torch.where(sd > 1e-12, sd, torch.ones_like(sd))
        return x
