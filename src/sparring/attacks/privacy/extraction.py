"""Model extraction: train a copy of a victim from its answers to queries.

The verb is ``attack.steal(classifier, budget, pool=None, test=None)`` ->
:class:`ExtractionResult` ``(surrogate, queries, curve)``; ``budget`` is one number of
queries or several, and the curve gives the stolen copy's task accuracy and its fidelity
(agreement with the victim's labels on test data; Jagielski et al., "High Accuracy and High
Fidelity Extraction of Neural Networks", USENIX Security 2020) at each.

- :class:`KnockoffNets` (Orekondy, Schiele and Fritz, "Knockoff Nets: Stealing Functionality
  of Black-Box Models", CVPR 2019): query the victim on natural inputs drawn at random from a
  pool, often of another distribution (:func:`query_pool`), and train a surrogate on its
  answers: the probability vectors (distillation), a top-k part of them, or the labels only.
- :class:`EquationSolving` (Tramèr, Zhang, Juels, Reiter and Ristenpart, "Stealing Machine
  Learning Models via Prediction APIs", USENIX Security 2016): a multinomial logistic model's
  log-probabilities are linear in the input, so d + 1 queries with confidence scores give a
  linear system whose solution is the model itself (up to the shift softmax ignores).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError, check_positive_int, check_seed
from sparring.models import Access, Classifier, TorchClassifier
from sparring.models.zoo import ARCHITECTURES, build
from sparring.params import Params, Registry
from sparring.train import TrainConfig, augment_batch, fit

#: Query pools :func:`query_pool` can draw from.
QUERY_POOLS = ("in_distribution", "other", "photos", "noise")

#: How a Knockoff attacker picks its queries from the pool.
SAMPLING = ("random", "adaptive")

#: Step size of the adaptive strategy's gradient bandit.
BANDIT_STEP = 0.1

#: What a Knockoff attacker trains on: ``probabilities``, ``top_k:K`` or ``labels``.
ACCESS_MODES = ("probabilities", "top_k", "labels")

#: Share of the answers a Knockoff attacker sets aside to choose its training recipe (0: the fixed recipe).
HOLDOUT = 0.0

#: Fewest held-out answers worth choosing a recipe on (below, the default recipe is used).
MIN_HELD_OUT = 20

#: Largest random translation (pixels) of the images :func:`query_pool` adds when a pool runs short.
POOL_SHIFT = 2


def thief_seed(seed: int) -> int:
    """An attacker's seed for an assessment run with ``seed``: its surrogate never starts from the victim's weights.

    A model the assessment trains is initialised from ``seed``; a surrogate of the same
    architecture built from it would start where the victim started, which no real attacker
    can and which favours recipes that retrace the victim's training.
    """
    return seed + 1


@dataclass(frozen=True)
class CurvePoint:
    """The stolen copy after ``queries`` answers (``budget`` asked for): accuracy and fidelity on test data.

    ``seconds`` is the attack's wall time up to this point (querying and training every copy
    so far), without the time spent measuring the copies.
    """

    budget: int
    queries: int
    accuracy: float | None
    fidelity: float | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The point as plain numbers."""
        return {
            "budget": self.budget,
            "queries": self.queries,
            "accuracy": self.accuracy,
            "fidelity": self.fidelity,
            "seconds": self.seconds,
        }


@dataclass
class ExtractionResult:
    """A stolen copy (``surrogate``, at the largest budget), the victim queries spent, and the curve."""

    surrogate: Classifier
    queries: int
    curve: list[CurvePoint] = field(default_factory=list)
    attack: str = ""
    access: str = ""
    seconds: float = 0.0
    #: The training recipe each curve point's copy used (Knockoff), e.g. ``"shift:2, 52 epochs"``.
    recipes: list[str] = field(default_factory=list)


