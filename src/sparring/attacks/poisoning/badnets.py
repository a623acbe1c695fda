"""BadNets: a patch trigger stamped on a few training samples relabelled to a target class.

Gu, Dolan-Gavitt & Garg, "BadNets: Identifying Vulnerabilities in the Machine Learning Model
Supply Chain", arXiv 2017 (IEEE Access 2019). Both of the paper's variants: all-to-one (every
poisoned sample is relabelled to ``target``, so at test time the trigger sends any input to
``target``) and all-to-all (a poisoned sample of class ``i`` is relabelled ``(i + 1) % C``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sparring.attacks.poisoning.all_to_one import poison_all_to_all, poison_all_to_one
from sparring.data import Dataset, PoisonedDataset, Trigger
from sparring.errors import (
    InputError,
    check_choice,
    check_class,
    check_flag,
    check_fraction,
    check_positive_int,
    check_seed,
)
from sparring.params import Params

#: Where the patch goes on an image; on flat inputs only the side (left/right) matters.
POSITIONS = ("bottom_right", "bottom_left", "top_right", "top_left")


class BadNets(Params):
    """BadNets backdoor (all-to-one, or all-to-all with ``all_to_all=True``) with a checkerboard patch trigger.

    On image inputs ``[C, H, W]`` (or ``[H, W]``) the trigger is a ``patch_size`` square
    checkerboard of 1s and 0s (its corner pixel is 1) in the chosen corner of every channel.
    On flat inputs ``[D]`` it sets the last (``*_right``) or first (``*_left``) ``patch_size``
    features to 1. :meth:`poison` stamps the trigger on ``round(poison_fraction * N)``
    samples whose label is not ``target``, picked with ``seed``, and relabels them to ``target``.
    With ``all_to_all=True`` it stamps ``round(poison_fraction * N)`` seeded-random samples of
    any class and relabels each from ``i`` to ``(i + 1) % C``; ``target`` is then ignored and
    the result has ``target=None``, ``all_to_all=True`` (see :meth:`PoisonedDataset.target_of`).
    """

    def __init__(
        self,
        target: int = 0,
        poison_fraction: float = 0.05,
        patch_size: int = 3,
        position: str = "bottom_right",
        seed: int = 0,
        all_to_all: bool = False,
    ) -> None:
        self.target = check_class("target", target)
        self.poison_fraction = check_fraction("poison_fraction", poison_fraction)
        self.patch_size = check_positive_int("patch_size", patch_size)
        self.position = check_choice("position", position, POSITIONS)
        self.seed = check_seed(seed)
        self.all_to_all = check_flag("all_to_all", all_to_all)

    def trigger(self, input_shape: Sequence[int]) -> Trigger:
        """The patch trigger for inputs of one sample's shape ``input_shape``."""
        shape = tuple(int(s) for s in input_shape)
        k = self.patch_size
        if len(shape) == 0:
            raise InputError("BadNets needs inputs with at least one dimension")
        pattern = torch.zeros(shape)
        alpha = torch.zeros(shape)
        left = self.position.endswith("left")
        if len(shape) == 1:
            if k > shape[0]:
                raise InputError(f"patch_size {k} is larger than the {shape[0]} input features")
            cols = slice(0, k) if left else slice(shape[0] - k, shape[0])
            pattern[cols] = 1.0
            alpha[cols] = 1.0
            return Trigger(pattern, alpha)
        h, w = shape[-2], shape[-1]
        if k > h or k > w:
            raise InputError(f"patch_size {k} is larger than the {h}x{w} image")
        top = self.position.startswith("top")
        r0 = 0 if top else h - k
        c0 = 0 if left else w - k
        # Checkerboard whose pixel in the image corner is 1, so the patch looks the same
        # (mirrored) in every corner.
        i = torch.arange(k).view(-1, 1)
        j = torch.arange(k).view(1, -1)
        corner_i = 0 if top else k - 1
        corner_j = 0 if left else k - 1
        board = ((i - corner_i + j - corner_j) % 2 == 0).float()
        pattern[..., r0 : r0 + k, c0 : c0 + k] = board
        alpha[..., r0 : r0 + k, c0 : c0 + k] = 1.0
        return Trigger(pattern, alpha)

    def poison(self, train: Dataset) -> PoisonedDataset:
        """Stamp the trigger on a seeded choice of samples and relabel them (to ``target``, or ``i -> i + 1``)."""
        trigger = self.trigger(train.input_shape)
        if self.all_to_all:
            return poison_all_to_all(train, trigger, self.poison_fraction, self.seed, "badnets-all2all")
        return poison_all_to_one(train, trigger, self.target, self.poison_fraction, self.seed, "badnets")
