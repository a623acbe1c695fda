"""Federated learning simulation: client splits, FedAvg rounds and the aggregation hook.

FedAvg follows McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017: each round a seeded choice of clients trains the global
model locally (with :func:`sparring.train.fit`) and sends its update ``L_i - G``; the server
combines the updates with an :class:`Aggregator` and moves ``G <- G + server_lr * aggregate``.
Non-IID clients are drawn with the per-class Dirichlet split of Hsu, Qi & Brown, "Measuring
the Effects of Non-Identical Data Distribution for Federated Visual Classification",
arXiv 2019.

Both sides of the threat model build on this module: malicious clients
(:mod:`sparring.attacks.poisoning.federated`) implement :class:`MaliciousClient`, robust
aggregators (:mod:`sparring.defenses.training.aggregation`) implement :class:`Aggregator`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from sparring.data import Dataset, Trigger
from sparring.errors import ConfigError, InputError, check_nonnegative_int, check_positive_int
from sparring.metrics import attack_success_rate, dataset_accuracy
from sparring.models import TorchClassifier
from sparring.params import Params
from sparring.progress import bar
from sparring.specs import Form, parse_spec, positive
from sparring.train import TrainConfig, fit

#: Client splits: IID, or per-class Dirichlet shares (smaller ALPHA is more skewed).
SPLITS = (Form("iid"), Form("dirichlet", "ALPHA", float, None, positive, "a finite number > 0"))


def parse_split(split: str) -> float | None:
    """``"iid"`` -> None; ``"dirichlet:0.5"`` -> 0.5. A bad spec raises :class:`ConfigError`."""
    _, alpha = parse_spec(split, SPLITS, "split")
    return None if alpha is None else float(alpha)


def split_clients(
    data: Dataset, n_clients: int, split: str = "iid", seed: int = 0, min_size: int = 1, max_tries: int = 100
) -> list[Dataset]:
    """Partition ``data`` among ``n_clients`` clients; every sample goes to exactly one client.

    ``"iid"`` deals a seeded permutation out in near-equal shares. ``"dirichlet:ALPHA"`` draws,
    for every class, the clients' shares from Dir(ALPHA) (Hsu et al., arXiv 2019): ALPHA 0.5 is
    strongly skewed, large ALPHA approaches IID. Dirichlet draws are repeated (up to
    ``max_tries``) until every client holds at least ``min_size`` samples.
    """
    n_clients = check_positive_int("n_clients", n_clients)
    min_size = check_positive_int("min_size", min_size)
    max_tries = check_positive_int("max_tries", max_tries)
    alpha = parse_split(split)
    n = len(data)
    if n < n_clients * min_size:
        raise InputError(f"{n} samples cannot give {n_clients} clients at least {min_size} each (min_size)")
    g = torch.Generator().manual_seed(seed)
    if alpha is None:
        order = torch.randperm(n, generator=g)
        parts = list(order.tensor_split(n_clients))
    else:
        rng = np.random.default_rng(seed)
        labels = data.y.numpy()
        for _ in range(max_tries):
            buckets: list[list[int]] = [[] for _ in range(n_clients)]
            for c in np.unique(labels):
                idx = rng.permutation(np.flatnonzero(labels == c))
                shares = rng.dirichlet(np.full(n_clients, alpha))
                cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
                for k, chunk in enumerate(np.split(idx, cuts)):
                    buckets[k].extend(chunk.tolist())
            if min(len(b) for b in buckets) >= min_size:
                break
        else:
            raise InputError(
                f"no Dirichlet({alpha}) split in {max_tries} tries gave every one of {n_clients} clients "
                f">= {min_size} samples; lower n_clients or min_size, or raise alpha"
            )
        parts = [torch.as_tensor(rng.permutation(np.asarray(b, dtype=np.int64))) for b in buckets]
    return [data.subset(idx, f"{data.name}-client{k}") for k, idx in enumerate(parts)]


# -- flattened model weights --------------------------------------------------------------


def flat_weights(model: nn.Module) -> Tensor:
    """All floating-point entries of ``model.state_dict()`` (parameters and buffers) as one vector."""
    return torch.cat([v.detach().reshape(-1).float() for v in model.state_dict().values() if v.is_floating_point()])


def load_flat_weights(model: nn.Module, vector: Tensor) -> nn.Module:
    """Write ``vector`` (as made by :func:`flat_weights`) back into ``model`` in place; returns ``model``."""
    state = model.state_dict()
    total = sum(v.numel() for v in state.values() if v.is_floating_point())
    if vector.dim() != 1 or vector.numel() != total:
        raise InputError(f"weight vector must have shape ({total},), got {tuple(vector.shape)}")
    offset = 0
    with torch.no_grad():
        for v in state.values():
            if v.is_floating_point():
                v.copy_(vector[offset : offset + v.numel()].view_as(v))
                offset += v.numel()
    return model


# -- aggregation ----------------------------------------------------------------------------


@runtime_checkable
class Aggregator(Protocol):
    """Combines one round's client updates ``[K, P]`` (weights ``[K]``, summing to 1) into one update ``[P]``."""

    def __call__(self, updates: Tensor, weights: Tensor, round_index: int) -> Tensor: ...


