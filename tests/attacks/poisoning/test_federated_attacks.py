from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sparring.attacks.poisoning import BadNets
from sparring.attacks.poisoning.federated import LabelFlipClient, ModelReplacementClient
from sparring.data import Dataset, Trigger
from sparring.errors import ConfigError
from sparring.federated import (
    ClientContext,
    FederatedConfig,
    FederatedResult,
    benign_update,
    evaluator,
    flat_weights,
    run_fedavg,
    split_clients,
)
from sparring.models import build

CFG = FederatedConfig(rounds=2, local_epochs=2, lr=0.1, batch_size=32, progress=False)
TRIGGER = BadNets(target=0, patch_size=3).trigger((1, 8, 8))


@pytest.fixture(scope="module")
def federation(digits_split: tuple[Dataset, Dataset]) -> tuple[list[Dataset], Dataset, nn.Module]:
    """Ten IID digits clients and an MLP pre-trained by six benign FedAvg rounds (about 0.9 accuracy)."""
    train, test = digits_split
    clients = split_clients(train, 10, "iid", seed=0)
    warm = FederatedConfig(rounds=6, local_epochs=2, lr=0.1, batch_size=32, progress=False)
    pre = run_fedavg(lambda: build("mlp", train.input_shape, 10, seed=0), clients, warm, seed=0)
    return clients, test, pre.model


def run(federation: tuple[list[Dataset], Dataset, nn.Module], malicious: dict[int, object]) -> FederatedResult:
    clients, test, model = federation
    return run_fedavg(
        lambda: copy.deepcopy(model),
        clients,
        CFG,
        malicious=malicious,  # type: ignore[arg-type]
        evaluate=evaluator(test, TRIGGER, 0),
        seed=1,
    )


@pytest.fixture(scope="module")
def control(federation: tuple[list[Dataset], Dataset, nn.Module]) -> FederatedResult:
    return run(federation, {})


def test_model_replacement_implants_the_backdoor(
    federation: tuple[list[Dataset], Dataset, nn.Module], control: FederatedResult
) -> None:
    # lr 0.02 for the attacker's own training (the round's 0.1 by default): with 0.1 the boosted
    # model's accuracy fell to 0.28-0.92 over seeds 0-7; with 0.02 it stays 0.80-0.90, ASR unchanged.
    attacker = ModelReplacementClient(
        TRIGGER, target=0, attack_round=1, poison_fraction=0.3, epochs=10, lr=0.02, seed=0
    )
    res = run(federation, {3: attacker})
    assert control.at(1)["asr"] < 0.1
    assert res.at(1)["asr"] > 0.8
    assert res.at(1)["accuracy"] > control.at(0)["accuracy"] - 0.15  # the replaced model still does the task
    # the boosted update is about n = 10 times larger than an honest one
    assert res.at(1)["max_update_norm"] > 5 * control.at(1)["max_update_norm"]


def test_unboosted_backdoor_is_diluted(
    federation: tuple[list[Dataset], Dataset, nn.Module], control: FederatedResult
) -> None:
    plain = ModelReplacementClient(TRIGGER, target=0, attack_round=1, scale=1.0, epochs=10, seed=0)
    boosted = ModelReplacementClient(TRIGGER, target=0, attack_round=1, epochs=10, seed=0)
    assert run(federation, {3: plain}).at(1)["asr"] + 0.3 < run(federation, {3: boosted}).at(1)["asr"]


def ctx(weight: float = 0.1, server_lr: float = 1.0, round_index: int = 1) -> ClientContext:
    cfg = FederatedConfig(local_epochs=1, progress=False)
    return ClientContext(round_index, 0, cfg.local_config(5), weight, 10, server_lr, 5)


def test_boost_is_n_over_eta() -> None:
    attacker = ModelReplacementClient(TRIGGER, target=0)
    assert attacker.boost(ctx(0.1, 1.0)) == pytest.approx(10.0)
    assert attacker.boost(ctx(0.1, 0.5)) == pytest.approx(20.0)
    assert ModelReplacementClient(TRIGGER, target=0, scale=3.0).boost(ctx()) == 3.0


def test_backdoor_data_mixes_triggered_copies(digits_split: tuple[Dataset, Dataset]) -> None:
    data = digits_split[0].take(200, seed=0)
    poisoned = ModelReplacementClient(TRIGGER, target=2, poison_fraction=0.2).backdoor_data(data, seed=0)
    assert len(poisoned) == 250 and poisoned.n_poisoned == 50
    assert torch.equal(poisoned.x[:200], data.x) and torch.equal(poisoned.y[:200], data.y)
    mask = poisoned.poison_mask
    assert bool((poisoned.y[mask] == 2).all()) and bool((poisoned.original_y[mask] != 2).all())
    assert torch.equal(TRIGGER.apply(poisoned.x[mask]), poisoned.x[mask])


def test_honest_outside_the_attack_round(digits_split: tuple[Dataset, Dataset]) -> None:
    data = digits_split[0].take(100, seed=0)
    attacker = ModelReplacementClient(TRIGGER, target=0, attack_round=[2, 4])
    assert attacker.forced(2) and attacker.forced(4) and not attacker.forced(3)
    model = build("mlp", (1, 8, 8), 10, seed=0)
    honest = benign_update(copy.deepcopy(model), data, ctx(round_index=3))
    assert torch.equal(attacker.update(copy.deepcopy(model), data, ctx(round_index=3)), honest)
    attacked = attacker.update(copy.deepcopy(model), data, ctx(round_index=2))
    assert not torch.allclose(attacked, honest)


def test_label_flip_clients_hurt_the_flipped_class(
    federation: tuple[list[Dataset], Dataset, nn.Module], control: FederatedResult
) -> None:
    clients, test, _ = federation
    # scale 5: at 3 the four flippers left the 1s' recall at 0.0-0.67 over seeds 0-7; at 5 it is 0.
    flips = {k: LabelFlipClient(fraction=1.0, source=1, target=7, scale=5.0, seed=k) for k in range(4)}
    res = run(federation, flips)  # type: ignore[arg-type]
    ones = test.y == 1

    def recall(result: FederatedResult) -> float:
        with torch.no_grad():
            return float((result.model(test.x[ones]).argmax(1) == 1).float().mean())

    assert recall(res) < recall(control) - 0.3
    assert LabelFlipClient(fraction=1.0, seed=0).flipped(clients[0]).n_poisoned == len(clients[0])
    assert flat_weights(res.model).shape == flat_weights(control.model).shape


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target": -1}, "target"),
        ({"scale": 0.0}, "scale"),
        ({"poison_fraction": 1.0}, "poison_fraction"),
        ({"poison_fraction": 1.5}, "poison_fraction"),
        ({"attack_round": 0}, "attack_round"),
        ({"attack_round": []}, "attack_round"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_replacement_rejects_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"trigger": TRIGGER} | kwargs
    with pytest.raises(ConfigError, match=match):
        ModelReplacementClient(**args)  # type: ignore[arg-type]


def test_bad_trigger_and_label_flip_parameters() -> None:
    with pytest.raises(ConfigError, match="trigger"):
        ModelReplacementClient("patch")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="together"):
        LabelFlipClient(source=1)
    with pytest.raises(ConfigError, match="differ"):
        LabelFlipClient(source=1, target=1)
    with pytest.raises(ConfigError, match="fraction"):
        LabelFlipClient(fraction=2.0)
    with pytest.raises(ConfigError, match="scale"):
        LabelFlipClient(scale=0.0)
    assert isinstance(TRIGGER, Trigger)
