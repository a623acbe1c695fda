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


class SmallCNNBN(SmallCNN):
    """:class:`SmallCNN` with BatchNorm (Ioffe & Szegedy, ICML 2015) after each convolution and the hidden layer.

    The batch-normalised variant whose running statistics DeepInversion (Yin et al., CVPR
    2020) matches. BatchNorm layers draw no random numbers, so a seed gives the same
    convolution and linear weights as :class:`SmallCNN`.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 32, dropout: float = 0.0) -> None:
        super().__init__(input_shape, num_classes, width=width, dropout=dropout)
        self.bn1 = nn.BatchNorm2d(width)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.bn3 = nn.BatchNorm1d(128)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        if self.pools == 2:
            x = nn.functional.max_pool2d(x, 2)
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        x = self.penultimate(self.bn3(self.fc1(x.flatten(1))))
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


class EarlyExitCNN(nn.Module):
    """A CNN with an exit after each block that leaves once it is confident enough (a dynamic network).

    Three blocks: conv16 (+ 2x2 pooling for inputs of 16 pixels or more), conv32 + 2x2
    pooling, fc128; an exit (average pooling to 4x4 after the first block, 2x2 after the
    second, then a linear layer) follows each of the first two, the last block ends in the
    final classifier. At inference an input
    leaves at the first exit whose top softmax probability reaches ``threshold`` (the
    Shallow-Deep Networks of Kaya et al., ICML 2019, the victims of DeepSloth, Hong et al.,
    ICLR 2021); ``max_exit`` (0-based) caps the depth, the cheap path a cost cut-off forces.
    Training adds the internal exits' losses (:meth:`exit_loss`) to the final one.

    ``forward`` gives, per input, the logits of the exit it takes (in training mode: the
    final exit's); :meth:`exit_index` says which, :meth:`macs` what that costs, and
    :meth:`run_one` really stops computing at the exit (for latency measurements).
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, threshold: float = 0.8, max_exit: int | None = None
    ) -> None:
        super().__init__()
        channels, height, width_px = (int(s) for s in input_shape)
        self.pool_first = min(height, width_px) >= 16
        h, w = (height // 2, width_px // 2) if self.pool_first else (height, width_px)
        self.block1 = nn.Conv2d(channels, 16, 3, padding=1)
        self.exit1 = nn.Linear(16 * 16, num_classes)
        self.block2 = nn.Conv2d(16, 32, 3, padding=1)
        h2, w2 = h // 2, w // 2
        self.exit2 = nn.Linear(32 * 4, num_classes)
        self.fc = nn.Linear(32 * h2 * w2, 128)
        self.penultimate = nn.ReLU()
        self.final = nn.Linear(128, num_classes)
        self.threshold = float(threshold)
        self.max_exit = max_exit
        self._pending: tuple[Tensor, list[Tensor]] | None = None
        #: Multiply-accumulates of each block plus its exit (or final classifier), per input.
        self.block_macs = (
            height * width_px * 16 * channels * 9 + 16 * 16 * num_classes,
            h * w * 32 * 16 * 9 + 32 * 4 * num_classes,
            32 * h2 * w2 * 128 + 128 * num_classes,
        )

    @property
    def n_exits(self) -> int:
        """The number of exits (the last is the final classifier)."""
        return 3

    def _block(self, i: int, a: Tensor) -> tuple[Tensor, Tensor]:
        """Block ``i`` on activations ``a``: (next activations, the exit's logits)."""
        if i == 0:
            a = torch.relu(self.block1(a))
            if self.pool_first:
                a = nn.functional.max_pool2d(a, 2)
            return a, self.exit1(nn.functional.adaptive_avg_pool2d(a, 4).flatten(1))
        if i == 1:
            a = nn.functional.max_pool2d(torch.relu(self.block2(a)), 2)
            return a, self.exit2(nn.functional.adaptive_avg_pool2d(a, 2).flatten(1))
        a = self.penultimate(self.fc(a.flatten(1)))
        return a, self.final(a)

    def exit_logits(self, x: Tensor) -> list[Tensor]:
        """The logits of every exit, shallow first."""
        out = []
        a = x
        for i in range(self.n_exits):
            a, logits = self._block(i, a)
            out.append(logits)
        return out

    def _taken(self, logits: list[Tensor]) -> Tensor:
        last = self.n_exits - 1 if self.max_exit is None else min(int(self.max_exit), self.n_exits - 1)
        taken = torch.full((len(logits[0]),), last, dtype=torch.long)
        for i in reversed(range(last)):
            confident = torch.softmax(logits[i].detach(), 1).amax(1) >= self.threshold
            taken = torch.where(confident, torch.full_like(taken, i), taken)
        return taken

    def exit_index(self, x: Tensor) -> Tensor:
        """``[N]`` the exit (0-based) each input leaves at."""
        with torch.no_grad():
            return self._taken(self.exit_logits(x))

    def macs(self, taken: Tensor) -> Tensor:
        """``[N]`` multiply-accumulates executed by inputs leaving at exits ``taken``."""
        cumulative = torch.tensor(self.block_macs, dtype=torch.float64).cumsum(0)
        return cumulative[taken]

    def forward(self, x: Tensor) -> Tensor:
        logits = self.exit_logits(x)
        if self.training:  # keep the internal exits for exit_loss on the same batch
            self._pending = (x, logits[:-1])
            return logits[-1]
        taken = self._taken(logits)
        stacked = torch.stack(logits, 1)
        return stacked[torch.arange(len(x)), taken]

    def exit_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of the internal exits, a penalty for :func:`sparring.train.fit`.

        The final exit's loss is the loop's own; the internal exits of the training forward
        pass on the same batch are reused, not computed again.
        """
        pending, self._pending = self._pending, None
        logits = pending[1] if pending is not None and pending[0] is x else self.exit_logits(x)[:-1]
        return sum((nn.functional.cross_entropy(z, y) for z in logits), torch.zeros(()))

    def run_one(self, x: Tensor) -> Tensor:
        """Logits for one input ``[1, ...]``, computing only up to the exit it takes."""
        last = self.n_exits - 1 if self.max_exit is None else min(int(self.max_exit), self.n_exits - 1)
        a = x
        logits = x
        for i in range(last + 1):
            a, logits = self._block(i, a)
            if i < last and float(torch.softmax(logits.detach(), 1).amax()) >= self.threshold:
                break
        return logits


def early_exit_cnn(input_shape: Sequence[int], num_classes: int, seed: int = 0, threshold: float = 0.8) -> EarlyExitCNN:
    """An :class:`EarlyExitCNN` with weights initialised from ``seed``."""
    if len(input_shape) != 3:
        raise ConfigError(f"early_exit_cnn needs image inputs [C, H, W], got input shape {tuple(input_shape)}")
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return EarlyExitCNN(input_shape, num_classes, threshold=threshold)


def _dropout(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or an identity for ``p == 0`` (no parameters either way, so seeded weights are unchanged)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
        raise ConfigError(f"dropout must be a number in [0, 1), got {p!r}")
    return nn.Dropout(float(p)) if p > 0 else nn.Identity()


def _cnn(input_shape: Sequence[int], num_classes: int, dropout: float = 0.0) -> nn.Module:
    if len(input_shape) != 3:
        raise ConfigError(f"small_cnn needs image inputs [C, H, W], got input shape {tuple(input_shape)}")
    return SmallCNN(input_shape, num_classes, dropout=dropout)


def _cnn_bn(input_shape: Sequence[int], num_classes: int, dropout: float = 0.0) -> nn.Module:
    if len(input_shape) != 3:
        raise ConfigError(f"small_cnn_bn needs image inputs [C, H, W], got input shape {tuple(input_shape)}")
    return SmallCNNBN(input_shape, num_classes, dropout=dropout)


def _mlp(input_shape: Sequence[int], num_classes: int, dropout: float = 0.0) -> nn.Module:
    return MLP(input_shape, num_classes, dropout=dropout)


#: ``factory(input_shape, num_classes, dropout=0.0) -> nn.Module`` by architecture name.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": _cnn,
    "mlp": _mlp,
    "small_cnn_bn": _cnn_bn,
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