class Mean(Params):
    """FedAvg's aggregate: the weighted mean of the updates (McMahan et al., AISTATS 2017).

    ``weighted=True`` uses the weights the server passes (by default each client's share of the
    round's samples); False gives every update the same weight.
    """

    def __init__(self, weighted: bool = True) -> None:
        self.weighted = bool(weighted)

    def __call__(self, updates: Tensor, weights: Tensor, round_index: int) -> Tensor:
        check_updates(updates, weights)
        if not self.weighted:
            return updates.mean(dim=0)
        return weights.to(updates.dtype) @ updates


def check_updates(updates: Tensor, weights: Tensor) -> None:
    """Raise :class:`InputError` unless ``updates`` is ``[K, P]`` with K >= 1 and ``weights`` is ``[K]``."""
    if updates.dim() != 2 or updates.shape[0] < 1:
        raise InputError(f"updates must be [K, P] with K >= 1, got shape {tuple(updates.shape)}")
    if weights.shape != (updates.shape[0],):
        raise InputError(f"weights must have shape ({updates.shape[0]},), got {tuple(weights.shape)}")


# -- clients and rounds ---------------------------------------------------------------------


@dataclass
class FederatedConfig:
    """Hyper-parameters of :func:`run_fedavg`.

    ``clients_per_round`` None selects every client each round. ``weighted`` weighs each
    update by its client's sample count (FedAvg); False weighs clients equally (the
    ``eta / n`` form of Bagdasaryan et al., AISTATS 2020). ``server_lr`` is their global
    learning rate ``eta``.
    """

    rounds: int = 10
    local_epochs: int = 1
    lr: float = 0.05
    batch_size: int = 32
    clients_per_round: int | None = None
    optimizer: str = "sgd"
    server_lr: float = 1.0
    weighted: bool = True
    progress: bool | None = None

    def __post_init__(self) -> None:
        check_nonnegative_int("rounds", self.rounds)
        check_positive_int("local_epochs", self.local_epochs)
        check_positive_int("batch_size", self.batch_size)
        if self.clients_per_round is not None:
            check_positive_int("clients_per_round", self.clients_per_round)
        if not 0.0 < self.server_lr < float("inf"):
            raise ConfigError(f"server_lr must be a finite number > 0, got {self.server_lr}")
        # lr and optimizer are checked by TrainConfig
        self.local_config(0)

    def local_config(self, seed: int) -> TrainConfig:
        """The :class:`TrainConfig` of one client's local training."""
        return TrainConfig(
            epochs=self.local_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            optimizer=self.optimizer,
            seed=seed,
            progress=False,
        )


@dataclass
class ClientContext:
    """What a client knows in one round: the round, its local training setup, its weight in the mean.

    ``weight`` is the client's share in the server's (weighted) mean, ``n_selected`` how many
    clients take part, ``server_lr`` the global learning rate.
    """

    round_index: int
    client: int
    train_config: TrainConfig
    weight: float
    n_selected: int
    server_lr: float
    seed: int


def benign_update(model: nn.Module, data: Dataset, ctx: ClientContext) -> Tensor:
    """An honest client's update: train ``model`` (a copy of the global model) on ``data``; return ``L - G``."""
    start = flat_weights(model)
    fit(model, data, ctx.train_config, desc=f"client {ctx.client}")
    return flat_weights(model) - start


@runtime_checkable
class MaliciousClient(Protocol):
    """A client that may deviate from FedAvg.

    ``forced(round_index)`` tells the server the attacker takes part in that round whatever the
    random selection (Bagdasaryan et al. pick the round they attack). ``update`` receives a
    private copy of the global model, the client's data and its :class:`ClientContext`, and
    returns the update vector it sends (same layout as :func:`flat_weights`).
    """

    def forced(self, round_index: int) -> bool: ...

    def update(self, model: nn.Module, data: Dataset, ctx: ClientContext) -> Tensor: ...


@dataclass
class FederatedResult:
    """What :func:`run_fedavg` returns.

    ``history`` holds one dict per round (round 0 is the starting model) with ``round``, the
    figures of ``evaluate``, the number of selected clients, how many of them were malicious
    and the largest and the median L2 norm of the updates sent. ``selected`` lists each round's clients.
    """

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    selected: list[list[int]] = field(default_factory=list)
    seconds: float = 0.0

    def at(self, round_index: int) -> dict[str, float]:
        """The history entry of ``round_index``."""
        for row in self.history:
            if int(row["round"]) == round_index:
                return row
        raise InputError(f"round {round_index} is not in the history (rounds 0..{len(self.history) - 1})")


