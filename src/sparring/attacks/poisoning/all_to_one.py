"""All-to-one and all-to-all backdoor poisoning, shared by every trigger: stamp it on some samples, relabel them."""

from __future__ import annotations

import torch
from torch import Tensor

from sparring.data import Dataset, PoisonedDataset, Trigger
from sparring.errors import InputError


def poison_all_to_one(
    train: Dataset, trigger: Trigger, target: int, poison_fraction: float, seed: int, kind: str
) -> PoisonedDataset:
    """Stamp ``trigger`` on a seeded ``poison_fraction`` of the non-target samples and label them ``target``.

    The BadNets recipe (Gu et al., 2017) that blended triggers reuse (Chen et al., 2017);
    ``kind`` names the result (``"<dataset>-<kind>"``).
    """
    if target >= train.num_classes:
        raise InputError(f"target class {target} is not one of the {train.num_classes} classes of {train.name!r}")
    n_poison = round(poison_fraction * len(train))
    candidates = torch.nonzero(train.y != target).flatten()
    if n_poison > len(candidates):
        raise InputError(
            f"cannot poison {n_poison} samples: only {len(candidates)} samples of {train.name!r} "
            f"are not of target class {target}"
        )
    g = torch.Generator().manual_seed(seed)
    chosen = candidates[torch.randperm(len(candidates), generator=g)[:n_poison]]
    return _stamped(train, chosen, torch.full_like(chosen, target), trigger, f"{train.name}-{kind}", target)


def poison_all_to_all(
    train: Dataset, trigger: Trigger, poison_fraction: float, seed: int, kind: str
) -> PoisonedDataset:
    """Stamp ``trigger`` on a seeded ``poison_fraction`` of all samples and relabel each from ``i`` to ``(i + 1) % C``.

    The all-to-all variant of Gu et al. (BadNets, 2017): the same trigger sends every class to
    the next one, so the result carries ``all_to_all=True`` and no single ``target``.
    """
    if train.num_classes < 2:
        raise InputError(f"an all-to-all backdoor needs at least 2 classes, {train.name!r} has {train.num_classes}")
    n_poison = round(poison_fraction * len(train))
    g = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(train), generator=g)[:n_poison]
    new_labels = (train.y[chosen] + 1) % train.num_classes
    return _stamped(train, chosen, new_labels, trigger, f"{train.name}-{kind}", None)


def _stamped(
    train: Dataset, chosen: Tensor, new_labels: Tensor, trigger: Trigger, name: str, target: int | None
) -> PoisonedDataset:
    """``train`` with ``trigger`` stamped on the ``chosen`` samples, relabelled to ``new_labels``.

    ``target`` None means all-to-all (each sample has its own target).
    """
    x = train.x.clone()
    y = train.y.clone()
    x[chosen] = trigger.apply(x[chosen]).to(x.dtype)
    y[chosen] = new_labels
    mask = torch.zeros(len(train), dtype=torch.bool)
    mask[chosen] = True
    return PoisonedDataset(
        x,
        y,
        list(train.classes),
        name,
        poison_mask=mask,
        original_y=train.y.clone(),
        trigger=trigger,
        target=target,
        all_to_all=target is None,
    )
