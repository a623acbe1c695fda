"""A model trains the same whatever ran before it: dropout draws from a generator seeded by the config."""

from __future__ import annotations

import torch

from sparring.data import digits
from sparring.models import build
from sparring.train import TrainConfig, fit


def test_dropout_training_does_not_depend_on_the_global_generator() -> None:
    train = digits().take(300, seed=0)
    weights = []
    for state in (1, 2):
        torch.manual_seed(state)  # whatever ran before leaves another global state
        model = build("mlp", train.input_shape, 10, seed=0, dropout=0.5)
        fit(model, train, TrainConfig(epochs=2, seed=0, progress=False))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
    torch.manual_seed(7)
    before = torch.rand(3)
    torch.manual_seed(7)
    fit(build("mlp", train.input_shape, 10, seed=0, dropout=0.5), train, TrainConfig(epochs=1, seed=0, progress=False))
    assert torch.equal(torch.rand(3), before)  # the caller's global state is left as it was
    other = build("mlp", train.input_shape, 10, seed=0, dropout=0.5)
    fit(other, train, TrainConfig(epochs=2, seed=1, progress=False))
    assert not torch.equal(torch.cat([p.detach().flatten() for p in other.parameters()]), weights[0])
