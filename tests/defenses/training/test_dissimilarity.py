"""Teacher–student dissimilarity (Wang et al., USENIX Security 2018) against teacher→student transfer."""

from __future__ import annotations

import copy

import pytest
import torch

from sparring.data import Dataset
from sparring.defenses.training import TeacherDissimilarity
from sparring.defenses.training.dissimilarity import gradient_cosine
from sparring.errors import ConfigError, InputError
from sparring.metrics import dataset_accuracy
from sparring.models import TorchClassifier, build
from sparring.models.hooks import layer_features
from sparring.train import TrainConfig
from sparring.transfer import TransferSetup, transfer_learning_setup

N = 150


@pytest.fixture(scope="module")
def setup(digits_split: tuple[Dataset, Dataset]) -> TransferSetup:
    train, test = digits_split
    return transfer_learning_setup(train, test, teacher_epochs=10, student_epochs=6, seed=0)


def w(model: torch.nn.Module, layer: str) -> torch.Tensor:
    """The weight of a named layer."""
    return model.get_parameter(f"{layer}.weight")


def test_dissimilarity_moves_the_representation_at_little_accuracy_cost(setup: TransferSetup) -> None:
    """The student's representation at the shared layer moves a teacher-sized distance away; accuracy is kept.

    The defence's aim, less teacher->student transfer, is not asserted: on 8x8 digits the PGD transfer
    (eps 0.1 + 0.2) fell by 0.07 +- 0.10 over seeds 0-7 (and rose by 0.13 at one), and no margin,
    epoch or sample count tried made the drop reliable (best 1.5 std), as for the gradient measure below.
    """
    teacher_state = {k: v.clone() for k, v in setup.teacher.model.state_dict().items()}
    student = copy.deepcopy(setup.student.model)
    # margin 1.5: at 1.0 the final distance (1.16-1.57 over seeds 0-7) sat close to the asserted 1.0.
    defence = TeacherDissimilarity(setup.teacher.model, setup.layer, margin=1.5, weight=10.0)
    result = defence.fit(student, setup.student_data, TrainConfig(epochs=4, seed=1, progress=False))
    defended = TorchClassifier(result.model, setup.test.input_shape, 10)
    assert result.model is student and not student.training and len(result.losses) == 4
    # the representation at the shared layer moved away from the teacher's, past its own size
    assert defence.last_distances[-1] > 1.0 and defence.last_distances[-1] > defence.last_distances[0]
    x = setup.test.x[:50]
    with torch.no_grad():
        t, s = layer_features(setup.teacher.model, setup.layer)(x), layer_features(student, setup.layer)(x)
    assert float(((s - t).norm(dim=1) / t.norm(dim=1)).mean()) > 0.8
    assert dataset_accuracy(defended, setup.test) >= dataset_accuracy(setup.student, setup.test) - 0.03
    for k, v in setup.teacher.model.state_dict().items():  # the public teacher is only read
        assert torch.equal(v, teacher_state[k])
    assert all(p.grad is None for p in setup.teacher.model.parameters())


def test_unfreeze_flag(setup: TransferSetup) -> None:
    student = copy.deepcopy(setup.student.model)
    frozen_before = w(student, "conv1").clone()
    TeacherDissimilarity(setup.teacher.model, setup.layer, unfreeze=False).fit(
        student, setup.student_data.take(100), TrainConfig(epochs=1, progress=False)
    )
    assert torch.equal(w(student, "conv1"), frozen_before)
    TeacherDissimilarity(setup.teacher.model, setup.layer).fit(
        student, setup.student_data.take(100), TrainConfig(epochs=1, progress=False)
    )
    assert not torch.equal(w(student, "conv1"), frozen_before)


def test_errors(setup: TransferSetup) -> None:
    with pytest.raises(ConfigError, match="teacher"):
        TeacherDissimilarity("teacher", "fc1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="layer"):
        TeacherDissimilarity(setup.teacher.model, "")
    with pytest.raises(ConfigError, match="margin"):
        TeacherDissimilarity(setup.teacher.model, "fc1", margin=-1.0)
    data = setup.student_data.take(20)
    with pytest.raises(InputError, match="no layer named 'nope'"):
        TeacherDissimilarity(setup.teacher.model, "nope").fit(copy.deepcopy(setup.student.model), data)
    with pytest.raises(InputError, match="copy of the teacher"):
        TeacherDissimilarity(setup.teacher.model, "fc1").fit(setup.teacher.model, data)
    other = build("mlp", data.input_shape, 10)
    with pytest.raises(InputError, match="no layer named 'fc1'"):
        TeacherDissimilarity(setup.teacher.model, "fc1").fit(other, data)


def test_gradient_measure_misaligns_input_gradients(setup: TransferSetup) -> None:
    """The gradient measure (Demontis et al. 2019) makes the student's input gradients point away from the teacher's.

    Whether that lowers transfer more than fine-tuning alone depends on the data: on mnist5k it
    did (benchmarks/evasion_transfer.py), on 8x8 digits it did not, so only the mechanism and
    its accuracy cost are asserted here.
    """
    # 8 epochs at weight 0.4: at 4 epochs and weight 1.0 the gradient student's accuracy sat on the
    # asserted bound (-0.001 +- 0.014 from it over seeds 0-7, below at 5); now both claims clear theirs.
    cfg = TrainConfig(epochs=8, seed=1, progress=False)
    x, y = setup.test.x[:N], setup.test.y[:N]
    cosines, students = {}, {}
    for name, weight in (("control", 0.0), ("gradient", 0.4)):
        defence = TeacherDissimilarity(setup.teacher.model, setup.layer, weight=weight, measure="gradient")
        model = defence.fit(copy.deepcopy(setup.student.model), setup.student_data, cfg).model
        students[name] = TorchClassifier(model, setup.test.input_shape, 10)
        cosines[name] = float(gradient_cosine(model, setup.teacher.model, x, y).detach().mean())
    assert cosines["gradient"] < cosines["control"] - 0.2, cosines
    gradient, control = (dataset_accuracy(students[k], setup.test) for k in ("gradient", "control"))
    assert gradient >= control - 0.05
