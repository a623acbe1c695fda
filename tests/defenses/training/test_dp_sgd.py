"""DP-SGD through Opacus returns a plain model: later attacks can take gradients through it."""

from __future__ import annotations

import pytest
import torch

from sparring.data import load_builtin
from sparring.defenses.training.dp_sgd import DPSGD
from sparring.models.zoo import build
from sparring.train import TrainConfig

pytest.importorskip("opacus")


def test_a_dp_model_takes_input_gradients_after_training() -> None:
    data = load_builtin("digits")
    result = DPSGD(8.0).train(build("mlp", tuple(data.x.shape[1:]), 10), data, TrainConfig(epochs=1))
    x = data.x[:8].clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(result.model(x), data.y[:8]).backward()  # failed inside Opacus' hooks before
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert 0 < result.epsilon <= 8.0 + 1e-6
