from __future__ import annotations

import math

import pytest
import torch

from sparring.attacks.poisoning import BadNets
from sparring.data import Dataset, PoisonedDataset
from sparring.defenses.training.learning_curves import LearningCurve, backdoor_learning_curve
from sparring.errors import ConfigError, InputError
from sparring.models import build
from sparring.train import TrainConfig


@pytest.fixture(scope="module")
def poisoned(digits_split: tuple[Dataset, Dataset]) -> PoisonedDataset:
    return BadNets(target=0, poison_fraction=0.1, seed=0).poison(digits_split[0])


@pytest.fixture(scope="module")
def curve(poisoned: PoisonedDataset, digits_split: tuple[Dataset, Dataset]) -> LearningCurve:
    return backdoor_learning_curve(
        poisoned,
        lambda: build("mlp", poisoned.input_shape, 10),
        TrainConfig(epochs=10, progress=False),
        digits_split[1],
        betas=(0.0, 0.1, 1.0),
        weight_decays=(0.0, 1e-2),
    )


def test_asr_rises_with_beta(curve: LearningCurve) -> None:
    weak = curve.curve(0.0)
    assert [p.beta for p in weak] == [0.0, 0.1, 1.0]
    assert weak[0].asr < 0.1 < weak[1].asr < weak[2].asr and weak[2].asr > 0.9
    assert weak[0].backdoor_loss > weak[1].backdoor_loss > weak[2].backdoor_loss
    assert all(p.clean_accuracy > 0.8 for p in curve.points)
    assert len(curve.as_rows()) == 6


def test_strong_weight_decay_flattens_the_start_of_the_curve(curve: LearningCurve) -> None:
    """Cinà et al.'s finding: stronger regularisation slows the learning of the backdoor."""
    assert curve.slope(1e-2) < curve.slope(0.0)
    assert curve.curve(1e-2)[1].asr < curve.curve(0.0)[1].asr
    assert 0.0 <= curve.area(1e-2) <= curve.area(0.0) <= 1.0
    with pytest.raises(InputError, match="weight_decay"):
        curve.curve(0.5)


def test_bad_learning_curve_inputs(poisoned: PoisonedDataset, digits_split: tuple[Dataset, Dataset]) -> None:
    test = digits_split[1]
    cfg = TrainConfig(epochs=1, progress=False)

    def mlp() -> torch.nn.Module:
        return build("mlp", poisoned.input_shape, 10)

    with pytest.raises(ConfigError, match="betas"):
        backdoor_learning_curve(poisoned, mlp, cfg, test, betas=(-0.1,))
    with pytest.raises(ConfigError, match="betas"):
        backdoor_learning_curve(poisoned, mlp, cfg, test, betas=())
    with pytest.raises(ConfigError, match="weight_decays"):
        backdoor_learning_curve(poisoned, mlp, cfg, test, weight_decays=(math.inf,))
    no_poison = PoisonedDataset(
        poisoned.x,
        poisoned.y,
        poisoned.classes,
        poison_mask=torch.zeros(len(poisoned), dtype=torch.bool),
        original_y=poisoned.y,
        trigger=poisoned.trigger,
        target=0,
    )
    with pytest.raises(InputError, match="no poisoned samples"):
        backdoor_learning_curve(no_poison, mlp, cfg, test)
    no_trigger = PoisonedDataset(
        poisoned.x, poisoned.y, poisoned.classes, poison_mask=poisoned.poison_mask, original_y=poisoned.original_y
    )
    with pytest.raises(InputError, match="trigger and target"):
        backdoor_learning_curve(no_trigger, mlp, cfg, test)
