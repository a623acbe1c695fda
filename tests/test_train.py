from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit


def test_training_learns_and_repeats_with_a_seed(digits_split: tuple[Dataset, Dataset]) -> None:
    train, test = digits_split
    small = train.take(400, seed=0)
    runs = []
    for _ in range(2):
        model = build("mlp", small.input_shape, 10, seed=1)
        result = fit(model, small, TrainConfig(epochs=20, seed=2, progress=False))
        runs.append(result)
    assert runs[0].losses == runs[1].losses
    assert runs[0].losses[-1] < runs[0].losses[0]
    clf = TorchClassifier(runs[0].model, small.input_shape, 10)
    assert float((clf.predict_labels(test.x) == test.y).float().mean()) > 0.8
    assert not runs[0].model.training


def test_transform_hook_sees_every_batch(digits_split: tuple[Dataset, Dataset]) -> None:
    train, _ = digits_split
    small = train.take(100, seed=0)
    seen = []

    def hook(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        assert not model.training
        seen.append(len(x))
        return torch.zeros_like(x)

    fit(build("mlp", small.input_shape, 10), small, TrainConfig(epochs=2, batch_size=32, progress=False), hook)
    assert sum(seen) == 200


def test_bad_training_settings() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=-1)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(InputError, match="empty"):
        empty = Dataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), ["a", "b"])
        fit(build("mlp", (4,), 2), empty, TrainConfig(progress=False))
