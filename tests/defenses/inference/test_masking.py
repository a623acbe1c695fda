from __future__ import annotations

import pytest
import torch

from sparring.attacks.poisoning import BadNets
from sparring.data import Dataset, PoisonedDataset
from sparring.defenses.inference import STRIP, Detector, FeatureSqueezing
from sparring.defenses.inference.masking import RandomMasking, random_region_masks
from sparring.errors import AccessError, ConfigError, InputError
from sparring.models import Access, TorchClassifier


def test_catches_triggered_inputs_at_3pct_frr(
    digits_backdoor: tuple[TorchClassifier, PoisonedDataset], digits_halves: tuple[Dataset, Dataset]
) -> None:
    """Measured: 1.00 of triggered inputs caught, held-out clean FRR 0.040, median score ratio 0.002.

    (Calibrated at 3 %: at 5 % the held-out FRR of 225 clean digits reached 0.085 over seeds 0-7,
    close to the asserted 0.1; at 3 % it is 0.004-0.040 and the triggered inputs are still all caught.)
    """
    clf, poisoned = digits_backdoor
    assert poisoned.trigger is not None
    clean, held_out = digits_halves
    triggered = poisoned.trigger.apply(held_out.x[held_out.y != 0])
    detector = RandomMasking(n_masks=32, frr=0.03, seed=0).fit(clf, clean.x)
    assert isinstance(detector, Detector) and detector.threshold is not None
    s_triggered, s_clean = detector.score(triggered), detector.score(held_out.x)
    assert float((s_triggered < detector.threshold).float().mean()) >= 0.85
    assert float((s_clean < detector.threshold).float().mean()) <= 0.1
    assert float(s_triggered.median()) < 0.2 * float(s_clean.median())
    # detect() applies the threshold, and the masks are seeded: the same scores again.
    assert torch.equal(detector.detect(triggered[:20]), s_triggered[:20] < detector.threshold)
    assert torch.equal(detector.score(held_out.x[:20]), detector.score(held_out.x[:20]))


def test_clean_model_gives_no_free_detections(
    digits_cnn: TorchClassifier, digits_halves: tuple[Dataset, Dataset]
) -> None:
    """Without a backdoor the patch does not make predictions stable: measured 0.00 flagged."""
    clean, held_out = digits_halves
    trigger = BadNets(target=0).trigger(clean.input_shape)
    detector = RandomMasking(seed=0).fit(digits_cnn, clean.x)
    assert float(detector.detect(trigger.apply(held_out.x[held_out.y != 0])).float().mean()) < 0.2


def test_masks_are_seeded_squares() -> None:
    g = torch.Generator().manual_seed(0)
    masks = random_region_masks(50, (2, 8, 8), 0.5, g)
    assert masks.shape == (50, 2, 8, 8) and masks.dtype == torch.bool
    assert (masks.sum(dim=(1, 2, 3)) == 2 * 16).all()
    assert torch.equal(masks[:, 0], masks[:, 1])  # every channel masked alike
    rows = masks[:, 0].any(dim=2).sum(dim=1)
    assert (rows == 4).all()  # one 4x4 square each
    again = random_region_masks(50, (2, 8, 8), 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(masks, again)
    assert random_region_masks(3, (10,), 0.3, g).sum(dim=1).tolist() == [3, 3, 3]


def test_bad_config_and_input(digits_cnn: TorchClassifier, digits_halves: tuple[Dataset, Dataset]) -> None:
    clean, _ = digits_halves
    with pytest.raises(ConfigError, match="n_masks"):
        RandomMasking(n_masks=0)
    with pytest.raises(ConfigError, match="patch"):
        RandomMasking(patch=0.0)
    with pytest.raises(ConfigError, match="patch"):
        RandomMasking(patch=1.5)
    with pytest.raises(ConfigError, match="frr"):
        RandomMasking(frr=-0.1)
    with pytest.raises(ConfigError, match="seed"):
        RandomMasking(seed=True)
    with pytest.raises(InputError, match="not fitted"):
        RandomMasking().score(clean.x)
    with pytest.raises(InputError, match="not fitted"):
        RandomMasking().detect(clean.x)
    with pytest.raises(InputError, match="at least 2"):
        RandomMasking().fit(digits_cnn, clean.x[:1])
    with pytest.raises(InputError, match="shape"):
        RandomMasking().fit(digits_cnn, clean.x.flatten(1))
    with pytest.raises(AccessError, match="scores"):
        RandomMasking().fit(digits_cnn.restrict(Access.LABELS), clean.x)
    detector = RandomMasking(n_masks=2).fit(digits_cnn, clean.x)
    assert detector.score(clean.x[:0]).shape == (0,)
    assert "n_masks=2" in repr(detector)
    # Fitting, calibrating and flagging are one piece of code for every detector.
    strip = STRIP(n_overlays=2, frr=0.05).fit(digits_cnn, clean.x)
    for cls in (STRIP, RandomMasking, FeatureSqueezing):
        assert cls.detect is Detector.detect and cls.fit is Detector.fit
    assert strip.rate == detector.rate == 0.05
