from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from sparring.attacks.evasion import APGD, PGD
from sparring.attacks.evasion.apgd import checkpoints, dlr_loss
from sparring.data import Dataset
from sparring.errors import ConfigError
from sparring.metrics import accuracy
from sparring.models import TorchClassifier

N = 120


class Scaled(nn.Module):
    """Multiplies a model's logits: same predictions, a saturated cross-entropy."""

    def __init__(self, inner: nn.Module, factor: float) -> None:
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x) * self.factor


@pytest.fixture(scope="module")
def batch(digits_split: tuple[Dataset, Dataset]) -> tuple[Tensor, Tensor]:
    _, test = digits_split
    return test.x[:N], test.y[:N]


def test_checkpoints_follow_the_paper() -> None:
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert all(0 < c <= 5 for c in checkpoints(5))


def test_dlr_is_shift_and_scale_invariant() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 10, generator=g)
    y = torch.arange(8)
    t = (y + 1) % 10
    for target in (None, t):
        base = dlr_loss(z, y, target)
        assert torch.allclose(dlr_loss(3.0 * z + 5.0, y, target), base, atol=1e-5)
    # untargeted: positive exactly when y is not the top class
    assert torch.equal(dlr_loss(z, y) > 0, z.argmax(1) != y)


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 0.6)])
def test_apgd_lowers_accuracy_at_least_as_much_as_pgd(
    digits_cnn: TorchClassifier, batch: tuple[Tensor, Tensor], norm: str, eps: float
) -> None:
    x, y = batch
    clean = accuracy(digits_cnn, x, y)
    pgd = PGD(norm, eps=eps, steps=20).run(digits_cnn, x, y)
    apgd = APGD(norm, eps=eps, steps=20).run(digits_cnn, x, y)
    assert apgd.robust_accuracy < clean - 0.2
    assert apgd.robust_accuracy <= pgd.robust_accuracy + 1 / N
    assert torch.equal(apgd.success, digits_cnn.predict_labels(apgd.x_adv) != y)
    assert bool((apgd.norms <= eps * (1 + 1e-5)).all())
    # early stop: broken samples stop spending, so far fewer than (steps + 1) passes per sample
    assert apgd.queries < N * 21 * 0.8


def test_dlr_beats_cross_entropy_when_the_softmax_saturates(
    digits_mlp: TorchClassifier, batch: tuple[Tensor, Tensor]
) -> None:
    x, y = batch
    loud = TorchClassifier(Scaled(digits_mlp.model, 1e4), digits_mlp.input_shape, 10)
    assert torch.equal(loud.predict_labels(x), digits_mlp.predict_labels(x))
    ce = APGD("linf", eps=0.1, steps=20, loss="ce").run(loud, x, y)
    dlr = APGD("linf", eps=0.1, steps=20, loss="dlr").run(loud, x, y)
    plain = APGD("linf", eps=0.1, steps=20, loss="dlr").run(digits_mlp, x, y)
    assert dlr.robust_accuracy < ce.robust_accuracy - 0.2
    assert abs(dlr.robust_accuracy - plain.robust_accuracy) <= 0.05  # DLR ignores the scale


def test_targeted_version_breaks_samples_and_counts_misclassification(
    digits_cnn: TorchClassifier, batch: tuple[Tensor, Tensor]
) -> None:
    x, y = batch
    one = APGD("linf", eps=0.1, steps=20, loss="dlr", targeted_classes=1).run(digits_cnn, x, y)
    three = APGD("linf", eps=0.1, steps=20, loss="dlr", targeted_classes=3).run(digits_cnn, x, y)
    assert three.robust_accuracy < accuracy(digits_cnn, x, y) - 0.2
    assert three.robust_accuracy <= one.robust_accuracy
    assert three.queries > one.queries
    assert torch.equal(three.success, digits_cnn.predict_labels(three.x_adv) != y)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_given_targets_are_reached(digits_mlp: TorchClassifier, batch: tuple[Tensor, Tensor], loss: str) -> None:
    x, y = batch
    target = (y + 3) % 10
    result = APGD("linf", eps=0.3, steps=30, loss=loss).run(digits_mlp, x, y, target=target)  # type: ignore[arg-type]
    assert result.success_rate > 0.9
    assert torch.equal(result.success, digits_mlp.predict_labels(result.x_adv) == target)


def test_restarts_never_hurt(digits_cnn: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    one = APGD("linf", eps=0.06, steps=5, seed=1).run(digits_cnn, x, y)
    three = APGD("linf", eps=0.06, steps=5, restarts=3, seed=1).run(digits_cnn, x, y)
    assert bool((three.success | ~one.success).all())
    assert three.robust_accuracy <= one.robust_accuracy
    assert three.queries > one.queries


def test_two_classes_fall_back_from_dlr(digits_split: tuple[Dataset, Dataset]) -> None:
    _, test = digits_split
    keep = test.y < 2
    x, y = test.x[keep][:40], test.y[keep][:40]
    linear = nn.Linear(64, 2)
    with torch.no_grad():  # a fixed linear rule that separates 0s from 1s
        linear.weight.copy_(torch.stack([x[y == 0].mean(0).flatten(), x[y == 1].mean(0).flatten()]))
        linear.bias.zero_()
    model = nn.Sequential(nn.Flatten(), linear)
    clf = TorchClassifier(model, (1, 8, 8), 2)
    result = APGD("linf", eps=0.5, steps=10, loss="dlr", targeted_classes=3).run(clf, x, y)
    assert accuracy(clf, x, y) > 0.9
    assert result.robust_accuracy < 0.5


@pytest.mark.parametrize(
    "kwargs",
    [{"loss": "mse"}, {"targeted_classes": -1}, {"targeted_classes": 1.5}, {"rho": 1.5}, {"steps": 0}, {"eps": -1.0}],
)
def test_bad_parameters_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        APGD(**kwargs)  # type: ignore[arg-type]
