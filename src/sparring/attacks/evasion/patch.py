"""Adversarial patches: one printed sticker that fools the model wherever it is placed.

Brown, Mané, Roy, Abadi & Gilmer ("Adversarial Patch", 2017) optimise a patch of fixed area
with expectation over transformation (EOT, Athalye et al., ICML 2018): at each step every
input of a mini-batch gets the patch at a random position, scale and rotation (here also a
random brightness), and the patch ascends the mean loss. The optimisation runs through the
one gradient loop (:func:`~sparring.attacks.evasion.loop.gradient_loop`): the iterate is the
patch itself, the ball is the whole input range, and the objective applies a fresh draw of
transformations to a fresh batch at each step.

A patch is judged on held-out inputs at placements drawn from another generator
(:meth:`Patch.evaluate`), at its nominal size, upright and at full brightness: the honest
figure for a sticker that was never fitted to those inputs or positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F

from sparring.attacks.evasion.loop import gradient_loop
from sparring.attacks.evasion.norms import Linf
from sparring.attacks.evasion.universal import LOSSES, Universal, UniversalAttack, batch_objective
from sparring.errors import (
    ConfigError,
    check_choice,
    check_class,
    check_fraction,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_seed,
)
from sparring.models import Access, Classifier


def check_area(area: float) -> float:
    """``area`` if it is a share of the image strictly between 0 and 1, else a ConfigError."""
    a = float(area) if isinstance(area, int | float) and not isinstance(area, bool) else math.nan
    if not 0.0 < a < 1.0:
        raise ConfigError(f"patch area must be a share of the image strictly between 0 and 1, got {area!r}")
    return a


def patch_side(area: float, input_shape: Sequence[int]) -> int:
    """The side of a square patch covering about ``area`` of an image ``[C, H, W]`` (at least 1 pixel)."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"an adversarial patch needs image inputs [C, H, W], got input shape {tuple(input_shape)} (tabular data "
            "has no place to stick a patch)"
        )
    h, w = int(input_shape[1]), int(input_shape[2])
    return max(1, min(h, w, round(math.sqrt(check_area(area) * h * w))))


@dataclass(frozen=True)
class Placement:
    """Per input: the patch centre (row, column, in pixels), scale, rotation (radians) and brightness factor."""

    cy: Tensor
    cx: Tensor
    scale: Tensor
    angle: Tensor
    brightness: Tensor


def random_placement(
    n: int,
    image: tuple[int, int],
    side: int,
    generator: torch.Generator,
    scale: float = 0.0,
    rotation: float = 0.0,
    brightness: float = 0.0,
) -> Placement:
    """Random placements of a ``side`` x ``side`` patch on ``image`` (H, W).

    With all ranges 0 (evaluation) the patch is upright, at its size, and lies on whole
    pixels, uniformly over the positions where it fits. Otherwise (EOT) the scale is drawn
    from ``[1 - scale, 1]`` (never larger than the budget), the angle from ``±rotation``
    degrees, the brightness factor from ``[1 - brightness, 1 + brightness]`` and the centre
    uniformly where the scaled, unrotated patch fits.
    """
    h, w = image
    if scale == rotation == brightness == 0.0:
        oy = torch.randint(h - side + 1, (n,), generator=generator).float()
        ox = torch.randint(w - side + 1, (n,), generator=generator).float()
        one = torch.ones(n)
        return Placement(oy + side / 2, ox + side / 2, one, torch.zeros(n), one)
    s = 1.0 - scale * torch.rand(n, generator=generator)
    half = s * side / 2
    cy = half + torch.rand(n, generator=generator) * (h - 2 * half)
    cx = half + torch.rand(n, generator=generator) * (w - 2 * half)
    angle = math.radians(rotation) * (2 * torch.rand(n, generator=generator) - 1)
    b = 1.0 + brightness * (2 * torch.rand(n, generator=generator) - 1)
    return Placement(cy, cx, s, angle, b)


def place(x: Tensor, pattern: Tensor, where: Placement, bounds: tuple[float, float]) -> Tensor:
    """``x`` (``[N, C, H, W]``) with ``pattern`` (``[C, h, w]`` or ``[1, C, h, w]``) pasted as ``where`` says.

    Differentiable in ``pattern``: each image pixel samples the patch bilinearly at its
    centre mapped back through the placement's rotation and scale (a pixel-aligned placement
    copies the patch exactly), and the patch covers the image by the same sampling of ones.
    """
    n, _, h, w = x.shape
    pattern = pattern.reshape(1, *pattern.shape[-3:])
    ph, pw = pattern.shape[-2:]
    rows = (torch.arange(h, dtype=x.dtype) + 0.5).view(1, h, 1)
    cols = (torch.arange(w, dtype=x.dtype) + 0.5).view(1, 1, w)
    dy = rows - where.cy.view(n, 1, 1)
    dx = cols - where.cx.view(n, 1, 1)
    cos, sin = where.angle.cos().view(n, 1, 1), where.angle.sin().view(n, 1, 1)
    s = where.scale.view(n, 1, 1)
    u = (cos * dx + sin * dy) / s + pw / 2  # patch column, in pixels
    v = (-sin * dx + cos * dy) / s + ph / 2  # patch row
    grid = torch.stack((2 * u / pw - 1, 2 * v / ph - 1), dim=-1)
    sampled = F.grid_sample(pattern.expand(n, -1, -1, -1), grid, mode="bilinear", align_corners=False)
    cover = F.grid_sample(torch.ones(n, 1, ph, pw, dtype=x.dtype), grid, mode="bilinear", align_corners=False)
    return (x * (1 - cover) + sampled * where.brightness.view(n, 1, 1, 1)).clamp(*bounds)