def run_fedavg(
    build_model: Callable[[], nn.Module],
    clients: list[Dataset],
    cfg: FederatedConfig | None = None,
    *,
    malicious: Mapping[int, MaliciousClient] | None = None,
    aggregator: Aggregator | None = None,
    evaluate: Callable[[nn.Module], Mapping[str, float]] | None = None,
    seed: int = 0,
) -> FederatedResult:
    """Run ``cfg.rounds`` rounds of FedAvg from the model ``build_model()`` and return the final global model.

    Each round selects ``cfg.clients_per_round`` clients with a generator seeded from ``seed``
    (clients whose :meth:`MaliciousClient.forced` is true for the round are always in and
    displace random picks); honest clients train locally with :func:`benign_update`, clients
    in ``malicious`` (by index) send what their ``update`` returns. ``aggregator`` (default
    :class:`Mean` with ``cfg.weighted``) combines the updates, with weights proportional to
    sample counts (or equal when ``cfg.weighted`` is False), and the server applies
    ``server_lr`` times the result. ``evaluate(model)`` is called on the starting model and
    after every round; its figures go into ``history``.
    """
    cfg = cfg or FederatedConfig()
    malicious = dict(malicious or {})
    if not clients:
        raise InputError("run_fedavg needs at least one client dataset")
    for k, data in enumerate(clients):
        if len(data) == 0:
            raise InputError(f"client {k} has no samples")
    for k, client in malicious.items():
        if not 0 <= k < len(clients):
            raise ConfigError(f"malicious client index {k} is not in 0..{len(clients) - 1}")
        if not isinstance(client, MaliciousClient):
            raise ConfigError(f"malicious[{k}] must have forced() and update() methods, got {type(client).__name__}")
    per_round = cfg.clients_per_round or len(clients)
    if per_round > len(clients):
        raise ConfigError(f"clients_per_round must be <= the {len(clients)} clients, got {per_round}")
    agg: Aggregator = aggregator if aggregator is not None else Mean(cfg.weighted)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model = build_model()
    model.eval()
    weights = flat_weights(model)
    history: list[dict[str, float]] = []
    selected_log: list[list[int]] = []

    def record(round_index: int, n_sel: int, n_mal: int, norms: Tensor) -> None:
        row: dict[str, float] = {"round": float(round_index)}
        if evaluate is not None:
            row.update({k: float(v) for k, v in evaluate(model).items()})
        row.update({"selected": float(n_sel), "malicious_selected": float(n_mal)})
        row["max_update_norm"] = float(norms.max()) if len(norms) else 0.0
        row["median_update_norm"] = float(norms.median()) if len(norms) else 0.0
        history.append(row)

    record(0, 0, 0, torch.zeros(0))
    for r in bar(range(1, cfg.rounds + 1), "fedavg", total=cfg.rounds, enabled=cfg.progress):
        forced = [k for k, c in sorted(malicious.items()) if c.forced(r)]
        if len(forced) > per_round:
            raise ConfigError(f"round {r}: {len(forced)} forced malicious clients exceed clients_per_round {per_round}")
        rest = [k for k in torch.randperm(len(clients), generator=g).tolist() if k not in forced]
        chosen = sorted(forced + rest[: per_round - len(forced)])
        sizes = torch.tensor([float(len(clients[k])) for k in chosen])
        share = sizes / sizes.sum() if cfg.weighted else torch.full((len(chosen),), 1.0 / len(chosen))
        updates = []
        for k, w in zip(chosen, share.tolist(), strict=True):
            local = copy.deepcopy(model)
            ctx = ClientContext(
                round_index=r,
                client=k,
                train_config=cfg.local_config(seed * 1_000_003 + r * 1_009 + k),
                weight=w,
                n_selected=len(chosen),
                server_lr=cfg.server_lr,
                seed=seed * 1_000_003 + r * 1_009 + k,
            )
            upd = (
                malicious[k].update(local, clients[k], ctx) if k in malicious else benign_update(local, clients[k], ctx)
            )
            if upd.shape != weights.shape or not torch.isfinite(upd).all():
                raise InputError(f"client {k} sent an update of shape {tuple(upd.shape)} or with non-finite values")
            updates.append(upd.float())
        stacked = torch.stack(updates)
        step = agg(stacked, share, r)
        if step.shape != weights.shape:
            raise InputError(f"aggregator returned shape {tuple(step.shape)}, expected {tuple(weights.shape)}")
        weights = weights + cfg.server_lr * step
        load_flat_weights(model, weights)
        selected_log.append(chosen)
        record(r, len(chosen), sum(k in malicious for k in chosen), stacked.norm(dim=1))
    model.eval()
    return FederatedResult(model, history, selected_log, time.perf_counter() - start)


def evaluator(
    test: Dataset, trigger: Trigger | None = None, target: int | None = None
) -> Callable[[nn.Module], dict[str, float]]:
    """An ``evaluate`` callback for :func:`run_fedavg`: clean ``accuracy`` and, with a trigger, backdoor ``asr``.

    ASR is :func:`sparring.metrics.attack_success_rate` on ``test`` (non-target samples).
    """
    if (trigger is None) != (target is None):
        raise ConfigError("trigger and target must be given together (or neither)")

    def evaluate(model: nn.Module) -> dict[str, float]:
        clf = TorchClassifier(model, test.input_shape, test.num_classes)
        out = {"accuracy": dataset_accuracy(clf, test)}
        if trigger is not None and target is not None:
            out["asr"] = attack_success_rate(clf, test.x, test.y, trigger, target)
        return out

    return evaluate
