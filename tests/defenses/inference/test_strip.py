from __future__ import annotations

import pytest
import torch

from sparring.attacks.poisoning import BadNets
from sparring.data import Dataset, PoisonedDataset
from sparring.defenses.inference import STRIP
from sparring.defenses.inference.detector import threshold_at
from sparring.errors import AccessError, ConfigError, InputError
from sparring.models import Access, TorchClassifier


def test_catches_triggered_inputs_at_5pct_frr(
    digits_backdoor: tuple[TorchClassifier, PoisonedDataset], digits_halves: tuple[Dataset, Dataset]
) -> None:
    """Measured: 0.995 of triggered inputs caught, held-out clean FRR 0.040 (0.5 blend: 0.41)."""
    clf, poisoned = digits_backdoor
    assert poisoned.trigger is not None
    clean, held_out = digits_halves
    triggered = poisoned.trigger.apply(held_out.x[held_out.y != 0])
    detector = STRIP(n_overlays=16, frr=0.05, seed=0).fit(clf, clean.x)
    assert float(detector.detect(triggered).float().mean()) >= 0.9
    assert float(detector.detect(held_out.x).float().mean()) <= 0.1
    assert float(detector.detect(clean.x).float().mean()) <= 0.05
    assert float(detector.score(triggered).median()) < 0.5 * float(detector.score(held_out.x).median())
    # Seeded: the same overlays, so the same scores.
    assert torch.equal(detector.score(held_out.x[:20]), detector.score(held_out.x[:20]))


def test_clean_model_gives_no_free_detections(
    digits_cnn: TorchClassifier, digits_halves: tuple[Dataset, Dataset]
) -> None:
    """Without a backdoor the trigger does not lower entropy: measured 0.05 of triggered inputs flagged."""
    clean, held_out = digits_halves
    trigger = BadNets(target=0).trigger(clean.input_shape)
    detector = STRIP(seed=0).fit(digits_cnn, clean.x)
    assert float(detector.detect(trigger.apply(held_out.x[held_out.y != 0])).float().mean()) < 0.2


def test_bad_config_and_input(digits_cnn: TorchClassifier, digits_halves: tuple[Dataset, Dataset]) -> None:
    clean, _ = digits_halves
    with pytest.raises(ConfigError, match="n_overlays"):
        STRIP(n_overlays=0)
    with pytest.raises(ConfigError, match="mode"):
        STRIP(mode="multiply")
    with pytest.raises(ConfigError, match="alpha"):
        STRIP(mode="blend", alpha=1.0)
    with pytest.raises(ConfigError, match="frr"):
        STRIP(frr=1.5)
    with pytest.raises(InputError, match="not fitted"):
        STRIP().score(clean.x)
    with pytest.raises(InputError, match="at least 2"):
        STRIP().fit(digits_cnn, clean.x[:1])
    with pytest.raises(InputError, match="shape"):
        STRIP().fit(digits_cnn, clean.x.flatten(1))
    with pytest.raises(AccessError):
        STRIP().fit(digits_cnn.restrict(Access.LABELS), clean.x)
    detector = STRIP(mode="blend", n_overlays=2).fit(digits_cnn, clean.x)
    assert detector.score(clean.x[:0]).shape == (0,)
    assert "blend" in repr(detector)


def test_threshold_flags_at_most_the_share() -> None:
    scores = torch.arange(100.0).flip(0)
    low = threshold_at(scores, 0.05, low_is_suspicious=True)
    assert int((scores < low).sum()) == 4  # floor(0.05 * 99): never more than the 5 % asked for
    high = threshold_at(scores, 0.05, low_is_suspicious=False)
    assert int((scores > high).sum()) == 4
    assert int((torch.zeros(10) < threshold_at(torch.zeros(10), 0.5, True)).sum()) == 0  # ties flag nothing
    with pytest.raises(ConfigError, match="rate"):
        threshold_at(scores, 1.5, True)
    with pytest.raises(InputError, match="non-empty"):
        threshold_at(torch.zeros(0), 0.05, True)
