"""Autoencoder reconstruction error: inputs unlike the rest of their class reconstruct badly.

The autoencoder filter of Liu, Xie & Srivastava, "Neural Trojans", ICCD 2017, put in front of a
model, learns the clean input distribution and lets anomalous (trojan-triggered) inputs
reconstruct poorly. Here the same idea sanitises a training set: a small fully connected
autoencoder is trained on the (possibly poisoned) training inputs themselves, one per label
class (``per_class=True``) or one for all, and a sample's suspicion is its reconstruction
error divided by the median error of its label class (1 is a typical sample), so classes that
are naturally harder to reconstruct are not flagged wholesale. (A robust z-score, dividing by
the class's median absolute deviation instead, did worse on digits: all-to-one poison makes
the target class bimodal, which inflates its deviation and hides the poison.)

Limits (measured in ``benchmarks/backdoor_training.py``): the detector sees inputs and labels,
never the model. Against all-to-one poison the per-class autoencoder of the target class is
trained on a mix of genuine target samples and relabelled samples of other classes, and the
latter reconstruct worse; that, more than the trigger itself, is what it finds, so the
separation is modest (10 % BadNets: ROC AUC 0.81 on digits, 0.67 on 2,000 mnist5k images;
flagging the top 15 % finds 38 % and 27 % of the poison) and a fixed flagging share costs
many clean samples. It learns from the poisoned data, so a trigger frequent enough
is learnt and reconstructed like everything else.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.defenses.data.base import Detection
from sparring.errors import ConfigError, InputError, check_positive_int, check_seed
from sparring.models import Access, Classifier
from sparring.params import Params
from sparring.progress import bar

#: Groups (classes) with fewer samples than this get no autoencoder and score 0.
MIN_GROUP_SIZE = 10


class AutoencoderDetector(Params):
    """Flag training samples with unusually high autoencoder reconstruction error (after Liu et al., ICCD 2017).

    ``epochs``, ``batch_size`` and ``lr`` (Adam) train each autoencoder
    ``D -> hidden -> code_size -> hidden -> D`` (ReLU) with mean squared error. ``per_class``
    trains one autoencoder per label class, else one on all inputs. Scores are errors divided
    by the median error of the sample's label class. ``quantile`` flags the samples above that
    quantile of all scores (0.85 flags the top 15 %); ``threshold``, when set, flags every score
    above it instead (e.g. 2: twice the class's median error). The classifier is not used.
    """

    requires = Access.NONE

    def __init__(
        self,
        epochs: int = 30,
        code_size: int = 8,
        hidden: int = 64,
        quantile: float = 0.85,
        threshold: float | None = None,
        per_class: bool = True,
        batch_size: int = 64,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool | None = None,
    ) -> None:
        if not 0.0 <= float(quantile) < 1.0:
            raise ConfigError(f"quantile must be in [0, 1), got {quantile}")
        if threshold is not None and not 0.0 < float(threshold) < math.inf:
            raise ConfigError(f"threshold must be None or a finite number > 0, got {threshold}")
        if not 0.0 < float(lr) < math.inf:
            raise ConfigError(f"lr must be a finite number > 0, got {lr}")
        self.epochs = check_positive_int("epochs", epochs)
        self.code_size = check_positive_int("code_size", code_size)
        self.hidden = check_positive_int("hidden", hidden)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.quantile = float(quantile)
        self.threshold = None if threshold is None else float(threshold)
        self.per_class = bool(per_class)
        self.lr = float(lr)
        self.seed = check_seed(seed)
        self.progress = progress

    # -- the verb ----------------------------------------------------------------------
    def detect(self, train: Dataset, classifier: Classifier | None = None) -> Detection:
        """Train the autoencoder(s) on ``train.x`` and score every sample by its reconstruction error.

        ``details`` holds ``"error"`` (raw mean squared error per sample, float ``[N]``),
        ``"cutoff"`` (the score above which samples are flagged) and ``"groups"`` (per group:
        label or "all", size, final training loss).
        """
        n = len(train)
        if n < MIN_GROUP_SIZE:
            raise InputError(f"the autoencoder detector needs at least {MIN_GROUP_SIZE} samples, got {n}")
        x = train.x.reshape(n, -1).float()
        y = train.y.long()
        labels = [int(c) for c in torch.unique(y).tolist()]
        groups: list[tuple[str, Tensor]] = (
            [(str(c), torch.nonzero(y == c).flatten()) for c in labels]
            if self.per_class
            else [("all", torch.arange(n))]
        )
        error = torch.zeros(n)
        report: list[dict[str, Any]] = []
        for i, (name, idx) in enumerate(bar(groups, "autoencoder", total=len(groups), enabled=self.progress)):
            if len(idx) < MIN_GROUP_SIZE:
                report.append({"group": name, "n": len(idx), "loss": math.nan})
                continue
            err, loss = self._fit_and_score(x[idx], self.seed + i)
            error[idx] = err
            report.append({"group": name, "n": len(idx), "loss": loss})
        scores = torch.zeros(n)
        for c in labels:
            idx = torch.nonzero(y == c).flatten()
            if len(idx) < MIN_GROUP_SIZE:
                continue
            scores[idx] = error[idx] / error[idx].median().clamp_min(1e-12)
        if self.threshold is not None:
            cutoff = self.threshold
            flagged = scores > cutoff
        else:
            count = math.ceil((1.0 - self.quantile) * n)
            flagged = torch.zeros(n, dtype=torch.bool)
            if count:
                top = scores.topk(count)
                flagged[top.indices] = True
                cutoff = float(top.values[-1])
            else:
                cutoff = math.inf
        return Detection(scores, flagged, {"error": error, "cutoff": cutoff, "groups": report})

    def _fit_and_score(self, x: Tensor, seed: int) -> tuple[Tensor, float]:
        """Train one autoencoder on ``x`` (seeded) and return its per-sample squared error and last loss."""
        d = x.shape[1]
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            ae = nn.Sequential(
                nn.Linear(d, self.hidden),
                nn.ReLU(),
                nn.Linear(self.hidden, self.code_size),
                nn.ReLU(),
                nn.Linear(self.code_size, self.hidden),
                nn.ReLU(),
                nn.Linear(self.hidden, d),
            )
        opt = torch.optim.Adam(ae.parameters(), lr=self.lr)
        g = torch.Generator().manual_seed(seed)
        last = math.nan
        for _ in range(self.epochs):
            total = 0.0
            for idx in torch.randperm(len(x), generator=g).split(self.batch_size):
                opt.zero_grad(set_to_none=True)
                loss = (ae(x[idx]) - x[idx]).pow(2).mean()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            last = total / len(x)
        with torch.no_grad():
            return (ae(x) - x).pow(2).mean(dim=1), last
