from __future__ import annotations

import pytest
import torch
from torch import nn

from sparring.attacks.poisoning import BadNets
from sparring.data import Dataset, PoisonedDataset, mnist5k
from sparring.defenses.data import ActivationClustering, Detection, sanitise_and_retrain
from sparring.errors import AccessError, ConfigError, InputError
from sparring.metrics import attack_success_rate, detection_rates
from sparring.models import Access, TorchClassifier, build
from sparring.train import TrainConfig, fit

# Activation clustering needs a model with a rich enough representation: a small CNN on a
# 2,000-image MNIST subset (1,500 for training), four epochs.
SHAPE = (1, 28, 28)
CONFIG = TrainConfig(epochs=4, progress=False)
ATTACK = BadNets(target=0, poison_fraction=0.05, seed=0)


def _build() -> nn.Module:
    return build("small_cnn", SHAPE, 10, seed=0)


@pytest.fixture(scope="module")
def mnist_split() -> tuple[Dataset, Dataset]:
    return mnist5k().take(2000, seed=0).split(0.25, seed=0)


@pytest.fixture(scope="module")
def poisoned(mnist_split: tuple[Dataset, Dataset]) -> PoisonedDataset:
    return ATTACK.poison(mnist_split[0])


@pytest.fixture(scope="module")
def backdoored(poisoned: PoisonedDataset) -> TorchClassifier:
    return TorchClassifier(fit(_build(), poisoned, CONFIG).model, SHAPE, 10)


@pytest.fixture(scope="module")
def detection(poisoned: PoisonedDataset, backdoored: TorchClassifier) -> Detection:
    return ActivationClustering().detect(poisoned, backdoored)


def test_flags_most_poison_and_little_else(poisoned: PoisonedDataset, detection: Detection) -> None:
    rates = detection_rates(detection.flagged, poisoned.poison_mask)
    assert rates["recall"] >= 0.85
    assert rates["fpr"] <= 0.03
    assert detection.scores.shape == (len(poisoned),)
    # poison is more suspicious than clean data on average
    assert float(detection.scores[poisoned.poison_mask].mean()) > float(detection.scores[~poisoned.poison_mask].mean())
    judged = [c["label"] for c in detection.details["classes"] if c["poisoned"]]
    assert judged == [0]


def test_clean_model_on_clean_data_flags_few(mnist_split: tuple[Dataset, Dataset]) -> None:
    train = mnist_split[0]
    clean = TorchClassifier(fit(_build(), train, CONFIG).model, SHAPE, 10)
    found = ActivationClustering().detect(train, clean)
    assert found.n_flagged <= 0.01 * len(train)
    assert not any(c["poisoned"] for c in found.details["classes"])


def test_detection_is_deterministic(
    poisoned: PoisonedDataset, backdoored: TorchClassifier, detection: Detection
) -> None:
    again = ActivationClustering().detect(poisoned, backdoored)
    assert torch.equal(again.flagged, detection.flagged)
    assert torch.allclose(again.scores, detection.scores)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(("analysis", "reduce"), [("size", "pca"), ("silhouette", "ica")])
def test_other_analyses_run(poisoned: PoisonedDataset, backdoored: TorchClassifier, analysis: str, reduce: str) -> None:
    found = ActivationClustering(analysis=analysis, reduce=reduce).detect(poisoned, backdoored)
    assert found.flagged.shape == (len(poisoned),)
    assert bool(((found.scores >= 0) & (found.scores <= 1)).all())


def test_retraining_on_what_is_kept_removes_the_backdoor(
    mnist_split: tuple[Dataset, Dataset], poisoned: PoisonedDataset, backdoored: TorchClassifier
) -> None:
    test = mnist_split[1]
    assert poisoned.trigger is not None
    before = attack_success_rate(backdoored, test.x, test.y, poisoned.trigger, 0)
    result = sanitise_and_retrain(ActivationClustering(), poisoned, backdoored, _build, CONFIG, max_passes=2)
    after = attack_success_rate(result.classifier, test.x, test.y, poisoned.trigger, 0)
    assert before >= 0.9
    assert after <= 0.15
    assert 1 <= result.passes <= 2
    assert result.flagged.shape == (len(poisoned),)
    assert detection_rates(result.flagged, poisoned.poison_mask)["recall"] >= 0.85
    assert result.seconds > 0
    assert result.classifier is not backdoored


def test_nothing_flagged_keeps_the_classifier(poisoned: PoisonedDataset, backdoored: TorchClassifier) -> None:
    class Never:
        def detect(self, train: Dataset, classifier: object) -> Detection:
            return Detection.nothing(len(train))

    result = sanitise_and_retrain(Never(), poisoned, backdoored, _build, CONFIG)
    assert result.classifier is backdoored and result.passes == 1 and not bool(result.flagged.any())


def test_needs_internals(poisoned: PoisonedDataset, backdoored: TorchClassifier) -> None:
    view = backdoored.restrict(Access.LABELS | Access.SCORES)
    with pytest.raises(AccessError, match="internals"):
        ActivationClustering().detect(poisoned, view)


def test_unknown_layer_is_an_input_error(poisoned: PoisonedDataset, backdoored: TorchClassifier) -> None:
    with pytest.raises(InputError, match="no layer"):
        ActivationClustering(layer="nope").detect(poisoned, backdoored)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"analysis": "smallest"},
        {"reduce": "tsne"},
        {"n_components": 0},
        {"size_threshold": 1.5},
        {"silhouette_threshold": 2.0},
        {"n_neighbors": 0},
        {"reclassify_threshold": -0.1},
        {"layer": ""},
    ],
)
def test_bad_parameters_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ActivationClustering(**kwargs)  # type: ignore[arg-type]


def test_bad_max_passes(poisoned: PoisonedDataset, backdoored: TorchClassifier) -> None:
    with pytest.raises(ConfigError, match="max_passes"):
        sanitise_and_retrain(ActivationClustering(), poisoned, backdoored, _build, CONFIG, max_passes=0)


def test_detection_checks_shapes() -> None:
    with pytest.raises(InputError):
        Detection(torch.zeros(3), torch.zeros(4, dtype=torch.bool))
    assert Detection.nothing(5).n_flagged == 0
