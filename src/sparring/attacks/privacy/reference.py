"""Reference models for membership inference: K models trained on random halves of a pool.

LiRA (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022)
and RMIA (Zarifzadeh et al., "Low-Cost High-Power Membership Inference Attacks", ICML 2024)
compare the target's output on a sample with the outputs of reference models trained like
the target on data from the same distribution. Each reference model trains on a random
half of a *pool*; ``keep[k, i]`` records whether model ``k`` saw pool sample ``i`` (the
IN / OUT bookkeeping of the online attacks).

:func:`membership_split` draws the evaluation set (members from the target's training set,
non-members from held-out data) and sets aside a share of the held-out data as the
*population*: data the target never saw and that is not evaluated. Offline attacks train
their reference models on the population only (every evaluated sample is OUT for every
reference model); online attacks train them on the population plus the evaluated samples,
each evaluated sample IN for exactly half of the models.

:func:`train_references` trains the K models one after another with
:func:`sparring.train.fit`, or together (``stacked``): their parameters stacked and one step
of all K one ``torch.func.vmap`` over ``functional_call``; models with buffers (BatchNorm) or
that vmap cannot batch fall back to one after another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import InputError, check_positive_int
from sparring.train import TrainConfig, fit


@dataclass(frozen=True)
class MembershipSplit:
    """Indices of an evaluation: ``members`` (into the training set), ``non_members`` and ``population`` (held-out)."""

    members: Tensor
    non_members: Tensor
    population: Tensor
    #: Held-out indices neither evaluated nor in the population (e.g. for canaries).
    spare: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))

    @property
    def k(self) -> int:
        """Members evaluated (= non-members evaluated)."""
        return len(self.members)


def membership_split(n_train: int, n_held_out: int, n: int | None, population: float, seed: int) -> MembershipSplit:
    """A balanced member / non-member draw plus a population share of the held-out data.

    ``population`` (in [0, 1)) of the held-out samples are set aside; the non-members are
    drawn from the rest, ``min(n, n_train, rest)`` on each side. With ``population == 0``
    the draw equals the one :func:`~sparring.attacks.privacy.evaluate_membership` has
    always made for the same seed.
    """
    if not 0.0 <= population < 1.0:
        raise InputError(f"population share must be in [0, 1), got {population}")
    if n is not None:
        check_positive_int("n", n)
    g = torch.Generator().manual_seed(seed)
    member_perm = torch.randperm(n_train, generator=g)
    held_perm = torch.randperm(n_held_out, generator=g)
    n_pop = round(population * n_held_out)
    rest = n_held_out - n_pop
    k = min(n_train, rest) if n is None else min(n, n_train, rest)
    if k == 0:
        raise InputError(
            f"membership evaluation needs members and non-members, got {n_train} and {rest} "
            f"(after setting aside {n_pop} held-out samples as the population)"
        )
    return MembershipSplit(member_perm[:k], held_perm[:k], held_perm[rest:], held_perm[k:rest])


def balanced_keep(k_models: int, n: int, seed: int) -> Tensor:
    """``[K, n]`` booleans: each sample IN for ``floor(K / 2)`` random models (Carlini et al.'s paired halves)."""
    check_positive_int("reference models", k_models)
    g = torch.Generator().manual_seed(seed)
    ranks = torch.rand(k_models, n, generator=g).argsort(dim=0).argsort(dim=0)
    return ranks < max(1, k_models // 2) if k_models > 1 else torch.rand(1, n, generator=g) < 0.5


def random_halves(k_models: int, n: int, seed: int, size: int | None = None) -> Tensor:
    """``[K, n]`` booleans: each model IN on its own random half of the ``n`` samples (at most ``size`` of them)."""
    check_positive_int("reference models", k_models)
    g = torch.Generator().manual_seed(seed)
    keep = torch.zeros(k_models, n, dtype=torch.bool)
    take = n // 2 if size is None else min(n // 2, size)
    for k in range(k_models):
        keep[k, torch.randperm(n, generator=g)[:take]] = True
    return keep


@dataclass
class ReferenceModels:
    """K trained reference models, the pool they were trained on and who saw what.

    ``keep[k, i]``: model ``k`` trained on ``pool[i]``. ``candidates`` is how many leading
    pool samples are the evaluated samples (members first, then non-members; 0 for an
    offline set, whose pool is the population only). ``stacked`` says whether the models
    trained together through ``vmap``.
    """

    models: list[nn.Module]
    keep: Tensor
    pool: Dataset
    candidates: int
    seconds: float
    stacked: bool

    def __len__(self) -> int:
        return len(self.models)

    @property
    def population(self) -> Dataset:
        """The pool samples that are not evaluated (drawn from data the target never saw)."""
        return self.pool.subset(torch.arange(self.candidates, len(self.pool)))


def reinitialise(module: nn.Module, seed: int) -> nn.Module:
    """Reset every submodule's parameters (``reset_parameters``) from ``seed``, in place; returns ``module``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for m in module.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
    return module


def can_stack(module: nn.Module) -> bool:
    """True when ``module`` has no buffers (running statistics cannot be batched by vmap)."""
    return next(iter(module.buffers()), None) is None


def train_references(
    build: Callable[[], nn.Module],
    pool: Dataset,
    keep: Tensor,
    config: TrainConfig,
    stacked: bool = False,
    candidates: int = 0,
) -> ReferenceModels:
    """Train one model per row of ``keep`` on its share of ``pool`` with ``config``.

    Model ``k`` starts from weights reinitialised from ``config.seed + 1 + k`` and shuffles
    its batches from its own seed. By default the models train one after another; with
    ``stacked`` (and a model without buffers) all K
    train together: parameters stacked along a new first axis, one Adam/SGD step over all
    of them, each model's loss the mean cross-entropy over its own batch (so each slice gets
    exactly its own gradient). A model's half is padded with repeats of its own samples up
    to the largest half so all batches have one shape. On a CPU the stacked schedule measured
    slower than the sequential one for the zoo models (benchmarks/privacy_references.py), so it
    is not the default.
    """
    if keep.dim() != 2 or keep.shape[1] != len(pool):
        raise InputError(f"keep must be [K, {len(pool)}], got {tuple(keep.shape)}")
    if bool((keep.sum(dim=1) == 0).any()):
        raise InputError("every reference model needs at least one training sample")
    start = time.perf_counter()
    models = [reinitialise(build(), config.seed + 1 + k) for k in range(len(keep))]
    done = False
    if stacked and len(models) > 1 and can_stack(models[0]):
        try:
            _train_stacked(models, pool, keep, config)
            done = True
        except (RuntimeError, NotImplementedError):  # an op vmap cannot batch: train one after another
            models = [reinitialise(build(), config.seed + 1 + k) for k in range(len(keep))]
    if not done:
        for k, model in enumerate(models):
            cfg = TrainConfig(**{**config.__dict__, "seed": config.seed + 1 + k, "progress": False})
            fit(model, pool.subset(keep[k]), cfg, desc=f"reference {k + 1}")
    return ReferenceModels(models, keep, pool, candidates, time.perf_counter() - start, done)


def _train_stacked(models: list[nn.Module], pool: Dataset, keep: Tensor, config: TrainConfig) -> None:
    """Train ``models`` together (see :func:`train_references`); writes the trained weights back into them."""
    from torch.func import functional_call, stack_module_state, vmap

    if config.augment is not None or config.mix is not None:
        raise NotImplementedError("augmentation and mixing train one model after another")
    params, _ = stack_module_state(models)
    params = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
    template = models[0]
    k_models = len(models)

    def one(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        return nn.functional.cross_entropy(functional_call(template, p, (xb,)), yb)

    batched = vmap(one, randomness="different")
    if config.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params.values(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(params.values(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    own = [torch.nonzero(row).flatten() for row in keep]
    length = max(len(o) for o in own)
    gens = [torch.Generator().manual_seed(config.seed + 1 + k) for k in range(k_models)]
    template.train()
    with torch.random.fork_rng():
        torch.manual_seed(config.seed + 3)
        for _ in range(config.epochs):
            rows = []
            for o, g in zip(own, gens, strict=True):
                order = o[torch.randperm(len(o), generator=g)]
                if len(o) < length:
                    order = torch.cat([order, o[torch.randint(len(o), (length - len(o),), generator=g)]])
                rows.append(order)
            idx = torch.stack(rows)
            for s in range(0, length, config.batch_size):
                b = idx[:, s : s + config.batch_size]
                opt.zero_grad(set_to_none=True)
                batched(params, pool.x[b], pool.y[b]).sum().backward()
                opt.step()
    with torch.no_grad():
        for k, model in enumerate(models):
            for name, p in model.named_parameters():
                p.copy_(params[name][k])
            model.eval()
