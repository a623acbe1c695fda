"""Shared fixtures: small seeded models on the digits data, trained once per session."""

from __future__ import annotations

import pytest
import torch

from sparring.data import Dataset, digits
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit


@pytest.fixture(scope="session")
def digits_split() -> tuple[Dataset, Dataset]:
    return digits().split(0.25, seed=0)


@pytest.fixture(scope="session")
def digits_cnn(digits_split: tuple[Dataset, Dataset]) -> TorchClassifier:
    """A small CNN trained on digits (about 95 % test accuracy); do not train it further in tests."""
    train, _ = digits_split
    torch.manual_seed(0)
    model = fit(build("small_cnn", train.input_shape, 10, seed=0), train, TrainConfig(epochs=10, progress=False)).model
    return TorchClassifier(model, train.input_shape, 10)
