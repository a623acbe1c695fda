"""Derandomised smoothing: a vote over ablated copies of the input, certifiably robust to a patch.

Levine & Feizi ("(De)Randomized Smoothing for Certifiable Defense against Patch Attacks",
NeurIPS 2020) keep only one band of columns (column ablation) or one square block (block
ablation) of the image, hide the rest, and let a base classifier trained on such ablated
inputs vote over every position of the band. A square patch of side ``m`` can only touch the
``m + b - 1`` column bands of width ``b`` that overlap it (``(m + b - 1)^2`` blocks), so a
vote whose winner leads the runner-up by more than twice that count cannot be overturned by
any patch of that size, wherever it is placed: the prediction is certified.

Hidden pixels are set to ``fill`` (default: the middle of the input range, a value a clean
digit rarely takes, so the base classifier can tell hidden from dark; the paper adds channels
for the same purpose, which would change the model's input shape). The base classifier must
be trained on ablated inputs (:meth:`DerandomizedSmoothing.fit`, through the one training
loop); :meth:`DerandomizedSmoothing.wrap` puts the vote in front of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import AccessError, ConfigError, check_choice, check_positive_int, check_seed
from sparring.models import Classifier, ClassifierWrapper, check_batch
from sparring.params import Params
from sparring.train import TrainConfig, TrainResult, fit

#: Ablation shapes: a band of columns, or a square block.
MODES = ("column", "block")


def _image_size(input_shape: Sequence[int]) -> tuple[int, int]:
    if len(input_shape) != 3:
        raise ConfigError(
            f"derandomised smoothing ablates image regions and needs inputs [C, H, W], got {tuple(input_shape)}"
        )
    return int(input_shape[1]), int(input_shape[2])


def retained_masks(mode: str, size: int, image: tuple[int, int]) -> Tensor:
    """Every ablation's kept region as a boolean ``[P, H, W]`` mask, one per position (bands wrap round)."""
    h, w = image
    cols = torch.arange(w)
    rows = torch.arange(h)
    if mode == "column":
        starts = torch.arange(w)
        keep_c = ((cols[None, :] - starts[:, None]) % w) < size  # [P, W]
        return keep_c[:, None, :].expand(w, h, w)
    r0, c0 = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    keep_r = ((rows[None, :] - r0.flatten()[:, None]) % h) < size  # [P, H]
    keep_c = ((cols[None, :] - c0.flatten()[:, None]) % w) < size  # [P, W]
    return keep_r[:, :, None] & keep_c[:, None, :]


