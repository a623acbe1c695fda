"""OnnxClassifier: same predictions as the torch model it was exported from, clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from sparring.data import Dataset
from sparring.errors import AccessError, ConfigError, InputError
from sparring.models import Access, OnnxClassifier, TorchClassifier, export_onnx


@pytest.fixture(scope="module")
def cnn_file(digits_cnn: TorchClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(digits_cnn.model, (1, 8, 8), tmp_path_factory.mktemp("onnx") / "cnn.onnx")


def test_matches_the_torch_model(
    digits_cnn: TorchClassifier, cnn_file: Path, digits_split: tuple[Dataset, Dataset]
) -> None:
    _, test = digits_split
    onnx = OnnxClassifier(cnn_file, (1, 8, 8), 10)
    assert onnx.access == Access.LABELS | Access.SCORES
    assert not digits_cnn.model.training  # export leaves the module's mode alone
    for n in (1, 37, 300):  # dynamic batch axis
        x = test.x[:n]
        assert torch.equal(onnx.predict_labels(x), digits_cnn.predict_labels(x))
        assert torch.allclose(onnx.predict_scores(x), digits_cnn.predict_scores(x), atol=1e-5)
    assert onnx.queries == 2 * (1 + 37 + 300)
    assert onnx.predict_labels(test.x[:0]).shape == (0,)


def test_probability_output(tmp_path: Path, digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]) -> None:
    _, test = digits_split
    wrapper = nn.Sequential(digits_mlp.model, nn.Softmax(dim=1))  # a new module in training mode
    path = export_onnx(wrapper, (1, 8, 8), tmp_path / "p.onnx")
    assert wrapper.training and not digits_mlp.model.training  # each module keeps its own mode
    onnx = OnnxClassifier(path, (1, 8, 8), 10, output="probabilities")
    x = test.x[:20]
    assert torch.allclose(onnx.predict_scores(x), digits_mlp.predict_scores(x), atol=1e-5)
    # read as logits, the probabilities would be softmaxed again: visibly different scores
    wrong = OnnxClassifier(path, (1, 8, 8), 10, output="logits")
    assert not torch.allclose(wrong.predict_scores(x), digits_mlp.predict_scores(x), atol=1e-3)


def test_no_gradients(cnn_file: Path, digits_split: tuple[Dataset, Dataset]) -> None:
    _, test = digits_split
    onnx = OnnxClassifier(cnn_file, (1, 8, 8), 10)
    with pytest.raises(AccessError, match="gradients"):
        onnx.logits(test.x[:2])
    assert onnx.queries == 0


def test_clear_errors(cnn_file: Path, tmp_path: Path, digits_split: tuple[Dataset, Dataset]) -> None:
    _, test = digits_split
    with pytest.raises(InputError, match="not found"):
        OnnxClassifier(tmp_path / "missing.onnx", (1, 8, 8), 10)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(InputError, match="cannot load"):
        OnnxClassifier(garbage, (1, 8, 8), 10)
    with pytest.raises(InputError, match="does not match"):
        OnnxClassifier(cnn_file, (1, 28, 28), 10)
    with pytest.raises(InputError, match="does not match"):
        OnnxClassifier(cnn_file, (64,), 10)
    with pytest.raises(InputError, match="no input named"):
        OnnxClassifier(cnn_file, (1, 8, 8), 10, input_name="pixels")
    with pytest.raises(ConfigError, match="output"):
        OnnxClassifier(cnn_file, (1, 8, 8), 10, output="labels")
    wide = OnnxClassifier(cnn_file, (1, 8, 8), 12)
    with pytest.raises(InputError, match=r"expected \[N, 12\]"):
        wide.predict_labels(test.x[:3])
    onnx = OnnxClassifier(cnn_file, (1, 8, 8), 10)
    with pytest.raises(InputError, match="shape"):
        onnx.predict_labels(test.x[:3].flatten(1))
