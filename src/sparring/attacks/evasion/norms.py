"""Norm geometry for evasion attacks, written once: random start, step, projection.

An L2 attack differs from an Linf one only by the :class:`Norm` object it is given
(the design lesson of foolbox, Rauber et al., JOSS 2020). ``eps`` may be a float or a
per-sample tensor of shape ``[N]``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from sparring.errors import ConfigError

_TINY = 1e-12


def _per_sample(eps: float | Tensor, like: Tensor) -> Tensor:
    """``eps`` broadcast to ``[N, 1, 1, ...]`` for a batch shaped like ``like``."""
    e = torch.as_tensor(eps, dtype=like.dtype, device=like.device)
    if e.dim() == 0:
        e = e.expand(like.shape[0])
    return e.reshape(-1, *([1] * (like.dim() - 1)))


class Norm(ABC):
    """An Lp geometry."""

    name: str

    @abstractmethod
    def norm(self, delta: Tensor) -> Tensor:
        """Per-sample norm, shape ``[N]``."""

    @abstractmethod
    def direction(self, grad: Tensor) -> Tensor:
        """Steepest-ascent direction of unit norm for a gradient."""

    @abstractmethod
    def project(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        """Project each perturbation onto the eps-ball."""

    @abstractmethod
    def random(self, like: Tensor, eps: float | Tensor, generator: torch.Generator) -> Tensor:
        """A perturbation drawn uniformly from the eps-ball."""

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Norm) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Linf(Norm):
    """The L-infinity ball (a box)."""

    name = "linf"

    def norm(self, delta: Tensor) -> Tensor:
        return delta.flatten(1).abs().amax(dim=1)

    def direction(self, grad: Tensor) -> Tensor:
        return grad.sign()

    def project(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        e = _per_sample(eps, delta)
        return torch.maximum(torch.minimum(delta, e), -e)

    def random(self, like: Tensor, eps: float | Tensor, generator: torch.Generator) -> Tensor:
        u = torch.rand(like.shape, generator=generator, dtype=like.dtype)
        return (2 * u - 1) * _per_sample(eps, like)


class L2(Norm):
    """The Euclidean ball."""

    name = "l2"

    def norm(self, delta: Tensor) -> Tensor:
        return delta.flatten(1).norm(dim=1)

    def direction(self, grad: Tensor) -> Tensor:
        n = grad.flatten(1).norm(dim=1).clamp_min(_TINY)
        return grad / n.reshape(-1, *([1] * (grad.dim() - 1)))

    def project(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        n = self.norm(delta).reshape(-1, *([1] * (delta.dim() - 1)))
        factor = torch.clamp(_per_sample(eps, delta) / n.clamp_min(_TINY), max=1.0)
        return delta * factor

    def random(self, like: Tensor, eps: float | Tensor, generator: torch.Generator) -> Tensor:
        d = max(1, math.prod(like.shape[1:]))
        g = torch.randn(like.shape, generator=generator, dtype=like.dtype)
        radius = torch.rand(like.shape[0], generator=generator, dtype=like.dtype) ** (1.0 / d)
        direction = self.direction(g)
        return direction * radius.reshape(-1, *([1] * (like.dim() - 1))) * _per_sample(eps, like)


NORMS: dict[str, type[Norm]] = {"linf": Linf, "l2": L2}


def get_norm(name: str | Norm) -> Norm:
    """A Norm from its name (``"linf"``, ``"l2"``) or the Norm itself."""
    if isinstance(name, Norm):
        return name
    key = str(name).lower()
    if key not in NORMS:
        raise ConfigError(f"unknown norm {name!r}; choose one of {', '.join(NORMS)}")
    return NORMS[key]()
