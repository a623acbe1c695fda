"""Costs that depend on the input: modelled energy on a zero-skipping accelerator.

A dense network on a CPU does the same arithmetic for every input, so its wall time is no
sponge effect. An accelerator that skips zero operands is different: it neither reads nor
multiplies a zero activation, so an input that leaves more activations nonzero costs more
energy. :class:`EnergyModel` counts, with forward hooks on every leaf module, the operations
and memory accesses of each layer with and without zero-skipping, per input, and converts
them with the ASIC model of Shumailov et al. ("Sponge Examples: Energy-Latency Attacks on
Neural Networks", IEEE EuroS&P 2021):

* every value moved to or from DRAM costs :attr:`HardwareModel.memory_pj` = 1950 pJ and every
  multiply-accumulate :attr:`HardwareModel.compute_pj` = 3.7 pJ (32-bit floating point,
  45 nm; Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014);
* a layer's inputs and its outputs are moved once per input, its weights once per
  :attr:`HardwareModel.batch` inputs (default 1: each input served alone); with
  zero-skipping only nonzero values are moved (compression costs nothing) and a layer's
  multiply-accumulates shrink by the density of its input and of its weights.

The score of an input is its energy with zero-skipping over its energy without
(:attr:`EnergyReport.ratio`; 1.0 means sparsity saves nothing). The model also reports
post-activation density: the share of nonzero values among the inputs of every compute layer
after the first (what the network's activations leave for the next layer to read).

Only leaf modules are seen: a layer applied as a function in ``forward`` (``torch.relu``,
``F.max_pool2d``) costs nothing by itself here, but its zeros are seen by the next layer
that reads them. A leaf module of a type not in :data:`SUPPORTED` is an error
(:class:`UnsupportedLayerError`), never silently counted as free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call

from sparring.errors import InputError, check_nonnegative, check_positive_int
from sparring.models import Classifier, TorchClassifier

#: Layers with weights whose multiply-accumulates are counted.
COMPUTE: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Linear)
#: Element-wise and pooling layers: one operation per input value.
ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
)
#: Layers that do nothing at inference (no operation, no memory traffic of their own).
PASSIVE: tuple[type[nn.Module], ...] = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten)
#: Every leaf module type the energy model accounts for.
SUPPORTED: tuple[type[nn.Module], ...] = COMPUTE + ELEMENTWISE + PASSIVE


class UnsupportedLayerError(InputError):
    """The energy model met a layer type it cannot account for."""


@dataclass(frozen=True)
class HardwareModel:
    """Energy per DRAM access and per multiply-accumulate, in picojoules.

    Defaults are the 45 nm, 32-bit figures Shumailov et al. (EuroS&P 2021) took from
    Horowitz (ISSCC 2014): 1950 pJ per DRAM access (reads and writes alike; on-chip caches
    neglected) and 3.7 pJ per floating-point multiply. ``skip_zeros=False`` is the same
    chip without sparsity support. ``batch`` inputs share one read of the weights (1: each
    input is served alone, as a latency-bound service does; Shumailov et al.'s estimator read
    the weights once per batch it was given).
    """

    memory_pj: float = 1950.0
    compute_pj: float = 3.7
    skip_zeros: bool = True
    batch: int = 1

    def __post_init__(self) -> None:
        for name in ("memory_pj", "compute_pj"):
            check_nonnegative(name, getattr(self, name))
        check_positive_int("batch", self.batch)


@dataclass
class EnergyReport:
    """Per-input energy with and without zero-skipping, per layer, and activation density."""

    #: ``[N, L]`` picojoules per input and leaf layer with zero-skipping (in forward order).
    sparse_pj: Tensor
    #: ``[L]`` picojoules per input and layer without zero-skipping (the same for every input).
    dense_pj: Tensor
    #: ``[N]`` share of nonzero values among the inputs of compute layers after the first.
    density: Tensor
    layers: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> Tensor:
        """``[N]`` energy with zero-skipping over energy without (1.0: sparsity saves nothing)."""
        return self.sparse_pj.sum(1) / self.dense_pj.sum()

    @property
    def energy_pj(self) -> Tensor:
        """``[N]`` picojoules per input with zero-skipping."""
        return self.sparse_pj.sum(1)


def module_of(classifier: Classifier | nn.Module, by: str) -> nn.Module:
    """The PyTorch module behind ``classifier`` (a hook-based cost needs it), else a clear error."""
    if isinstance(classifier, nn.Module):
        return classifier
    if isinstance(classifier, TorchClassifier):
        return classifier.model
    name = type(classifier).__name__
    raise InputError(f"{by} measures costs with forward hooks and needs a PyTorch model, got {name}")


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]
    bad = sorted({type(m).__name__ for _, m in leaves if not isinstance(m, SUPPORTED)})
    if bad:
        names = ", ".join(t.__name__ for t in SUPPORTED)
        raise UnsupportedLayerError(
            f"the energy model cannot account for layer type(s) {', '.join(bad)}; supported: {names}"
        )
    return leaves


def check_supported(model: nn.Module) -> None:
    """Raise :class:`UnsupportedLayerError` if ``model`` has a leaf layer the energy model cannot account for."""
    _leaves(model)


def _nonzero(t: Tensor) -> Tensor:
    """``[N]`` count of nonzero values per sample."""
    return (t.detach().reshape(len(t), -1) != 0).sum(1).to(torch.float64)


def _macs(module: nn.Module, inp: Tensor, out: Tensor) -> float:
    """Multiply-accumulates per sample of a compute layer."""
    per_out = out[0].numel()
    if isinstance(module, nn.Linear):
        return float(per_out * module.in_features)
    assert isinstance(module, nn.Conv1d | nn.Conv2d)
    k = 1
    for s in module.kernel_size:
        k *= int(s)
    return float(per_out * (module.in_channels // module.groups) * k)


@dataclass
class _Record:
    name: str
    kind: str  # "compute" | "elementwise" | "passive"
    nnz_in: Tensor
    numel_in: int
    nnz_out: Tensor
    numel_out: int
    params: int
    nnz_params: int
    ops: float


@contextmanager
def _recording(model: nn.Module) -> Iterator[list[_Record]]:
    records: list[_Record] = []
    handles = []
    for name, module in _leaves(model):

        def hook(m: nn.Module, inputs: tuple[Tensor, ...], out: Tensor, name: str = name) -> None:
            x = inputs[0]
            if isinstance(m, PASSIVE):
                return
            params = [p for p in m.parameters(recurse=False)] + [
                b for b in m.buffers(recurse=False) if b.dtype.is_floating_point
            ]
            n_params = sum(p.numel() for p in params)
            nnz_params = sum(int((p != 0).sum()) for p in params)
            if isinstance(m, COMPUTE):
                kind, ops = "compute", _macs(m, x, out)
            else:
                kind, ops = "elementwise", float(x[0].numel())
            records.append(
                _Record(name, kind, _nonzero(x), x[0].numel(), _nonzero(out), out[0].numel(), n_params, nnz_params, ops)
            )

        handles.append(module.register_forward_hook(hook))
    try:
        yield records
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class EnergyModel:
    """Modelled energy of a forward pass per input on a zero-skipping accelerator (see the module doc).

    ``batch_size`` only bounds memory; every figure is per input.
    """

    hardware: HardwareModel = HardwareModel()
    batch_size: int = 256

    def check(self, model: nn.Module) -> None:
        """Raise :class:`UnsupportedLayerError` if ``model`` has a leaf layer the model cannot account for."""
        _leaves(model)

    def measure(self, model: nn.Module, x: Tensor) -> EnergyReport:
        """The :class:`EnergyReport` of ``model`` on each input of ``x``."""
        hw = self.hardware
        was_training = model.training
        model.eval()
        sparse_parts, density_parts = [], []
        dense = torch.empty(0)
        layers: list[str] = []
        try:
            with torch.no_grad():
                for xb in x.split(self.batch_size):
                    with _recording(model) as recs:
                        model(xb)
                    if not recs:
                        raise UnsupportedLayerError("the energy model saw no layer run: the model has no leaf modules")
                    sparse = torch.zeros(len(xb), len(recs), dtype=torch.float64)
                    dense = torch.zeros(len(recs), dtype=torch.float64)
                    act_nnz = torch.zeros(len(xb), dtype=torch.float64)
                    act_total = 0
                    first_compute = True
                    for j, r in enumerate(recs):
                        moved_dense = r.numel_in + r.numel_out + r.params / hw.batch
                        dense[j] = hw.memory_pj * moved_dense + hw.compute_pj * r.ops
                        if not hw.skip_zeros:
                            sparse[:, j] = dense[j]
                            continue
                        moved = r.nnz_in + r.nnz_out + r.nnz_params / hw.batch
                        ops: Tensor | float = r.ops
                        if r.kind == "compute":
                            w_density = r.nnz_params / max(r.params, 1)
                            ops = r.ops * w_density * (r.nnz_in / r.numel_in)
                            if not first_compute:
                                act_nnz += r.nnz_in
                                act_total += r.numel_in
                            first_compute = False
                        sparse[:, j] = hw.memory_pj * moved + hw.compute_pj * ops
                    sparse_parts.append(sparse)
                    density_parts.append(act_nnz / max(act_total, 1))
                    layers = [r.name for r in recs]
        finally:
            model.train(was_training)
        return EnergyReport(torch.cat(sparse_parts), dense, torch.cat(density_parts), layers)

    def ratio(self, model: nn.Module, x: Tensor) -> Tensor:
        """``[N]`` energy ratio (with over without zero-skipping) of each input; float32."""
        return self.measure(model, x).ratio.float()


@contextmanager
def compute_terms(model: nn.Module) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """Within the context, the yielded list holds ``(input, output)`` of each compute layer's latest pass.

    The list is emptied when a new forward pass of ``model`` starts; tensors are as computed (in the graph).
    """
    terms: list[tuple[Tensor, Tensor]] = []

    def hook(_m: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        terms.append((inputs[0], out))

    def clear(_m: nn.Module, _inputs: tuple[Tensor, ...]) -> None:
        terms.clear()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, COMPUTE)]
    handles.append(model.register_forward_pre_hook(clear))
    try:
        yield terms
    finally:
        for h in handles:
            h.remove()


def soft_density(terms: list[tuple[Tensor, Tensor]], sigma: float = 1e-4, tau: float = 0.1) -> Tensor:
    """``[N]`` the soft share of nonzero operands of one forward pass (see :func:`density_surrogate`)."""
    n = len(terms[0][0]) if terms else 0
    total = torch.zeros(n)
    count = 0
    for i, (inp, out) in enumerate(terms):
        a = inp.reshape(n, -1)
        total = total + (a * a / (a * a + sigma)).sum(1)
        count += a.shape[1]
        if i < len(terms) - 1:
            o = out.reshape(n, -1)
            total = total + torch.sigmoid(o / tau).sum(1)
            count += o.shape[1]
    return total / max(count, 1)


def density_surrogate(model: nn.Module, sigma: float = 1e-4, tau: float = 0.1) -> Callable[[Tensor], Tensor]:
    """A differentiable stand-in for the nonzero count of a forward pass: ``x -> [N]`` in [0, 1].

    Each compute layer's input contributes the l0 approximation ``a^2 / (a^2 + sigma)`` of
    its values (Cinà et al., "Energy-Latency Attacks via Sponge Poisoning", 2022, after
    Shumailov et al.'s white-box objective), and each compute layer's output but the last
    ``sigmoid(o / tau)``, the share of units a following ReLU would keep (the l0 term has no
    gradient at a unit a ReLU has switched off). Terms are weighted by their size, so the
    result is a soft share of nonzero operands. The forward pass runs on detached weights
    (input gradients only).
    """
    _leaves(model)

    def surrogate(x: Tensor) -> Tensor:
        state = {k: v.detach() for k, v in model.named_parameters()}
        state.update(dict(model.named_buffers()))
        with compute_terms(model) as terms:
            functional_call(model, state, (x,))
            return soft_density(list(terms), sigma, tau)

    return surrogate
