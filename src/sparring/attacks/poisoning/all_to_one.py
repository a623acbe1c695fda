"""All-to-one backdoor poisoning, shared by every trigger: stamp it on some samples, relabel them."""

from __future__ import annotations

import torch

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
    x = train.x.clone()
    y = train.y.clone()
    x[chosen] = trigger.apply(x[chosen]).to(x.dtype)
    y[chosen] = target
    mask = torch.zeros(len(train), dtype=torch.bool)
    mask[chosen] = True
    return PoisonedDataset(
        x,
        y,
        list(train.classes),
        f"{train.name}-{kind}",
        poison_mask=mask,
        original_y=train.y.clone(),
        trigger=trigger,
        target=target,
    )
