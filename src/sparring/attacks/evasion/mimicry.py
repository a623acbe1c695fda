"""Internal-representation mimicry against transfer-learned students.

Wang et al., "With Great Training Comes Great Vulnerability: Practical Attacks against
Transfer Learning", USENIX Security 2018: a student copies and freezes the first ``K``
layers of a public teacher, so two inputs with the same teacher representation at layer
``K`` look the same to the student's trainable part. The attacker perturbs a source image
within a budget until its teacher representation at ``K`` matches that of an image of the
target class, and never needs the student's weights or data; the student is queried once
per sample, for labels only. The paper bounds the perturbation with DSSIM; here the budget
is an Linf or L2 ball, solved by projected gradient descent on the squared L2 distance of
the representations.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from sparring.attacks.evasion.base import EvasionAttack, is_success
from sparring.attacks.evasion.gradient import default_step_size
from sparring.attacks.evasion.loop import Step, gradient_loop
from sparring.attacks.evasion.norms import Norm, get_norm
from sparring.data import Dataset
from sparring.errors import ConfigError, InputError, check_nonnegative, check_positive_int, check_seed
from sparring.models import Access, Classifier, TorchClassifier
from sparring.models.hooks import layer_features


class InternalMimicry(EvasionAttack):
    """Targeted mimicry of a target image's teacher representation (Wang et al., USENIX Security 2018).

    Parameters: ``teacher`` (a :class:`TorchClassifier` with gradient and internals access:
    the public model), ``layer`` (the teacher layer the student froze last), ``reference``
    (images the attacker has of each target class, e.g. public data), ``norm`` and ``eps``
    (the budget), ``steps`` and ``step_size`` (None: ``2.5 * eps / steps``),
    ``candidates`` (for each source, the attack mimics each of the ``candidates`` reference
    images of the target class nearest to it in the teacher's representation and keeps the
    closest match: the paper likewise picks the target image the attack reaches best),
    ``batch_size`` and ``seed`` (random start).

    :meth:`run` needs ``target`` classes. :meth:`mimic` crafts without touching the student.
    """

    requires: ClassVar[Access] = Access.LABELS

    def __init__(
        self,
        teacher: TorchClassifier,
        layer: str,
        reference: Dataset,
        norm: str | Norm = "linf",
        eps: float = 0.1,
        steps: int = 100,
        step_size: float | None = None,
        candidates: int = 1,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        if not isinstance(teacher, TorchClassifier):
            raise ConfigError(f"teacher must be a TorchClassifier, got {type(teacher).__name__}")
        if not isinstance(reference, Dataset):
            raise ConfigError(f"reference must be a sparring Dataset, got {type(reference).__name__}")
        self.teacher = teacher
        self.layer = str(layer)
        self.reference = reference
        self.norm = get_norm(norm)
        self.eps = check_nonnegative("eps", eps)
        self.steps = check_positive_int("steps", steps)
        self.step_size = None if step_size is None else check_nonnegative("step_size", step_size)
        self.candidates = check_positive_int("candidates", candidates)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_seed(seed)

    def mimic(self, x: Tensor, x_target: Tensor) -> tuple[Tensor, Tensor]:
        """Perturb ``x`` within the budget towards ``x_target``'s teacher representation.

        Returns ``(x_adv, distance)``: the perturbed inputs and the remaining L2 distance of
        their representations, relative to the target representation's norm. The one
        gradient loop descends the squared distance and keeps each sample's closest point
        (the clean input included).
        """
        self.teacher.require(Access.GRADIENTS | Access.INTERNALS, type(self).__name__)
        if len(x) == 0:
            return x.clone(), torch.empty(0)
        feats = layer_features(self.teacher.model, self.layer)
        with torch.no_grad():
            goal = torch.cat([feats(b) for b in x_target.split(self.batch_size)])
            scale = goal.norm(dim=1).clamp_min(1e-12)
            clean = torch.cat([feats(b) for b in x.split(self.batch_size)])
            clean_d = (clean - goal).norm(dim=1) / scale
        if self.eps == 0:
            return x.clone(), clean_d

        def objective(xa: Tensor, idx: Tensor, _step: int) -> Step:
            d2 = (feats(xa) - goal[idx]).pow(2).sum(1)
            return Step(-d2, torch.zeros(len(idx), dtype=torch.bool), quality=-d2)

        g = torch.Generator().manual_seed(self.seed)
        r = gradient_loop(
            x,
            objective,
            self.norm,
            self.eps,
            self.steps,
            default_step_size(self.eps, self.steps, self.step_size),
            self.teacher.bounds,
            start=self.norm.random(x, self.eps, g),
            early_stop=False,
            batch_size=self.batch_size,
        )
        d = (-r.quality).clamp_min(0.0).sqrt() / scale
        better = d < clean_d
        return torch.where(better.view(-1, *[1] * (x.dim() - 1)), r.x, x), torch.where(better, d, clean_d)

    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        if target is None:
            raise InputError("InternalMimicry is a targeted attack: pass target classes")
        if self.teacher.input_shape != classifier.input_shape or self.reference.input_shape != classifier.input_shape:
            raise InputError(
                f"teacher inputs {self.teacher.input_shape} and reference inputs {self.reference.input_shape} "
                f"must match the target's {classifier.input_shape}"
            )
        missing = sorted(set(target.tolist()) - set(self.reference.y.tolist()))
        if missing:
            raise InputError(f"reference data has no images of target classes {missing}")
        if len(x) == 0:
            return x.clone(), torch.zeros(0, dtype=torch.bool)
        feats = layer_features(self.teacher.model, self.layer)
        with torch.no_grad():
            src = torch.cat([feats(b) for b in x.split(self.batch_size)])
            ref = torch.cat([feats(b) for b in self.reference.x.split(self.batch_size)])
        best_x = x.clone()
        best_d = torch.full((len(x),), float("inf"))
        for c in torch.unique(target).tolist():
            rows = torch.nonzero(target == c).flatten()
            pool = torch.nonzero(self.reference.y == c).flatten()
            k = min(self.candidates, len(pool))
            nearest = pool[torch.cdist(src[rows], ref[pool]).topk(k, dim=1, largest=False).indices]  # [n, k]
            for j in range(k):
                xa, d = self.mimic(x[rows], self.reference.x[nearest[:, j]])
                better = d < best_d[rows]
                best_x[rows[better]], best_d[rows[better]] = xa[better], d[better]
        pred = classifier.predict_labels(best_x)
        return best_x, is_success(pred, y, target)