@dataclass
class Patch(Universal):
    """A crafted patch: ``pattern`` ``[C, side, side]`` covering ``area`` (its real share) of each image."""

    pattern: Tensor
    area: float
    target: int | None = None
    seconds: float = 0.0
    queries: int = 0

    def apply(self, x: Tensor, bounds: tuple[float, float], generator: torch.Generator | None = None) -> Tensor:
        """``x`` with the patch at uniform random whole-pixel positions, upright, at its size."""
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        where = random_placement(len(x), (x.shape[-2], x.shape[-1]), self.pattern.shape[-1], g)
        return place(x, self.pattern, where, bounds)

    def size(self, x: Tensor, x_adv: Tensor) -> Tensor:
        return torch.full((len(x),), self.area)


class AdversarialPatch(UniversalAttack[Patch]):
    """Adversarial patch with expectation over transformation (Brown et al., 2017).

    Parameters: ``area`` (share of the image the square patch covers, in (0, 1)),
    ``steps`` (mini-batches), ``batch_size``, ``step_size`` (sign steps; None: a tenth of the
    input range, decayed linearly to a tenth of that), EOT ranges ``scale`` (drawn from
    ``[1 - scale, 1]``), ``rotation`` (± degrees) and ``brightness`` (factor in ``1 ±
    brightness``), ``loss`` ("ce" or "margin", clipped at ``max_loss``; None: unclipped),
    ``target`` (a class, or None for untargeted), ``stop_at`` (stop once a batch's
    success rate reaches it) and ``seed`` (initial patch, batches and transformations).
    """

    requires: ClassVar[Access] = Access.GRADIENTS

    def __init__(
        self,
        area: float = 0.05,
        steps: int = 300,
        batch_size: int = 64,
        step_size: float | None = None,
        scale: float = 0.2,
        rotation: float = 15.0,
        brightness: float = 0.1,
        loss: str = "ce",
        max_loss: float | None = 4.0,
        target: int | None = None,
        stop_at: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.area = check_area(area)
        self.steps = check_positive_int("steps", steps)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.step_size = None if step_size is None else check_nonnegative("step_size", step_size)
        self.scale = check_fraction("scale", scale)
        if self.scale >= 1.0:
            raise ConfigError(f"scale must be in [0, 1) (the patch shrinks by at most that share), got {scale}")
        self.rotation = check_nonnegative("rotation", rotation)
        self.brightness = check_fraction("brightness", brightness)
        self.loss = check_choice("loss", loss, LOSSES)
        self.max_loss = None if max_loss is None else check_positive("max_loss", max_loss)
        self.target = None if target is None else check_class("target", target)
        self.stop_at = check_positive("stop_at", stop_at)
        self.seed = check_seed(seed)

    def schedule(self, span: float) -> Callable[[int], float]:
        """The sign-step size at step ``k``: ``step_size`` (default ``span / 10``) decayed linearly to a tenth."""
        base = span / 10 if self.step_size is None else self.step_size
        return lambda k: base * max(0.1, 1.0 - k / self.steps)

    def _craft(self, classifier: Classifier, x: Tensor, y: Tensor) -> Patch:
        side = patch_side(self.area, classifier.input_shape)
        c, h, w = classifier.input_shape
        lo, hi = classifier.bounds
        g = torch.Generator().manual_seed(self.seed)
        init = lo + (hi - lo) * torch.rand(1, c, side, side, generator=g)
        passes = -(-self.steps * self.batch_size // len(x))
        order = torch.cat([torch.randperm(len(x), generator=g) for _ in range(passes)])

        def forward(it: Tensor, xb: Tensor, _k: int) -> Tensor:
            where = random_placement(len(xb), (h, w), side, g, self.scale, self.rotation, self.brightness)
            return classifier.logits(place(xb, it, where, (lo, hi)))

        objective = batch_objective(
            forward, x, y, order, self.batch_size, self.target, self.loss, self.max_loss, self.stop_at
        )
        pattern = gradient_loop(
            init,
            objective,
            Linf(),
            hi - lo,
            self.steps,
            self.schedule(hi - lo),
            (lo, hi),
            early_stop=True,
            check_last=False,
        ).x
        return Patch(pattern[0].detach(), side * side / (h * w), self.target)
