"""Label-only membership inference: Choquette-Choo, Tramèr, Carlini and Papernot, ICML 2021.

"Label-Only Membership Inference Attacks" scores a sample by how robustly the model keeps
its label when only the predicted label is visible (members sit further from the decision
boundary than non-members). Two variants:

- ``augmentation`` (data-augmentation attack): the sample is queried as given, shifted by up
  to ``shift`` pixels (image inputs; every shift with ``|dx| + |dy| <= shift``, edges filled
  with the lowest input value) and under ``noise`` draws of Gaussian noise of standard
  deviation ``sigma`` times the input range; the score is the share of these queries labelled
  correctly. Cheap: ``1 + 2 shift (shift + 1) + noise`` queries per sample.
- ``boundary`` (decision-boundary distance): the L2 distance to the nearest misclassified
  input, found by HopSkipJump (Chen et al., S&P 2020; sparring's own implementation) within
  ``max_queries`` per sample; a misclassified sample scores 0, one HopSkipJump found no
  adversarial for scores the diameter of the input box.

Both need labels only, so they are the strongest attacks left against a label-only output
(the ``label_only`` output hardening).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from sparring.attacks.privacy.membership import MEMBERSHIP_ATTACKS, MembershipAttack
from sparring.errors import ConfigError, check_positive_int, check_seed
from sparring.models import Access, Classifier

#: The two variants of Choquette-Choo et al.
VARIANTS = ("augmentation", "boundary")


def shifts(radius: int) -> list[tuple[int, int]]:
    """Every pixel shift ``(dy, dx) != (0, 0)`` with ``|dy| + |dx| <= radius``."""
    return [
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if 0 < abs(dy) + abs(dx) <= radius
    ]


def shifted(x: Tensor, dy: int, dx: int, fill: float) -> Tensor:
    """``x`` ``[N, C, H, W]`` moved by ``dy`` rows and ``dx`` columns, the uncovered edge set to ``fill``."""
    out = torch.full_like(x, fill)
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


class LabelOnlyMembership(MembershipAttack):
    """Label-only membership (Choquette-Choo et al., ICML 2021): robustness of the predicted label.

    ``variant`` is ``"augmentation"`` (share of shifted and noisy copies labelled correctly)
    or ``"boundary"`` (HopSkipJump's L2 distance to the boundary, ``max_queries`` per
    sample). ``shift`` (pixels, image inputs only), ``noise`` (draws) and ``sigma`` (noise
    standard deviation as a share of the input range) shape the augmentations.
    """

    requires: ClassVar[Access] = Access.LABELS

    def __init__(
        self,
        variant: str = "augmentation",
        shift: int = 1,
        noise: int = 16,
        sigma: float = 0.1,
        max_queries: int = 500,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"label-only variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if shift < 0 or noise < 0:
            raise ConfigError(f"shift and noise must be >= 0, got {shift} and {noise}")
        if not sigma > 0:
            raise ConfigError(f"sigma must be > 0, got {sigma}")
        self.variant = variant
        self.shift = int(shift)
        self.noise = int(noise)
        self.sigma = float(sigma)
        self.max_queries = check_positive_int("max_queries", max_queries)
        self.seed = check_seed(seed)

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """Robustness per sample (float64); higher means more likely a member."""
        classifier, x, y = self._validated(x, y)
        if len(y) == 0:
            return torch.empty(0, dtype=torch.float64)
        if self.variant == "boundary":
            return self._boundary(classifier, x, y)
        return self._augmentation(classifier, x, y)

    def _augmentation(self, classifier: Classifier, x: Tensor, y: Tensor) -> Tensor:
        lo, hi = classifier.bounds
        views = [x]
        if x.dim() == 4 and min(x.shape[-2:]) > 2 * self.shift:
            views += [shifted(x, dy, dx, lo) for dy, dx in shifts(self.shift)]
        g = torch.Generator().manual_seed(self.seed)
        views += [
            (x + torch.randn(x.shape, generator=g) * self.sigma * (hi - lo)).clamp(lo, hi) for _ in range(self.noise)
        ]
        correct = torch.stack([classifier.predict_labels(v) == y for v in views])
        return correct.to(torch.float64).mean(dim=0)

    def _boundary(self, classifier: Classifier, x: Tensor, y: Tensor) -> Tensor:
        from sparring.attacks.evasion.hopskipjump import HopSkipJump

        lo, hi = classifier.bounds
        result = HopSkipJump("l2", max_queries=self.max_queries, seed=self.seed).run(classifier, x, y)
        correct = classifier.predict_labels(x) == y
        diameter = (hi - lo) * math.sqrt(x[0].numel())
        # A success on a correct sample is a boundary point; a failure means no adversarial within the budget.
        dist = torch.where(result.success, result.norms.to(torch.float64), torch.tensor(diameter, dtype=torch.float64))
        return torch.where(correct, dist, torch.zeros_like(dist))


MEMBERSHIP_ATTACKS.add("label_only", LabelOnlyMembership)