def check_access_mode(mode: str) -> tuple[str, int | None]:
    """``(name, k)`` of an access mode ``probabilities``, ``top_k:K`` or ``labels``; ConfigError otherwise."""
    name, _, arg = mode.partition(":")
    if name not in ACCESS_MODES or (arg and name != "top_k"):
        raise ConfigError(f"unknown extraction access {mode!r}; accepted: probabilities, top_k[:K], labels")
    if name != "top_k":
        return name, None
    try:
        k = int(arg or "1")
    except ValueError:
        raise ConfigError(f"top_k access takes an integer K, got {mode!r}") from None
    return name, check_positive_int("top_k K", k)


def _budgets(budget: int | Sequence[int]) -> list[int]:
    values = [budget] if isinstance(budget, int) else list(budget)
    if not values:
        raise ConfigError("extraction needs at least one query budget")
    return sorted({check_positive_int("budget", int(b)) for b in values})


def fidelity(surrogate: Classifier, victim_labels: Tensor, x: Tensor) -> float:
    """Share of ``x`` on which ``surrogate`` gives the victim's label (Jagielski et al., USENIX Security 2020)."""
    if len(x) == 0:
        return float("nan")
    return float((surrogate.predict_labels(x) == victim_labels).float().mean())


def victim_labels(classifier: Classifier, x: Tensor) -> Tensor:
    """The victim's label for each row of ``x`` (from its scores when it grants no labels)."""
    if Access.LABELS in classifier.access:
        return classifier.predict_labels(x)
    return classifier.predict_scores(x).argmax(dim=1)


class ExtractionAttack(Params, ABC):
    """Base of extraction attacks: :meth:`steal` returns the stolen copy and its curve."""

    requires: ClassVar[Access] = Access.SCORES

    @abstractmethod
    def steal(
        self,
        classifier: Classifier,
        budget: int | Sequence[int],
        pool: Tensor | None = None,
        test: Dataset | None = None,
    ) -> ExtractionResult:
        """Steal ``classifier`` within ``budget`` queries (several budgets give a curve)."""

    def _point(
        self, surrogate: Classifier, budget: int, queries: int, test: Dataset | None, truth: Tensor | None, spent: float
    ) -> CurvePoint:
        if test is None or truth is None:
            return CurvePoint(budget, queries, None, None, spent)
        acc = float((surrogate.predict_labels(test.x) == test.y).float().mean()) if len(test) else float("nan")
        return CurvePoint(budget, queries, acc, fidelity(surrogate, truth, test.x), spent)

    def _curve(
        self,
        budgets: list[int],
        t0: float,
        copy_at: Callable[[int], tuple[Classifier, int]],
        test: Dataset | None,
        truth: Tensor | None,
    ) -> tuple[list[CurvePoint], Classifier, float]:
        """The copy ``copy_at(budget) -> (surrogate, queries it used)`` at each budget, measured; seconds since ``t0``.

        Time spent measuring the copies on test data is not the attack's: it is left out of
        each point's seconds and of the total returned.
        """
        curve: list[CurvePoint] = []
        evaluating = 0.0
        surrogate: Classifier | None = None
        for b in budgets:
            surrogate, m = copy_at(b)
            spent = time.perf_counter() - t0 - evaluating
            curve.append(self._point(surrogate, b, m, test, truth, spent))
            evaluating = time.perf_counter() - t0 - spent
        assert surrogate is not None
        return curve, surrogate, time.perf_counter() - t0 - evaluating


def _targets(answers: Tensor, k: int | None, num_classes: int) -> Tensor:
    """Probability rows an attacker trains on from released scores (kept top ``k``, renormalised)."""
    s = answers.detach().float().clamp_min(0.0)
    if k is not None and k < num_classes:
        kept = s.topk(k, dim=1)
        s = torch.zeros_like(s).scatter(1, kept.indices, kept.values)
    total = s.sum(dim=1, keepdim=True)
    one_hot = F.one_hot(s.argmax(dim=1), num_classes).float()
    return torch.where(total > 0, s / total.clamp_min(1e-12), one_hot)


