from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from sparring.attacks.evasion.sanity import (
    Flag,
    curve_flags,
    gradient_flags,
    large_eps_flags,
    randomness_flags,
    run_sanity_checks,
)
from sparring.data import Dataset
from sparring.errors import InputError
from sparring.models import Access, TorchClassifier

N = 80


class Quantise(nn.Module):
    """Rounds the input to 4 grey levels first: same accuracy, zero input gradients (masking)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(torch.round(x * 4) / 4)


class Noisy(nn.Module):
    """Adds fresh Gaussian noise to the input on every call (a randomised defence)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x + 0.05 * torch.randn_like(x))


@pytest.fixture(scope="module")
def batch(digits_split: tuple[Dataset, Dataset]) -> tuple[Tensor, Tensor]:
    _, test = digits_split
    return test.x[:N], test.y[:N]


def codes(flags: list[Flag]) -> set[str]:
    return {f.code for f in flags}


def test_a_clean_model_raises_no_flags(digits_cnn: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    assert run_sanity_checks(digits_cnn, x, y) == []
    assert run_sanity_checks(digits_cnn, x, y, norm="l2") == []


def test_a_quantising_model_is_flagged(digits_cnn: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    masked = TorchClassifier(Quantise(digits_cnn.model), (1, 8, 8), 10)
    assert (masked.predict_labels(x) == y).float().mean() > 0.85  # still a good model
    flags = run_sanity_checks(masked, x, y)
    assert codes(flags) == {"zero-gradients", "large-eps-robust"}
    assert all(f.severity == "error" for f in flags)
    assert "100%" in next(f.message for f in flags if f.code == "zero-gradients")


def test_a_randomised_model_is_flagged(digits_cnn: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, _ = batch
    torch.manual_seed(0)
    noisy = TorchClassifier(Noisy(digits_cnn.model), (1, 8, 8), 10)
    assert codes(randomness_flags(noisy, x)) == {"randomised-model"}
    assert codes(randomness_flags(noisy.restrict(Access.LABELS), x)) == {"randomised-model"}
    assert randomness_flags(digits_cnn.restrict(Access.LABELS), x) == []


def test_black_box_views_skip_white_box_checks(digits_cnn: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    flags = run_sanity_checks(digits_cnn.restrict(Access.SCORES), x, y)
    assert codes(flags) == {"check-skipped"} and all(f.severity == "info" for f in flags)
    assert flags[0].to_dict()["code"] == "check-skipped"


def test_curve_flags() -> None:
    good = {"pgd": [(0.0, 0.95), (0.1, 0.6), (0.2, 0.1)], "square": [(0.1, 0.7), (0.2, 0.2)]}
    assert curve_flags(0.95, good, black_box={"square"}) == []
    bad = {
        "pgd": [(0.0, 0.90), (0.1, 0.6), (0.2, 0.7)],  # eps 0 is not clean; rises with eps
        "square": [(0.1, 0.3), (0.2, 0.2)],  # the black-box attack beats PGD at eps 0.1
        "fgsm": [(0.1, 0.99)],  # above clean accuracy
    }
    flags = curve_flags(0.95, bad, black_box={"square"})
    assert codes(flags) == {"eps0-mismatch", "non-monotone", "black-box-stronger", "above-clean"}
    assert any("0.1" in f.message for f in flags if f.code == "black-box-stronger")
    # within the tolerance nothing is flagged
    assert curve_flags(0.95, {"pgd": [(0.0, 0.945), (0.1, 0.6), (0.2, 0.605)]}) == []


def test_checks_validate_their_input(digits_cnn: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    with pytest.raises(InputError):
        gradient_flags(digits_cnn, x.flatten(1), y)
    with pytest.raises(InputError):
        large_eps_flags(digits_cnn, x, y[:-1])
