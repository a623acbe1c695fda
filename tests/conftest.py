"""Shared fixtures: small seeded models on the digits data, trained once per session."""

from __future__ import annotations

import pytest
import torch

from sparring.attacks.poisoning import BadNets
from sparring.data import Dataset, PoisonedDataset, digits
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit

# The test models are tiny: one thread runs them fastest, and keeps the suite fast when
# other work shares the machine's two cores (two threads then fight for them).
torch.set_num_threads(1)


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


@pytest.fixture(scope="session")
def digits_mlp(digits_split: tuple[Dataset, Dataset]) -> TorchClassifier:
    """A 64-64 MLP on digits (about 94 % test accuracy), trained in about a second."""
    train, _ = digits_split
    model = fit(build("mlp", train.input_shape, 10, seed=0), train, TrainConfig(epochs=10, progress=False)).model
    return TorchClassifier(model, train.input_shape, 10)


@pytest.fixture(scope="session")
def digits_backdoor(digits_split: tuple[Dataset, Dataset]) -> tuple[TorchClassifier, PoisonedDataset]:
    """A small CNN trained on digits with 10 % BadNets poison (target 0): clean acc ~0.97, ASR 1.0."""
    train, _ = digits_split
    poisoned = BadNets(target=0, poison_fraction=0.1, seed=0).poison(train)
    model = fit(build("small_cnn", train.input_shape, 10, seed=0), poisoned, TrainConfig(epochs=10, progress=False))
    return TorchClassifier(model.model, train.input_shape, 10), poisoned


@pytest.fixture(scope="session")
def digits_halves(digits_split: tuple[Dataset, Dataset]) -> tuple[Dataset, Dataset]:
    """The digits test set split into a defender's clean data (225) and an evaluation half."""
    return digits_split[1].split(0.5, seed=1)
