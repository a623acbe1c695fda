"""Adapter for PyTorch ``nn.Module`` classifiers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from sparring.errors import InputError
from sparring.models.base import Access, Classifier


class TorchClassifier(Classifier):
    """Wrap an ``nn.Module`` that maps ``[N, *input_shape]`` inputs to ``[N, num_classes]`` logits.

    The module is put in eval mode and is never trained or put back in train mode through
    this adapter. Gradients are taken with respect to the input only: the forward pass runs
    on detached copies of the parameters, so attacks neither compute nor accumulate weight
    gradients (a large part of their speed).
    """

    def __init__(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
        access: Access = Access.ALL,
        batch_size: int = 512,
    ) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes, access=access, bounds=bounds)
        self.model = model.eval()
        self.batch_size = int(batch_size)
        self._frozen: dict[str, Tensor] | None = None

    def _state(self) -> dict[str, Tensor]:
        # Detached views share storage with the live parameters, so later weight updates
        # (e.g. by a training loop on the same module) are seen without rebuilding.
        if self._frozen is None:
            self._frozen = {k: v.detach() for k, v in self.model.named_parameters()}
            self._frozen.update(dict(self.model.named_buffers()))
        return self._frozen

    def _forward(self, x: Tensor) -> Tensor:
        out = functional_call(self.model, self._state(), (x,))
        if out.dim() != 2 or out.shape[1] != self.num_classes:
            raise InputError(
                f"model returned shape {tuple(out.shape)}, expected [N, {self.num_classes}] logits"
            )
        return out

    def _logits(self, x: Tensor) -> Tensor:
        return self._forward(x)

    def _scores(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            parts = [torch.softmax(self._forward(b), dim=1) for b in x.split(self.batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, self.num_classes)

    def _labels(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            parts = [self._forward(b).argmax(dim=1) for b in x.split(self.batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)

    def _features(self, x: Tensor, layer: str) -> Tensor:
        modules = dict(self.model.named_modules())
        if layer not in modules:
            names = ", ".join(n for n in modules if n) or "(none)"
            raise InputError(f"model has no layer named {layer!r}; layers: {names}")
        captured: list[Tensor] = []
        handle = modules[layer].register_forward_hook(
            lambda _m, _i, out: captured.append(out.detach().flatten(1))
        )
        try:
            with torch.no_grad():
                for b in x.split(self.batch_size):
                    self._forward(b)
        finally:
            handle.remove()
        return torch.cat(captured) if captured else torch.empty(0, 0)
