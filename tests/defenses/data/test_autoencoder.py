from __future__ import annotations

import pytest
import torch

from sparring.attacks.poisoning import BadNets
from sparring.data import Dataset, PoisonedDataset
from sparring.defenses.data.autoencoder import AutoencoderDetector
from sparring.errors import ConfigError, InputError
from sparring.metrics import detection_rates, roc


@pytest.fixture(scope="module")
def poisoned(digits_split: tuple[Dataset, Dataset]) -> PoisonedDataset:
    return BadNets(target=0, poison_fraction=0.1, seed=0).poison(digits_split[0])


def test_flags_badnets_poison_above_chance(poisoned: PoisonedDataset) -> None:
    det = AutoencoderDetector(seed=0).detect(poisoned)
    rates = detection_rates(det.flagged, poisoned.poison_mask)
    assert det.n_flagged == pytest.approx(0.15 * len(poisoned), abs=1)
    # Chance would flag poison and clean samples at the same rate.
    assert rates["recall"] > 1.5 * rates["fpr"], rates
    assert roc(det.scores, poisoned.poison_mask).auc > 0.65
    assert det.details["error"].shape == (len(poisoned),) and len(det.details["groups"]) == 10


def test_threshold_flags_scores_above_it_and_runs_repeat(poisoned: PoisonedDataset) -> None:
    small = poisoned.subset(torch.arange(300))
    det = AutoencoderDetector(epochs=5, threshold=2.0, per_class=False).detect(small)
    again = AutoencoderDetector(epochs=5, threshold=2.0, per_class=False).detect(small)
    assert torch.equal(det.scores, again.scores)  # seeded
    assert torch.equal(det.flagged, det.scores > 2.0)
    assert det.details["groups"][0]["group"] == "all"
    assert det.n_flagged < len(small) // 2  # scores are relative to the class median


def test_bad_autoencoder_settings() -> None:
    for kwargs, match in [
        ({"epochs": 0}, "epochs"),
        ({"code_size": 0}, "code_size"),
        ({"quantile": 1.0}, "quantile"),
        ({"threshold": 0.0}, "threshold"),
        ({"lr": 0.0}, "lr"),
    ]:
        with pytest.raises(ConfigError, match=match):
            AutoencoderDetector(**kwargs)  # type: ignore[arg-type]
    tiny = Dataset(torch.rand(5, 4), torch.zeros(5, dtype=torch.long), ["a"])
    with pytest.raises(InputError, match="at least 10"):
        AutoencoderDetector().detect(tiny)
