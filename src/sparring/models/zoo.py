"""A small model zoo: the architectures the built-in datasets and tests use.

Every zoo model names its penultimate representation ``"penultimate"`` so that defences
which read internal features (activation clustering, spectral signatures) find it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from sparring.errors import ConfigError


class SmallCNN(nn.Module):
    """conv32-conv64-fc128 network for 1-channel (or C-channel) square images.

    Two 3x3 convolutions with 2x2 max-pooling after each (one pooling for inputs smaller
    than 16 pixels), then a 128-unit hidden layer. This is the classic MNIST baseline used
    by Madry et al. (ICLR 2018), scaled down. ``dropout`` > 0 adds dropout (Srivastava et
    al., JMLR 2014) on the hidden layer, before the last layer; 0 keeps the plain network.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        channels, height, width_px = (int(s) for s in input_shape)
        pools = 2 if min(height, width_px) >= 16 else 1
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.pools = pools
        h, w = height // 2**pools, width_px // 2**pools
        self.fc1 = nn.Linear(2 * width * h * w, 128)
        self.penultimate = nn.ReLU()
        self.dropout = _dropout(dropout)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.conv1(x))
        if self.pools == 2:
            x = nn.functional.max_pool2d(x, 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = self.penultimate(self.fc1(x.flatten(1)))
        return self.fc2(self.dropout(x))


class MLP(nn.Module):
    """Fully connected network for tabular data (inputs are flattened).

    ``dropout`` > 0 adds dropout (Srivastava et al., JMLR 2014) before the last layer.
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (64, 64), dropout: float = 0.0
    ) -> None:
        super().__init__()
        dim = 1
        for s in input_shape:
            dim *= int(s)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(dim, h), nn.ReLU()]
            dim = h
        self.body = nn.Sequential(*layers)
        self.penultimate = nn.Identity()
        self.dropout = _dropout(dropout)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.penultimate(self.body(x.flatten(1)))))


def _dropout(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or an identity for ``p == 0`` (no parameters either way, so seeded weights are unchanged)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
        raise ConfigError(f"dropout must be a number in [0, 1), got {p!r}")
    return nn.Dropout(float(p)) if p > 0 else nn.Identity()


def _cnn(input_shape: Sequence[int], num_classes: int, dropout: float = 0.0) -> nn.Module:
    if len(input_shape) != 3:
        raise ConfigError(f"small_cnn needs image inputs [C, H, W], got input shape {tuple(input_shape)}")
    return SmallCNN(input_shape, num_classes, dropout=dropout)


def _mlp(input_shape: Sequence[int], num_classes: int, dropout: float = 0.0) -> nn.Module:
    return MLP(input_shape, num_classes, dropout=dropout)


#: ``factory(input_shape, num_classes, dropout=0.0) -> nn.Module`` by architecture name.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": _cnn,
    "mlp": _mlp,
}


def build(
    architecture: str, input_shape: Sequence[int], num_classes: int, seed: int = 0, dropout: float = 0.0
) -> nn.Module:
    """Build a zoo architecture with weights initialised from ``seed``.

    ``dropout`` in [0, 1) adds dropout before the last layer (a generalisation defence);
    the default 0 gives the plain network, and any value gives the same initial weights.
    """
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    _dropout(dropout)  # validate before building
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return ARCHITECTURES[architecture](input_shape, num_classes, dropout=dropout)
