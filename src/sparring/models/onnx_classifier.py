"""Adapter for ONNX model files run with onnxruntime (scores and labels only)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sparring.errors import ConfigError, InputError
from sparring.models.base import Access, Classifier

_OUTPUTS = ("logits", "probabilities")


class OnnxClassifier(Classifier):
    """Run an ONNX classifier on CPU with onnxruntime (float32 inputs ``[N, *input_shape]``).

    ``output`` says what the model's first output holds: ``"logits"`` (scores are their
    softmax) or ``"probabilities"``. ``input_name`` picks the graph input (default: the
    first). Access is labels and scores; an ONNX graph gives no gradients here.
    """

    def __init__(
        self,
        path: str | Path,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
        output: str = "logits",
        input_name: str | None = None,
        batch_size: int = 1024,
    ) -> None:
        if output not in _OUTPUTS:
            raise ConfigError(f"output must be one of {', '.join(_OUTPUTS)}, got {output!r}")
        path = Path(path)
        if not path.is_file():
            raise InputError(f"ONNX model file not found: {path}")
        super().__init__(
            input_shape=input_shape, num_classes=num_classes, access=Access.LABELS | Access.SCORES, bounds=bounds
        )
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, torch.get_num_threads())
        try:
            self._session: Any = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InputError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from exc
        names = [i.name for i in self._session.get_inputs()]
        if input_name is not None and input_name not in names:
            raise InputError(f"ONNX model has no input named {input_name!r}; inputs: {', '.join(names)}")
        self.input_name = input_name or names[0]
        declared = next(i.shape for i in self._session.get_inputs() if i.name == self.input_name)
        fixed = list(declared[1:])
        if len(fixed) != len(self.input_shape) or any(
            isinstance(d, int) and d != s for d, s in zip(fixed, self.input_shape, strict=False)
        ):
            raise InputError(
                f"ONNX model input {self.input_name!r} has shape {declared}, which does not match "
                f"input_shape {self.input_shape}"
            )
        self.path = path
        self.output = output
        self.batch_size = int(batch_size)

    def _run_model(self, x: Tensor) -> Tensor:
        if x.shape[0] == 0:
            return torch.empty(0, self.num_classes)
        parts = []
        for b in x.split(self.batch_size):
            arr = np.ascontiguousarray(b.detach().cpu().numpy(), dtype=np.float32)
            out = np.asarray(self._session.run(None, {self.input_name: arr})[0])
            if out.ndim != 2 or out.shape[1] != self.num_classes:
                raise InputError(
                    f"ONNX model returned shape {tuple(out.shape)}, expected [N, {self.num_classes}] {self.output}"
                )
            parts.append(torch.from_numpy(out.astype(np.float32, copy=False)))
        return torch.cat(parts) if parts else torch.empty(0, self.num_classes)

    def _scores(self, x: Tensor) -> Tensor:
        out = self._run_model(x)
        return torch.softmax(out, dim=1) if self.output == "logits" else out

    def _labels(self, x: Tensor) -> Tensor:
        return self._run_model(x).argmax(dim=1)


def export_onnx(module: nn.Module, input_shape: Sequence[int], path: str | Path, opset: int = 17) -> Path:
    """Write ``module`` (in eval mode) to an ONNX file with a dynamic batch axis; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    modes = {m: m.training for m in module.modules()}  # restored one by one: a wrapper's mode is not its parts'
    module.eval()
    try:
        example = torch.zeros(1, *[int(s) for s in input_shape])
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exports these models reliably
            warnings.simplefilter("ignore", DeprecationWarning)
            _export(module, example, path, opset)
    finally:
        for m, training in modes.items():
            m.training = training
    return path


def _export(module: nn.Module, example: Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )
