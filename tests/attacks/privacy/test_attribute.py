"""Attribute inference: black-box, loss and gradient attacks find a model that encodes the attribute, and no more."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparring.attacks.privacy.attribute import (
    BlackBox,
    GradientGuess,
    Imputation,
    LossGuess,
    evaluate_attribute,
    sensitive_column,
)
from sparring.data import Dataset
from sparring.errors import AccessError, ConfigError, InputError
from sparring.models import Access, TorchClassifier


def _data(n: int, seed: int) -> Dataset:
    """Column 0 is a sensitive bit independent of the other features; the label is noisy, from columns 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    s = (torch.rand(n, generator=g) < 0.5).float()
    z = torch.rand(n, 3, generator=g)
    y = ((z[:, 0] + 0.5 * (s - 0.5) + 0.2 * torch.randn(n, generator=g)) > 0.5).long()
    return Dataset(torch.cat([s[:, None], z], dim=1), y)


def _model(weight_on_sensitive: float) -> TorchClassifier:
    """A fixed logistic model: logit = 4 (z0 - 0.5) + w (s - 0.5)."""
    lin = nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        lin.weight[1, 0] = weight_on_sensitive
        lin.weight[1, 1] = 4.0
        lin.bias[1] = -2.0 - weight_on_sensitive / 2
    return TorchClassifier(lin.eval(), (4,), 2)


TRAIN, HELD = _data(600, 0), _data(600, 1)


def test_black_box_finds_an_attribute_the_model_encodes_and_imputation_cannot() -> None:
    leaky = evaluate_attribute(_model(3.0), TRAIN, HELD, 0, "black_box", n=400, model="logistic")
    blind = evaluate_attribute(_model(0.0), TRAIN, HELD, 0, "black_box", n=400, model="logistic")
    assert leaky.outcomes["imputation"].accuracy < 0.8  # only the noisy label tells imputation about the bit
    assert leaky.advantage() > 0.15 and leaky.advantage(members=False) > 0.15
    assert abs(blind.advantage()) < 0.08  # a model that ignores the attribute gives nothing beyond imputation
    assert leaky.queries > 0 and leaky.n_members == 400 and leaky.n_auxiliary == 300


@pytest.mark.parametrize("attack", ["loss", "gradient"])
def test_loss_and_gradient_attacks_beat_majority_on_a_model_that_uses_the_attribute(attack: str) -> None:
    r = evaluate_attribute(_model(3.0), TRAIN, HELD, 0, attack, n=400)
    assert r.outcomes[attack].accuracy > r.outcomes["majority"].accuracy + 0.1
    assert r.queries == 2 * (400 + 300)  # one query per candidate value per evaluated record


def test_imputation_never_queries_and_access_is_checked_before_any_query() -> None:
    clf = _model(3.0)
    column = sensitive_column(HELD.x, 0)
    Imputation(model="logistic").fit(clf, HELD, column).infer(TRAIN.x, TRAIN.y)
    assert clf.queries == 0
    labels_only = clf.restrict(Access.LABELS)
    with pytest.raises(AccessError, match="LossGuess"):
        LossGuess().fit(labels_only, HELD, column)
    with pytest.raises(AccessError, match="GradientGuess needs internals"):
        GradientGuess().fit(clf.restrict(Access.LABELS | Access.SCORES), HELD, column)
    assert BlackBox(model="logistic").fit(labels_only, HELD, column).infer(TRAIN.x[:5], TRAIN.y[:5]).shape == (5,)


def test_buckets_cut_discrete_columns_near_the_middle_and_bad_columns_are_refused() -> None:
    x = torch.tensor([[1.0], [2.0], [2.0], [2.0], [3.0], [3.0], [3.0], [4.0]])
    col = sensitive_column(x, 0, 2)
    assert col.thresholds.tolist() == [2.0] and col.bucket(x).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(InputError, match="out of range"):
        sensitive_column(x, 3)
    with pytest.raises(InputError, match="constant"):
        sensitive_column(torch.ones(5, 2), 0)
    with pytest.raises(ConfigError, match="unknown attribute attack"):
        evaluate_attribute(_model(0.0), TRAIN, HELD, 0, "white_box")
