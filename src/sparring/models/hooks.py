"""Reading a named layer of a PyTorch model: the one forward-hook feature extractor.

Attacks and defences that look inside a model (mimicry, hidden-trigger and clean-label
poisoning, activation clustering, spectral signatures, GradCAM purification, fine-pruning,
teacher dissimilarity) all capture a layer's output the same way, through :func:`capture`.
A layer reference is a module name (``"fc1"``, ``"body.2"``), or a module name followed by
``":input"`` for what flows into that module (``"head:input"``): the representation a user's
model feeds its last linear layer, whatever that model calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import Tensor, nn
from torch.func import functional_call

from sparring.errors import InputError

INPUT = ":input"


def find_layer(model: nn.Module, layer: str) -> nn.Module:
    """The submodule ``layer`` names (without ``:input``); an unknown name raises :class:`InputError` listing them."""
    name = layer.removesuffix(INPUT) if isinstance(layer, str) else layer
    modules = dict(model.named_modules())
    if not name or name not in modules:
        names = ", ".join(n for n in modules if n) or "(none)"
        raise InputError(
            f"model has no layer named {name!r}; layers: {names} (append {INPUT!r} to read a layer's input)"
        )
    return modules[name]


def feature_layer(model: nn.Module) -> str:
    """The representation feature-space defences read by default.

    A zoo model's ``"penultimate"``; otherwise the input of the model's last ``nn.Linear``
    (``"head:input"``). A model without a linear layer raises :class:`InputError` asking for
    ``[model] feature_layer``.
    """
    names = dict(model.named_modules())
    if "penultimate" in names:
        return "penultimate"
    linear = [n for n, m in names.items() if n and isinstance(m, nn.Linear)]
    if not linear:
        raise InputError("the model has no nn.Linear layer to read features before: set [model] feature_layer")
    return linear[-1] + INPUT


@contextmanager
def capture(
    model: nn.Module, layer: str, edit: Callable[[Tensor], Tensor] | None = None
) -> Iterator[list[Tensor]]:
    """Within the context, each forward pass appends ``layer``'s output (its input, for ``name:input``) to the list.

    The output is appended as computed (not detached, not flattened). With ``edit`` the layer
    passes on (and the list receives) ``edit(output)`` instead, e.g. to zero pruned channels.
    """
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple[Tensor, ...], out: Tensor) -> Tensor | None:
        if edit is not None:
            out = edit(out)
        captured.append(out)
        return out if edit is not None else None

    def pre_hook(_module: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
        first = edit(inputs[0]) if edit is not None else inputs[0]
        captured.append(first)
        return (first, *inputs[1:]) if edit is not None else None

    module = find_layer(model, layer)
    handle = (
        module.register_forward_pre_hook(pre_hook) if layer.endswith(INPUT) else module.register_forward_hook(hook)
    )
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
