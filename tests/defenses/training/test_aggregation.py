from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sparring.attacks.poisoning import BadNets
from sparring.attacks.poisoning.federated import ModelReplacementClient
from sparring.data import Dataset
from sparring.defenses.training.aggregation import CoordinateMedian, NormClipping, TrimmedMean
from sparring.errors import ConfigError, InputError
from sparring.federated import Aggregator, FederatedConfig, FederatedResult, evaluator, run_fedavg, split_clients
from sparring.models import build

HONEST = torch.tensor([[1.0, -1.0, 0.0], [1.2, -0.8, 0.1], [0.8, -1.2, -0.1], [1.1, -0.9, 0.05], [0.9, -1.1, -0.05]])
EQUAL = torch.full((6,), 1 / 6)


def with_outlier(scale: float = 100.0) -> torch.Tensor:
    return torch.cat([HONEST, scale * torch.tensor([[-1.0, 1.0, 1.0]])])


def test_median_and_trimmed_mean_ignore_an_outlier() -> None:
    for agg in (CoordinateMedian(), TrimmedMean(0.2)):
        out = agg(with_outlier(), EQUAL, 1)
        assert torch.allclose(out, torch.tensor([1.0, -1.0, 0.0]), atol=0.11), agg
    mean = with_outlier().mean(0)
    assert mean.abs().max() > 10  # the plain mean does not


def test_median_and_trimmed_mean_values() -> None:
    u = torch.tensor([[1.0], [5.0], [2.0], [100.0]])
    w = torch.full((4,), 0.25)
    assert CoordinateMedian()(u, w, 1).item() == pytest.approx(3.5)
    assert CoordinateMedian()(u[:3], w[:3], 1).item() == pytest.approx(2.0)
    assert TrimmedMean(0.25)(u, w, 1).item() == pytest.approx(3.5)
    assert TrimmedMean(0.0)(u, w, 1).item() == pytest.approx(27.0)


def test_clipping_bounds_every_update_and_keeps_small_ones() -> None:
    agg = NormClipping(bound=2.0)
    clipped = agg.clip(with_outlier())
    assert torch.allclose(clipped[:5], HONEST)
    assert clipped[5].norm().item() == pytest.approx(2.0)
    out = agg(with_outlier(), EQUAL, 1)
    assert out.norm() <= 2.0 + 1e-6
    assert torch.allclose(out, clipped.mean(0))


def test_clipping_noise_is_seeded_per_round() -> None:
    agg = NormClipping(bound=2.0, noise_sigma=0.5, seed=3)
    u = with_outlier()
    a, b, c = agg(u, EQUAL, 1), agg(u, EQUAL, 1), agg(u, EQUAL, 2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a, NormClipping(2.0)(u, EQUAL, 1))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TrimmedMean(0.5), "beta"),
        (lambda: TrimmedMean(-0.1), "beta"),
        (lambda: NormClipping(0.0), "bound"),
        (lambda: NormClipping(float("inf")), "bound"),
        (lambda: NormClipping(1.0, noise_sigma=-1.0), "noise_sigma"),
    ],
)
def test_bad_parameters(make: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()  # type: ignore[operator]


def test_bad_updates() -> None:
    with pytest.raises(InputError, match="updates"):
        CoordinateMedian()(torch.zeros(3), torch.ones(3), 1)
    with pytest.raises(InputError, match="weights"):
        NormClipping(1.0)(torch.zeros(3, 2), torch.ones(2), 1)
    with pytest.raises(InputError, match="K >= 1"):
        TrimmedMean(0.4)(torch.zeros(0, 2), torch.ones(0), 1)


def test_aggregators_satisfy_the_protocol() -> None:
    for agg in (CoordinateMedian(), TrimmedMean(), NormClipping()):
        assert isinstance(agg, Aggregator)


TRIGGER = BadNets(target=0, patch_size=3).trigger((1, 8, 8))
CFG = FederatedConfig(rounds=1, local_epochs=2, lr=0.1, batch_size=32, progress=False)


@pytest.fixture(scope="module")
def federation(digits_split: tuple[Dataset, Dataset]) -> tuple[list[Dataset], Dataset, nn.Module, float]:
    """Ten IID digits clients, an MLP after six benign FedAvg rounds, and its last median update norm."""
    train, test = digits_split
    clients = split_clients(train, 10, "iid", seed=0)
    warm = FederatedConfig(rounds=6, local_epochs=2, lr=0.1, batch_size=32, progress=False)
    pre = run_fedavg(lambda: build("mlp", train.input_shape, 10, seed=0), clients, warm, seed=0)
    return clients, test, pre.model, pre.history[-1]["median_update_norm"]


def attacked(
    federation: tuple[list[Dataset], Dataset, nn.Module, float], agg: Aggregator | None, attack: bool = True
) -> FederatedResult:
    clients, test, model, _ = federation
    # The attacker trains at lr 0.02 (as in test_federated_attacks.py), not the round's 0.1.
    attacker = ModelReplacementClient(
        TRIGGER, target=0, attack_round=1, poison_fraction=0.3, epochs=10, lr=0.02, seed=0
    )
    return run_fedavg(
        lambda: copy.deepcopy(model),
        clients,
        CFG,
        malicious={3: attacker} if attack else {},
        aggregator=agg,
        evaluate=evaluator(test, TRIGGER, 0),
        seed=1,
    )


@pytest.fixture(scope="module")
def undefended(federation: tuple[list[Dataset], Dataset, nn.Module, float]) -> FederatedResult:
    return attacked(federation, None)


@pytest.fixture(scope="module")
def honest(federation: tuple[list[Dataset], Dataset, nn.Module, float]) -> FederatedResult:
    """The same round without the attacker and with the plain mean: the clean-accuracy control."""
    return attacked(federation, None, attack=False)


@pytest.mark.parametrize("name", ["median", "trimmed_mean", "clipping"])
def test_robust_aggregation_stops_model_replacement(
    federation: tuple[list[Dataset], Dataset, nn.Module, float],
    undefended: FederatedResult,
    honest: FederatedResult,
    name: str,
) -> None:
    bound = federation[3]
    aggs: dict[str, Aggregator] = {
        "median": CoordinateMedian(),
        "trimmed_mean": TrimmedMean(0.1),
        "clipping": NormClipping(bound),
    }
    res = attacked(federation, aggs[name])
    assert undefended.at(1)["asr"] > 0.8
    assert res.at(1)["asr"] < 0.2
    # and costs little clean accuracy: against the honest round (measured here, same seeds) rather than
    # the round-0 model, whose gap to round 1 varies from seed to seed (trimmed mean: 2.6 std from the bound)
    assert res.at(1)["accuracy"] > honest.at(1)["accuracy"] - 0.05
