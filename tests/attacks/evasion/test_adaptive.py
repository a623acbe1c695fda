from __future__ import annotations

import pytest
import torch

from sparring.attacks.evasion import BPDA, EOT, PGD, transformed_layers
from sparring.data import Dataset
from sparring.defenses.inference import transform_defence
from sparring.errors import ConfigError, QueryBudgetExceeded
from sparring.models import Classifier, QueryBudget, TorchClassifier

EPS = 0.1


def _robust(clf: Classifier, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    """Robust accuracy judged by a fresh query of the (defended) classifier."""
    return float((clf.predict_labels(x_adv) == y).float().mean())


@pytest.fixture(scope="module")
def batch(digits_split: tuple[Dataset, Dataset]) -> tuple[torch.Tensor, torch.Tensor]:
    _, test = digits_split
    return test.x[:150], test.y[:150]


@pytest.fixture(scope="module")
def undefended(digits_cnn: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    x, y = batch
    return PGD(eps=EPS, steps=20).run(digits_cnn, x, y).robust_accuracy


@pytest.mark.parametrize("spec", ["bit_depth:3", "jpeg:75"])
def test_bpda_undoes_the_gain_of_a_quantising_transform(
    digits_cnn: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], undefended: float, spec: str
) -> None:
    """Naive PGD is blocked (zero gradient); BPDA PGD gets within 8 points of the undefended figure."""
    x, y = batch
    defended = transform_defence(digits_cnn, spec)
    pgd = PGD(eps=EPS, steps=20)
    naive = pgd.run(defended, x, y).robust_accuracy
    result = BPDA(pgd).run(defended, x, y)
    assert naive > undefended + 0.15
    assert result.robust_accuracy < undefended + 0.08
    assert result.robust_accuracy == pytest.approx(_robust(defended, result.x_adv, y))
    assert float(result.norms.max()) <= EPS + 1e-6
    assert not transformed_layers(defended)[0]._eot_samples  # straight-through switched off again


def test_eot_breaks_a_randomized_transform(
    digits_cnn: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor], undefended: float
) -> None:
    """Judged on fresh noisy queries: noise beats early-stopped naive PGD; EOT brings it back near undefended.

    Measured on these 150 samples (noise seeds 1-3): undefended 0.67, naive 0.79-0.87, EOT(8) 0.62-0.68.
    """
    x, y = batch
    pgd = PGD(eps=EPS, steps=20)
    defended = transform_defence(digits_cnn, "noise:0.2", seed=1)
    naive = _robust(defended, pgd.run(defended, x, y).x_adv, y)
    eot = EOT(pgd, eot_samples=8).run(transform_defence(digits_cnn, "noise:0.2", seed=1), x, y)
    assert eot.queries > 8 * len(x)  # gradients used 8 counted draws
    assert naive > undefended + 0.1
    assert eot.robust_accuracy < naive - 0.08
    assert eot.robust_accuracy < undefended + 0.08


def test_bpda_goes_through_wrappers_and_respects_their_budget(
    digits_cnn: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = batch
    defended = transform_defence(digits_cnn, "bit_depth:3")
    budgeted = QueryBudget(defended, 10 * len(x))
    with pytest.raises(QueryBudgetExceeded):
        BPDA(PGD(eps=EPS, steps=40, early_stop=False)).run(budgeted, x, y)
    assert transformed_layers(budgeted) == [defended]
    assert not defended._eot_samples  # left the straight-through mode despite the error


def test_bpda_needs_a_transformed_classifier(
    digits_cnn: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = batch
    with pytest.raises(ConfigError, match="TransformedClassifier"):
        BPDA(PGD()).run(digits_cnn, x[:4], y[:4])
    with pytest.raises(ConfigError, match="evasion attack"):
        BPDA("pgd")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="eot_samples"):
        EOT(PGD(), eot_samples=0)


def test_bpda_repeats_with_a_seed(digits_cnn: TorchClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    runs = [
        EOT(PGD(eps=EPS, steps=5, seed=2), 3).run(transform_defence(digits_cnn, "noise:0.1", seed=4), x, y)
        for _ in range(2)
    ]
    assert torch.equal(runs[0].x_adv, runs[1].x_adv)
    assert torch.equal(runs[0].success, runs[1].success)
