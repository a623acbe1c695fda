"""Students copied from a teacher: frozen layers, fresh head, reproducible transfer-learning setup."""

from __future__ import annotations

import pytest
import torch

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError
from sparring.models import build
from sparring.models.hooks import layer_features, param_layers
from sparring.train import TrainConfig, fit
from sparring.transfer import frozen_layers, student_from_teacher, transfer_learning_setup


def w(model: torch.nn.Module, layer: str) -> torch.Tensor:
    """The weight of a named layer."""
    return model.get_parameter(f"{layer}.weight")


def test_param_layers_of_zoo_models() -> None:
    assert param_layers(build("small_cnn", (1, 8, 8), 10)) == ["conv1", "conv2", "fc1", "fc2"]
    assert param_layers(build("mlp", (64,), 10)) == ["body.0", "body.2", "head"]
    mlp = build("mlp", (64,), 10)
    assert frozen_layers(mlp, ["body"]) == ["body.0", "body.2"]
    assert frozen_layers(mlp, 1) == ["body.0"]


@pytest.mark.parametrize("arch, frozen", [("small_cnn", 3), ("small_cnn", ["conv1", "conv2"]), ("mlp", ["body"])])
def test_frozen_layers_stay_untouched_by_fit(
    digits_split: tuple[Dataset, Dataset], arch: str, frozen: int | list[str]
) -> None:
    train, _ = digits_split
    teacher = build(arch, train.input_shape, 10, seed=0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = student_from_teacher(teacher, 10, frozen, seed=1)
    names = frozen_layers(teacher, frozen)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    fit(student, train.take(200), TrainConfig(epochs=1, progress=False))
    for key, value in student.state_dict().items():
        layer = key.rsplit(".", 1)[0]
        if layer in names:
            assert torch.equal(value, start[key]), key  # frozen: bit-identical
            assert torch.equal(value, before[key]), key  # and still the teacher's
        else:
            assert not torch.equal(value, start[key]), key  # trainable: moved
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key])  # the teacher is never changed


def test_head_is_reinitialised_and_resized() -> None:
    teacher = build("small_cnn", (1, 8, 8), 10, seed=0)
    same = student_from_teacher(teacher, 10, 2, seed=3)
    assert not torch.equal(w(same, "fc2"), w(teacher, "fc2"))
    assert torch.equal(w(same, "fc2"), w(student_from_teacher(teacher, 10, 2, seed=3), "fc2"))  # seeded
    smaller = student_from_teacher(teacher, 4, 2, seed=3)
    assert smaller(torch.rand(2, 1, 8, 8)).shape == (2, 4)
    assert torch.equal(w(smaller, "conv1"), w(teacher, "conv1"))
    assert not w(smaller, "conv1").requires_grad and w(smaller, "fc1").requires_grad


def test_bad_freeze_specs_raise_clear_errors() -> None:
    teacher = build("small_cnn", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="no parameter layer matches 'conv9'; layers: conv1, conv2, fc1, fc2"):
        student_from_teacher(teacher, 10, ["conv9"])
    with pytest.raises(ConfigError, match="head 'fc2' cannot be frozen"):
        student_from_teacher(teacher, 10, ["conv1", "fc2"])
    with pytest.raises(ConfigError, match="between 0 and 3"):
        student_from_teacher(teacher, 10, 4)
    with pytest.raises(ConfigError, match="list of layer-name prefixes"):
        student_from_teacher(teacher, 10, "conv1")
    with pytest.raises(ConfigError, match="num_classes"):
        student_from_teacher(teacher, 1, 1)
    with pytest.raises(InputError, match="no layer named 'nope'"):
        layer_features(teacher, "nope")


def test_layer_features_match_classifier_features(digits_split: tuple[Dataset, Dataset]) -> None:
    train, _ = digits_split
    model = build("small_cnn", train.input_shape, 10, seed=0).eval()
    x = train.x[:5].clone().requires_grad_(True)
    f = layer_features(model, "fc1")(x)
    (grad,) = torch.autograd.grad(f.sum(), x)
    assert f.shape == (5, 128) and float(grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.parameters())  # input gradients only


def test_transfer_learning_setup_is_honest_and_reproducible(digits_split: tuple[Dataset, Dataset]) -> None:
    train, test = digits_split
    a = transfer_learning_setup(train, test, teacher_epochs=6, student_epochs=4, seed=0)
    assert a.layer == "fc1"
    assert len(a.teacher_data) + len(a.student_data) == len(train)
    # disjoint public / private data
    joined = torch.cat([a.teacher_data.x.flatten(1), a.student_data.x.flatten(1)])
    assert len(torch.unique(joined, dim=0)) == len(torch.unique(train.x.flatten(1), dim=0))
    t, s = a.teacher.model, a.student.model
    assert torch.equal(w(t, "fc1"), w(s, "fc1")) and not torch.equal(w(t, "fc2"), w(s, "fc2"))
    acc = float((a.student.predict_labels(test.x) == test.y).float().mean())
    assert acc > 0.7
    b = transfer_learning_setup(train, test, teacher_epochs=6, student_epochs=4, seed=0)
    assert torch.equal(w(b.student.model, "fc2"), w(s, "fc2"))
    with pytest.raises(ConfigError, match="teacher_fraction"):
        transfer_learning_setup(train, test, teacher_fraction=1.0)
    with pytest.raises(ConfigError, match="frozen"):
        transfer_learning_setup(train, test, frozen=0)
