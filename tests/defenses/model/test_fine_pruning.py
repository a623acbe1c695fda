from __future__ import annotations

import pytest
import torch

from sparring.data import Dataset, PoisonedDataset
from sparring.defenses.model import FinePruning
from sparring.errors import AccessError, ConfigError, InputError
from sparring.metrics import attack_success_rate, dataset_accuracy
from sparring.models import Access, TorchClassifier, capture


def _asr(clf: TorchClassifier, data: Dataset, poisoned: PoisonedDataset) -> float:
    assert poisoned.trigger is not None and poisoned.target is not None
    return attack_success_rate(clf, data.x, data.y, poisoned.trigger, poisoned.target)


def _folds(test: Dataset, k: int = 3) -> list[tuple[Dataset, Dataset]]:
    """``k`` (clean, held-out) pairs over ``test``: each repair gets (k-1)/k of it and is judged on the rest."""
    order = test.take_index(len(test), seed=1)
    parts = [order[i::k] for i in range(k)]
    return [(test.subset(torch.cat(parts[:i] + parts[i + 1 :])), test.subset(parts[i])) for i in range(k)]


def test_removes_backdoor_at_small_clean_cost(
    digits_backdoor: tuple[TorchClassifier, PoisonedDataset], digits_split: tuple[Dataset, Dataset]
) -> None:
    """Three folds of the 450 test digits: repair on 300, judge on the other 150, assert on the means.

    Measured: ASR 1.00 -> 0.007, held-out clean accuracy 0.971 -> 0.973 (means over the folds), 34
    of 64 channels pruned. (On one split of 225 clean digits at lr 3e-3 the repaired ASR ranged over
    0.07-0.59 across seeds 0-7; 300 digits at lr 5e-3, averaged over the folds, give 0.005-0.07.)
    """
    clf, poisoned = digits_backdoor
    weights = {k: v.clone() for k, v in clf.model.state_dict().items()}
    asr, cost = [], []
    for clean, held_out in _folds(digits_split[1]):
        asr_before, acc_before = _asr(clf, held_out, poisoned), dataset_accuracy(clf, held_out)
        assert asr_before > 0.9
        result = FinePruning(lr=5e-3, seed=0).repair(clf, clean)
        repaired = result.classifier
        asr.append(_asr(repaired, held_out, poisoned))
        cost.append(acc_before - dataset_accuracy(repaired, held_out))
        assert 0 < len(result.pruned) <= 0.9 * result.n_channels
        assert result.clean_accuracy_before - result.clean_accuracy_pruned <= 0.04
        # The pruned channels stay dead after fine-tuning.
        conv = repaired.model.get_submodule("conv2")
        assert isinstance(conv, torch.nn.Conv2d) and conv.bias is not None
        assert float(conv.weight.detach()[result.pruned].abs().sum()) == 0.0
        assert float(conv.bias.detach()[result.pruned].abs().sum()) == 0.0
    assert sum(asr) / len(asr) < 0.25
    assert sum(cost) / len(cost) <= 0.05
    # The input model is untouched.
    assert all(torch.equal(v, weights[k]) for k, v in clf.model.state_dict().items())
    assert _asr(clf, held_out, poisoned) == asr_before


def test_prunes_the_channels_clean_data_leaves_dormant(
    digits_backdoor: tuple[TorchClassifier, PoisonedDataset], digits_split: tuple[Dataset, Dataset]
) -> None:
    """The pruning step: conv2's channels least active on the defender's clean data go, and they are
    also the quiet ones on held-out clean digits (each pruned channel below the kept channels' mean).

    Not asserted: RAID'18's finding that pruning first leaves a lower ASR than fine-tuning alone. On
    this small CNN it held at seed 0 only (pruning then fine-tuning left the higher ASR at 3 of seeds
    0-7): the BadNets backdoor does not sit in the dormant channels here.
    """
    clf, _ = digits_backdoor
    clean, held_out = _folds(digits_split[1])[0]
    pruned = FinePruning(fine_tune_epochs=0, seed=0).repair(clf, clean)
    assert pruned.losses == [] and 0 < len(pruned.pruned) <= 0.9 * pruned.n_channels
    assert FinePruning(max_prune_fraction=0.0, fine_tune_epochs=0, seed=0).repair(clf, clean).pruned == []
    with capture(clf.model, "conv2") as out, torch.no_grad():
        clf.model(held_out.x)
    activation = out[0].clamp_min(0).mean(dim=(0, 2, 3))
    kept = torch.ones(len(activation), dtype=torch.bool)
    kept[pruned.pruned] = False
    assert float(activation[pruned.pruned].max()) < float(activation[kept].mean())
    # Pruning alone, before any fine-tuning, zeroes those channels on every input.
    with capture(pruned.classifier.model, "conv2") as out, torch.no_grad():
        pruned.classifier.model(held_out.x)
    assert float(out[0][:, pruned.pruned].abs().max()) == 0.0


def test_bad_config_and_input(digits_cnn: TorchClassifier, digits_halves: tuple[Dataset, Dataset]) -> None:
    clean, _ = digits_halves
    with pytest.raises(ConfigError, match="max_prune_fraction"):
        FinePruning(max_prune_fraction=1.5)
    with pytest.raises(ConfigError, match="fine_tune_epochs"):
        FinePruning(fine_tune_epochs=-1)
    with pytest.raises(ConfigError, match="lr"):
        FinePruning(lr=0.0)
    with pytest.raises(ConfigError, match="layer"):
        FinePruning(layer="")
    with pytest.raises(InputError, match="candidates: conv1, conv2, fc1, fc2"):
        FinePruning(layer="penultimate").repair(digits_cnn, clean)
    with pytest.raises(InputError, match="empty"):
        FinePruning().repair(digits_cnn, clean.subset(torch.arange(0)))
    with pytest.raises(InputError, match="TorchClassifier"):
        FinePruning().repair(digits_cnn.restrict(Access.ALL), clean)
    scores_only = TorchClassifier(digits_cnn.model, digits_cnn.input_shape, 10, access=Access.SCORES)
    with pytest.raises(AccessError):
        FinePruning().repair(scores_only, clean)
