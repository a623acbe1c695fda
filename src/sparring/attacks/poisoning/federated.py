"""Malicious federated-learning clients: label flipping and the model-replacement backdoor.

Both implement :class:`sparring.federated.MaliciousClient` and plug into
:func:`sparring.federated.run_fedavg`.

- :class:`ModelReplacementClient`: Bagdasaryan, Veit, Hua, Estrin & Shmatikov, "How To
  Backdoor Federated Learning", AISTATS 2020. In its attack round the client trains the global
  model ``G`` on its own data mixed with backdoored copies, getting ``X``, and sends
  ``gamma * (X - G)`` with ``gamma = n / eta``, so that averaging replaces ``G`` by about ``X``.
- :class:`LabelFlipClient`: the data-poisoning client of Tolpegin, Truex, Gursoy & Liu, "Data
  Poisoning Attacks Against Federated Learning Systems", ESORICS 2020: it trains honestly on
  flipped labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sparring.attacks.poisoning.label_flip import RandomLabelFlip, TargetedLabelFlip
from sparring.data import Dataset, PoisonedDataset, Trigger
from sparring.errors import (
    ConfigError,
    InputError,
    check_class,
    check_fraction,
    check_positive,
    check_positive_int,
    check_seed,
)
from sparring.federated import ClientContext, benign_update, flat_weights
from sparring.params import Params
from sparring.train import TrainConfig, fit


def _check_rounds(rounds: int | Sequence[int]) -> tuple[int, ...]:
    items = (rounds,) if isinstance(rounds, int) else tuple(rounds)
    if not items or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in items):
        raise ConfigError(f"attack_round must be an integer >= 1 (or a non-empty list of them), got {rounds!r}")
    return items


class ModelReplacementClient(Params):
    """The model-replacement backdoor of Bagdasaryan et al. (AISTATS 2020).

    In every round of ``attack_round`` (one round or several) the client trains the global model
    on its local data plus triggered copies relabelled to ``target``, so that a share
    ``poison_fraction`` of what it trains on is backdoored (the paper mixes about 20 of 64
    samples per batch), for ``epochs`` local epochs with learning rate ``lr`` (None: the
    federation's). It then boosts the update ``X - G`` by ``scale``; None means
    ``1 / (eta * weight)``, which is the paper's ``gamma = n / eta`` when all clients weigh
    the same and replaces the global model by ``X`` whatever the weighting (the attacker is
    assumed to know its weight and the server learning rate). In other rounds it behaves
    honestly. A trigger can come from a backdoor attack, e.g. ``BadNets(target=0).trigger(shape)``.
    """

    def __init__(
        self,
        trigger: Trigger,
        target: int = 0,
        attack_round: int | Sequence[int] = 1,
        scale: float | None = None,
        poison_fraction: float = 0.3,
        epochs: int | None = None,
        lr: float | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(trigger, Trigger):
            raise ConfigError(f"trigger must be a sparring.data.Trigger, got {type(trigger).__name__}")
        poison_fraction = check_fraction("poison_fraction", poison_fraction)
        if not 0.0 < poison_fraction < 1.0:
            raise ConfigError(f"poison_fraction must be strictly between 0 and 1, got {poison_fraction}")
        self.trigger = trigger
        self.target = check_class("target", target)
        self.attack_round = _check_rounds(attack_round)
        self.scale = None if scale is None else check_positive("scale", scale)
        self.poison_fraction = poison_fraction
        self.epochs = None if epochs is None else check_positive_int("epochs", epochs)
        self.lr = None if lr is None else check_positive("lr", lr)
        self.seed = check_seed(seed)

    def forced(self, round_index: int) -> bool:
        return round_index in self.attack_round

    def backdoor_data(self, data: Dataset, seed: int) -> PoisonedDataset:
        """``data`` plus triggered copies labelled ``target``, making up ``poison_fraction`` of the result.

        Copies are drawn (with replacement when needed) from the non-target samples, or from
        all samples when the client holds only the target class.
        """
        if self.target >= data.num_classes:
            raise InputError(f"target class {self.target} is not one of the {data.num_classes} classes")
        pool = torch.nonzero(data.y != self.target).flatten()
        if len(pool) == 0:
            pool = torch.arange(len(data))
        n_poison = max(1, round(self.poison_fraction / (1.0 - self.poison_fraction) * len(data)))
        g = torch.Generator().manual_seed(seed)
        pick = pool[torch.randint(len(pool), (n_poison,), generator=g)]
        x = torch.cat([data.x, self.trigger.apply(data.x[pick])])
        y = torch.cat([data.y, torch.full((n_poison,), self.target, dtype=torch.long)])
        mask = torch.cat([torch.zeros(len(data), dtype=torch.bool), torch.ones(n_poison, dtype=torch.bool)])
        return PoisonedDataset(
            x,
            y,
            list(data.classes),
            f"{data.name}-replacement",
            poison_mask=mask,
            original_y=torch.cat([data.y, data.y[pick]]),
            trigger=self.trigger,
            target=self.target,
        )

    def boost(self, ctx: ClientContext) -> float:
        """The factor ``gamma`` the update is multiplied by in an attack round."""
        if self.scale is not None:
            return self.scale
        return 1.0 / (ctx.server_lr * ctx.weight)

    def update(self, model: nn.Module, data: Dataset, ctx: ClientContext) -> Tensor:
        if not self.forced(ctx.round_index):
            return benign_update(model, data, ctx)
        seed = self.seed * 7_919 + ctx.seed
        poisoned = self.backdoor_data(data, seed)
        base = ctx.train_config
        cfg = TrainConfig(
            epochs=self.epochs or base.epochs,
            batch_size=base.batch_size,
            lr=self.lr or base.lr,
            optimizer=base.optimizer,
            weight_decay=base.weight_decay,
            seed=seed,
            progress=False,
        )
        start = flat_weights(model)
        fit(model, poisoned, cfg, desc=f"replacement client {ctx.client}")
        return self.boost(ctx) * (flat_weights(model) - start)


class LabelFlipClient(Params):
    """A client that trains honestly on flipped labels (Tolpegin et al., ESORICS 2020).

    With ``source`` and ``target`` set, a share ``fraction`` of its ``source`` samples are
    relabelled ``target`` (:class:`~sparring.attacks.poisoning.TargetedLabelFlip`, the paper's
    class-pair flip); otherwise ``fraction`` of all its samples get a random other label
    (:class:`~sparring.attacks.poisoning.RandomLabelFlip`). ``scale`` > 1 boosts the update
    (an optional addition; the paper's clients send it unscaled). It takes part whenever the
    server selects it.
    """

    def __init__(
        self,
        fraction: float = 1.0,
        source: int | None = None,
        target: int | None = None,
        scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.fraction = check_fraction("fraction", fraction)
        self.source = None if source is None else check_class("source", source)
        self.target = None if target is None else check_class("target", target)
        if (source is None) != (target is None):
            raise ConfigError("source and target must be given together (targeted flip) or both left None (random)")
        if source is not None and source == target:
            raise ConfigError(f"source and target must differ, both are {source}")
        self.scale = check_positive("scale", scale)
        self.seed = check_seed(seed)

    def forced(self, round_index: int) -> bool:
        return False

    def flipped(self, data: Dataset) -> PoisonedDataset:
        """The client's data with its labels flipped."""
        if self.source is not None and self.target is not None:
            return TargetedLabelFlip(self.source, self.target, self.fraction, self.seed).poison(data)
        return RandomLabelFlip(self.fraction, self.seed).poison(data)

    def update(self, model: nn.Module, data: Dataset, ctx: ClientContext) -> Tensor:
        return self.scale * benign_update(model, self.flipped(data), ctx)