class DerandomizedSmoothing(Params):
    """Column or block ablation with a vote (Levine & Feizi, NeurIPS 2020).

    Parameters: ``mode`` ("column" or "block"), ``size`` (band width or block side, in
    pixels), ``fill`` (value of hidden pixels; None: the middle of ``bounds``), ``seed``
    (the random ablations of training) and ``bounds`` (the input range).
    """

    def __init__(
        self,
        mode: str = "column",
        size: int = 2,
        fill: float | None = None,
        seed: int = 0,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.mode = check_choice("mode", mode, MODES)
        self.size = check_positive_int("size", size)
        self.fill = None if fill is None else float(fill)
        self.seed = check_seed(seed)
        self.bounds = (float(bounds[0]), float(bounds[1]))

    @property
    def fill_value(self) -> float:
        """The value hidden pixels take."""
        return (self.bounds[0] + self.bounds[1]) / 2 if self.fill is None else self.fill

    def masks(self, input_shape: Sequence[int]) -> Tensor:
        """The kept region of every ablation position, ``[P, H, W]``."""
        h, w = _image_size(input_shape)
        if self.size > min(h, w):
            raise ConfigError(f"ablation size {self.size} exceeds the image ({h} x {w})")
        return retained_masks(self.mode, self.size, (h, w))

    def ablate(self, x: Tensor, keep: Tensor) -> Tensor:
        """``x`` (``[N, C, H, W]``) with everything outside ``keep`` (``[N, H, W]``) set to the fill value."""
        return torch.where(keep[:, None], x, torch.full_like(x, self.fill_value))

    def fit(self, model: nn.Module, train: Dataset, config: TrainConfig | None = None) -> TrainResult:
        """Train ``model`` on inputs ablated at a random position each (the base classifier of the vote)."""
        masks = self.masks(train.input_shape)
        g = torch.Generator().manual_seed(self.seed)

        def ablated(_model: nn.Module, x: Tensor, _y: Tensor) -> Tensor:
            return self.ablate(x, masks[torch.randint(len(masks), (len(x),), generator=g)])

        return fit(model, train, config, transform=ablated, desc=f"{self.mode} ablation training")

    def wrap(self, classifier: Classifier) -> SmoothedClassifier:
        """The vote over every ablation of an input, with ``classifier`` (trained by :meth:`fit`) as base."""
        return SmoothedClassifier(classifier, self)

    def delta(self, side: int) -> int:
        """How many ablation positions a square patch of ``side`` pixels can touch."""
        overlap = side + self.size - 1
        return overlap if self.mode == "column" else overlap * overlap


class SmoothedClassifier(ClassifierWrapper):
    """The smoothed classifier: labels by majority vote over every ablation (ties: lowest class).

    Scores are the vote shares. Logits are ``log`` of the base classifier's class
    probabilities averaged over the ablations: a differentiable stand-in for the vote that an
    adaptive attacker ascends (the vote itself has no useful gradient). Every query costs one
    inner query per ablation position.
    """

    def __init__(self, inner: Classifier, smoothing: DerandomizedSmoothing) -> None:
        super().__init__(inner)
        self.smoothing = smoothing
        self._masks = smoothing.masks(inner.input_shape)

    def _ablated(self, x: Tensor) -> Tensor:
        """All ablations of ``x``, position-major: ``[P * N, C, H, W]``."""
        p, n = len(self._masks), len(x)
        keep = self._masks[:, None].expand(p, n, *self._masks.shape[1:]).reshape(p * n, *self._masks.shape[1:])
        return self.smoothing.ablate(x.repeat(p, *([1] * (x.dim() - 1))), keep)

    def votes(self, x: Tensor) -> Tensor:
        """Vote counts ``[N, num_classes]`` of the base classifier over every ablation."""
        x = check_batch(x, self.input_shape)
        p = len(self._masks)
        parts = []
        for chunk in x.split(max(1, 4096 // p)):
            pred = self.inner.predict_labels(self._ablated(chunk)).reshape(p, len(chunk))
            part = torch.zeros(len(chunk), self.num_classes)
            parts.append(part.scatter_add_(1, pred.T, torch.ones(len(chunk), p)))
        return torch.cat(parts) if parts else torch.zeros(0, self.num_classes)

    def _labels(self, x: Tensor) -> Tensor:
        return self.votes(x).argmax(1)

    def _scores(self, x: Tensor) -> Tensor:
        return self.votes(x) / len(self._masks)

    def _logits(self, x: Tensor) -> Tensor:
        p, n = len(self._masks), len(x)
        log_p = torch.log_softmax(self.inner.logits(self._ablated(x)), dim=1).reshape(p, n, -1)
        return torch.logsumexp(log_p, dim=0) - math.log(p)

    def _features(self, x: Tensor, layer: str) -> Tensor:
        raise AccessError("a smoothed classifier has no single feature map: read the base classifier's")

    def certify(self, x: Tensor, y: Tensor, side: int) -> Tensor:
        """Per input: True when the vote is correct and no ``side`` x ``side`` patch anywhere can change it.

        Certified when the winner's count exceeds every other class's by more than twice the
        positions a patch can touch (Levine & Feizi's bound, without their tie-break rule).
        """
        counts = self.votes(x)
        top = counts.argmax(1)
        runner = counts.scatter(1, top[:, None], -1.0).amax(1)
        lead = counts.gather(1, top[:, None]).squeeze(1) - runner
        return (top == y) & (lead > 2 * self.smoothing.delta(side))
