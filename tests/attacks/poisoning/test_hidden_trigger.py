from __future__ import annotations

import pytest
import torch

from sparring.attacks.poisoning.hidden_trigger import HiddenTrigger, evaluate_hidden_trigger, paste_patches
from sparring.data import Dataset
from sparring.errors import AccessError, ConfigError, InputError
from sparring.models import Access
from sparring.models.hooks import layer_features
from sparring.transfer import TransferSetup, transfer_learning_setup


@pytest.fixture(scope="module")
def setup(digits_split: tuple[Dataset, Dataset]) -> TransferSetup:
    train, test = digits_split
    return transfer_learning_setup(train, test, teacher_epochs=6, student_epochs=1, seed=0)


def test_poisons_stay_within_eps_and_keep_target_labels(setup: TransferSetup) -> None:
    data = setup.student_data
    attack = HiddenTrigger(target=0, source=1, eps=0.05, steps=5, lr=0.02, poison_fraction=0.5, seed=0)
    poisoned = attack.poison(data, setup.teacher, setup.layer)
    mask = poisoned.poison_mask
    assert poisoned.n_poisoned == round(0.5 * int((data.y == 0).sum()))
    assert torch.equal(poisoned.y, data.y) and bool((poisoned.y[mask] == 0).all())
    delta = poisoned.x - data.x
    assert float(delta.abs().max()) <= 0.05 + 1e-6
    assert float(delta[mask].abs().max()) > 0.04  # the poisons did move
    assert torch.equal(poisoned.x[~mask], data.x[~mask])
    assert 0.0 <= float(poisoned.x.min()) and float(poisoned.x.max()) <= 1.0
    assert poisoned.target == 0 and poisoned.trigger is not None
    again = attack.poison(data, setup.teacher, setup.layer)
    assert torch.equal(again.x, poisoned.x)  # seeded


def test_hidden_trigger_pulls_poisons_towards_patched_sources_at_no_accuracy_cost(setup: TransferSetup) -> None:
    """Measured: the poisons' feature centre ends at 0.60 of their originals' distance from the patched
    source images' centre; the poisoned victim's clean accuracy 0.911 (control 0.920).

    Not asserted: that the poisoned victim's ASR beats the control's by 0.05. Over seeds 0-15 it was
    0.00-0.78 (the control's about 0), 1.5 std above that bound; 1.8 std on the mean of three seeded
    runs and 2.2 at eps 0.4: on about 45 source-class test images it is too heavy-tailed to assert.
    """
    attack = HiddenTrigger(target=0, source=1, eps=0.3, steps=30, lr=0.075, patch_size=5, seed=0)
    result = evaluate_hidden_trigger(attack, setup, training="frozen", epochs=10, seed=0)
    assert result.max_linf <= 0.3 + 1e-6 and result.n_poisons > 0
    assert result.clean_accuracy >= result.control_accuracy - 0.05
    poisoned = result.poisoned
    assert poisoned.trigger is not None
    features = layer_features(setup.teacher.model, setup.layer)
    with torch.no_grad():
        centre = features(poisoned.trigger.apply(setup.test.x[setup.test.y == 1])).mean(0)
        moved = (features(poisoned.x[poisoned.poison_mask]).mean(0) - centre).norm()
        before = (features(setup.student_data.x[poisoned.poison_mask]).mean(0) - centre).norm()
    assert float(moved) < 0.9 * float(before)


def test_paste_patches_places_patch() -> None:
    x = torch.zeros(2, 1, 6, 6)
    patch = torch.ones(1, 2, 2)
    out = paste_patches(x, patch, torch.tensor([0, 4]), torch.tensor([1, 3]))
    assert float(out[0, 0, 0:2, 1:3].sum()) == 4 and float(out[0].sum()) == 4
    assert float(out[1, 0, 4:6, 3:5].sum()) == 4 and float(out[1].sum()) == 4


def test_trigger_is_a_corner_patch() -> None:
    trig = HiddenTrigger(patch_size=3).trigger((1, 8, 8))
    assert int(trig.alpha.sum()) == 9 and bool((trig.alpha[0, 5:, 5:] == 1).all())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": 0.0}, "eps"),
        ({"eps": 2.0}, "eps"),
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"poison_fraction": 0.0}, "poison_fraction"),
        ({"poison_fraction": 1.5}, "poison_fraction"),
        ({"source": 0, "target": 0}, "differ"),
        ({"target": -1}, "target"),
        ({"patch_size": 0}, "patch_size"),
        ({"layer": ""}, "layer"),
    ],
)
def test_bad_parameters_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        HiddenTrigger(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs_raise(setup: TransferSetup) -> None:
    data = setup.student_data
    with pytest.raises(InputError, match="no layer named"):
        HiddenTrigger(steps=1).poison(data, setup.teacher, "nope")
    with pytest.raises(ConfigError, match="layer must be given"):
        HiddenTrigger(steps=1).poison(data, setup.teacher)
    with pytest.raises(InputError, match="source class"):
        HiddenTrigger(source=12, steps=1).poison(data, setup.teacher, setup.layer)
    with pytest.raises(InputError, match="larger than"):
        HiddenTrigger(patch_size=9, steps=1).poison(data, setup.teacher, setup.layer)
    with pytest.raises(AccessError, match="HiddenTrigger needs"):
        HiddenTrigger(steps=1).poison(data, setup.teacher.restrict(Access.LABELS), setup.layer)
    with pytest.raises(ConfigError, match="training"):
        evaluate_hidden_trigger(HiddenTrigger(steps=1), setup, training="partial")
