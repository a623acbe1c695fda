"""Property inference: the meta-classifier tells a label shift from 0.5; infeasible draws are refused."""

from __future__ import annotations

import pytest
import torch

from sparring.attacks.privacy.property import Property, evaluate_property, max_size, ratio_sample
from sparring.data import digits
from sparring.errors import InputError
from sparring.models import TorchClassifier
from sparring.models.zoo import build
from sparring.train import TrainConfig


def test_meta_classifier_tells_a_label_shift_from_half_and_reports_its_cost() -> None:
    d = digits()
    attacker, victim = d.split(0.5, seed=0)
    r = evaluate_property(
        lambda: build("mlp", (1, 8, 8), 10, seed=0),
        lambda m: TorchClassifier(m.eval(), (1, 8, 8), 10),
        attacker,
        victim,
        Property(classes=(0, 1, 2, 3, 4)),
        TrainConfig(epochs=4, seed=0),
        ratios=(0.1,),
        shadows=6,
        victims=5,
        size=150,
        queries=50,
    )
    (row,) = r.rows
    assert row.victims == 10 and row.accuracy >= 0.8  # chance is 0.5; a 0.1 share of digits 0-4 shows in the outputs
    assert row.threshold_test >= 0.7  # the loss test calibrated on the shadows sees it too
    assert r.size == 150 and r.train_seconds > 0 and r.queries > 0


def test_ratio_draws_hold_their_share_and_refuse_what_the_pool_cannot_give() -> None:
    has = torch.tensor([True] * 30 + [False] * 70)
    idx = ratio_sample(has, 0.2, 50, torch.Generator().manual_seed(0))
    assert len(idx) == 50 and int(has[idx].sum()) == 10 and len(set(idx.tolist())) == 50
    assert max_size(has, [0.5, 0.9]) == 33  # 30 records with the property / 0.9
    with pytest.raises(InputError, match="needs 45 records with the property"):
        ratio_sample(has, 0.9, 50, torch.Generator())
    x = torch.tensor([[0.0], [0.0], [1.0], [2.0]])
    from sparring.data import Dataset

    assert Property(column=0, above=0.0).mask(Dataset(x, torch.zeros(4))).tolist() == [False, False, True, True]
