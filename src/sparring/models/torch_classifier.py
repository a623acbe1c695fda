"""Adapter for PyTorch ``nn.Module`` classifiers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from sparring.errors import InputError
from sparring.models.base import Access, Classifier
from sparring.models.hooks import capture, find_layer


class TorchClassifier(Classifier):
    """Wrap an ``nn.Module`` that maps ``[N, *input_shape]`` inputs to ``[N, num_classes]`` logits.

    The module is put in eval mode and is never trained or put back in train mode through
    this adapter. Gradients are taken with respect to the input only: the forward pass runs
    on detached copies of the parameters, so attacks neither compute nor accumulate weight
    gradients (a large part of their speed). The copies follow in-place weight updates (e.g. a
    training loop on the same module).

    ``channels_last=True`` keeps the copies of convolution weights in channels-last memory
    order when the module gives the same logits that way (checked on the first query). Whether
    that is faster depends on the CPU: on an AVX-512 EPYC it made PGD on the zoo's small CNN
    about 18 % slower (1 and 2 threads), where an earlier machine measured it 1.5-2x faster.
    The default keeps the module's own layout, so one model gives the same floats everywhere.
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
        channels_last: bool = False,
    ) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes, access=access, bounds=bounds)
        self.model = model.eval()
        self.batch_size = int(batch_size)
        self._frozen: dict[str, Tensor] | None = None
        self._versions: tuple[int, ...] = ()
        self._channels_last: bool | None = None if channels_last and len(self.input_shape) == 3 else False

    def _state(self) -> dict[str, Tensor]:
        params = dict(self.model.named_parameters())
        versions = tuple(p._version for p in params.values())
        if self._frozen is None or versions != self._versions:
            last = bool(self._channels_last)
            self._frozen = {
                k: v.detach().contiguous(memory_format=torch.channels_last) if last and v.dim() == 4 else v.detach()
                for k, v in params.items()
            }
            self._frozen.update(dict(self.model.named_buffers()))
            self._versions = versions
        return self._frozen

    def _ensure_layout(self, x: Tensor) -> None:
        """On the first call, use channels-last weights if the module gives the same logits with them."""
        if self._channels_last is not None:
            return
        with torch.no_grad():
            self._decide_layout(x[:8])

    def _decide_layout(self, x: Tensor) -> None:
        self._channels_last = False
        plain = functional_call(self.model, self._state(), (x,))
        if not any(p.dim() == 4 for p in self.model.parameters()):
            return
        self._channels_last, self._frozen = True, None
        try:
            fast = functional_call(self.model, self._state(), (x,))
            same = fast.shape == plain.shape and torch.allclose(fast, plain, rtol=1e-4, atol=1e-5)
        except RuntimeError:  # e.g. a ``view`` that needs the default layout
            same = False
        if not same:
            self._channels_last, self._frozen = False, None

    def _forward(self, x: Tensor) -> Tensor:
        self._ensure_layout(x)
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
        find_layer(self.model, layer)
        self._ensure_layout(x)  # before the hook: deciding the layout runs the module too
        with torch.no_grad(), capture(self.model, layer) as captured:
            for b in x.split(self.batch_size):
                self._forward(b)
        return torch.cat([c.flatten(1) for c in captured]) if captured else torch.empty(0, 0)
