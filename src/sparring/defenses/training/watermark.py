"""Watermarks that prove ownership of a model, and of copies stolen from it.

The verbs are ``wm.embed(model, train, config)`` -> :class:`~sparring.train.TrainResult`
(the model trained with the task and the watermark, through :func:`sparring.train.fit`) and
``wm.verify(classifier)`` -> :class:`Verification` ``(p_value, hits, queries)``: the
suspect model is queried on the verification set and its hits (answers equal to the
watermark labels) are tested with a one-sided binomial test against the base rate, the hit
rate of independently trained clean models (:meth:`Watermark.calibrate`; the pooled rate's
upper 97.5 % Clopper-Pearson bound, so a few unlucky clean models do not make every claim
look strong).

- :class:`TriggerSetWatermark` (Adi, Baum, Cisse, Pinkas and Keshet, "Turning Your
  Weakness Into a Strength: Watermarking Deep Neural Networks by Backdooring", USENIX
  Security 2018): a trigger set of out-of-distribution inputs (random block patterns) with
  labels chosen at random, balanced over the classes, trained in with the task.
- :class:`EntangledWatermark` (Jia, Choquette-Choo, Chandrasekaran and Papernot,
  "Entangled Watermarks as a Defense against Model Extraction", USENIX Security 2021): the
  watermarked inputs are in-distribution images of a source class carrying a small patch,
  labelled as a target class; after a first half of plain training the model is trained
  on the task plus batches of watermarked and real target-class inputs, while the soft
  nearest-neighbour loss (Frosst, Papernot and Hinton, ICML 2019) between the two groups is
  *maximised* at the hidden layers, so the watermark is carried by the features the task
  uses and a copy that learns the task from the model's answers tends to learn it too. The
  settings follow the authors' code (see the class).
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError, check_positive_int, check_seed
from sparring.metrics import clopper_pearson
from sparring.models import Access, Classifier
from sparring.params import Params, Registry
from sparring.train import TrainConfig, TrainResult, fit


@dataclass(frozen=True)
class Verification:
    """A verification: ``hits`` of ``queries`` answers gave the watermark label; ``p_value`` under the base rate."""

    p_value: float
    hits: int
    queries: int
    base_rate: float

    @property
    def rate(self) -> float:
        """The share of verification queries answered with the watermark label."""
        return self.hits / self.queries if self.queries else 0.0

    def claimed(self, alpha: float) -> bool:
        """True when the test rejects "not derived from the watermarked model" at level ``alpha``."""
        return self.p_value < alpha


def binomial_p(hits: int, queries: int, base_rate: float) -> float:
    """P(X >= hits) for X ~ Binomial(queries, base_rate): the one-sided test's p-value."""
    from scipy.stats import binom

    if queries < 1 or not 0 <= hits <= queries:
        raise InputError(f"a binomial test needs 0 <= hits <= queries and queries >= 1, got {hits}/{queries}")
    if hits == 0:
        return 1.0
    return float(binom.sf(hits - 1, queries, min(max(base_rate, 0.0), 1.0)))


def base_rate(hits: Sequence[int], queries: int) -> float:
    """Upper 97.5 % Clopper-Pearson bound of the pooled hit rate of clean models (``hits`` per model)."""
    if not hits:
        raise InputError("the base rate needs at least one clean model")
    return clopper_pearson(int(sum(hits)), len(hits) * queries).high


def _cycle(n: int, size: int, g: torch.Generator) -> Iterator[Tensor]:
    """Index batches of ``size`` drawn without replacement from ``range(n)``, reshuffled when used up."""
    while True:
        order = torch.randperm(n, generator=g)
        for i in range(0, n - size + 1 if n >= size else 1, size):
            yield order[i : i + size]


