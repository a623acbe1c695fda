"""Transfer attacks: crafted on a surrogate, replayed label-only on the target; mimicry on a student."""

from __future__ import annotations

import pytest
import torch

from sparring.attacks.evasion import PGD, InternalMimicry, Transfer
from sparring.data import Dataset
from sparring.errors import AccessError, ConfigError, InputError
from sparring.models import Access, TorchClassifier, build
from sparring.train import TrainConfig, fit
from sparring.transfer import TransferSetup, transfer_learning_setup

N = 120


def train_surrogate(train: Dataset, architecture: str) -> TorchClassifier:
    """A model trained on the same task with another seed (and maybe architecture) than the target."""
    model = build(architecture, train.input_shape, 10, seed=7)
    return TorchClassifier(
        fit(model, train, TrainConfig(epochs=10, seed=7, progress=False)).model, train.input_shape, 10
    )


@pytest.fixture(scope="module")
def surrogate(digits_split: tuple[Dataset, Dataset]) -> TorchClassifier:
    return train_surrogate(digits_split[0], "small_cnn")


@pytest.fixture(scope="module")
def setup(digits_split: tuple[Dataset, Dataset]) -> TransferSetup:
    train, test = digits_split
    return transfer_learning_setup(train, test, teacher_epochs=10, student_epochs=6, seed=0)


@pytest.mark.parametrize("architecture, eps, margin", [("small_cnn", 0.2, 0.2), ("mlp", 0.3, 0.1)])
def test_transfer_beats_noise_of_the_same_norm(
    digits_split: tuple[Dataset, Dataset],
    digits_cnn: TorchClassifier,
    surrogate: TorchClassifier,
    architecture: str,
    eps: float,
    margin: float,
) -> None:
    train, test = digits_split
    x, y = test.x[:N], test.y[:N]
    if architecture != "small_cnn":
        surrogate = train_surrogate(train, architecture)
    target = digits_cnn.restrict(Access.LABELS)  # the target is black-box: labels only
    attack = Transfer(surrogate, PGD(eps=eps, steps=20, seed=0))
    result = attack.run(target, x, y)
    assert result.queries == N  # exactly one target query per sample
    assert attack.last_surrogate_success_rate is not None and attack.last_surrogate_success_rate > 0.9
    assert float(result.norms.max()) <= eps + 1e-6
    assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0
    g = torch.Generator().manual_seed(0)
    noise = (x + eps * torch.randint(0, 2, x.shape, generator=g).float().mul(2).sub(1)).clamp(0, 1)
    noise_success = float((digits_cnn.predict_labels(noise) != y).float().mean())
    assert result.success_rate > noise_success + margin, (result.success_rate, noise_success)
    # success is the target's verdict, not the surrogate's
    assert torch.equal(result.success, digits_cnn.predict_labels(result.x_adv) != y)


def test_transfer_is_reproducible_and_eps_zero_is_clean(
    digits_split: tuple[Dataset, Dataset], digits_cnn: TorchClassifier, surrogate: TorchClassifier
) -> None:
    _, test = digits_split
    x, y = test.x[:40], test.y[:40]
    a = Transfer(surrogate, PGD(eps=0.1, steps=5, seed=3)).run(digits_cnn, x, y)
    b = Transfer(surrogate, PGD(eps=0.1, steps=5, seed=3)).run(digits_cnn, x, y)
    assert torch.equal(a.x_adv, b.x_adv)
    clean = Transfer(surrogate, PGD(eps=0.0, steps=5)).run(digits_cnn, x, y)
    assert torch.equal(clean.x_adv, x)
    assert torch.equal(clean.success, digits_cnn.predict_labels(x) != y)


def test_transfer_errors(digits_split: tuple[Dataset, Dataset], digits_cnn: TorchClassifier) -> None:
    _, test = digits_split
    x, y = test.x[:8], test.y[:8]
    with pytest.raises(ConfigError, match="surrogate"):
        Transfer("not a model", PGD())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="attack"):
        Transfer(digits_cnn, "pgd")  # type: ignore[arg-type]
    other = TorchClassifier(build("mlp", (1, 8, 8), 3, seed=0), (1, 8, 8), 3)
    with pytest.raises(InputError, match="surrogate"):
        Transfer(other, PGD(steps=2)).run(digits_cnn, x, torch.zeros(8, dtype=torch.long))
    with pytest.raises(AccessError, match="labels"):
        Transfer(digits_cnn, PGD(steps=2)).run(digits_cnn.restrict(Access.NONE), x, y)
    # the surrogate must grant what the crafting attack needs
    with pytest.raises(AccessError, match="gradients"):
        Transfer(digits_cnn.restrict(Access.LABELS), PGD(steps=2)).run(digits_cnn, x, y)


def test_teacher_to_student_pgd_transfers(setup: TransferSetup) -> None:
    x, y = setup.test.x[:N], setup.test.y[:N]
    result = Transfer(setup.teacher, PGD(eps=0.2, steps=20)).run(setup.student.restrict(Access.LABELS), x, y)
    clean_error = float((setup.student.predict_labels(x) != y).float().mean())
    assert result.success_rate > clean_error + 0.2


def test_mimicry_reaches_target_class_on_student(setup: TransferSetup) -> None:
    x, y = setup.test.x[:60], setup.test.y[:60]
    g = torch.Generator().manual_seed(0)
    target = (y + torch.randint(1, 10, y.shape, generator=g)) % 10
    attack = InternalMimicry(setup.teacher, setup.layer, setup.teacher_data, eps=0.3, steps=30)
    result = attack.run(setup.student.restrict(Access.LABELS), x, y, target)
    assert result.queries == 60
    assert float(result.norms.max()) <= 0.3 + 1e-6
    hit_by_chance = float((setup.student.predict_labels(x) == target).float().mean())
    assert result.success_rate > hit_by_chance + 0.2, result.success_rate
    # the representation moves towards the target image's
    _, dist = attack.mimic(x[:10], setup.teacher_data.x[setup.teacher_data.y == 0][:1].expand(10, -1, -1, -1))
    _, dist0 = InternalMimicry(setup.teacher, setup.layer, setup.teacher_data, eps=0.0).mimic(
        x[:10], setup.teacher_data.x[setup.teacher_data.y == 0][:1].expand(10, -1, -1, -1)
    )
    assert bool((dist <= dist0 + 1e-6).all()) and float(dist.mean()) < float(dist0.mean())


def test_mimicry_errors(setup: TransferSetup) -> None:
    x, y = setup.test.x[:4], setup.test.y[:4]
    with pytest.raises(InputError, match="targeted"):
        InternalMimicry(setup.teacher, setup.layer, setup.teacher_data).run(setup.student, x, y)
    with pytest.raises(InputError, match="no layer named 'nope'"):
        InternalMimicry(setup.teacher, "nope", setup.teacher_data, steps=2).run(setup.student, x, y, (y + 1) % 10)
    with pytest.raises(ConfigError, match="teacher"):
        InternalMimicry(setup.teacher.restrict(Access.ALL), setup.layer, setup.teacher_data)  # type: ignore[arg-type]
    only_zeros = setup.teacher_data.subset(setup.teacher_data.y == 0)
    with pytest.raises(InputError, match="target classes"):
        InternalMimicry(setup.teacher, setup.layer, only_zeros, steps=2).run(setup.student, x, y, (y % 9) + 1)
