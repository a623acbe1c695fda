from __future__ import annotations

import pytest
import torch

from sparring.attacks.poisoning.clean_label import (
    BullseyePolytope,
    CleanLabelResult,
    ConvexPolytope,
    FeatureCollision,
    evaluate_clean_label,
    head_input_features,
    select_targets_and_bases,
)
from sparring.data import Dataset
from sparring.errors import ConfigError, InputError
from sparring.models.hooks import layer_features
from sparring.transfer import TransferSetup, transfer_learning_setup

EPS = 0.3
K = 10
N_TARGETS = 5
COMMON = dict(target_class=1, base_class=7, n_targets=N_TARGETS, n_poisons=K, epochs=60, lr=0.01, seed=0)


@pytest.fixture(scope="module")
def setup(digits_split: tuple[Dataset, Dataset]) -> TransferSetup:
    train, test = digits_split
    return transfer_learning_setup(train, test, teacher_epochs=10, student_epochs=10, seed=0)


@pytest.fixture(scope="module")
def control(setup: TransferSetup) -> CleanLabelResult:
    return evaluate_clean_label(None, setup, progress=False, **COMMON)  # type: ignore[arg-type]


def test_bullseye_white_box_frozen_centres_the_poisons_on_the_target(
    setup: TransferSetup, control: CleanLabelResult
) -> None:
    """Bullseye Polytope on the teacher's features (white box) against a frozen victim.

    Asserted: the poisons stay within eps, their feature centre lands on average under half as far
    from the target as the bases' centre (measured 0.30), and the poisoned victims keep their clean
    accuracy. Not asserted: more successes than the control (clean bases). The attack is weak on 8x8
    digits (benchmarks/README.md): 0-1 of 5 targets over seeds 0-7, no better than the control at 4
    of them, and with 20 poisons and 20 targets 1-8 successes, still under 2 std above the control's 0.
    """
    attack = BullseyePolytope(n_poisons=K, eps=EPS, steps=100, lr=0.02)
    result = evaluate_clean_label(attack, setup, progress=False, **COMMON)  # type: ignore[arg-type]
    assert torch.equal(result.target_index, control.target_index)
    assert torch.equal(result.base_index, control.base_index)
    assert result.max_linf <= EPS + 1e-6
    assert abs(result.clean_accuracy_after - result.clean_accuracy_before) < 0.05
    f = layer_features(setup.teacher.model, setup.layer)
    ratios = []
    for target, bases in zip(result.target_index, result.base_index, strict=True):
        t_x, b_x = setup.test.x[target], setup.teacher_data.x[bases]
        poisons = attack.craft([f], t_x, b_x)
        with torch.no_grad():
            t = f(t_x[None])[0]
            ratios.append(float((f(poisons).mean(0) - t).norm() / (f(b_x).mean(0) - t).norm()))
    assert sum(ratios) / len(ratios) < 0.5


@pytest.mark.parametrize("cls", [FeatureCollision, ConvexPolytope, BullseyePolytope])
def test_poisons_stay_in_eps_and_move_features_to_target(setup: TransferSetup, cls: type) -> None:
    targets, bases = select_targets_and_bases(setup, 1, 7, 1, 4, seed=0)
    f = layer_features(setup.teacher.model, setup.layer)
    t_x, b_x = setup.test.x[targets[0]], setup.teacher_data.x[bases[0]]
    poisons = cls(n_poisons=4, eps=0.1, steps=30).craft([f], t_x, b_x)
    assert poisons.shape == b_x.shape
    assert float((poisons - b_x).abs().max()) <= 0.1 + 1e-6
    assert float(poisons.min()) >= 0.0 and float(poisons.max()) <= 1.0
    with torch.no_grad():
        t = f(t_x[None])
        before = (f(b_x).mean(0) - t).norm()
        after = (f(poisons).mean(0) - t).norm()
    assert float(after) < 0.9 * float(before)


def test_poison_appends_clean_labelled_poisons(setup: TransferSetup) -> None:
    targets, bases = select_targets_and_bases(setup, 1, 7, 1, 3, seed=0)
    f = layer_features(setup.teacher.model, setup.layer)
    private = setup.student_data
    out = FeatureCollision(n_poisons=3, steps=5).poison(
        private, [f], setup.test.x[targets[0]], setup.teacher_data.x[bases[0]], base_class=7
    )
    assert len(out) == len(private) + 3 and out.n_poisoned == 3
    assert bool(out.poison_mask[-3:].all()) and not bool(out.poison_mask[:-3].any())
    assert bool((out.y[out.poison_mask] == 7).all()) and torch.equal(out.original_y, out.y)


def test_bad_parameters_and_inputs_raise(setup: TransferSetup) -> None:
    with pytest.raises(ConfigError, match="eps"):
        BullseyePolytope(eps=0.0)
    with pytest.raises(ConfigError, match="n_poisons"):
        ConvexPolytope(n_poisons=0)
    with pytest.raises(ConfigError, match="steps"):
        FeatureCollision(steps=-1)
    with pytest.raises(ConfigError, match="beta"):
        FeatureCollision(beta=-1.0)
    with pytest.raises(ConfigError, match="lr"):
        BullseyePolytope(lr=float("nan"))
    with pytest.raises(InputError, match="extractors"):
        BullseyePolytope().craft([], torch.zeros(1, 8, 8), torch.zeros(2, 1, 8, 8))
    f = layer_features(setup.teacher.model, setup.layer)
    with pytest.raises(InputError, match="target_x"):
        BullseyePolytope().craft([f], torch.zeros(1, 4, 4), torch.zeros(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="training"):
        evaluate_clean_label(BullseyePolytope(), setup, target_class=1, base_class=7, training="partly")
    with pytest.raises(ConfigError, match="knowledge"):
        evaluate_clean_label(BullseyePolytope(), setup, target_class=1, base_class=7, knowledge="black")
    with pytest.raises(ConfigError, match="must differ"):
        select_targets_and_bases(setup, 3, 3, 1, 1)


def test_head_input_features_are_what_the_head_sees(setup: TransferSetup) -> None:
    x = setup.test.x[:4]
    model = setup.teacher.model
    feats = head_input_features(model)(x)
    fc1 = layer_features(model, "fc1")(x)
    assert torch.allclose(feats, torch.relu(fc1), atol=1e-6)


def test_nearest_bases_are_closer_than_random(setup: TransferSetup) -> None:
    t_r, b_r = select_targets_and_bases(setup, 1, 7, 3, 4, seed=0)
    t_n, b_n = select_targets_and_bases(setup, 1, 7, 3, 4, seed=0, base_selection="nearest")
    assert torch.equal(t_r, t_n)
    assert bool((setup.teacher_data.y[b_n] == 7).all())

    def mean_distance(bases: torch.Tensor) -> float:
        xt = setup.test.x[t_r].flatten(1)[:, None]
        return float((setup.teacher_data.x[bases].flatten(2) - xt).norm(dim=-1).mean())

    assert mean_distance(b_n) < mean_distance(b_r)
    with pytest.raises(ConfigError, match="base_selection"):
        select_targets_and_bases(setup, 1, 7, 1, 1, base_selection="closest")
