"""Model extraction: Knockoff Nets from offline query pools, equation solving, and reverse sigmoid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from sparring.attacks.privacy.extraction import EquationSolving, KnockoffNets, one_standard_error, query_pool
from sparring.data import Dataset, load_builtin
from sparring.defenses.inference import HARDENING
from sparring.defenses.inference.reverse_sigmoid import reverse_sigmoid
from sparring.errors import AccessError, ConfigError
from sparring.models import SklearnClassifier, TorchClassifier, build
from sparring.train import TrainConfig, fit


@pytest.fixture(scope="module")
def split() -> tuple[Dataset, Dataset, Dataset]:
    """The victim's training data, the attacker's held-out data of the same distribution, and test data."""
    train, test = load_builtin("digits").split(0.3, seed=0)
    victim_train, held_out = train.split(0.5, seed=1)
    return victim_train, held_out, test


@pytest.fixture(scope="module")
def victim(split: tuple[Dataset, Dataset, Dataset]) -> TorchClassifier:
    train, _, _ = split
    model = fit(build("small_cnn", train.input_shape, train.num_classes), train, TrainConfig(epochs=15)).model
    return TorchClassifier(model, train.input_shape, train.num_classes)


def test_in_distribution_queries_steal_far_more_than_noise(
    split: tuple[Dataset, Dataset, Dataset], victim: TorchClassifier
) -> None:
    _, held_out, test = split
    fidelity = {}
    for pool in ("in_distribution", "noise"):
        x = query_pool(pool, victim.input_shape, 500, seed=0, held_out=held_out.x)
        victim.reset_queries()
        r = KnockoffNets().steal(victim, [100, 500], pool=x, test=test)
        assert r.queries == 500 == r.curve[-1].queries  # evaluation queries are not the attacker's
        assert [p.budget for p in r.curve] == [100, 500]
        fidelity[pool] = r.curve[-1].fidelity
        assert r.surrogate.predict_labels(test.x[:3]).shape == (3,)
    assert fidelity["in_distribution"] is not None and fidelity["noise"] is not None
    assert fidelity["in_distribution"] > 0.8
    assert fidelity["in_distribution"] > fidelity["noise"] + 0.3


@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_equation_solving_extracts_a_logistic_regression_exactly(name: str) -> None:
    train, test = load_builtin(name).split(0.3, seed=0)
    x = train.x.reshape(len(train), -1).numpy()
    victim = SklearnClassifier(LogisticRegression(max_iter=5000).fit(x, train.y.numpy()), train.input_shape)
    d, k = x.shape[1], train.num_classes
    r = EquationSolving().steal(victim, [(d + 1) * k], test=test)
    assert r.queries == d + 1 <= (d + 1) * k
    assert r.curve[-1].fidelity is not None and r.curve[-1].fidelity >= 0.999
    diff = (r.surrogate.predict_scores(test.x) - victim.predict_scores(test.x)).abs().max()
    assert float(diff) < 1e-3
    # with fewer queries than unknowns the system is underdetermined and the copy is not exact
    few = EquationSolving().steal(victim, [d // 2], test=test)
    assert few.queries == d // 2 and few.curve[0].fidelity is not None and few.curve[0].fidelity < 0.99


def test_reverse_sigmoid_keeps_the_top_1_label_and_sums_to_one() -> None:
    scores = torch.softmax(torch.randn(200, 10, generator=torch.Generator().manual_seed(0)) * 6, dim=1)
    for beta in (0.5, 1.0, 5.0):
        out = reverse_sigmoid(scores, beta=beta, gamma=0.1)
        assert torch.equal(out.argmax(dim=1), scores.argmax(dim=1))
        assert torch.allclose(out.sum(dim=1), torch.ones(200), atol=1e-5)
        assert bool((out >= 0).all())
    assert not torch.allclose(reverse_sigmoid(scores, 5.0, 0.1), scores, atol=0.1)


def test_label_only_theft_survives_reverse_sigmoid_while_probability_theft_degrades(
    split: tuple[Dataset, Dataset, Dataset], victim: TorchClassifier
) -> None:
    _, held_out, test = split
    x = query_pool("in_distribution", victim.input_shape, 500, seed=0, held_out=held_out.x)
    defended = HARDENING.build("reverse_sigmoid:5").wrap(victim)
    assert torch.equal(defended.predict_labels(test.x), victim.predict_labels(test.x))  # no accuracy cost
    fid = {}
    for access, clf in (("probabilities", victim), ("probabilities", defended), ("labels", defended)):
        r = KnockoffNets(access=access).steal(clf, 500, pool=x, test=test)
        assert r.curve[0].fidelity is not None
        fid[access, clf is defended] = r.curve[0].fidelity
    assert fid["labels", True] > 0.8
    assert fid["probabilities", False] > 0.8
    assert fid["probabilities", True] < fid["labels", True] - 0.3


def test_top_k_access_trains_on_the_largest_scores(
    split: tuple[Dataset, Dataset, Dataset], victim: TorchClassifier
) -> None:
    _, held_out, test = split
    r = KnockoffNets(access="top_k:2").steal(victim, 300, pool=held_out.x, test=test)
    assert r.access == "top_k:2" and r.curve[0].fidelity is not None and r.curve[0].fidelity > 0.6


def test_missing_access_and_bad_arguments_fail_before_any_query(victim: TorchClassifier) -> None:
    labels_only = HARDENING.build("label_only").wrap(victim)
    with pytest.raises(AccessError, match="scores"):
        KnockoffNets().steal(labels_only, 10, pool=torch.rand(10, 1, 8, 8))
    with pytest.raises(AccessError, match="scores"):
        EquationSolving().steal(labels_only, 10)
    assert labels_only.queries == 0
    with pytest.raises(ConfigError, match="access"):
        KnockoffNets(access="logits")
    with pytest.raises(ConfigError, match="query pool"):
        query_pool("imagenet", (1, 8, 8), 5)
    with pytest.raises(ConfigError, match="image inputs"):
        query_pool("photos", (30,), 5)
    with pytest.raises(ConfigError, match="budget"):
        KnockoffNets().steal(victim, [], pool=torch.rand(10, 1, 8, 8))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 16, 16)])
def test_offline_query_pools_fit_the_input(shape: tuple[int, int, int]) -> None:
    for name in ("other", "photos", "noise"):
        x = query_pool(name, shape, 20, seed=1, bounds=(-1.0, 1.0))
        assert tuple(x.shape) == (20, *shape)
        assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
        assert float(x.std()) > 0.01
    assert torch.equal(query_pool("photos", shape, 5, seed=3), query_pool("photos", shape, 5, seed=3))
    assert np.isfinite(query_pool("other", shape, 5).numpy()).all()


def test_a_short_pool_is_topped_up_with_shifted_copies() -> None:
    held = torch.zeros(30, 1, 28, 28)
    held[:, :, 10:18, 10:18] = 1.0  # a square the shifts move
    x = query_pool("in_distribution", (1, 28, 28), 100, seed=0, held_out=held)
    assert x.shape == (100, 1, 28, 28)
    assert torch.equal(x[:30], held)  # the natural images first, then copies moved by up to 2 pixels
    moved = (x[30:] != held[:1]).flatten(1).any(dim=1)
    assert float(moved.float().mean()) > 0.5
    assert torch.allclose(x[30:].sum(dim=(1, 2, 3)), torch.full((70,), 64.0))  # shifted, not cropped
    assert query_pool("in_distribution", (5,), 100, held_out=torch.rand(30, 5)).shape == (30, 5)  # no images


def test_training_a_few_answers_for_enough_steps_steals_more(
    split: tuple[Dataset, Dataset, Dataset], victim: TorchClassifier
) -> None:
    _, held_out, test = split
    fid = {}
    for name, thief in (("plain", KnockoffNets(steps=0, augment=None, holdout=0)), ("recipe", KnockoffNets())):
        r = thief.steal(victim, 100, pool=held_out.x, test=test)
        fid[name] = r.curve[0].fidelity
    assert fid["plain"] is not None and fid["recipe"] is not None
    assert fid["recipe"] > fid["plain"] + 0.05
    with pytest.raises(ConfigError, match="steps"):
        KnockoffNets(steps=-1)
    with pytest.raises(ConfigError, match="augment"):
        KnockoffNets(augment="rotate:3")
    with pytest.raises(ConfigError, match="holdout"):
        KnockoffNets(holdout=1.0)
    with pytest.raises(ConfigError, match="holdout"):
        KnockoffNets(holdout=-0.1)


def test_augmentation_must_beat_the_plain_recipe_by_more_than_one_standard_error() -> None:
    # (agreement on n held-out answers, epochs), plain recipe first
    assert one_standard_error([(0.9425, 14), (0.9475, 12)], 400) == 0  # 0.005 apart, one SE is 0.011
    assert one_standard_error([(0.88, 52), (0.98, 40)], 50) == 1  # 0.10 apart, one SE is 0.020
    assert one_standard_error([(0.90, 5), (0.95, 9)], 2000) == 1  # a large slice resolves 0.05
    assert one_standard_error([(0.96, 5), (0.95, 9)], 10) == 0
    assert one_standard_error([(0.5, 1)], 0) == 0


def test_the_recipe_is_chosen_on_held_out_answers_without_extra_queries() -> None:
    # a victim whose label is whether even columns outweigh odd ones: a one-pixel sideways shift
    # flips it, so shifted copies carrying the unmoved answer teach the wrong function
    sign = torch.tensor([1.0 if c % 2 == 0 else -1.0 for c in range(14)]).repeat(14)
    head = torch.nn.Linear(196, 2)
    with torch.no_grad():
        head.weight.copy_(torch.stack([torch.zeros(196), 8.0 * sign]))
        head.bias.zero_()
    victim = TorchClassifier(torch.nn.Sequential(torch.nn.Flatten(), head), (1, 14, 14), 2)
    pool = torch.rand(400, 1, 14, 14, generator=torch.Generator().manual_seed(0))
    thief = KnockoffNets(access="labels", epochs=5, steps=100, holdout=0.2)
    y = victim.predict_labels(pool)
    assert 0.3 < float(y.float().mean()) < 0.7
    victim.reset_queries()
    augment, epochs, agreement = thief.choose(victim, pool, y, None)
    assert victim.queries == 0  # chosen on the answers already bought
    assert set(agreement) == {None, "shift:1"}
    assert augment is None and agreement[None] > agreement["shift:1"] + 0.15
    assert 1 <= epochs <= thief._epochs(320, 5, 100)
    r = thief.steal(victim, [100, 300], pool=pool)
    assert r.queries == victim.queries == 300 and [p.queries for p in r.curve] == [100, 300]
    assert len(r.recipes) == 2 and r.recipes[-1].startswith("no augmentation")


def test_adaptive_sampling_finds_the_useful_part_of_a_mixed_pool(
    split: tuple[Dataset, Dataset, Dataset], victim: TorchClassifier
) -> None:
    _, held_out, test = split
    shape = victim.input_shape
    mixed = torch.cat(
        [
            query_pool("in_distribution", shape, 300, held_out=held_out.x),
            query_pool("photos", shape, 900, seed=1),
            query_pool("noise", shape, 900, seed=2),
        ]
    )
    fid = {}
    for sampling in ("random", "adaptive"):
        victim.reset_queries()
        # the plain training recipe, so the comparison is of the sampling alone
        r = KnockoffNets(sampling=sampling, steps=0, augment=None, holdout=0).steal(victim, 300, pool=mixed, test=test)
        assert r.queries == 300
        fid[sampling] = r.curve[0].fidelity
    assert fid["random"] is not None and fid["adaptive"] is not None
    assert fid["adaptive"] > fid["random"] + 0.1
    with pytest.raises(ConfigError, match="sampling"):
        KnockoffNets(sampling="greedy")
