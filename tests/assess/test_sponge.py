"""Sponge examples and sponge poisoning: costs that depend on the input, attacks against the
uniform baseline, the cost cut-off, and the families in an assessment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from sparring.assess import assess, parse_config
from sparring.assess.families.sponge import FAMILY
from sparring.attacks.availability import (
    EnergyModel,
    HardwareModel,
    SpongeGA,
    SpongeGradient,
    SpongePoisoning,
    UniformBaseline,
    UnsupportedLayerError,
)
from sparring.data import Dataset, load_builtin
from sparring.defenses.inference.cost_cutoff import CostCutoff
from sparring.errors import ConfigError, SparringError
from sparring.metrics import accuracy
from sparring.models import TorchClassifier, build, early_exit_cnn
from sparring.train import TrainConfig, fit


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    data = load_builtin("digits")
    return data.split(0.25, seed=0)


@pytest.fixture(scope="module")
def cnn(digits: tuple[Dataset, Dataset]) -> TorchClassifier:
    train, _ = digits
    model = fit(build("small_cnn", train.input_shape, train.num_classes), train, TrainConfig(epochs=3)).model
    return TorchClassifier(model, train.input_shape, train.num_classes)


@pytest.fixture(scope="module")
def early(digits: tuple[Dataset, Dataset]) -> TorchClassifier:
    train, _ = digits
    net = early_exit_cnn(train.input_shape, train.num_classes, threshold=0.8)
    fit(net, train, TrainConfig(epochs=10), penalty=lambda m, x, y, logits: m.exit_loss(x, y))  # type: ignore[operator]
    return TorchClassifier(net, train.input_shape, train.num_classes)


# -- the energy model ------------------------------------------------------------------------
def test_energy_counts_zero_skipping_exactly_on_a_linear_layer() -> None:
    layer = nn.Linear(4, 2)
    hw = HardwareModel(memory_pj=1.0, compute_pj=1.0)
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    rep = EnergyModel(hw).measure(layer, x)
    # dense: 4 inputs + 2 outputs + 10 parameters moved, 8 MACs
    assert rep.dense_pj.sum().item() == pytest.approx(4 + 2 + 10 + 8)
    nnz_out = (layer(x) != 0).sum(1).double()
    expected = torch.tensor([1.0, 4.0], dtype=torch.float64) + nnz_out + 10 + torch.tensor([2.0, 8.0])
    assert torch.allclose(rep.sparse_pj.sum(1), expected)
    assert rep.ratio[0] < rep.ratio[1] <= 1.0
    assert EnergyModel(HardwareModel(skip_zeros=False)).measure(layer, x).ratio.tolist() == [1.0, 1.0]


def test_an_unsupported_layer_is_an_error_never_free() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4))
    with pytest.raises(UnsupportedLayerError, match="LSTM"):
        EnergyModel().measure(model, torch.rand(2, 4))
    with pytest.raises(ConfigError, match="batch"):
        HardwareModel(batch=0)


def test_zero_inputs_cost_less_than_dense_ones(cnn: TorchClassifier) -> None:
    em = EnergyModel(HardwareModel(batch=32))
    zeros, ones = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    assert em.measure(cnn.model, zeros).ratio.item() < em.measure(cnn.model, ones).ratio.item()


# -- the attacks -----------------------------------------------------------------------------
def test_sponges_raise_energy_and_density_over_natural_inputs(
    cnn: TorchClassifier, digits: tuple[Dataset, Dataset]
) -> None:
    _, test = digits
    x = test.x[:30]
    em = EnergyModel()
    natural = em.measure(cnn.model, x)
    for attack in (SpongeGA(population=40, generations=10, keep=5), SpongeGradient(optimizer="adam", steps=60, lr=0.5)):
        r = attack.run(cnn, x)
        rep = em.measure(cnn.model, r.x_sponge)
        assert r.x_sponge.min() >= 0 and r.x_sponge.max() <= 1
        # the energy headroom is small (weights dominate DRAM traffic), so compare with the natural spread
        assert rep.ratio.max() > natural.ratio.max(), type(attack).__name__
        assert rep.density.max() > natural.density.max() + 0.02, type(attack).__name__
        assert r.queries > 0
    base = UniformBaseline(levels=5).run(cnn, x)
    assert len(base.x_sponge) == 5 and torch.equal(base.cost_before, natural.ratio)
    assert all(len(torch.unique(img)) == 1 for img in base.x_sponge)


def test_the_eps_ball_keeps_sponges_near_natural_inputs(cnn: TorchClassifier, digits: tuple[Dataset, Dataset]) -> None:
    _, test = digits
    x = test.x[:10]
    r = SpongeGradient(optimizer="lbfgs", steps=10, eps=0.05).run(cnn, x)
    assert (r.x_sponge - x).abs().max() <= 0.05 + 1e-6
    assert r.cost_after.mean() > r.cost_before.mean()


def test_attacks_refuse_bad_settings_and_non_torch_models() -> None:
    with pytest.raises(ConfigError, match="cost"):
        SpongeGA(cost="watts")
    with pytest.raises(ConfigError, match="optimizer"):
        SpongeGradient(optimizer="sgd")
    with pytest.raises(SparringError, match="PyTorch"):
        UniformBaseline().run(object(), torch.rand(2, 1, 8, 8))  # type: ignore[arg-type]


# -- the early-exit network and the cut-off --------------------------------------------------
def test_early_exit_network_saves_compute_on_natural_inputs(
    early: TorchClassifier, digits: tuple[Dataset, Dataset]
) -> None:
    _, test = digits
    net = early.model
    taken = net.exit_index(test.x)  # type: ignore[operator]
    assert (taken < 2).float().mean() > 0.2, torch.bincount(taken)
    assert accuracy(early, test.x, test.y) > 0.85
    one = test.x[:1]
    assert torch.allclose(net.run_one(one), early.logits(one), atol=1e-5)  # type: ignore[operator]


def test_sponges_push_early_exit_inputs_deeper_and_the_cutoff_caps_them(
    early: TorchClassifier, digits: tuple[Dataset, Dataset]
) -> None:
    train, test = digits
    x = test.x[:40]
    r = SpongeGradient(cost="exits", optimizer="adam", steps=40, lr=0.1).run(early, x)
    full = float(torch.tensor(early.model.block_macs).sum())
    assert (r.cost_before < full).float().mean() > 0.1  # natural inputs leave early ...
    assert (r.cost_after == full).all()  # ... every sponge runs the whole network
    cut = CostCutoff(percentile=5, cost="exits").fit(early, train.x[:300])  # below the share that leaves early
    after = cut.apply(r.x_sponge)
    assert cut.budget is not None and after.cost.max() <= cut.budget + 1e-6 < r.cost_after.max()
    natural = cut.apply(test.x)
    assert 0 < natural.triggered.float().mean() < 1
    assert accuracy(cut.wrap(early), test.x, test.y) > 0.5


def test_energy_cutoff_refuses_past_the_budget(cnn: TorchClassifier, digits: tuple[Dataset, Dataset]) -> None:
    train, test = digits
    cut = CostCutoff(percentile=90, cost="energy", batch=32).fit(cnn, train.x[:300])
    ones = torch.ones(4, 1, 8, 8)
    out = cut.apply(torch.cat([test.x[:50], ones]))
    assert out.triggered[-4:].all()
    assert (cut.labels(ones) == -1).all()
    with pytest.raises(ConfigError, match="percentile"):
        CostCutoff(percentile=0)
    with pytest.raises(ConfigError, match="calibrated"):
        CostCutoff().apply(ones)


# -- sponge poisoning ------------------------------------------------------------------------
def test_sponge_poisoning_raises_energy_on_clean_inputs_at_small_accuracy_cost(
    digits: tuple[Dataset, Dataset],
) -> None:
    train, test = digits
    shape, k = train.input_shape, train.num_classes
    cfg = TrainConfig(epochs=5)
    clean = fit(build("small_cnn", shape, k), train, cfg).model
    poisoned = SpongePoisoning(fraction=0.5, lam=1.0).fit(build("small_cnn", shape, k), train, cfg).model
    em = EnergyModel()
    e_clean, e_poisoned = em.measure(clean, test.x), em.measure(poisoned, test.x)
    assert e_poisoned.density.mean() > e_clean.density.mean() + 0.03
    assert e_poisoned.ratio.mean() > e_clean.ratio.mean()
    acc_clean = accuracy(TorchClassifier(clean, shape, k), test.x, test.y)
    acc_poisoned = accuracy(TorchClassifier(poisoned, shape, k), test.x, test.y)
    assert acc_poisoned > acc_clean - 0.05


# -- the family ------------------------------------------------------------------------------
def _config(**entry: Any) -> dict[str, Any]:
    return {"data": {"dataset": "digits"}, "model": {"epochs": 3}, "sponge": [entry]}


def test_bad_sponge_config_gets_a_clear_error() -> None:
    with pytest.raises(Exception, match="sponge cost"):
        parse_config(_config(cost="watts"))
    with pytest.raises(Exception, match="sponge attack"):
        parse_config(_config(attacks=["pgd"]))
    with pytest.raises(Exception, match="cost_cutoff"):
        parse_config(_config(defences=["jpeg"]))
    with pytest.raises(Exception, match="keep"):
        parse_config(_config(population=8, keep=9))


def test_the_family_rates_the_test_time_availability_cell(tmp_path: Path) -> None:
    entry = {"cost": "energy", "samples": 10, "population": 12, "generations": 3, "keep": 4, "steps": 5}
    report, failed = assess(parse_config(_config(**entry, defences=["cost_cutoff"])), tmp_path, log=lambda s: None)
    assert not failed
    result = FAMILY.load(report["scenarios"]["sponge.energy"])
    assert [r.method for r in result.rows] == ["uniform", "genetic", "lbfgs"]
    assert result.worst_increase == max(r.increase for r in result.rows)
    defended = FAMILY.load(report["scenarios"]["sponge.energy+cost_cutoff"])
    assert defended.worst_after is not None and defended.worst_before is not None
    assert defended.worst_after <= defended.worst_before
    cell = next(c for c in report["matrix"] if (c["row"], c["column"]) == ("test-time inputs", "availability"))
    assert cell["status"] == "measured"
    assert "Sponge examples" in (tmp_path / "report.html").read_text()


def test_a_model_with_an_unsupported_layer_is_refused_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "normed.py").write_text(
        "from torch import nn\n\n"
        "def build() -> nn.Module:\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.LayerNorm(10))\n"
    )
    cfg = _config(cost="energy", samples=4)
    cfg["model"] = {"factory": "normed:build", "factory_path": str(tmp_path), "epochs": 1}
    out = tmp_path / "report"
    with pytest.raises(ConfigError, match=r"sponge\[0\].*LayerNorm"):
        assess(parse_config(cfg), out, log=lambda s: None)
    assert not (out / "report.json").exists()


def test_sponge_poisoning_needs_a_model_it_can_retrain() -> None:
    cfg = {
        "data": {"dataset": "digits"},
        "model": {"factory": "m:build", "weights": "w.safetensors"},
        "sponge_poisoning": [{}],
    }
    with pytest.raises(Exception, match="sponge poisoning retrains the model"):
        parse_config(cfg)
    with pytest.raises(Exception, match="less than or equal to 1"):
        parse_config({"data": {"dataset": "digits"}, "sponge_poisoning": [{"fraction": 1.5}]})
