from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sparring.attacks.poisoning import BadNets
from sparring.data import Dataset, PoisonedDataset
from sparring.defenses.data import Detection, SpectralSignatures, sanitise_and_retrain
from sparring.errors import AccessError, ConfigError, InputError
from sparring.metrics import attack_success_rate, detection_rates
from sparring.models import Access, TorchClassifier, build
from sparring.train import TrainConfig, fit

# BadNets puts 5 % of the digits training set (a third of class 0) in the target class. The
# small CNN's first convolution sees the trigger directly and separates it; its penultimate
# layer does not on this little data (see the module docstring). A 5x5 patch and class_ratio
# 1.75: with a 3x3 patch and 1.5 the clean classes' top-eigenvalue ratios (up to 1.58 x the
# median over seeds 0-7) reached the rule, and the target's (1.63-2.24 x) came close to it;
# with 5x5 the target's is 2.48-3.70 x and 1.75 sits between the two.
CONFIG = TrainConfig(epochs=10, progress=False)
ATTACK = BadNets(target=0, poison_fraction=0.05, patch_size=5, seed=0)
TUNED = SpectralSignatures(layer="conv1", epsilon=1 / 3, class_ratio=1.75)


def _build() -> nn.Module:
    return build("small_cnn", (1, 8, 8), 10, seed=0)


@pytest.fixture(scope="module")
def poisoned(digits_split: tuple[Dataset, Dataset]) -> PoisonedDataset:
    return ATTACK.poison(digits_split[0])


@pytest.fixture(scope="module")
def backdoored(poisoned: PoisonedDataset) -> TorchClassifier:
    return TorchClassifier(fit(_build(), poisoned, CONFIG).model, poisoned.input_shape, 10)


@pytest.fixture(scope="module")
def detection(poisoned: PoisonedDataset, backdoored: TorchClassifier) -> Detection:
    return TUNED.detect(poisoned, backdoored)


def test_flags_the_poison_of_the_target_class(poisoned: PoisonedDataset, detection: Detection) -> None:
    rates = detection_rates(detection.flagged, poisoned.poison_mask)
    assert rates["recall"] >= 0.8
    assert rates["fpr"] <= 0.05
    inspected = [c["label"] for c in detection.details["classes"] if c["inspected"]]
    assert inspected == [0]
    assert not bool(detection.flagged[poisoned.y != 0].any())


def test_paper_rule_removes_the_same_share_of_every_class(
    poisoned: PoisonedDataset, backdoored: TorchClassifier
) -> None:
    found = SpectralSignatures(layer="conv1", epsilon=0.1, score="squared").detect(poisoned, backdoored)
    for c in found.details["classes"]:
        in_class = poisoned.y == c["label"]
        assert c["inspected"]
        assert int(found.flagged[in_class].sum()) == c["n_flagged"] == math.ceil(0.15 * int(in_class.sum()))
    # in the target class the poison carries the signature
    target = poisoned.y == 0
    pois, clean = found.scores[target & poisoned.poison_mask], found.scores[target & ~poisoned.poison_mask]
    assert float(pois.mean()) > 2 * float(clean.mean())
    assert bool(found.flagged[target].any()) and bool(found.flagged[target & ~poisoned.poison_mask].sum() <= 2)


def test_oriented_score_points_at_the_poison_end(
    digits_backdoor: tuple[TorchClassifier, PoisonedDataset],
) -> None:
    # 10 % BadNets: the poison is nearly half of class 0. The squared (paper) score also ranks
    # clean samples at the other end of the top direction high; the oriented score does not.
    clf, data = digits_backdoor
    target = data.y == 0
    recalls = {}
    for score in ("oriented", "squared"):
        found = SpectralSignatures(layer="conv1", epsilon=1 / 3, score=score).detect(data, clf)
        recalls[score] = detection_rates(found.flagged, data.poison_mask)["recall"]
        if score == "oriented":
            pois, clean = found.scores[target & data.poison_mask], found.scores[target & ~data.poison_mask]
            assert float(pois.mean()) > float(clean.mean()) + 1.0
            assert abs(float(found.scores[target].mean())) < 1e-4  # centred within the class
    assert recalls["oriented"] >= 0.95
    assert recalls["oriented"] >= recalls["squared"] + 0.2


def test_detection_is_deterministic(
    poisoned: PoisonedDataset, backdoored: TorchClassifier, detection: Detection
) -> None:
    again = TUNED.detect(poisoned, backdoored)
    assert torch.equal(again.flagged, detection.flagged)
    assert torch.allclose(again.scores, detection.scores)


def test_retraining_on_what_is_kept_removes_the_backdoor(
    digits_split: tuple[Dataset, Dataset], poisoned: PoisonedDataset, backdoored: TorchClassifier
) -> None:
    test = digits_split[1]
    assert poisoned.trigger is not None
    before = attack_success_rate(backdoored, test.x, test.y, poisoned.trigger, 0)
    result = sanitise_and_retrain(TUNED, poisoned, backdoored, _build, CONFIG, max_passes=1)
    after = attack_success_rate(result.classifier, test.x, test.y, poisoned.trigger, 0)
    assert before >= 0.9
    assert after <= 0.1


def test_needs_internals(poisoned: PoisonedDataset, backdoored: TorchClassifier) -> None:
    with pytest.raises(AccessError, match="internals"):
        TUNED.detect(poisoned, backdoored.restrict(Access.LABELS | Access.SCORES))


def test_unknown_layer_is_an_input_error(poisoned: PoisonedDataset, backdoored: TorchClassifier) -> None:
    with pytest.raises(InputError, match="no layer"):
        SpectralSignatures(layer="nope").detect(poisoned, backdoored)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"layer": ""},
        {"epsilon": 0.0},
        {"epsilon": 1.5},
        {"removal": 0.0},
        {"removal": math.inf},
        {"class_ratio": 0.5},
        {"score": "abs"},
    ],
)
def test_bad_parameters_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SpectralSignatures(**kwargs)  # type: ignore[arg-type]
