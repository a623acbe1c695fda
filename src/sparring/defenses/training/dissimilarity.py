"""Teacher–student dissimilarity: move the student's representation away from the public teacher's.

The defence of Wang et al., "With Great Training Comes Great Vulnerability: Practical
Attacks against Transfer Learning", USENIX Security 2018 (Section 6): fine-tune the whole
student (the copied layers unfrozen) to keep its accuracy while its representation at the
formerly frozen layer ``K`` stays at least a threshold away from the teacher's, so that
perturbations crafted on the teacher (mimicry at ``K``, or plain PGD) no longer carry over.
The constrained problem ``min CE  s.t.  ||S_K(x) - T_K(x)|| >= D`` is solved, as in the
paper, with a penalty ``weight * max(D - ||S_K(x) - T_K(x)||, 0)^2`` and a threshold that
rises over the epochs. Here the distance is relative to ``||T_K(x)||`` (``margin`` 1.0 asks
for a displacement as large as the teacher's representation itself), which keeps one
default meaningful across layers; the paper's per-neuron weights are left out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError, check_nonnegative
from sparring.models.student import layer_features
from sparring.train import TrainConfig, TrainResult, fit

#: Epochs when ``fit`` gets no config.
DEFAULT_EPOCHS = 4


class _AddPenalty(torch.autograd.Function):
    """Identity on ``logits`` whose backward also feeds a unit gradient into ``penalty``.

    The training loop minimises cross-entropy of the returned logits; routing the penalty
    through here adds its gradient to the same backward pass, so :func:`sparring.train.fit`
    optimises ``CE + penalty`` without a loss hook.
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, penalty: Tensor) -> Tensor:
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor, Tensor]:
        (grad,) = grads
        return grad, torch.ones((), dtype=grad.dtype)


class _Objective(nn.Module):
    """The student in training mode with the dissimilarity penalty attached to its logits."""

    def __init__(self, student: nn.Module, defence: TeacherDissimilarity, n: int, epochs: int) -> None:
        super().__init__()
        self.student = student
        self._teacher_features = layer_features(defence.teacher, defence.layer)
        self.defence = defence
        self.n, self.epochs, self.seen = n, max(1, epochs), 0
        modules = dict(student.named_modules())
        if defence.layer not in modules:
            raise InputError(
                f"student has no layer named {defence.layer!r}; layers: {', '.join(n for n in modules if n)}"
            )
        self._layer = modules[defence.layer]
        self.penalties: list[float] = [0.0] * self.epochs
        self.distances: list[float] = [0.0] * self.epochs

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return self.student(x)
        captured: list[Tensor] = []
        handle = self._layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            logits = self.student(x)
        finally:
            handle.remove()
        with torch.no_grad():
            t = self._teacher_features(x)
        s = captured[0].flatten(1)
        if s.shape != t.shape:
            raise InputError(
                f"student and teacher representations at {self.defence.layer!r} differ: {s.shape} vs {t.shape}"
            )
        dist = (s - t).norm(dim=1) / t.norm(dim=1).clamp_min(1e-6)
        epoch = min(self.seen // self.n, self.epochs - 1)
        self.seen += len(x)
        d = self.defence
        threshold = d.margin * (epoch + 1) / self.epochs if d.ramp else d.margin
        penalty = d.weight * torch.relu(threshold - dist).pow(2).mean()
        self.penalties[epoch] += float(penalty.detach()) * len(x) / self.n
        self.distances[epoch] += float(dist.detach().sum()) / self.n
        out: Tensor = _AddPenalty.apply(logits, penalty)
        return out


class TeacherDissimilarity:
    """Fine-tune a student away from its teacher's representation (Wang et al., USENIX Security 2018).

    Parameters: ``teacher`` (the public ``nn.Module`` the student was copied from; never
    changed), ``layer`` (name of the layer the student froze last, the same in both),
    ``margin`` (the relative distance ``||S_K(x) - T_K(x)|| / ||T_K(x)||`` to reach),
    ``weight`` (penalty coefficient), ``ramp`` (raise the threshold linearly over the epochs,
    as the paper does) and ``unfreeze`` (train every student parameter; the paper does).

    After :meth:`fit`, ``last_distances`` holds the mean relative distance per epoch.
    """

    def __init__(
        self,
        teacher: nn.Module,
        layer: str,
        margin: float = 1.0,
        weight: float = 10.0,
        ramp: bool = True,
        unfreeze: bool = True,
    ) -> None:
        if not isinstance(teacher, nn.Module):
            raise ConfigError(f"teacher must be a torch nn.Module, got {type(teacher).__name__}")
        if not isinstance(layer, str) or not layer:
            raise ConfigError(f"layer must be a non-empty layer name, got {layer!r}")
        self.teacher = teacher
        self.layer = layer
        self.margin = check_nonnegative("margin", margin)
        self.weight = check_nonnegative("weight", weight)
        self.ramp = bool(ramp)
        self.unfreeze = bool(unfreeze)
        self.last_distances: list[float] = []

    def fit(self, model: nn.Module, train: Dataset, config: TrainConfig | None = None) -> TrainResult:
        """Fine-tune the student ``model`` on ``train`` with cross-entropy plus the dissimilarity penalty.

        Uses :func:`sparring.train.fit`; ``config`` defaults to ``TrainConfig(epochs=4)``.
        Returns the :class:`~sparring.train.TrainResult` of the student (eval mode), whose
        ``losses`` are the per-epoch means of cross-entropy plus penalty.
        """
        cfg = config or TrainConfig(epochs=DEFAULT_EPOCHS)
        if model is self.teacher:
            raise InputError("the student must be a copy of the teacher, not the teacher itself")
        if len(train) == 0:
            raise InputError("cannot train on an empty dataset")
        self.teacher.eval()  # the public model is only read, in inference mode
        if self.unfreeze:
            for p in model.parameters():
                p.requires_grad_(True)
        objective = _Objective(model, self, len(train), cfg.epochs)
        result = fit(objective, train, cfg, desc="teacher dissimilarity")
        self.last_distances = objective.distances[: cfg.epochs]
        losses = [ce + pen for ce, pen in zip(result.losses, objective.penalties, strict=False)]
        return TrainResult(model.eval(), result.seconds, losses)

    def __repr__(self) -> str:
        return (
            f"TeacherDissimilarity(teacher={type(self.teacher).__name__}, layer={self.layer!r}, margin={self.margin}, "
            f"weight={self.weight}, ramp={self.ramp}, unfreeze={self.unfreeze})"
        )
