"""Reading a named layer of a PyTorch model: the one forward-hook feature extractor.

Attacks and defences that look inside a model (mimicry, hidden-trigger and clean-label
poisoning, activation clustering, spectral signatures, GradCAM purification, fine-pruning,
teacher dissimilarity) all capture a layer's output the same way, through :func:`capture`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import Tensor, nn
from torch.func import functional_call

from sparring.errors import InputError


def find_layer(model: nn.Module, layer: str) -> nn.Module:
    """The submodule named ``layer``; an unknown name raises :class:`InputError` listing the layers."""
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        names = ", ".join(n for n in modules if n) or "(none)"
        raise InputError(f"model has no layer named {layer!r}; layers: {names}")
    return modules[layer]


@contextmanager
def capture(
    model: nn.Module, layer: str, edit: Callable[[Tensor], Tensor] | None = None
) -> Iterator[list[Tensor]]:
    """Within the context, each forward pass appends ``layer``'s output to the yielded list.

    The output is appended as computed (not detached, not flattened). With ``edit`` the layer
    passes on (and the list receives) ``edit(output)`` instead, e.g. to zero pruned channels.
    """
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple[Tensor, ...], out: Tensor) -> Tensor | None:
        if edit is not None:
            out = edit(out)
        captured.append(out)
        return out if edit is not None else None

    handle = find_layer(model, layer).register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def layer_features(model: nn.Module, layer: str) -> Callable[[Tensor], Tensor]:
    """A differentiable map ``x -> activation of `layer``` flattened to ``[N, D]``.

    Runs on detached copies of the parameters (input gradients only; the module's mode and
    weights are left alone). Raises :class:`InputError` naming the layers if ``layer`` is unknown.
    """
    find_layer(model, layer)
    state = {k: v.detach() for k, v in model.named_parameters()}
    state.update(dict(model.named_buffers()))

    def features(x: Tensor) -> Tensor:
        with capture(model, layer) as out:
            functional_call(model, state, (x,))
        return out[0].flatten(1)

    return features


def param_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly, in registration (forward) order.

    For the zoo's ``small_cnn`` these are ``conv1, conv2, fc1, fc2``; for ``mlp``
    ``body.0, body.2, head``.
    """
    return [name for name, m in model.named_modules() if name and any(True for _ in m.parameters(recurse=False))]
