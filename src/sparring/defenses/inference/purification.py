"""Input purification: find the region the prediction rests on, erase it, fill it in, classify.

Doan, Abbasnejad & Ranasinghe ("Februus: Input Purification Defense Against Trojan Attacks
on Deep Neural Network Systems", ACSAC 2020) observe that a trojaned network's decision on a
triggered input rests on the trigger, so a class-activation map of the predicted class
points at it. Februus removes the most salient region with GradCAM (Selvaraju et al., ICCV
2017) and restores it with a GAN inpainter before classifying; on a clean input the region
removed is part of the object, which the inpainter is meant to give back.

This module follows the same three steps with nothing to train: the saliency map is
GradCAM on a named convolutional layer when one is given (needs internals and gradients of
a :class:`~sparring.models.TorchClassifier`) and otherwise the input-gradient magnitude of
the predicted class's logit (Simonyan, Vedaldi & Zisserman, ICLR workshop 2014; needs
gradients only); the removed region is the square window of side ``patch`` (a fraction of
the image side) with the largest summed saliency; it is filled by diffusion from its border
(each removed pixel repeatedly replaced by the mean of its four neighbours, starting from
the mean of the kept pixels), a training-free stand-in for the GAN. The defence wraps a
classifier and returns one (:class:`~sparring.models.transformed.TransformedClassifier`), so
its cost on clean inputs is measured like any other input transform's.

Measured on BadNets (3x3 patch, 10 %, target 0) small CNNs: on mnist5k (28x28, 300 test
images) input-gradient saliency with ``patch=0.15`` took ASR 1.00 -> 0.00 at clean accuracy
0.973 -> 0.940 (``0.25``: 0.00 and 0.830); on digits (8x8) ``patch=0.375`` took ASR 1.00 ->
0.02 at 0.969 -> 0.753. ``patch`` should be about the trigger's size: larger windows erase
more of clean objects. GradCAM on ``conv1`` or ``conv2`` left ASR at 0.97-1.00 on both: the
small CNN's class-activation map covers the digit's strokes as much as the corner patch, so
the densest window lands on the digit. A blended (whole-image) trigger is outside what
region removal can undo (ASR stays at 1.00).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from sparring.errors import AccessError, ConfigError, InputError, check_fraction, check_positive_int
from sparring.models import Access, Classifier, TorchClassifier, capture, check_batch
from sparring.models.transformed import InputTransform, TransformedClassifier
from sparring.params import Params


def saliency_window(saliency: Tensor, size: int) -> Tensor:
    """Boolean ``[N, H, W]`` masks of the ``size`` x ``size`` window with the largest summed ``saliency``."""
    n, h, w = saliency.shape
    sums = F.avg_pool2d(saliency.unsqueeze(1), size, stride=1).flatten(1)  # [N, (H-k+1)*(W-k+1)]
    best = sums.argmax(dim=1)
    r0 = (best // (w - size + 1)).view(n, 1, 1)
    c0 = (best % (w - size + 1)).view(n, 1, 1)
    rows = torch.arange(h).view(1, -1, 1)
    cols = torch.arange(w).view(1, 1, -1)
    return (rows >= r0) & (rows < r0 + size) & (cols >= c0) & (cols < c0 + size)


def diffusion_fill(x: Tensor, mask: Tensor, iterations: int) -> Tensor:
    """Fill the True pixels of ``mask`` ``[N, H, W]`` in images ``x`` ``[N, C, H, W]`` by diffusion from their border.

    Masked pixels start at the mean of the sample's unmasked pixels (per channel) and are
    then ``iterations`` times replaced by the mean of their four neighbours (edges
    replicated); unmasked pixels never change. The result is differentiable in ``x``.
    """
    m = mask.unsqueeze(1).to(x.dtype)  # [N, 1, H, W]
    kept = (1 - m).sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    mean = (x * (1 - m)).sum(dim=(2, 3), keepdim=True) / kept
    out = x * (1 - m) + mean * m
    for _ in range(iterations):
        p = F.pad(out, (1, 1, 1, 1), mode="replicate")
        neighbours = (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]) / 4
        out = x * (1 - m) + neighbours * m
    return out


class SaliencyPurify(InputTransform):
    """The input transform of :class:`Purification`, bound to the classifier whose saliency it reads.

    It receives inputs scaled to ``[0, 1]`` (as every :class:`InputTransform` does) and
    maps them back to the classifier's bounds to compute the saliency.
    """

    randomized = False

    def __init__(self, classifier: Classifier, layer: str | None, patch: float, iterations: int) -> None:
        self.classifier = classifier
        self.layer = layer
        self.patch = patch
        self.iterations = iterations

    @property
    def name(self) -> str:
        return f"purify:{self.layer or 'input_gradient'}:{self.patch}"

    def check_input_shape(self, input_shape: Sequence[int]) -> None:
        if len(input_shape) != 3:
            raise ConfigError(f"Purification needs image inputs [C, H, W], got input shape {tuple(input_shape)}")

    def saliency(self, x: Tensor) -> Tensor:
        """Saliency ``[N, H, W]`` of the predicted class for inputs ``x`` in the classifier's bounds."""
        clf = self.classifier
        xs = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            if self.layer is None:
                logits = clf.logits(xs)
                chosen = logits.gather(1, logits.argmax(dim=1, keepdim=True)).sum()
                (grad,) = torch.autograd.grad(chosen, xs)
                return grad.abs().sum(dim=1)
            assert isinstance(clf, TorchClassifier)
            with capture(clf.model, self.layer) as captured:
                logits = clf.logits(xs)
            act = captured[-1]
            if act.dim() != 4:
                raise InputError(
                    f"layer {self.layer!r} gives outputs of shape {tuple(act.shape)}; GradCAM needs a "
                    "convolutional layer with [N, C, H, W] outputs"
                )
            chosen = logits.gather(1, logits.argmax(dim=1, keepdim=True)).sum()
            (grad,) = torch.autograd.grad(chosen, act)
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * act.detach()).sum(dim=1, keepdim=True))
        return F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False).squeeze(1)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if len(x) == 0:
            return x
        lo, hi = self.classifier.bounds
        h, w = x.shape[-2:]
        size = max(1, round(self.patch * min(h, w)))
        mask = saliency_window(self.saliency(x * (hi - lo) + lo), size)
        return diffusion_fill(x, mask, self.iterations)


