"""Universal adversarial training (Shafahi, Najibi, Xu, Dickerson, Davis & Goldstein, AAAI 2020).

Training against a universal perturbation instead of a per-input one: a single perturbation
``delta`` is kept for the whole run; at each training batch it takes one projected ascent
step on that batch's (clipped) loss against the current model, and the model takes its usual
step on the batch carrying it. The ascent step is :meth:`UniversalPGD.step
<sparring.attacks.evasion.universal.UniversalPGD.step>`, the same code that crafts a
universal perturbation, so the defence trains against exactly the attack it answers, at
about twice the cost of standard training (one extra forward/backward pass per batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sparring.attacks.evasion import Norm, UniversalPGD, get_norm
from sparring.data import Dataset
from sparring.errors import InputError, check_bounds, check_nonnegative, check_positive
from sparring.models import TorchClassifier
from sparring.params import Params
from sparring.train import TrainConfig, TrainResult, fit

#: Epochs when ``fit`` gets no config.
DEFAULT_EPOCHS = 8


@dataclass
class UniversalTrainResult(TrainResult):
    """:class:`~sparring.train.TrainResult` with the universal perturbation as training left it (``[*input_shape]``)."""

    perturbation: Tensor = field(default_factory=lambda: torch.zeros(0))


class UniversalAdversarialTraining(Params):
    """Train against one universal perturbation updated alongside the model (Shafahi et al., AAAI 2020).

    Parameters: ``norm`` and ``eps`` (the perturbation's ball), ``step_size`` (the
    perturbation's ascent step per batch; None: ``eps / 4``), ``max_loss`` (per-sample loss
    clipping of the ascent, as in the paper) and ``bounds`` (the input domain). Batch order comes
    from the TrainConfig's seed; nothing else is random.
    """

    def __init__(
        self,
        norm: str | Norm = "linf",
        eps: float = 0.2,
        step_size: float | None = None,
        max_loss: float | None = 4.0,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.norm = get_norm(norm)
        self.eps = check_nonnegative("eps", eps)
        self.step_size = None if step_size is None else check_nonnegative("step_size", step_size)
        self.max_loss = None if max_loss is None else check_positive("max_loss", max_loss)
        self.bounds = check_bounds(bounds)

    def fit(self, model: nn.Module, train: Dataset, config: TrainConfig | None = None) -> UniversalTrainResult:
        """Train ``model`` on ``train`` carrying the evolving universal perturbation.

        Uses :func:`sparring.train.fit` (``config`` defaults to ``TrainConfig(epochs=8)``);
        the perturbation starts at zero.
        """
        cfg = config or TrainConfig(epochs=DEFAULT_EPOCHS)
        lo, hi = self.bounds
        if len(train) and (float(train.x.min()) < lo or float(train.x.max()) > hi):
            raise InputError(
                f"training inputs span [{float(train.x.min()):g}, {float(train.x.max()):g}], outside the "
                f"bounds ({lo:g}, {hi:g}); pass the input domain as UniversalAdversarialTraining(bounds=...)"
            )
        view = TorchClassifier(model, train.input_shape, train.num_classes, bounds=self.bounds)
        ascent = UniversalPGD(self.norm, eps=self.eps, batch_size=cfg.batch_size, max_loss=self.max_loss)
        size = self.eps / 4 if self.step_size is None else self.step_size
        delta = torch.zeros(1, *train.input_shape)

        def universal(_model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
            nonlocal delta
            delta = ascent.step(view, x, y, torch.arange(len(x)), delta, 1, size).detach()
            return (x + delta).clamp(lo, hi)

        result = fit(model, train, cfg, transform=universal, desc="universal adversarial training")
        return UniversalTrainResult(result.model, result.seconds, result.losses, delta[0])