def one_standard_error(scores: Sequence[tuple[float, int]], n: int) -> int:
    """Index of the first (simplest) candidate whose held-out agreement is within one standard error of the best.

    ``scores`` holds ``(agreement on n held-out answers, epochs)`` per candidate, simplest
    first; the standard error is the binomial one of the best agreement. This is the
    one-standard-error rule (Breiman, Friedman, Olshen and Stone, "Classification and
    Regression Trees", 1984; Hastie, Tibshirani and Friedman, ESL 7.10): a more complex
    recipe must beat the simpler one by more than the held-out slice can resolve.
    """
    top = max(a for a, _ in scores)
    se = (top * (1.0 - top) / max(n, 1)) ** 0.5
    return next(i for i, (a, _) in enumerate(scores) if a >= top - se)


class _EarlyStop:
    """Per-epoch agreement with held-out labels: the best so far, its epoch, stop after ``patience`` without gain."""

    def __init__(self, x: Tensor, y: Tensor, patience: int) -> None:
        self.x, self.y, self.patience = x, y, patience
        self.best, self.at = -1.0, 0

    def __call__(self, model: nn.Module, done: int) -> bool:
        """Record the agreement after ``done`` epochs; True once ``patience`` epochs passed without gain."""
        agree = float((torch.cat([model(b).argmax(dim=1) for b in self.x.split(1024)]) == self.y).float().mean())
        if agree > self.best:
            self.best, self.at = agree, done
        return done - self.at >= self.patience


