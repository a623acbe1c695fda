from __future__ import annotations

import pytest
import torch

from sparring.attacks.poisoning import LossLabelFlip, RandomLabelFlip, TargetedLabelFlip
from sparring.data import Dataset, breast_cancer
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


def test_targeted_flip_moves_only_source_to_target(digits_split: tuple[Dataset, Dataset]) -> None:
    train = digits_split[0]
    p = TargetedLabelFlip(source=1, target=7, fraction=0.5, seed=0).poison(train)
    mask = p.poison_mask
    assert p.n_poisoned == round(0.5 * int((train.y == 1).sum()))
    assert bool((train.y[mask] == 1).all()) and bool((p.y[mask] == 7).all())
    assert torch.equal(p.y[~mask], train.y[~mask])
    assert torch.equal(p.original_y, train.y) and torch.equal(p.x, train.x)
    again = TargetedLabelFlip(source=1, target=7, fraction=0.5, seed=0).poison(train)
    other = TargetedLabelFlip(source=1, target=7, fraction=0.5, seed=1).poison(train)
    assert torch.equal(again.poison_mask, mask) and not torch.equal(other.poison_mask, mask)


def test_targeted_flip_confuses_the_pair(digits_split: tuple[Dataset, Dataset]) -> None:
    train, test = digits_split
    p = TargetedLabelFlip(source=1, target=7, fraction=0.8, seed=0).poison(train)
    model = fit(build("mlp", train.input_shape, 10, seed=0), p, TrainConfig(epochs=10, progress=False)).model
    pred = TorchClassifier(model, train.input_shape, 10).predict_labels(test.x[test.y == 1])
    assert float((pred == 7).float().mean()) >= 0.5


def test_loss_flip_picks_confident_points_and_changes_every_label(digits_split: tuple[Dataset, Dataset]) -> None:
    train = digits_split[0]
    for flip_to in ("least_likely", "second_likely"):
        p = LossLabelFlip(fraction=0.2, seed=0, flip_to=flip_to).poison(train)
        mask = p.poison_mask
        assert p.n_poisoned == round(0.2 * len(train))
        assert bool((p.y[mask] != train.y[mask]).all())
        assert torch.equal(p.y[~mask], train.y[~mask]) and torch.equal(p.original_y, train.y)


def test_loss_flip_uses_a_given_classifier(digits_split: tuple[Dataset, Dataset], digits_mlp: TorchClassifier) -> None:
    train = digits_split[0]
    p = LossLabelFlip(fraction=0.1, classifier=digits_mlp).poison(train)
    scores = digits_mlp.predict_scores(train.x)
    p_true = scores[torch.arange(len(train)), train.y]
    # the flipped points are the ones the classifier is most sure of
    assert float(p_true[p.poison_mask].min()) >= float(p_true[~p.poison_mask].median())
    least = scores.scatter(1, train.y.view(-1, 1), float("inf")).argmin(dim=1)
    assert torch.equal(p.y[p.poison_mask], least[p.poison_mask])


def test_loss_flip_hurts_more_than_random_flips(digits_split: tuple[Dataset, Dataset]) -> None:
    train, test = digits_split
    cfg = TrainConfig(epochs=10, progress=False)
    accs = []
    # 40 % flips: at 30 % the gap to random flips was 0.10 +- 0.04 over seeds 0-7 (half below the
    # asserted 0.1); at 40 % it is 0.31 +- 0.05.
    for attack in (RandomLabelFlip(fraction=0.4, seed=0), LossLabelFlip(fraction=0.4, seed=0)):
        model = fit(build("mlp", train.input_shape, 10, seed=0), attack.poison(train), cfg).model
        accs.append(dataset_accuracy(TorchClassifier(model, train.input_shape, 10), test))
    assert accs[1] <= accs[0] - 0.1


def test_label_flip_bad_input_raises(digits_split: tuple[Dataset, Dataset], digits_mlp: TorchClassifier) -> None:
    with pytest.raises(ConfigError, match="differ"):
        TargetedLabelFlip(source=2, target=2)
    with pytest.raises(ConfigError, match="source"):
        TargetedLabelFlip(source=-1)
    with pytest.raises(ConfigError, match="fraction"):
        TargetedLabelFlip(fraction=1.2)
    with pytest.raises(ConfigError, match="flip_to"):
        LossLabelFlip(flip_to="nearest")
    with pytest.raises(InputError, match="target class 12"):
        TargetedLabelFlip(target=12).poison(digits_split[0])
    with pytest.raises(InputError, match="classes"):
        LossLabelFlip(classifier=digits_mlp).poison(breast_cancer())
