"""Universal adversarial perturbations: one perturbation within eps that fools a whole distribution.

Moosavi-Dezfooli, Fawzi, Fawzi & Frossard ("Universal adversarial perturbations", CVPR 2017)
pass over a set of training inputs; whenever ``x + v`` is still classified as ``x`` is, they
add the smallest (DeepFool, Moosavi-Dezfooli et al., CVPR 2016) step that carries it across
the nearest decision boundary and project ``v`` back onto the eps-ball
(:class:`DeepFoolUAP`). The faster variant (:class:`UniversalPGD`; the stochastic-gradient
form of Shafahi et al., "Universal Adversarial Training", AAAI 2020) ascends the mean loss of
mini-batches of ``x + v`` with respect to ``v`` through the one gradient loop: the iterate is
the single perturbation, the objective averages a per-sample loss over a fresh batch at each
step. Per-sample losses are clipped at ``max_loss`` so inputs already fooled with margin stop
pulling the perturbation (Shafahi et al.'s clipped loss).

Both craft on one set of inputs and are judged on another (:meth:`Universal.evaluate`):
fooling rate (the prediction changes, the paper's figure) and robust accuracy (still the
true class), with the clean accuracy of the same inputs beside them.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

import torch
from torch import Tensor
from torch.nn import functional as F

from sparring.attacks.evasion.base import EvasionResult, is_success
from sparring.attacks.evasion.loop import Objective, Step, gradient_loop
from sparring.attacks.evasion.norms import Norm, get_norm
from sparring.errors import (
    ConfigError,
    InputError,
    check_choice,
    check_class,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_seed,
)
from sparring.models import Access, Classifier, check_batch, check_labels
from sparring.params import Params

#: Per-sample losses a universal attack may ascend.
LOSSES = ("ce", "margin")


@dataclass
class UniversalEvaluation:
    """A universal perturbation or patch on held-out inputs.

    ``result`` is the evasion verdict per input (``success``: misclassified, or on the target);
    ``fooling_rate`` the share whose prediction changed (Moosavi-Dezfooli et al.'s figure);
    ``clean_accuracy`` the accuracy on the same inputs without it.
    """

    result: EvasionResult
    clean_accuracy: float
    fooling_rate: float

    @property
    def robust_accuracy(self) -> float:
        """Share of inputs still classified correctly with the perturbation."""
        return float((~self.result.success).float().mean()) if len(self.result.success) else 0.0


class Universal(ABC):
    """An input-agnostic perturbation, crafted once: :meth:`apply` to any batch, :meth:`evaluate` on held-out inputs.

    ``target`` is the class a targeted one aims for (None: untargeted). ``seconds`` and
    ``queries`` are what crafting cost.
    """

    target: int | None
    seconds: float
    queries: int

    @abstractmethod
    def apply(self, x: Tensor, bounds: tuple[float, float], generator: torch.Generator | None = None) -> Tensor:
        """``x`` carrying the perturbation (a patch draws its placement from ``generator``)."""

    @abstractmethod
    def size(self, x: Tensor, x_adv: Tensor) -> Tensor:
        """What the perturbation costs per input (its norm, or the patch's area), shape ``[N]``."""

    def evaluate(
        self, classifier: Classifier, x: Tensor, y: Tensor, seed: int = 0, batch_size: int = 512
    ) -> UniversalEvaluation:
        """Robust accuracy, fooling rate and clean accuracy on ``(x, y)``, inputs not used to craft it.

        A targeted perturbation succeeds on an input whose true class is not the target when
        it is classified as the target; inputs of the target class never count as successes.
        """
        x = check_batch(x, classifier.input_shape).detach()
        y = check_labels(y, len(x), classifier.num_classes)
        q0, t0 = classifier.queries, time.perf_counter()
        g = torch.Generator().manual_seed(seed)
        parts = [self.apply(b, classifier.bounds, g) for b in x.split(batch_size)]
        x_adv = torch.cat(parts) if parts else x.clone()
        clean = classifier.predict_labels(x) if len(x) else y
        pred = classifier.predict_labels(x_adv) if len(x) else y
        if self.target is None:
            success = pred != y
        else:
            success = (pred == self.target) & (y != self.target)
        n = max(1, len(x))
        result = EvasionResult(
            x_adv=x_adv,
            success=success,
            queries=classifier.queries - q0,
            norms=self.size(x, x_adv),
            seconds=time.perf_counter() - t0,
        )
        return UniversalEvaluation(result, float((clean == y).sum()) / n, float((pred != clean).sum()) / n)


@dataclass
class UniversalPerturbation(Universal):
    """One additive perturbation ``delta`` (``[*input_shape]``) within ``eps`` in ``norm``."""

    delta: Tensor
    norm: Norm
    eps: float
    target: int | None = None
    seconds: float = 0.0
    queries: int = 0

    def apply(self, x: Tensor, bounds: tuple[float, float], generator: torch.Generator | None = None) -> Tensor:
        return (x + self.delta).clamp(*bounds)

    def size(self, x: Tensor, x_adv: Tensor) -> Tensor:
        return self.norm.norm(x_adv - x)


def universal_loss(logits: Tensor, y: Tensor, target: int | None, loss: str, max_loss: float | None) -> Step:
    """Per-sample loss to ascend and success, for one batch carrying the universal perturbation.

    ``ce``: the true class's cross-entropy (targeted: minus the target's); ``margin``: the
    best other logit minus the true one (targeted: the target's minus the best other). With
    ``max_loss`` each sample's loss is clipped there, so confidently fooled inputs no longer
    pull the perturbation.
    """
    tgt = None if target is None else torch.full_like(y, target)
    if loss == "ce":
        ce = F.cross_entropy(logits, y if tgt is None else tgt, reduction="none")
        value = ce if tgt is None else -ce
    else:
        aim = y if tgt is None else tgt
        own = logits.gather(1, aim[:, None]).squeeze(1)
        other = logits.scatter(1, aim[:, None], -torch.inf).amax(1)
        value = other - own if tgt is None else own - other
    if max_loss is not None:
        value = value.clamp(max=max_loss)
    return Step(value, is_success(logits.detach().argmax(1), y, tgt))


def batch_objective(
    forward: Callable[[Tensor, Tensor, int], Tensor],
    x: Tensor,
    y: Tensor,
    order: Tensor,
    batch_size: int,
    target: int | None,
    loss: str,
    max_loss: float | None,
    stop_at: float,
) -> Objective:
    """An objective for the gradient loop whose single iterate is the universal perturbation (or patch).

    At step ``k`` it takes the ``k``-th mini-batch of ``x[order]`` (wrapping round),
    ``forward(iterate, x_batch, k)`` gives the logits of the batch carrying it, and the
    loss is the batch mean of :func:`universal_loss`. The iterate counts as a success (and
    leaves the loop) once the batch's success rate reaches ``stop_at``.
    """
    batches = max(1, -(-len(order) // batch_size))

    def objective(it: Tensor, _idx: Tensor, k: int) -> Step:
        b = k % batches
        rows = order[b * batch_size : (b + 1) * batch_size]
        s = universal_loss(forward(it, x[rows], k), y[rows], target, loss, max_loss)
        done = s.success.float().mean() >= stop_at
        return Step(s.loss.mean().reshape(1), done.reshape(1))

    return objective


U = TypeVar("U", bound=Universal, covariant=True)


class UniversalAttack(Params, ABC, Generic[U]):
    """Base of universal attacks: :meth:`craft` one perturbation from ``(x, y)``.

    Subclasses implement :meth:`_craft`. Access is checked before the first query.
    """

    requires: ClassVar[Access] = Access.GRADIENTS
    target: int | None

    def craft(self, classifier: Classifier, x: Tensor, y: Tensor) -> U:
        """Craft on ``(x, y)``; judge the result with :meth:`Universal.evaluate` on other inputs."""
        classifier.require(self.requires, type(self).__name__)
        x = check_batch(x, classifier.input_shape).detach()
        y = check_labels(y, len(x), classifier.num_classes)
        if len(x) == 0:
            raise InputError("a universal attack needs at least one input to craft on")
        if self.target is not None:
            check_class("target", self.target, classifier.num_classes)
        lo, hi = classifier.bounds
        if float(x.min()) < lo - 1e-6 or float(x.max()) > hi + 1e-6:
            raise InputError(f"inputs lie outside the classifier's bounds [{lo}, {hi}]")
        q0, t0 = classifier.queries, time.perf_counter()
        out = self._craft(classifier, x, y)
        out.seconds, out.queries = time.perf_counter() - t0, classifier.queries - q0
        return out

    @abstractmethod
    def _craft(self, classifier: Classifier, x: Tensor, y: Tensor) -> U:
        """The perturbation, for validated inputs."""


class UniversalPGD(UniversalAttack[UniversalPerturbation]):
    """Universal perturbation by projected stochastic gradient ascent (Shafahi et al., AAAI 2020).

    Parameters: ``norm`` and ``eps`` (the ball), ``epochs`` (passes over the crafting
    inputs), ``batch_size``, ``step_size`` (None: ``eps / 8``, decayed linearly to a tenth
    over the run), ``loss`` ("ce" or "margin", per sample, clipped at ``max_loss``; None: no
    clipping), ``target`` (a class index, or None for untargeted), ``stop_at`` (stop once a
    batch's success rate reaches it; 1.0 by default) and ``seed`` (batch order).
    """

    def __init__(
        self,
        norm: str | Norm = "linf",
        eps: float = 0.1,
        epochs: int = 10,
        batch_size: int = 128,
        step_size: float | None = None,
        loss: str = "ce",
        max_loss: float | None = 4.0,
        target: int | None = None,
        stop_at: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.norm = get_norm(norm)
        self.eps = check_nonnegative("eps", eps)
        self.epochs = check_positive_int("epochs", epochs)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.step_size = None if step_size is None else check_nonnegative("step_size", step_size)
        self.loss = check_choice("loss", loss, LOSSES)
        self.max_loss = None if max_loss is None else check_positive("max_loss", max_loss)
        self.target = None if target is None else check_class("target", target)
        self.stop_at = check_positive("stop_at", stop_at)
        self.seed = check_seed(seed)

    def schedule(self, steps: int) -> Callable[[int], float]:
        """The step size at step ``k``: ``step_size`` (default ``eps / 8``) decayed linearly to a tenth."""
        base = self.eps / 8 if self.step_size is None else self.step_size
        return lambda k: base * max(0.1, 1.0 - k / max(1, steps))

    def _craft(self, classifier: Classifier, x: Tensor, y: Tensor) -> UniversalPerturbation:
        g = torch.Generator().manual_seed(self.seed)
        order = torch.cat([torch.randperm(len(x), generator=g) for _ in range(self.epochs)])
        steps = -(-len(order) // self.batch_size)
        delta = self.step(classifier, x, y, order, torch.zeros(1, *x.shape[1:]), steps, self.schedule(steps))
        return UniversalPerturbation(delta[0], self.norm, self.eps, self.target)

    def step(
        self,
        classifier: Classifier,
        x: Tensor,
        y: Tensor,
        order: Tensor,
        delta: Tensor,
        steps: int,
        step_size: float | Callable[[int], float],
    ) -> Tensor:
        """``steps`` ascent steps of ``delta`` (``[1, *input_shape]``) over the batches of ``x[order]``.

        Universal adversarial training calls it with one step per training batch.
        """
        lo, hi = classifier.bounds

        def forward(it: Tensor, xb: Tensor, _k: int) -> Tensor:
            return classifier.logits((xb + it).clamp(lo, hi))

        objective = batch_objective(
            forward, x, y, order, self.batch_size, self.target, self.loss, self.max_loss, self.stop_at
        )
        span = hi - lo
        return gradient_loop(
            torch.zeros_like(delta),
            objective,
            self.norm,
            self.eps,
            steps,
            step_size,
            (-span, span),
            start=delta,
            early_stop=True,
            check_last=False,
        ).x


class DeepFoolUAP(UniversalAttack[UniversalPerturbation]):
    """The original universal perturbation (Moosavi-Dezfooli et al., CVPR 2017).

    Passes over the crafting inputs in a random order; for each input that ``x + v`` does
    not yet fool, DeepFool (at most ``deepfool_steps`` linearised steps, ``overshoot``)
    finds the smallest extra step that does, and ``v`` is projected back onto the eps-ball.
    Stops after ``max_passes`` or once the fooling rate on the crafting inputs reaches
    ``1 - delta``. Untargeted only (``target`` must be None).
    """

    def __init__(
        self,
        norm: str | Norm = "linf",
        eps: float = 0.1,
        max_passes: int = 5,
        delta: float = 0.2,
        deepfool_steps: int = 10,
        overshoot: float = 0.02,
        target: int | None = None,
        seed: int = 0,
    ) -> None:
        self.norm = get_norm(norm)
        self.eps = check_nonnegative("eps", eps)
        self.max_passes = check_positive_int("max_passes", max_passes)
        self.delta = check_nonnegative("delta", delta)
        self.deepfool_steps = check_positive_int("deepfool_steps", deepfool_steps)
        self.overshoot = check_nonnegative("overshoot", overshoot)
        if target is not None:
            raise ConfigError("DeepFoolUAP is untargeted: use UniversalPGD for a targeted universal perturbation")
        self.target = target
        self.seed = check_seed(seed)

    def _craft(self, classifier: Classifier, x: Tensor, y: Tensor) -> UniversalPerturbation:
        g = torch.Generator().manual_seed(self.seed)
        lo, hi = classifier.bounds
        v = torch.zeros(1, *x.shape[1:])
        clean = classifier.predict_labels(x)
        for _ in range(self.max_passes):
            for i in torch.randperm(len(x), generator=g).tolist():
                xi = x[i : i + 1]
                if int(classifier.predict_labels((xi + v).clamp(lo, hi))[0]) != int(clean[i]):
                    continue
                r = self._deepfool(classifier, xi, v, int(clean[i]))
                v = self.norm.project(v + r, self.eps)
            fooled = classifier.predict_labels((x + v).clamp(lo, hi)) != clean
            if float(fooled.float().mean()) >= 1.0 - self.delta:
                break
        return UniversalPerturbation(v[0], self.norm, self.eps)

    def _deepfool(self, classifier: Classifier, xi: Tensor, v: Tensor, label: int) -> Tensor:
        """DeepFool's minimal step (Moosavi-Dezfooli et al., CVPR 2016) moving ``xi + v`` off ``label``."""
        lo, hi = classifier.bounds
        k = classifier.num_classes
        r = torch.zeros_like(v)
        q = 1.0 if self.norm.name == "linf" else 2.0  # the dual norm's order
        for _ in range(self.deepfool_steps):
            z = (xi + v + (1 + self.overshoot) * r).clamp(lo, hi).repeat(k, *([1] * (xi.dim() - 1)))
            z.requires_grad_(True)
            logits = classifier.logits(z)
            if int(logits[0].argmax()) != label:
                break
            (grads,) = torch.autograd.grad(logits.diagonal().sum(), z)  # row c: gradient of logit c
            f = (logits[0] - logits[0, label]).detach()
            w = (grads - grads[label]).flatten(1)
            dist = f.abs() / w.norm(p=q, dim=1).clamp_min(1e-12)
            dist[label] = torch.inf
            c = int(dist.argmin())
            wc = w[c]
            if q == 1.0:
                step = (f[c].abs() + 1e-4) / wc.abs().sum().clamp_min(1e-12) * wc.sign()
            else:
                step = (f[c].abs() + 1e-4) / (wc * wc).sum().clamp_min(1e-12) * wc
            r = r + step.reshape(v.shape)
        return (1 + self.overshoot) * r
