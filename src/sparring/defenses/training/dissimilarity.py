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

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError, check_nonnegative
from sparring.models.hooks import capture, find_layer, layer_features
from sparring.params import Params
from sparring.train import TrainConfig, TrainResult, fit

#: Epochs when ``fit`` gets no config.
DEFAULT_EPOCHS = 4


class TeacherDissimilarity(Params):
    """Fine-tune a student away from its public teacher so that attacks crafted on the teacher carry over less.

    ``measure="representation"`` is the defence of Wang et al. (USENIX Security 2018): a
    penalty ``weight * relu(D - ||S_K(x) - T_K(x)|| / ||T_K(x)||)^2`` on the representation
    at ``layer`` (the layer the student froze last), with the threshold ``D`` rising to
    ``margin`` over the epochs when ``ramp`` is set. ``measure="gradient"`` penalises the
    alignment of the two models' input gradients of the loss instead,
    ``weight * relu(cos(grad_x L_S, grad_x L_T))``: Demontis et al. (USENIX Security 2019)
    trace transferability to that alignment, and a representation can move far (even a
    rescaling does) without its adversarial directions changing. ``unfreeze`` trains every
    student parameter (the paper does). The teacher (an ``nn.Module``) is only read.

    After :meth:`fit`, ``last_distances`` holds per epoch the mean relative representation
    distance (``representation``) or the mean gradient cosine (``gradient``).
    """

    def __init__(
        self,
        teacher: nn.Module,
        layer: str,
        margin: float = 1.0,
        weight: float = 10.0,
        ramp: bool = True,
        unfreeze: bool = True,
        measure: str = "representation",
    ) -> None:
        if not isinstance(teacher, nn.Module):
            raise ConfigError(f"teacher must be a torch nn.Module, got {type(teacher).__name__}")
        if not isinstance(layer, str) or not layer:
            raise ConfigError(f"layer must be a non-empty layer name, got {layer!r}")
        if measure not in ("representation", "gradient"):
            raise ConfigError(f"measure must be 'representation' or 'gradient', got {measure!r}")
        self.teacher = teacher
        self.layer = layer
        self.margin = check_nonnegative("margin", margin)
        self.weight = check_nonnegative("weight", weight)
        self.ramp = bool(ramp)
        self.unfreeze = bool(unfreeze)
        self.measure = measure
        self.last_distances: list[float] = []

    def fit(self, model: nn.Module, train: Dataset, config: TrainConfig | None = None) -> TrainResult:
        """Fine-tune the student ``model`` on ``train`` with cross-entropy plus the penalty.

        Uses :func:`sparring.train.fit`; ``config`` defaults to ``TrainConfig(epochs=4)``.
        Returns the student (eval mode) with per-epoch mean losses (cross-entropy plus penalty).
        """
        cfg = config or TrainConfig(epochs=DEFAULT_EPOCHS)
        if model is self.teacher:
            raise InputError("the student must be a copy of the teacher, not the teacher itself")
        if len(train) == 0:
            raise InputError("cannot train on an empty dataset")
        find_layer(model, self.layer)
        self.teacher.eval()  # the public model is only read, in inference mode
        if self.unfreeze:
            for p in model.parameters():
                p.requires_grad_(True)
        epochs, n = max(1, cfg.epochs), len(train)
        sums = [0.0] * epochs
        seen = 0
        teacher_features = layer_features(self.teacher, self.layer)
        # the student's layer output of each training forward pass (representation measure)
        hooked: AbstractContextManager[list[Tensor]] = (
            capture(model, self.layer) if self.measure == "representation" else nullcontext([])
        )
        with hooked as captured:

            def penalty(student: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
                nonlocal seen
                epoch = min(seen // n, epochs - 1)
                seen += len(x)
                if self.measure == "gradient":
                    value = gradient_cosine(student, self.teacher, x, y)
                    sums[epoch] += float(value.detach().sum()) / n
                    return self.weight * value.clamp_min(0).mean()
                s = captured.pop().flatten(1)
                with torch.no_grad():
                    t = teacher_features(x)
                if s.shape != t.shape:
                    raise InputError(
                        f"student and teacher representations at {self.layer!r} differ: {s.shape}, {t.shape}"
                    )
                dist = (s - t).norm(dim=1) / t.norm(dim=1).clamp_min(1e-6)
                sums[epoch] += float(dist.detach().sum()) / n
                threshold = self.margin * (epoch + 1) / epochs if self.ramp else self.margin
                return self.weight * torch.relu(threshold - dist).pow(2).mean()

            result = fit(model, train, cfg, desc="teacher dissimilarity", penalty=penalty)
        self.last_distances = sums
        return result


def gradient_cosine(student: nn.Module, teacher: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per-sample cosine of the students's and the teacher's input gradients of cross-entropy.

    Differentiable in the student's parameters (double backpropagation); the teacher's
    gradient is a constant.
    """
    xt = x.detach().clone().requires_grad_(True)
    (g_t,) = torch.autograd.grad(F.cross_entropy(teacher(xt), y, reduction="sum"), xt)
    xs = x.detach().clone().requires_grad_(True)
    (g_s,) = torch.autograd.grad(F.cross_entropy(student(xs), y, reduction="sum"), xs, create_graph=True)
    return F.cosine_similarity(g_s.flatten(1), g_t.flatten(1), dim=1, eps=1e-12)