class Watermark(Params, ABC):
    """Base of watermarks: :meth:`embed` trains one in, :meth:`verify` tests a suspect model for it.

    After :meth:`embed`, ``verification_x`` and ``verification_y`` hold the verification
    queries and their watermark labels; :meth:`calibrate` sets ``base`` from clean models.
    """

    requires: ClassVar[Access] = Access.LABELS
    verification_x: Tensor | None = None
    verification_y: Tensor | None = None
    base: float | None = None

    @abstractmethod
    def embed(self, model: nn.Module, train: Dataset, config: TrainConfig | None = None) -> TrainResult:
        """Train ``model`` on ``train`` with the watermark (``config``: the task's training settings)."""

    def _verification(self) -> tuple[Tensor, Tensor]:
        if self.verification_x is None or self.verification_y is None:
            raise InputError(f"{type(self).__name__} has no verification set: call embed first")
        return self.verification_x, self.verification_y

    def hits(self, classifier: Classifier) -> int:
        """How many verification queries ``classifier`` answers with the watermark label."""
        classifier.require(Access.LABELS, f"{type(self).__name__}.verify")
        x, y = self._verification()
        return int((classifier.predict_labels(x) == y).sum())

    def calibrate(self, clean: Sequence[Classifier]) -> float:
        """Set and return the base rate from independently trained clean models (see :func:`base_rate`)."""
        x, _ = self._verification()
        self.base = base_rate([self.hits(c) for c in clean], len(x))
        return self.base

    def verify(self, classifier: Classifier, base: float | None = None) -> Verification:
        """One-sided binomial test of ``classifier``'s hits against ``base`` (default: the calibrated rate)."""
        rate = self.base if base is None else base
        if rate is None:
            raise InputError("verify needs a base rate: call calibrate with clean models first, or pass base")
        x, _ = self._verification()
        k = self.hits(classifier)
        return Verification(binomial_p(k, len(x), rate), k, len(x), rate)


