from __future__ import annotations

import pytest
import torch

from sparring.attacks.poisoning import RandomLabelFlip
from sparring.data import Dataset
from sparring.errors import ConfigError, InputError
from sparring.metrics import dataset_accuracy
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit


def test_flips_exactly_the_requested_count_to_other_classes(digits_split: tuple[Dataset, Dataset]) -> None:
    train = digits_split[0]
    p = RandomLabelFlip(fraction=0.3, seed=0).poison(train)
    mask = p.poison_mask
    assert p.n_poisoned == round(0.3 * len(train))
    assert int((p.y != train.y).sum()) == p.n_poisoned  # every flip changes the class
    assert bool((p.y[mask] != train.y[mask]).all())
    assert torch.equal(p.y[~mask], train.y[~mask])
    assert torch.equal(p.original_y, train.y)
    assert torch.equal(p.x, train.x)
    assert p.target is None and p.trigger is None
    assert int(p.y.min()) >= 0 and int(p.y.max()) < train.num_classes
    # every other class is reachable: offsets 1..9 all occur
    offsets = (p.y[mask] - train.y[mask]) % 10
    assert set(offsets.tolist()) == set(range(1, 10))


def test_seed_repeats(digits_split: tuple[Dataset, Dataset]) -> None:
    train = digits_split[0]
    a = RandomLabelFlip(fraction=0.2, seed=5).poison(train)
    b = RandomLabelFlip(fraction=0.2, seed=5).poison(train)
    c = RandomLabelFlip(fraction=0.2, seed=6).poison(train)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)


def test_flipping_lowers_accuracy(digits_split: tuple[Dataset, Dataset]) -> None:
    train, test = digits_split
    cfg = TrainConfig(epochs=10, progress=False)
    accs = []
    for data in (train, RandomLabelFlip(fraction=0.6, seed=0).poison(train)):
        model = fit(build("mlp", train.input_shape, 10, seed=0), data, cfg).model
        accs.append(dataset_accuracy(TorchClassifier(model, train.input_shape, 10), test))
    assert accs[1] <= accs[0] - 0.05


@pytest.mark.parametrize("fraction", [1.5, -0.2])
def test_bad_fraction_raises(fraction: float) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        RandomLabelFlip(fraction=fraction)


def test_single_class_data_raises() -> None:
    data = Dataset(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(InputError, match="2 classes"):
        RandomLabelFlip().poison(data)
