"""Activation clustering: backdoor poison splits off from its class in the model's activations.

Chen, Carvalho, Baracaldo, Ludwig, Edwards, Lee, Molloy & Srivastava, "Detecting Backdoor
Attacks on Deep Neural Networks by Activation Clustering", AAAI Workshop on Artificial
Intelligence Safety (SafeAI) 2019 (arXiv 2018).

For every class (by its training label) the activations of one layer are standardised,
reduced to a few dimensions and split by 2-means; the smaller cluster is the suspect. A
backdoored class splits into its clean samples and the poison, which the model recognises by
the trigger; a clean class splits along natural variation. The paper names three ways to
tell the two apart, all offered here:

- ``"reclassify"`` (exclusionary reclassification, the default): the suspect clusters are set
  aside and a classifier that never saw them classifies them. Poison comes from other
  classes, so such a classifier sends it back to its source classes, while a legitimate
  sub-population is still recognised as its label. A cluster is judged poison when most of
  its samples are recognised as their label no better than chance. The paper retrains the
  network for this; here the reclassifier is a k-nearest-neighbour vote on the raw inputs
  outside the suspect clusters, which needs no training and cannot have learnt the trigger
  (a stand-in that needs inputs whose nearest neighbours carry class information, as on
  images and tabular data). In a class judged poisoned, samples of the larger cluster whose
  neighbours mostly carry other labels are flagged too (poison from source classes that
  look like the target can land in the larger cluster).
- ``"size"``: the smaller cluster is poison when it holds at most ``size_threshold`` of its class.
- ``"silhouette"``: as ``"size"``, and the 2-means split must also fit well (mean silhouette
  at least ``silhouette_threshold``).

Limits: poison that does not form its own cluster (a low poison rate, or a source class that
the model maps close to the target) is missed, and so is poison that outnumbers the clean
samples of its class (the smaller cluster is then the clean one). The size rules flag natural
sub-populations of clean classes as readily as poison.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import FastICA
from sklearn.metrics import silhouette_score
from torch import Tensor

from sparring.data import Dataset
from sparring.defenses.data.base import Detection
from sparring.errors import ConfigError, InputError, check_fraction, check_positive_int, check_seed
from sparring.models import Access, Classifier
from sparring.params import Params
from sparring.progress import bar

ANALYSES = ("reclassify", "size", "silhouette")
REDUCTIONS = ("pca", "ica")

#: Classes with fewer samples than this are not clustered (nothing is flagged in them).
MIN_CLASS_SIZE = 10


@dataclass
class ClassAnalysis:
    """What activation clustering found in one class."""

    label: int
    n: int
    smaller_share: float  # share of the class in the smaller (suspect) cluster
    silhouette: float  # mean silhouette of the 2-means split
    agreement: float  # mean share of the suspect cluster's neighbours carrying its label (nan unless reclassify)
    unrecognised: float  # share of the suspect cluster not recognised better than chance (nan unless reclassify)
    poisoned: bool


class ActivationClustering(Params):
    """Flag activation clusters that look like backdoor poison (Chen et al., AAAI SafeAI 2019).

    ``layer`` names the layer whose activations are clustered (zoo models call their last
    hidden activation ``"penultimate"``); ``n_components`` is the dimension they are reduced
    to (10 in the paper) by ``reduce`` = ``"pca"`` or ``"ica"`` (FastICA, the paper's choice;
    PCA raised fewer false alarms on clean MNIST subsets in our runs). ``standardize`` scales
    every unit to unit variance within the class first, so that a few high-variance units do
    not decide the split. ``analysis`` picks the rule that judges a class poisoned (see the
    module docstring); ``size_threshold`` and ``silhouette_threshold`` serve the size rules
    (0.35 and 0.10, the defaults of IBM's reference implementation in ART). Reclassification
    votes over ``n_neighbors`` neighbours; a sample counts as recognised when at least
    ``reclassify_threshold`` of them carry its label (None: chance, ``1 / num_classes``), and
    in a class judged poisoned the larger cluster's samples with fewer than
    ``sweep_threshold`` of their neighbours carrying their label are flagged as well (None
    turns this off). ``seed`` seeds PCA/ICA, k-means and silhouette sampling.
    """

    requires = Access.INTERNALS

    def __init__(
        self,
        layer: str = "penultimate",
        n_components: int = 10,
        reduce: str = "pca",
        analysis: str = "reclassify",
        standardize: bool = True,
        size_threshold: float = 0.35,
        silhouette_threshold: float = 0.10,
        n_neighbors: int = 10,
        reclassify_threshold: float | None = None,
        sweep_threshold: float | None = 0.5,
        seed: int = 0,
    ) -> None:
        if not isinstance(layer, str) or not layer:
            raise ConfigError(f"layer must be a non-empty layer name, got {layer!r}")
        if reduce not in REDUCTIONS:
            raise ConfigError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
        if analysis not in ANALYSES:
            raise ConfigError(f"analysis must be one of {', '.join(ANALYSES)}, got {analysis!r}")
        if not -1.0 <= float(silhouette_threshold) <= 1.0:
            raise ConfigError(f"silhouette_threshold must be in [-1, 1], got {silhouette_threshold}")
        self.layer = layer
        self.n_components = check_positive_int("n_components", n_components)
        self.reduce = reduce
        self.analysis = analysis
        self.standardize = bool(standardize)
        self.size_threshold = check_fraction("size_threshold", size_threshold)
        self.silhouette_threshold = float(silhouette_threshold)
        self.n_neighbors = check_positive_int("n_neighbors", n_neighbors)
        self.reclassify_threshold = (
            None if reclassify_threshold is None else check_fraction("reclassify_threshold", reclassify_threshold)
        )
        self.sweep_threshold = None if sweep_threshold is None else check_fraction("sweep_threshold", sweep_threshold)
        self.seed = check_seed(seed)

    # -- the verb ----------------------------------------------------------------------
    def detect(self, train: Dataset, classifier: Classifier) -> Detection:
        """Cluster each class's activations and flag what the analysis judges to be poison.

        ``classifier`` must be the model trained on ``train`` and grant internals access.
        ``scores`` are, for ``"reclassify"``, the share of a sample's nearest inputs (outside
        the suspect clusters) whose label differs from its own; for the size rules, one
        minus the share of its class in the sample's cluster. ``details["classes"]`` holds
        one :class:`ClassAnalysis` (as a dict) per class.
        """
        classifier.require(self.requires, type(self).__name__)
        n = len(train)
        if n == 0:
            raise InputError("cannot run activation clustering on an empty dataset")
        if tuple(train.input_shape) != tuple(classifier.input_shape):
            raise InputError(
                f"training inputs have shape {train.input_shape}, the classifier expects {classifier.input_shape}"
            )
        feats = classifier.features(train.x, self.layer).double().numpy()
        y = train.y.numpy()
        suspect = np.zeros(n, dtype=bool)  # in the smaller cluster of its class
        splits: dict[int, tuple[float, float]] = {}  # class -> (smaller share, silhouette)
        for c in bar(np.unique(y).tolist(), "activation clustering"):
            idx = np.flatnonzero(y == c)
            split = self._split(feats[idx])
            if split is not None:
                suspect[idx[split[0]]] = True
                splits[int(c)] = (float(split[0].mean()), split[1])

        if self.analysis == "reclassify":
            agree = self._agreement(train, torch.as_tensor(suspect))
            scores = 1.0 - agree
        else:
            agree = np.full(n, math.nan)
            scores = np.zeros(n)
            for c, (share, _) in splits.items():
                scores[(y == c) & suspect] = 1.0 - share
                scores[(y == c) & ~suspect] = share
        chance = 1.0 / classifier.num_classes if self.reclassify_threshold is None else self.reclassify_threshold

        flagged = np.zeros(n, dtype=bool)
        report: list[ClassAnalysis] = []
        for c, (share, silhouette) in sorted(splits.items()):
            in_class = y == c
            cluster = in_class & suspect
            agreement = float(agree[cluster].mean())
            unrecognised = float((agree[cluster] < chance).mean()) if self.analysis == "reclassify" else math.nan
            if self.analysis == "reclassify":
                poisoned = unrecognised > 0.5
            elif self.analysis == "size":
                poisoned = share <= self.size_threshold
            else:
                poisoned = share <= self.size_threshold and silhouette >= self.silhouette_threshold
            if poisoned:
                flagged |= cluster
                if self.analysis == "reclassify" and self.sweep_threshold is not None:
                    flagged |= in_class & ~suspect & (agree < self.sweep_threshold)
            report.append(
                ClassAnalysis(c, int(in_class.sum()), share, silhouette, agreement, unrecognised, bool(poisoned))
            )
        return Detection(
            torch.as_tensor(scores, dtype=torch.float32),
            torch.as_tensor(flagged),
            {"analysis": self.analysis, "classes": [asdict(r) for r in report]},
        )

    # -- steps -------------------------------------------------------------------------
    def _split(self, acts: np.ndarray) -> tuple[np.ndarray, float] | None:
        """Reduce one class's activations and 2-means them: (mask of the smaller cluster, silhouette)."""
        if len(acts) < MIN_CLASS_SIZE:
            return None
        sd = acts.std(axis=0)
        keep = sd > 1e-6 * max(float(sd.max()), 1e-12)
        if not keep.any():
            return None  # every unit constant: no structure to split
        a = acts[:, keep] - acts[:, keep].mean(axis=0)
        if self.standardize:
            a = a / sd[keep]
        dims = min(self.n_components, a.shape[1], len(a) - 1)
        if self.reduce == "pca":
            # PCA of the centred activations through their SVD, in torch (which keeps to the
            # thread count set by the caller; a LAPACK call through scikit-learn may not).
            _, _, vh = torch.linalg.svd(torch.from_numpy(a), full_matrices=False)
            z = (torch.from_numpy(a) @ vh[:dims].T).numpy()
        else:
            z = FastICA(dims, whiten="unit-variance", max_iter=1000, random_state=self.seed).fit_transform(a)
        labels = KMeans(2, n_init=10, random_state=self.seed).fit_predict(z)
        counts = np.bincount(labels, minlength=2)
        if counts.min() == 0:
            return None
        in_smaller = labels == int(np.argmin(counts))
        silhouette = float(silhouette_score(z, labels, sample_size=min(len(z), 2000), random_state=self.seed))
        return in_smaller, silhouette

    def _agreement(self, train: Dataset, suspicious: Tensor) -> np.ndarray:
        """Per sample, the share of its k nearest reference inputs that carry its label.

        References are all samples outside the suspicious clusters (leave-one-out for the
        references themselves), so no suspicious sample votes on its own cluster.
        """
        x = train.x.flatten(1)
        ref = torch.nonzero(~suspicious).flatten()
        k = min(self.n_neighbors, len(ref) - 1)
        if k < 1:
            return np.ones(len(train))
        x_ref, y_ref = x[ref], train.y[ref]
        out = torch.empty(len(train))
        for q in torch.arange(len(train)).split(256):
            d = torch.cdist(x[q], x_ref)
            d[q.view(-1, 1) == ref.view(1, -1)] = math.inf
            nearest = d.topk(k, dim=1, largest=False).indices
            out[q] = (y_ref[nearest] == train.y[q].view(-1, 1)).float().mean(dim=1)
        return out.double().numpy()