class KnockoffNets(ExtractionAttack):
    """Knockoff Nets with random or adaptive sampling (Orekondy et al., CVPR 2019).

    ``sampling="random"`` draws up to ``max(budget)`` distinct inputs from ``pool`` at random
    and queries the victim once on them. ``"adaptive"`` splits the pool into ``actions``
    clusters (k-means on the inputs: the attacker's own grouping of its pool, where Orekondy
    et al. use the pool's class labels) and picks clusters in ``rounds`` with a gradient
    bandit whose reward is the sum of their certainty (top-1 minus top-2 of the answer),
    diversity (distance of the answer from the mean answer so far) and loss (the interim
    surrogate's cross-entropy on the answer), each standardised over the rewards so far;
    an interim surrogate is retrained (a fifth of the epochs) on all answers after each round. For each
    budget a fresh ``architecture`` surrogate is trained on the first answers: cross-entropy
    against the released probability vectors (``access="probabilities"``; ``"top_k:K"`` keeps
    the K largest, renormalised) or against the labels (``"labels"``, the label-only
    attacker). When the pool holds fewer inputs than a budget, the point records the queries
    actually made.

    A surrogate is trained for at least ``steps`` optimiser steps (more epochs when few
    answers fill few batches: a fixed number of passes over 250 answers is 40 steps, far from
    converged) and, with ``augment="auto"`` on images of at least 14 pixels a side, on the
    answered queries moved by random translations of up to 1/14 of their side (2 pixels on
    28x28; Simard et al., ICDAR 2003) with the answer to the unmoved query as the target: the
    attacker's own data augmentation, which costs no queries (on smaller images one pixel is
    too coarse a move to keep the label, and they are not augmented). Shifted copies carry
    the victim's answer to the unmoved input, right for the task but not always for the
    victim: they raise accuracy when answers are few and cost fidelity when they are many
    (the copy learns an invariance the victim lacks).

    With ``holdout > 0`` (off by default) the recipe is chosen at each budget on the answers
    already bought, without further queries: a random ``holdout`` share is set aside, the
    copy is trained on the rest with and without the shifts, each with early stopping on its
    agreement with the victim's labels on the held-out answers (training stops when a quarter
    of the schedule passes without improvement), and the final copy is trained on all the
    answers with the recipe kept by the one-standard-error rule (:func:`one_standard_error`:
    the shifts must agree better by more than the slice resolves) for the epochs at which it
    agreed best. Measured on the MNIST benchmark it is not a net gain (benchmarks/README.md):
    agreement on the attacker's own queries hides the fidelity cost when those are inputs the
    victim was trained on (it answers them correctly, so agreeing there is mostly accuracy),
    the early-stopped schedules are shorter and cost accuracy, and the three trainings per
    budget cost time; hence the default keeps the fixed recipe. With fewer than
    :data:`MIN_HELD_OUT` held-out answers the fixed recipe is used too. ``steps=0`` and
    ``augment=None`` train for exactly ``epochs`` on the answers as they are.
    """

    requires: ClassVar[Access] = Access.SCORES

    def __init__(
        self,
        access: str = "probabilities",
        architecture: str = "mlp",
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-3,
        seed: int = 0,
        sampling: str = "random",
        actions: int = 10,
        rounds: int = 10,
        steps: int = 400,
        augment: str | None = "auto",
        holdout: float = HOLDOUT,
    ) -> None:
        check_access_mode(access)
        if sampling not in SAMPLING:
            raise ConfigError(f"unknown Knockoff sampling {sampling!r}; accepted: {', '.join(SAMPLING)}")
        if architecture not in ARCHITECTURES:
            raise ConfigError(
                f"unknown surrogate architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
            )
        self.access = access
        self.architecture = architecture
        self.epochs = check_positive_int("epochs", epochs)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.lr = lr
        self.seed = check_seed(seed)
        self.sampling = sampling
        self.actions = check_positive_int("actions", actions)
        self.rounds = check_positive_int("rounds", rounds)
        if steps < 0:
            raise ConfigError(f"steps must be >= 0, got {steps}")
        self.steps = int(steps)
        if augment not in (None, "auto"):
            TrainConfig(augment=augment)  # validates the spec
        self.augment = augment
        if not 0.0 <= holdout < 1.0:
            raise ConfigError(f"holdout must be in [0, 1), got {holdout}")
        self.holdout = float(holdout)
        TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr)  # validates lr

    def _augment(self, input_shape: Sequence[int]) -> str | None:
        """The augmentation spec the surrogate trains with on inputs of ``input_shape``."""
        if self.augment != "auto":
            return self.augment
        side = min(input_shape[1:]) if len(input_shape) == 3 else 0
        return f"shift:{side // 14}" if side >= 14 else None

    def _ask(self, classifier: Classifier, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The victim's labels for ``x`` and, with score access, the probability rows to train on."""
        mode, k = check_access_mode(self.access)
        if mode == "labels":
            return classifier.predict_labels(x), None
        targets = _targets(classifier.predict_scores(x), k, classifier.num_classes)
        return targets.argmax(dim=1), targets

    def _epochs(self, n: int, epochs: int, steps: int) -> int:
        """``epochs`` passes over ``n`` answers, more if that is under ``steps`` optimiser steps."""
        return max(epochs, -(-steps // -(-n // self.batch_size)))

    def _fit(
        self,
        classifier: Classifier,
        x: Tensor,
        y: Tensor,
        targets: Tensor | None,
        epochs: int,
        augment: str | None,
        on_epoch: Callable[[nn.Module, int], bool] | None = None,
    ) -> nn.Module:
        """A fresh surrogate trained on the answers for ``epochs`` passes with ``augment``."""
        data = Dataset(x, y, [str(c) for c in range(classifier.num_classes)], "stolen")
        model = build(self.architecture, classifier.input_shape, classifier.num_classes, seed=self.seed)
        cfg = TrainConfig(
            epochs=epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed, progress=False, augment=augment
        )
        return fit(model, data, cfg, desc="steal", soft_targets=targets, on_epoch=on_epoch).model

    def _train(
        self, classifier: Classifier, x: Tensor, y: Tensor, targets: Tensor | None, epochs: int, steps: int
    ) -> nn.Module:
        """A fresh surrogate trained on the answers: ``epochs`` passes, more if that is under ``steps`` steps."""
        epochs = self._epochs(len(x), epochs, steps)
        return self._fit(classifier, x, y, targets, epochs, self._augment(classifier.input_shape))

    def _recipes(self, input_shape: Sequence[int]) -> list[str | None]:
        """The augmentations the recipe is chosen among, simplest (none) first."""
        spec = self._augment(input_shape)
        return [None, spec] if self.augment == "auto" and spec is not None else [spec]

    def choose(
        self, classifier: Classifier, x: Tensor, y: Tensor, targets: Tensor | None
    ) -> tuple[str | None, int, dict[str | None, float]]:
        """``(augmentation, epochs, held-out agreement per recipe)`` for a copy trained on these answers.

        Uses only the answers (no query): a random :attr:`holdout` share is set aside, each
        recipe trains on the rest with early stopping on its agreement with ``y`` there, and
        the simplest within one standard error of the best is chosen. With too few answers to
        hold out :data:`MIN_HELD_OUT`, the default: the full schedule and the last recipe, with
        an empty agreement record.
        """
        recipes = self._recipes(classifier.input_shape)
        held = int(len(x) * self.holdout)
        if held < MIN_HELD_OUT:
            return recipes[-1], self._epochs(len(x), self.epochs, self.steps), {}
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        val, rest = order[:held], order[held:]
        cap = self._epochs(len(rest), self.epochs, self.steps)
        patience = max(2, -(-cap // 4))
        scores: list[tuple[float, int]] = []
        for recipe in recipes:
            track = _EarlyStop(x[val], y[val], patience)
            self._fit(classifier, x[rest], y[rest], None if targets is None else targets[rest], cap, recipe, track)
            scores.append((track.best, track.at))
        i = one_standard_error(scores, held)
        return recipes[i], scores[i][1], {r: a for r, (a, _) in zip(recipes, scores, strict=True)}

    def _copy(
        self, classifier: Classifier, x: Tensor, y: Tensor, targets: Tensor | None, log: list[str] | None = None
    ) -> nn.Module:
        """The final surrogate on all the answers, with the recipe :meth:`choose` picks (appended to ``log``)."""
        augment, epochs, _ = self.choose(classifier, x, y, targets)
        if log is not None:
            log.append(f"{augment or 'no augmentation'}, {epochs} epochs")
        return self._fit(classifier, x, y, targets, epochs, augment)

    def train_copy(self, like: Classifier, x: Tensor, y: Tensor) -> TorchClassifier:
        """A surrogate trained on labelled ``(x, y)`` with this attack's recipe, without querying ``like``.

        ``like`` only gives the input shape, classes and bounds. With the true labels of the
        pool this is the independently trained surrogate a stolen copy is compared with (e.g.
        as a stepping stone to transfer attacks).
        """
        trained = self._copy(like, x, y, None)
        return TorchClassifier(trained, like.input_shape, like.num_classes, bounds=like.bounds)

    def _adaptive(
        self, classifier: Classifier, pool: Tensor, n: int, g: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Queries chosen round by round by a gradient bandit over clusters of the pool (Orekondy et al.)."""
        from sklearn.cluster import KMeans

        c = min(self.actions, len(pool))
        flat = pool.reshape(len(pool), -1).double().numpy()
        cluster = torch.as_tensor(KMeans(c, n_init=3, random_state=self.seed).fit_predict(flat), dtype=torch.long)
        unused = [torch.nonzero(cluster == a).flatten() for a in range(c)]
        unused = [u[torch.randperm(len(u), generator=g)] for u in unused]
        h = torch.zeros(c, dtype=torch.float64)
        xs: list[Tensor] = []
        ys: list[Tensor] = []
        ts: list[Tensor] = []
        history: list[Tensor] = []
        baseline, seen = 0.0, 0
        interim: nn.Module | None = None
        size = -(-n // self.rounds)
        while sum(len(b) for b in xs) < n:
            alive = torch.tensor([len(u) > 0 for u in unused])
            policy = torch.softmax(h.masked_fill(~alive, -torch.inf), dim=0)
            m = min(size, n - sum(len(b) for b in xs))
            picks = torch.multinomial(policy, m, replacement=True, generator=g)
            chosen, acts = [], []
            for a in picks.tolist():
                if len(unused[a]) == 0:
                    a = int(torch.nonzero(torch.tensor([len(u) > 0 for u in unused])).flatten()[0])
                chosen.append(int(unused[a][0]))
                unused[a] = unused[a][1:]
                acts.append(a)
            x = pool[torch.tensor(chosen)]
            y, targets = self._ask(classifier, x)
            rows = targets if targets is not None else F.one_hot(y, classifier.num_classes).float()
            top2 = rows.topk(min(2, rows.shape[1]), dim=1).values
            certainty = top2[:, 0] - top2[:, -1]
            mean = torch.cat([rows, *ts]).mean(dim=0) if ts else rows.mean(dim=0)
            diversity = (rows - mean).norm(dim=1)
            if interim is None:
                loss = torch.zeros(len(x))
            else:
                with torch.no_grad():
                    loss = -(rows * torch.log_softmax(interim(x), dim=1)).sum(dim=1)
            parts = torch.stack([certainty, diversity, loss], dim=1).double()
            history.append(parts)
            everything = torch.cat(history)
            std = everything.std(dim=0).clamp_min(1e-8) if len(everything) > 1 else torch.ones(3, dtype=torch.float64)
            reward = ((parts - everything.mean(dim=0)) / std).sum(dim=1)
            for a, r in zip(acts, reward.tolist(), strict=True):
                seen += 1
                baseline += (r - baseline) / seen
                grad = -policy.clone()
                grad[a] += 1.0
                h += BANDIT_STEP * (r - baseline) * grad
            xs.append(x)
            ys.append(y)
            ts.append(rows)
            all_t = torch.cat(ts) if targets is not None else None
            interim = self._train(
                classifier, torch.cat(xs), torch.cat(ys), all_t, max(1, self.epochs // 5), self.steps // 5
            )
        return torch.cat(xs), torch.cat(ys), torch.cat(ts) if check_access_mode(self.access)[0] != "labels" else None

    def _needs(self) -> Access:
        return Access.LABELS if check_access_mode(self.access)[0] == "labels" else Access.SCORES

    def steal(
        self,
        classifier: Classifier,
        budget: int | Sequence[int],
        pool: Tensor | None = None,
        test: Dataset | None = None,
    ) -> ExtractionResult:
        """Query ``classifier`` on inputs from ``pool`` and train a surrogate at each budget."""
        classifier.require(self._needs(), f"KnockoffNets with {self.access} access")
        budgets = _budgets(budget)
        if pool is None or len(pool) == 0:
            raise InputError("KnockoffNets needs a non-empty query pool (see query_pool)")
        truth = victim_labels(classifier, test.x) if test is not None else None
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(self.seed)
        n = min(budgets[-1], len(pool))
        q0 = classifier.queries
        if self.sampling == "random":
            x = pool[torch.randperm(len(pool), generator=g)[:n]]
            y, targets = self._ask(classifier, x)
        else:
            x, y, targets = self._adaptive(classifier, pool, n, g)
        queries = classifier.queries - q0
        recipes: list[str] = []

        def copy_at(b: int) -> tuple[Classifier, int]:
            m = min(b, n)
            trained = self._copy(classifier, x[:m], y[:m], None if targets is None else targets[:m], recipes)
            return TorchClassifier(trained, classifier.input_shape, classifier.num_classes, bounds=classifier.bounds), m

        curve, surrogate, seconds = self._curve(budgets, t0, copy_at, test, truth)
        return ExtractionResult(surrogate, queries, curve, "knockoff", self.access, seconds, recipes)


class EquationSolving(ExtractionAttack):
    """Equation-solving extraction of a (multinomial) logistic model (Tramèr et al., USENIX Security 2016).

    For ``p = softmax(W x + b)``, ``log p_i - mean_j log p_j = (w_i - w̄)·x + (b_i - b̄)``: each
    query with confidence scores gives one linear equation per class in the ``d + 1``
    unknowns of each class, so ``d + 1`` queries at random points of the input domain (all
    classes answered at once; Tramèr et al. count ``(d + 1)·k`` unknowns) determine the
    model exactly; a binary ``LogisticRegression`` is the case ``k = 2``. With fewer queries
    the minimum-norm least-squares solution is used. The surrogate is the linear softmax
    model solved for; on a non-linear victim it is only the best linear fit of its
    log-probabilities, and its fidelity says so.
    """

    requires: ClassVar[Access] = Access.SCORES

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_seed(seed)

    def steal(
        self,
        classifier: Classifier,
        budget: int | Sequence[int],
        pool: Tensor | None = None,
        test: Dataset | None = None,
    ) -> ExtractionResult:
        """Solve for a linear softmax model from at most ``d + 1`` score queries (``pool`` is not used)."""
        classifier.require(Access.SCORES, "EquationSolving")
        budgets = _budgets(budget)
        truth = victim_labels(classifier, test.x) if test is not None else None
        t0 = time.perf_counter()
        d = int(np.prod(classifier.input_shape))
        n = min(budgets[-1], d + 1)
        g = torch.Generator().manual_seed(self.seed)
        lo, hi = classifier.bounds
        x = lo + (hi - lo) * torch.rand((n, *classifier.input_shape), generator=g)
        q0 = classifier.queries
        p = classifier.predict_scores(x).double().numpy()
        queries = classifier.queries - q0
        tiny = np.finfo(np.float64).tiny
        z = np.log(np.clip(p, tiny, None))
        z -= z.mean(axis=1, keepdims=True)
        a = np.hstack([x.reshape(n, -1).double().numpy(), np.ones((n, 1))])

        def copy_at(b: int) -> tuple[Classifier, int]:
            m = min(b, n)
            theta, *_ = np.linalg.lstsq(a[:m], z[:m], rcond=None)
            return linear_classifier(theta, classifier), m

        curve, surrogate, seconds = self._curve(budgets, t0, copy_at, test, truth)
        return ExtractionResult(surrogate, queries, curve, "equation_solving", "probabilities", seconds)


def linear_classifier(theta: np.ndarray, like: Classifier) -> TorchClassifier:
    """A softmax-linear classifier with weights ``theta[:-1]`` (``[d, k]``) and biases ``theta[-1]``."""
    d, k = theta.shape[0] - 1, theta.shape[1]
    linear = nn.Linear(d, k).double()
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(theta[:-1].T))
        linear.bias.copy_(torch.as_tensor(theta[-1]))
    model = nn.Sequential(nn.Flatten(), _Float64(linear))
    return TorchClassifier(model, like.input_shape, like.num_classes, bounds=like.bounds)


class _Float64(nn.Module):
    """Evaluate a float64 layer on float32 inputs (so a solved model keeps its precision)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.inner(x.double())
        return out.float()


#: Extraction attacks by the name a config uses.
EXTRACTION_ATTACKS: Registry[ExtractionAttack] = Registry("extraction attack")
EXTRACTION_ATTACKS.add("knockoff", KnockoffNets)
EXTRACTION_ATTACKS.add("equation_solving", EquationSolving)


# -- query pools -------------------------------------------------------------------------


def _resize(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Images ``[N, C', H', W']`` in [0, 1] resized (area when shrinking, bilinear when growing) to ``shape``."""
    c, h, w = shape
    if x.shape[1] != c:
        x = x.mean(dim=1, keepdim=True).expand(-1, c, -1, -1) if c in (1, 3) else x.mean(dim=1, keepdim=True)
    if x.shape[2] >= h and x.shape[3] >= w:
        out = F.interpolate(x, size=(h, w), mode="area")
    else:
        out = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return out.clamp(0.0, 1.0).contiguous()


def _top_up(x: Tensor, n: int, g: torch.Generator, bounds: tuple[float, float]) -> Tensor:
    """``x`` with randomly translated copies of its images appended up to ``n`` rows (``x`` itself if enough).

    An attacker whose natural images are fewer than its budget moves them by up to
    :data:`POOL_SHIFT` pixels (at most a tenth of the side) to make new queries; non-image
    pools are returned as they are.
    """
    if len(x) >= n or len(x) == 0 or x.dim() != 4:
        return x[:n]
    shift = max(1, min(POOL_SHIFT, min(x.shape[2:]) // 10))
    extra = x[torch.randint(len(x), (n - len(x),), generator=g)]
    return torch.cat([x, augment_batch(extra, f"shift:{shift}", g, bounds)])


def _photo_crops(shape: Sequence[int], n: int, g: torch.Generator) -> Tensor:
    """``n`` random square crops of scikit-learn's two bundled photographs, resized to ``shape``."""
    from sklearn.datasets import load_sample_images

    photos = [
        torch.as_tensor(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1) for im in load_sample_images().images
    ]
    out = []
    for _ in range(n):
        ph = photos[int(torch.randint(len(photos), (1,), generator=g))]
        size = int(torch.randint(24, min(ph.shape[1:]) // 2, (1,), generator=g))
        top = int(torch.randint(ph.shape[1] - size + 1, (1,), generator=g))
        left = int(torch.randint(ph.shape[2] - size + 1, (1,), generator=g))
        out.append(_resize(ph[None, :, top : top + size, left : left + size], shape))
    return torch.cat(out) if out else torch.empty(0, *shape)


def query_pool(
    name: str,
    input_shape: Sequence[int],
    n: int,
    seed: int = 0,
    bounds: tuple[float, float] = (0.0, 1.0),
    held_out: Tensor | None = None,
) -> Tensor:
    """Up to ``n`` attacker queries of ``input_shape`` in ``bounds``, all offline.

    ``in_distribution``: ``held_out`` (data of the victim's distribution the attacker holds;
    the upper bound); ``other``: the other built-in image set resized (digits upsampled for a
    28x28 victim, MNIST downsampled otherwise); ``photos``: random crops of scikit-learn's
    bundled sample photographs; ``noise``: uniform noise. Images only for ``other`` and
    ``photos``; an unknown name or a pool that does not fit the input raises ConfigError.
    When ``held_out`` or the other image set holds fewer than ``n`` images, randomly
    translated copies of them fill the pool (images only; see :func:`_top_up`).
    """
    shape = tuple(int(s) for s in input_shape)
    g = torch.Generator().manual_seed(seed)
    lo, hi = bounds
    if name == "in_distribution":
        if held_out is None:
            raise ConfigError("the in_distribution query pool needs held-out data of the victim's distribution")
        if tuple(held_out.shape[1:]) != shape:
            raise InputError(f"held-out data has shape {tuple(held_out.shape[1:])}, the victim expects {shape}")
        return _top_up(held_out[torch.randperm(len(held_out), generator=g)[:n]], n, g, bounds)
    if name == "noise":
        return lo + (hi - lo) * torch.rand((n, *shape), generator=g)
    if name not in QUERY_POOLS:
        raise ConfigError(f"unknown query pool {name!r}; accepted: {', '.join(QUERY_POOLS)}")
    if len(shape) != 3:
        raise ConfigError(f"query pool {name!r} needs image inputs [C, H, W], got input shape {shape}")
    if name == "photos":
        x = _photo_crops(shape, n, g)
    else:
        from sparring.data.builtin import digits, mnist5k

        other = digits() if shape[1:] == (28, 28) else mnist5k()
        src = other.x[torch.randperm(len(other), generator=g)[:n]]
        x = _top_up(_resize(src, shape), n, g, (0.0, 1.0))
    return lo + (hi - lo) * x