def block_patterns(n: int, shape: Sequence[int], seed: int, bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """``n`` random out-of-distribution inputs: blocky binary patterns for images, uniform noise otherwise."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = bounds
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        return lo + (hi - lo) * torch.rand((n, *shape), generator=g)
    c, h, w = shape
    bh, bw = max(1, h // 7), max(1, w // 7)
    coarse = (torch.rand((n, c, -(-h // bh), -(-w // bw)), generator=g) < 0.5).float()
    full = coarse.repeat_interleave(bh, dim=2).repeat_interleave(bw, dim=3)[:, :, :h, :w]
    return lo + (hi - lo) * full.contiguous()


class TriggerSetWatermark(Watermark):
    """Trigger-set watermark (Adi et al., USENIX Security 2018): out-of-distribution inputs with chosen labels.

    ``size`` random block patterns (:func:`block_patterns`) get labels spread evenly over the
    classes in a random order; they are repeated in the training set so that they make up
    about ``share`` of it and trained in with the task by :func:`sparring.train.fit`. The
    verification set is the trigger set.
    """

    def __init__(
        self, size: int = 100, share: float = 0.1, seed: int = 0, bounds: tuple[float, float] = (0.0, 1.0)
    ) -> None:
        if not 0.0 < share < 1.0:
            raise ConfigError(f"share must be in (0, 1), got {share}")
        self.size = check_positive_int("size", size)
        self.share = float(share)
        self.seed = check_seed(seed)
        self.bounds = (float(bounds[0]), float(bounds[1]))

    def embed(self, model: nn.Module, train: Dataset, config: TrainConfig | None = None) -> TrainResult:
        """Train ``model`` on ``train`` plus the repeated trigger set."""
        cfg = config or TrainConfig(seed=self.seed)
        x = block_patterns(self.size, train.input_shape, self.seed, self.bounds)
        g = torch.Generator().manual_seed(self.seed + 1)
        y = (torch.arange(self.size) % train.num_classes)[torch.randperm(self.size, generator=g)]
        self.verification_x, self.verification_y = x, y
        repeat = max(1, round(self.share * len(train) / ((1.0 - self.share) * self.size)))
        data = Dataset(
            torch.cat([train.x, x.repeat(repeat, *([1] * (x.dim() - 1)))]),
            torch.cat([train.y, y.repeat(repeat)]),
            train.classes,
            f"{train.name}+trigger-set",
        )
        return fit(model, data, cfg, desc="watermark (trigger set)")


def snnl(features: Tensor, labels: Tensor, temperature: Tensor) -> Tensor:
    """Soft nearest-neighbour loss (Frosst et al., ICML 2019) of ``features`` under ``labels``, cosine distance.

    ``-mean_i log(sum_{j != i, same label} k_ij / sum_{j != i} k_ij)`` with
    ``k_ij = exp(-d_ij / temperature)``: high when points of different labels are as close as
    points of the same label (the groups are entangled).
    """
    f = F.normalize(torch.relu(features.flatten(1)), dim=1, eps=1e-8)
    d = 1.0 - f @ f.T
    k = torch.exp(-d / temperature) * (1.0 - torch.eye(len(f)))
    same = (labels[:, None] == labels[None, :]).float()
    ratio = (k * same).sum(dim=1) / (k.sum(dim=1) + 1e-8)
    return -torch.log(ratio + 1e-8).mean()


def hidden_layers(model: nn.Module, n: int = 3) -> list[nn.Module]:
    """The last ``n`` convolution or linear layers before the output layer (EWE's layers for the loss)."""
    layers: list[nn.Module] = [m for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear)]
    if len(layers) < 2:
        raise InputError("the entangled watermark needs a model with a hidden convolution or linear layer")
    return layers[:-1][-n:]


class _Taps:
    """Forward hooks that keep the outputs of some layers during one forward pass."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        self.out: list[Tensor] = []
        self.handles = [m.register_forward_hook(self._keep) for m in layers]

    def _keep(self, module: nn.Module, inputs: object, output: Tensor) -> None:
        self.out.append(output)

    def run(self, model: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        self.out = []
        logits = model(x)
        return logits, self.out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


class EntangledWatermark(Watermark):
    """Entangled watermark (EWE; Jia et al., USENIX Security 2021): a patch on source-class inputs, labelled target.

    The recipe follows the authors' code (cleverhans-lab/entangled-watermark, ``train.py``
    with an in-distribution watermark). Training: the first half of ``config.epochs`` trains
    the task alone. Then the patch (``patch`` x ``patch`` pixels at the bound's top for
    images; the ``patch`` features of lowest gradient otherwise) goes where the gradient of
    the soft nearest-neighbour loss between source and target inputs is lowest (a spot that
    is no feature of the target, so clean models do not answer the target on it), and the
    watermarks are refined (:meth:`_refine`: signed steps of size ``step`` that raise that
    loss, and lower the target logit while the model answers the target on more than
    ``threshold`` of them). The second half trains the task with, at every batch, a penalty
    on a batch of watermarked and real target-class inputs: cross-entropy towards ``target``
    minus ``factor`` times the soft nearest-neighbour loss between the two groups at the last
    three hidden layers (the authors' code: both convolutions and the hidden dense layer,
    before their activations). Each layer's temperature starts at ``temperature`` and is
    learned: an inverse-temperature factor descends the loss the model ascends, with plain
    steps of ``temperature_lr``. The defaults translate the authors' MNIST settings (weight
    32 on a cross-entropy summed over batches of 512, i.e. 1/16 of a mean cross-entropy;
    their kernel ``exp(-d / (100 / T))`` with T = 1, i.e. temperature 100; temperature rate
    0.1; threshold 0.1; ten refinement rounds of 0.01; classes 1 -> 7). Two departures: the
    penalty joins each task batch's step (the code alternates a task step and a watermark
    step, one to one on MNIST), and the watermark is in-distribution (the code's MNIST
    default takes Fashion-MNIST trousers, which no built-in holds). The verification set is
    the first ``size`` watermarked training inputs. ``source``/``target`` None mean 1 -> 7
    with at least 8 classes, else 0 -> the last class.
    """

    def __init__(
        self,
        size: int = 100,
        source: int | None = None,
        target: int | None = None,
        factor: float = 1 / 16,
        temperature: float = 100.0,
        temperature_lr: float = 0.1,
        threshold: float = 0.1,
        patch: int = 3,
        steps: int = 10,
        step: float = 0.01,
        seed: int = 0,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        if not factor >= 0 or not temperature > 0 or not step >= 0 or not temperature_lr >= 0:
            raise ConfigError(
                f"factor, step and temperature_lr must be >= 0 and temperature > 0, got {factor}, {step}, "
                f"{temperature_lr}, {temperature}"
            )
        if not 0.0 <= threshold < 1.0:
            raise ConfigError(f"threshold must be in [0, 1), got {threshold}")
        if source is not None and target is not None and source == target:
            raise ConfigError(f"the watermark's source and target classes must differ, got {source} twice")
        self.size = check_positive_int("size", size)
        self.source = source
        self.target = target
        self.factor = float(factor)
        self.temperature = float(temperature)
        self.temperature_lr = float(temperature_lr)
        self.threshold = float(threshold)
        self.patch = check_positive_int("patch", patch)
        self.steps = int(steps)
        self.step = float(step)
        self.seed = check_seed(seed)
        self.bounds = (float(bounds[0]), float(bounds[1]))

    def classes(self, num_classes: int) -> tuple[int, int]:
        """The (source, target) classes used for ``num_classes`` classes."""
        default = (1, 7) if num_classes >= 8 else (0, num_classes - 1)
        s = default[0] if self.source is None else self.source
        t = default[1] if self.target is None else self.target
        if not (0 <= s < num_classes and 0 <= t < num_classes) or s == t:
            raise ConfigError(f"watermark classes {s} -> {t} do not fit {num_classes} classes")
        return s, t

    def _mask(self, model: nn.Module, src: Tensor, tgt: Tensor) -> Tensor:
        """Where the patch goes: the window (or features) where the loss's input gradient is lowest.

        Raising those pixels draws source inputs least towards the target's features, so a clean
        model does not already answer the target on the watermark (EWE picks the location this way).
        """
        model.eval()
        n = min(len(src), len(tgt), 128)
        x = torch.cat([src[:n], tgt[:n]]).requires_grad_(True)
        w = torch.cat([torch.ones(n), torch.zeros(n)])
        taps = _Taps(hidden_layers(model))
        try:
            _, feats = taps.run(model, x)
            loss = sum((snnl(f, w, torch.tensor(self.temperature)) for f in feats), torch.tensor(0.0))
            (grad,) = torch.autograd.grad(loss, x)
        finally:
            taps.close()
        g = grad[:n].mean(dim=0)
        mask = torch.zeros_like(g)
        if g.dim() == 3:
            p = min(self.patch, g.shape[1], g.shape[2])
            window = F.avg_pool2d(g.sum(dim=0, keepdim=True)[None], p, stride=1)[0, 0]
            i, j = divmod(int(window.flatten().argmin()), window.shape[1])
            mask[:, i : i + p, j : j + p] = 1.0
        else:
            mask.view(-1)[g.flatten().topk(min(self.patch, g.numel()), largest=False).indices] = 1.0
        return mask

    def _refine(self, model: nn.Module, xw: Tensor, tgt: Tensor, target: int, temp: Tensor) -> Tensor:
        """EWE's refinement (the authors' code): entangle the watermarks, keep the model from already naming them.

        ``steps`` rounds: while the model answers ``target`` on more than ``threshold`` of the
        watermarks (at most 50 such steps in all), a signed step lowers the target logit; then
        one signed step raises the soft nearest-neighbour loss between the watermarks and real
        target inputs (drawing them towards the target's features). Five target-logit steps
        close the refinement. Every step has size ``step``; inputs stay within the bounds.
        """
        lo, hi = self.bounds
        model.eval()
        taps = _Taps(hidden_layers(model))

        def lower_target(x: Tensor) -> Tensor:
            xt = x.clone().requires_grad_(True)
            (g_tgt,) = torch.autograd.grad(model(xt)[:, target].sum(), xt)
            return (x - self.step * g_tgt.sign()).clamp(lo, hi).detach()

        def answered(x: Tensor) -> float:
            with torch.no_grad():
                return float((model(x).argmax(dim=1) == target).float().mean())

        n = min(len(xw), len(tgt))
        w = torch.cat([torch.ones(n), torch.zeros(n)])
        descents = 0
        try:
            for _ in range(self.steps):
                while descents < 50 and answered(xw) > self.threshold:
                    xw, descents = lower_target(xw), descents + 1
                x = torch.cat([xw[:n], tgt[:n]]).requires_grad_(True)
                _, feats = taps.run(model, x)
                loss = sum((snnl(f, w, temp) for f in feats), torch.tensor(0.0))
                (g_ent,) = torch.autograd.grad(loss, x)
                step = torch.zeros_like(xw)
                step[:n] = self.step * g_ent[:n].sign()
                xw = (xw + step).clamp(lo, hi).detach()
            for _ in range(5):
                xw = lower_target(xw)
        finally:
            taps.close()
        return xw

    def embed(self, model: nn.Module, train: Dataset, config: TrainConfig | None = None) -> TrainResult:
        """Train ``model`` on ``train`` and the entangled watermark (half the epochs plain, half entangled)."""
        cfg = config or TrainConfig(seed=self.seed)
        s, t = self.classes(train.num_classes)
        src, tgt = train.x[train.y == s], train.x[train.y == t]
        if len(src) < 2 or len(tgt) < 2:
            raise InputError(f"the entangled watermark needs training samples of classes {s} and {t}")
        start = time.perf_counter()
        first = max(1, cfg.epochs // 2)
        losses = fit(model, train, dataclasses.replace(cfg, epochs=first), desc="watermark (EWE, task)").losses
        hi = self.bounds[1]
        mask = self._mask(model, src, tgt)
        xw = src * (1 - mask) + hi * mask
        temp = torch.tensor(float(self.temperature))
        xw = self._refine(model, xw, tgt, t, temp)
        layers = hidden_layers(model)
        taps = _Taps(layers)
        g = torch.Generator().manual_seed(self.seed + 7)
        half = max(2, min(cfg.batch_size // 2, len(xw), len(tgt)))
        wm_batches, tgt_batches = _cycle(len(xw), half, g), _cycle(len(tgt), half, g)
        # EWE's code learns one inverse temperature per layer, k_ij = exp(-d_ij * s / T), s = 1 at first,
        # by plain gradient descent on the loss the model ascends (Frosst et al. learn it that way too)
        inverse = torch.ones(len(layers), requires_grad=True)
        w = torch.cat([torch.ones(half), torch.zeros(half)])
        labels = torch.full((2 * half,), t, dtype=torch.long)

        def penalty(m: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
            xb = torch.cat([xw[next(wm_batches)], tgt[next(tgt_batches)]])
            out, feats = taps.run(m, xb)
            temps = self.temperature / inverse.clamp_min(1e-3)
            ent = sum((snnl(f, w, temps[i].detach()) for i, f in enumerate(feats)), torch.tensor(0.0))
            (g_inv,) = torch.autograd.grad(
                sum((snnl(f.detach(), w, temps[i]) for i, f in enumerate(feats)), torch.tensor(0.0)), inverse
            )
            with torch.no_grad():
                inverse.sub_(self.temperature_lr * g_inv)
            return F.cross_entropy(out, labels) - self.factor * ent

        try:
            rest = max(1, cfg.epochs - first)
            second = fit(
                model,
                train,
                dataclasses.replace(cfg, epochs=rest, seed=cfg.seed + 11),
                penalty=penalty,
                desc="watermark (EWE, entangled)",
            )
        finally:
            taps.close()
        self.verification_x = xw[: self.size].clone()
        self.verification_y = torch.full((min(self.size, len(xw)),), t, dtype=torch.long)
        return TrainResult(second.model, time.perf_counter() - start, losses + second.losses)


#: Watermarks by the name a config uses.
WATERMARKS: Registry[Watermark] = Registry("watermark")
WATERMARKS.add("trigger", TriggerSetWatermark, summary="trigger set of out-of-distribution patterns (Adi et al. 2018)")
WATERMARKS.add("ewe", EntangledWatermark, summary="entangled watermark, soft nearest-neighbour loss (Jia et al. 2021)")
