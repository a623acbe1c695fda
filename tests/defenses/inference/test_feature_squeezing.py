from __future__ import annotations

import pytest
import torch

from sparring.attacks.evasion import PGD, SqueezingAwarePGD
from sparring.data import Dataset
from sparring.defenses.inference import FeatureSqueezing, parse_transform
from sparring.errors import AccessError, ConfigError, InputError
from sparring.models import Access, TorchClassifier

# 8x8 digits are too small for Xu et al.'s MNIST squeezers (a 2x2 median and 1-bit depth
# change clean predictions as much as adversarial ones); 2-bit depth and JPEG 25 suit them.
# (JPEG 25 rather than 50: with 50 the detector-aware attack's lead over plain PGD's undetected
# successes, asserted > 0.4, was 0.62 +- 0.10 over seeds 0-7; with 25 it is 0.65 +- 0.07 over 0-15.)
SQUEEZERS = ("bit_depth:2", "jpeg:25")


@pytest.fixture(scope="module")
def parts(digits_split: tuple[Dataset, Dataset]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Disjoint test slices: fit (clean), held-out clean, and attacked inputs with their labels."""
    _, test = digits_split
    return test.x[:150], test.x[150:300], test.x[300:450], test.y[300:450]


def test_fpr_near_target_and_pgd_examples_detected(
    digits_cnn: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    """Two folds of the 450 test digits: calibrate on one half, attack and judge on the other, both ways.

    Measured (means of the folds): held-out FPR 0.058 at target 0.05; 90 % of successful PGD (eps 0.1)
    examples flagged. Not asserted: that 80 % are. Over seeds 0-7 the share was 0.70-0.90 for these
    squeezers, and below 0.8 at some seeds for every squeezer set, eps and split tried, so the claim
    kept is that most successful examples are flagged while clean inputs stay near the target rate.
    """
    _, test = digits_split
    halves = (slice(0, 225), slice(225, 450))
    fprs = []
    for fit_part, eval_part in (halves, halves[::-1]):
        fit_x, x, y = test.x[fit_part], test.x[eval_part], test.y[eval_part]
        detector = FeatureSqueezing(SQUEEZERS, fpr=0.05).fit(digits_cnn, fit_x)
        assert float(detector.detect(fit_x).float().mean()) <= 0.05
        attack = PGD(eps=0.1, steps=20).run(digits_cnn, x, y)
        result = detector.evaluate(attack.x_adv, x, attack.success)  # the attacked images' clean versions
        fprs.append(result.false_positive_rate)
        assert result.detection_rate_successful is not None and result.undetected_success_rate is not None
        assert result.undetected_success_rate < 0.5 * attack.success_rate  # most successes are flagged
        assert float(result.adv_scores.mean()) > 3 * float(result.clean_scores.mean())
        assert torch.equal(detector.detect(attack.x_adv), result.adv_scores > result.threshold)
    assert sum(fprs) / len(fprs) <= 0.1


def test_threshold_follows_the_target_rate(
    digits_cnn: TorchClassifier, parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    fit_x = parts[0]
    loose = FeatureSqueezing(SQUEEZERS, fpr=0.2).fit(digits_cnn, fit_x)
    strict = FeatureSqueezing(SQUEEZERS, fpr=0.01).fit(digits_cnn, fit_x)
    assert loose.threshold is not None and strict.threshold is not None
    assert loose.threshold < strict.threshold
    assert 0.1 < float(loose.detect(fit_x).float().mean()) <= 0.2


def test_bad_settings_and_use_raise_clear_errors(
    digits_cnn: TorchClassifier, parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    fit_x = parts[0]
    with pytest.raises(ConfigError, match="fpr"):
        FeatureSqueezing(fpr=1.5)
    with pytest.raises(ConfigError, match="unknown transform"):
        FeatureSqueezing(("blur:2",))
    with pytest.raises(ConfigError, match="non-empty list"):
        FeatureSqueezing("bit_depth:1")  # a string, not a list of specs
    with pytest.raises(InputError, match="not fitted"):
        FeatureSqueezing().score(fit_x)
    with pytest.raises(AccessError, match="scores"):
        FeatureSqueezing().fit(digits_cnn.restrict(Access.LABELS), fit_x)
    with pytest.raises(InputError, match="at least 1 clean input"):
        FeatureSqueezing().fit(digits_cnn, fit_x[:0])
    detector = FeatureSqueezing(SQUEEZERS).fit(digits_cnn, fit_x)
    with pytest.raises(InputError, match="shape"):
        detector.score(torch.zeros(3, 64))
    with pytest.raises(InputError, match="success"):
        detector.evaluate(fit_x[:5], fit_x[:5], torch.ones(4, dtype=torch.bool))


def test_squeezing_aware_pgd_evades_the_detector(
    digits_cnn: TorchClassifier, parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    """Measured at eps 0.2: PGD leaves 22 % undetected successes, the detector-aware attack 91 %."""
    fit_x, _, x, y = parts
    detector = FeatureSqueezing(SQUEEZERS).fit(digits_cnn, fit_x)
    assert detector.threshold is not None
    plain = PGD(eps=0.2, steps=20).run(digits_cnn, x, y)
    plain_undetected = float((plain.success & ~detector.detect(plain.x_adv)).float().mean())
    squeezers = [parse_transform(s) for s in SQUEEZERS]
    adaptive = SqueezingAwarePGD(squeezers, detector.threshold, eps=0.2, steps=50).run(digits_cnn, x, y)
    fooled_and_hidden = (digits_cnn.predict_labels(adaptive.x_adv) != y) & ~detector.detect(adaptive.x_adv)
    assert torch.equal(fooled_and_hidden, adaptive.success)
    assert adaptive.success_rate > 0.6
    assert adaptive.success_rate > plain_undetected + 0.4
    assert float(adaptive.norms.max()) <= 0.2 + 1e-6
    with pytest.raises(ConfigError, match="squeezers"):
        SqueezingAwarePGD([], 0.1)