class Purification(Params):
    """Februus-style input purification (Doan, Abbasnejad & Ranasinghe, ACSAC 2020).

    :meth:`wrap` returns a classifier that, on every query, removes the ``patch`` x
    ``patch`` window (side as a fraction of the image side) with the most saliency for the
    predicted class and fills it by ``iterations`` steps of diffusion before the wrapped
    classifier sees the input; see the module docstring. With ``layer`` (the name of a
    convolutional layer of a :class:`~sparring.models.TorchClassifier`'s model) the saliency
    is GradCAM and the classifier must grant internals and gradients; without it, the
    input gradient (gradients only).
    """

    def __init__(self, layer: str | None = None, patch: float = 0.375, iterations: int = 50) -> None:
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise ConfigError(f"layer must be None or a non-empty layer name, got {layer!r}")
        self.layer = layer
        patch = check_fraction("patch", patch)
        if patch <= 0.0:
            raise ConfigError(f"patch must lie in (0, 1] (a fraction of the image side), got {patch}")
        self.patch = patch
        self.iterations = check_positive_int("iterations", iterations)

    def transform(self, classifier: Classifier) -> SaliencyPurify:
        """The purifying input transform bound to ``classifier`` (checks its access and layer)."""
        if self.layer is None:
            classifier.require(Access.GRADIENTS, "Purification (input-gradient saliency)")
        else:
            classifier.require(Access.GRADIENTS | Access.INTERNALS, "Purification (GradCAM)")
            if not isinstance(classifier, TorchClassifier):
                raise AccessError(
                    f"Purification with layer={self.layer!r} (GradCAM) needs a TorchClassifier to read the layer, "
                    f"got {type(classifier).__name__}; use layer=None for input-gradient saliency"
                )
            names = [n for n, _ in classifier.model.named_modules() if n]
            if self.layer not in names:
                raise InputError(f"model has no layer named {self.layer!r}; layers: {', '.join(names)}")
        return SaliencyPurify(classifier, self.layer, self.patch, self.iterations)

    def wrap(self, classifier: Classifier) -> TransformedClassifier:
        """``classifier`` behind purification: same interface, every query purified first."""
        return self.transform(classifier).wrap(classifier)

    def purify(self, classifier: Classifier, x: Tensor) -> Tensor:
        """The purified inputs (in ``classifier``'s bounds) that the wrapped classifier would see."""
        return self.wrap(classifier).apply(check_batch(x, classifier.input_shape))
