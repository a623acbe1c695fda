"""Clean-label targeted poisoning in the transfer-learning setting.

The attacker wants one test image (the *target*) classified as a chosen *base* class. It
perturbs a few images of the base class (the *bases*) inside a small Linf ball so that
their features, under the victim's (or a surrogate's) feature extractor, sit on the
target's features; the poisons keep their correct labels, so a person checking labels
finds nothing. When the victim trains its head on data that includes the poisons, the
target lands on the base side of the boundary.

Three ways to craft the poisons:

- :class:`FeatureCollision` — Shafahi et al., "Poison Frogs! Targeted Clean-Label Poisoning
  Attacks on Neural Networks", NeurIPS 2018: each poison alone collides with the target
  (forward-backward splitting on feature distance plus a proximity term).
- :class:`ConvexPolytope` — Zhu et al., "Transferable Clean-Label Poisoning Attacks on Deep
  Neural Nets", ICML 2019: the target is placed inside the convex hull of the poisons'
  features, for each model of an ensemble, with coefficients learnt on the simplex.
- :class:`BullseyePolytope` — Aghakhani et al., "Bullseye Polytope: A Scalable Clean-Label
  Poisoning Attack with Improved Transferability", IEEE EuroS&P 2021: the target is placed at
  the *centre* of the poisons' features (fixed equal coefficients).

:func:`evaluate_clean_label` runs the whole experiment on a
:class:`~sparring.transfer.TransferSetup`: it picks targets and bases (the same for
every attack, given the seed), builds the attacker's extractors (the teacher in the white-box
case, surrogate teachers trained with other seeds in the gray-box case), crafts, retrains the
victim per target (only the head, ``"frozen"``, or every layer, ``"end_to_end"``) and counts
the targets that the poisoned victim assigns to the base class.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from sparring.data import Dataset, PoisonedDataset
from sparring.errors import (
    ConfigError,
    InputError,
    check_bounds,
    check_choice,
    check_class,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_seed,
)
from sparring.models.hooks import layer_features, param_layers
from sparring.params import Params
from sparring.progress import bar
from sparring.train import TrainConfig, fit
from sparring.transfer import TransferSetup, student_from_teacher

#: A differentiable feature map ``x [N, *shape] -> features [N, D]`` of one attacker model.
Extractor = Callable[[Tensor], Tensor]

TRAINING = ("frozen", "end_to_end")
KNOWLEDGE = ("white_box", "gray_box")
BASE_SELECTION = ("random", "nearest")


class _CleanLabel(Params):
    """Parameters and checks shared by the three crafting methods."""

    name = "clean_label"

    def __init__(
        self,
        n_poisons: int,
        eps: float,
        steps: int,
        lr: float,
        seed: int,
        bounds: tuple[float, float],
        progress: bool | None,
    ) -> None:
        self.n_poisons = check_positive_int("n_poisons", n_poisons)
        self.eps = check_positive("eps", eps)
        self.steps = check_positive_int("steps", steps)
        self.lr = check_positive("lr", lr)
        self.seed = check_seed(seed)
        self.bounds = check_bounds(bounds)
        self.progress = progress

    # -- crafting -------------------------------------------------------------------
    def craft(self, extractors: Sequence[Extractor], target_x: Tensor, base_x: Tensor) -> Tensor:
        """Poisons ``[K, *shape]`` from the bases ``base_x [K, *shape]`` (``K >= 1``).

        ``target_x`` is one target ``[*shape]`` or a batch ``[T, *shape]`` whose mean
        feature is the aim. Every poison stays within ``eps`` (Linf) of its base and in
        ``bounds``. ``extractors`` are the attacker's feature maps (see
        :func:`sparring.models.hooks.layer_features`).
        """
        extractors = list(extractors)
        if not extractors or not all(callable(f) for f in extractors):
            raise InputError("extractors must be a non-empty sequence of feature maps x -> [N, D]")
        if not isinstance(base_x, Tensor) or base_x.dim() < 2 or len(base_x) == 0:
            raise InputError(f"base_x must be a non-empty batch [K, *shape], got {_shape(base_x)}")
        if not isinstance(target_x, Tensor):
            raise InputError(f"target_x must be a tensor, got {type(target_x).__name__}")
        if tuple(target_x.shape) == tuple(base_x.shape[1:]):
            target_x = target_x.unsqueeze(0)
        if tuple(target_x.shape[1:]) != tuple(base_x.shape[1:]) or len(target_x) == 0:
            raise InputError(
                f"target_x {tuple(target_x.shape)} does not match the bases' sample shape {tuple(base_x.shape[1:])}"
            )
        if not (torch.isfinite(base_x).all() and torch.isfinite(target_x).all()):
            raise InputError("base_x and target_x must be finite")
        base = base_x.detach().float()
        with torch.no_grad():
            targets = [f(target_x.detach().float()).mean(0) for f in extractors]
        poisons = self._craft(extractors, targets, base)
        return self._project(poisons, base).detach()

    def _craft(self, extractors: list[Extractor], targets: list[Tensor], base: Tensor) -> Tensor:
        raise NotImplementedError

    def _project(self, x: Tensor, base: Tensor) -> Tensor:
        lo, hi = self.bounds
        return torch.minimum(torch.maximum(x, base - self.eps), base + self.eps).clamp(lo, hi)

    # -- the training-set verb ------------------------------------------------------------
    def poison(
        self,
        train: Dataset,
        extractors: Sequence[Extractor],
        target_x: Tensor,
        base_x: Tensor,
        base_class: int,
    ) -> PoisonedDataset:
        """``train`` plus the poisons crafted from ``base_x``, labelled ``base_class`` (their true class).

        The poisons are appended (``poison_mask`` marks them; ``original_y`` equals ``y``:
        the labels are clean). ``target`` of the result is ``base_class``, the class the
        attacker wants the target image to receive.
        """
        check_class("base_class", base_class, train.num_classes)
        if tuple(base_x.shape[1:]) != train.input_shape:
            raise InputError(f"bases of shape {tuple(base_x.shape[1:])} do not fit inputs {train.input_shape}")
        poisons = self.craft(extractors, target_x, base_x)
        return append_poisons(train, poisons, base_class, f"{train.name}-{self.name}")


def _shape(x: object) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__


def append_poisons(train: Dataset, poisons: Tensor, base_class: int, name: str | None = None) -> PoisonedDataset:
    """``train`` with ``poisons`` appended under the clean label ``base_class``; ``poison_mask`` marks them."""
    if tuple(poisons.shape[1:]) != train.input_shape:
        raise InputError(f"poisons of shape {tuple(poisons.shape[1:])} do not fit inputs {train.input_shape}")
    k = len(poisons)
    y = torch.cat([train.y, torch.full((k,), base_class, dtype=torch.long)])
    mask = torch.cat([torch.zeros(len(train), dtype=torch.bool), torch.ones(k, dtype=torch.bool)])
    return PoisonedDataset(
        torch.cat([train.x, poisons.to(train.x.dtype)]),
        y,
        list(train.classes),
        name or train.name,
        poison_mask=mask,
        original_y=y.clone(),
        target=base_class,
    )


def _relative_distances(extractors: list[Extractor], targets: list[Tensor], x: Tensor) -> Tensor:
    """Per poison, squared feature distance to the target over the target's squared norm, averaged over models."""
    total = torch.zeros(len(x))
    for f, t in zip(extractors, targets, strict=True):
        total = total + ((f(x) - t) ** 2).sum(1) / (t.pow(2).sum() + 1e-12)
    return total / len(extractors)


class FeatureCollision(_CleanLabel):
    """Feature collision (Shafahi et al., "Poison Frogs!", NeurIPS 2018).

    Every poison ``p`` minimises ``||f(p) - f(t)||^2 / ||f(t)||^2 + beta * ||p - b||^2 / d``
    (``d`` input dimensions; averaged over the extractors if several are given) by
    forward-backward splitting: a gradient step on the feature term, then the closed-form
    proximal step of the proximity term. As in the paper, a step that raises a poison's
    objective is undone and that poison's step size halved. The poisons are also kept
    within ``eps`` (Linf) of their bases and in ``bounds``.
    """

    name = "feature_collision"

    def __init__(
        self,
        n_poisons: int = 5,
        eps: float = 0.1,
        steps: int = 200,
        lr: float = 0.5,
        beta: float = 0.1,
        seed: int = 0,
        bounds: tuple[float, float] = (0.0, 1.0),
        progress: bool | None = None,
    ) -> None:
        super().__init__(n_poisons, eps, steps, lr, seed, bounds, progress)
        self.beta = check_nonnegative("beta", beta)

    def _objective(self, extractors: list[Extractor], targets: list[Tensor], x: Tensor, base: Tensor) -> Tensor:
        d = base[0].numel()
        return _relative_distances(extractors, targets, x) + self.beta * (x - base).flatten(1).pow(2).sum(1) / d

    def _craft(self, extractors: list[Extractor], targets: list[Tensor], base: Tensor) -> Tensor:
        d = base[0].numel()
        view = (-1,) + (1,) * (base.dim() - 1)
        lr = torch.full((len(base),), self.lr)
        x = base.clone()
        with torch.no_grad():
            obj = self._objective(extractors, targets, x, base)
        for _ in bar(range(self.steps), self.name, total=self.steps, enabled=self.progress):
            xg = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(_relative_distances(extractors, targets, xg).sum(), xg)
            step = lr.view(view)
            forward = x - step * grad
            shrink = 2.0 * self.beta * step / d
            candidate = self._project((forward + shrink * base) / (1.0 + shrink), base)
            with torch.no_grad():
                new_obj = self._objective(extractors, targets, candidate, base)
            better = new_obj <= obj
            x = torch.where(better.view(view), candidate, x)
            obj = torch.where(better, new_obj, obj)
            lr = torch.where(better, lr, lr * 0.5)
        return x


def _simplex_projection(v: Tensor) -> Tensor:
    """Euclidean projection of each row of ``v`` onto the probability simplex (Duchi et al., ICML 2008)."""
    k = v.shape[-1]
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = u.cumsum(-1) - 1.0
    ind = torch.arange(1, k + 1, dtype=v.dtype)
    rho = ((u - css / ind) > 0).sum(-1, keepdim=True).clamp(min=1)
    theta = css.gather(-1, rho - 1) / rho.to(v.dtype)
    return (v - theta).clamp(min=0.0)


class _Polytope(_CleanLabel):
    """Adam on the poisons against the distance of the target to a combination of their features."""

    learn_coefficients = False

    def __init__(
        self,
        n_poisons: int = 5,
        eps: float = 0.1,
        steps: int = 200,
        lr: float = 0.02,
        seed: int = 0,
        bounds: tuple[float, float] = (0.0, 1.0),
        progress: bool | None = None,
    ) -> None:
        super().__init__(n_poisons, eps, steps, lr, seed, bounds, progress)

    def _loss(self, feats: Tensor, target: Tensor, coeffs: Tensor) -> Tensor:
        raise NotImplementedError

    def _craft(self, extractors: list[Extractor], targets: list[Tensor], base: Tensor) -> Tensor:
        k = len(base)
        coeffs = [torch.full((k,), 1.0 / k) for _ in extractors]
        x = base.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=self.lr, betas=(0.9, 0.999))
        for _ in bar(range(self.steps), self.name, total=self.steps, enabled=self.progress):
            opt.zero_grad(set_to_none=True)
            feats = [f(x) for f in extractors]
            if self.learn_coefficients:
                coeffs = [
                    _update_coefficients(fe.detach(), t, c) for fe, t, c in zip(feats, targets, coeffs, strict=True)
                ]
            loss = torch.stack([self._loss(fe, t, c) for fe, t, c in zip(feats, targets, coeffs, strict=True)]).mean()
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.copy_(self._project(x, base))
        self.coefficients_ = [c.clone() for c in coeffs]
        return x.detach()


def _update_coefficients(feats: Tensor, target: Tensor, coeffs: Tensor, iters: int = 5) -> Tensor:
    """A few projected-gradient steps on ``min_c ||feats^T c - target||^2`` over the simplex (step 1/L)."""
    gram = feats @ feats.T
    lipschitz = float(torch.linalg.matrix_norm(gram, ord=2)) + 1e-12
    ft = feats @ target
    c = coeffs
    for _ in range(iters):
        c = _simplex_projection(c - (gram @ c - ft) / lipschitz)
    return c


class ConvexPolytope(_Polytope):
    """Convex polytope (Zhu et al., "Transferable Clean-Label Poisoning Attacks on Deep Neural Nets", ICML 2019).

    For each extractor ``f_i`` the loss is ``||f_i(t) - sum_j c_ij f_i(p_j)||^2 / (2 ||f_i(t)||^2)``
    with coefficients ``c_i`` on the simplex: each step first improves the coefficients
    (projected gradient, step 1/L) and then takes an Adam step on the poisons, which are
    projected back into the ``eps`` (Linf) ball around their bases. The loss is averaged
    over the extractors (the paper's ensemble of substitute networks). The learnt
    coefficients are kept in ``coefficients_`` after :meth:`craft`.
    """

    name = "convex_polytope"
    learn_coefficients = True

    def _loss(self, feats: Tensor, target: Tensor, coeffs: Tensor) -> Tensor:
        return 0.5 * (coeffs @ feats - target).pow(2).sum() / (target.pow(2).sum() + 1e-12)


class BullseyePolytope(_Polytope):
    """Bullseye polytope (Aghakhani et al., IEEE EuroS&P 2021).

    Like the convex polytope but with the coefficients fixed at ``1/K``: each extractor's
    loss is ``||f_i(t) - mean_j f_i(p_j)|| / ||f_i(t)||`` (not squared), averaged over the
    ensemble, so the target sits at the centre of the poisons' features. Adam steps on the
    poisons, each projected into the ``eps`` (Linf) ball around its base.
    """

    name = "bullseye_polytope"

    def _loss(self, feats: Tensor, target: Tensor, coeffs: Tensor) -> Tensor:
        return (coeffs @ feats - target).norm() / (target.norm() + 1e-12)


CleanLabelAttack = FeatureCollision | ConvexPolytope | BullseyePolytope


# -- the experiment -----------------------------------------------------------------------


@dataclass
class CleanLabelResult:
    """Outcome of :func:`evaluate_clean_label` (one victim retrained per target).

    ``success[i]`` is True when the victim retrained with target ``i``'s poisons assigns
    that target (``setup.test`` sample ``target_index[i]``) to ``base_class``;
    ``predictions[i]`` is its label. ``clean_accuracy_before`` is the test accuracy of the
    victim retrained the same way without poisons, ``clean_accuracy_after`` the mean over
    the poisoned victims. ``craft_seconds`` is the time spent crafting (all targets),
    ``seconds`` the whole run.
    """

    attack: str
    training: str
    knowledge: str
    target_class: int
    base_class: int
    n_poisons: int
    eps: float
    success_rate: float
    success: Tensor
    predictions: Tensor
    target_index: Tensor
    base_index: Tensor
    clean_accuracy_before: float
    clean_accuracy_after: float
    max_linf: float
    craft_seconds: float
    seconds: float

    @property
    def seconds_per_target(self) -> float:
        """Crafting seconds per target."""
        return self.craft_seconds / max(1, len(self.success))


def select_targets_and_bases(
    setup: TransferSetup,
    target_class: int,
    base_class: int,
    n_targets: int,
    n_poisons: int,
    seed: int = 0,
    base_selection: str = "random",
) -> tuple[Tensor, Tensor]:
    """Seeded choice of targets and bases, identical for every attack given the arguments.

    Targets: ``n_targets`` test images of ``target_class`` that ``setup.student``
    classifies correctly (indices into ``setup.test``). Bases: for each target,
    ``n_poisons`` distinct images of ``base_class`` from the attacker's public data
    ``setup.teacher_data`` (indices, shape ``[n_targets, n_poisons]``): a seeded random
    choice (``base_selection="random"``) or the ones nearest to the target in input space
    (``"nearest"``, Euclidean distance of the pixels: needs no model, so it is the same
    in the white- and gray-box settings).
    """
    check_choice("base_selection", base_selection, BASE_SELECTION)
    check_class("target_class", target_class, setup.test.num_classes)
    check_class("base_class", base_class, setup.test.num_classes)
    if target_class == base_class:
        raise ConfigError(f"target_class and base_class must differ, both are {target_class}")
    check_positive_int("n_targets", n_targets)
    check_positive_int("n_poisons", n_poisons)
    g = torch.Generator().manual_seed(seed)
    candidates = torch.nonzero(setup.test.y == target_class).flatten()
    correct = setup.student.predict_labels(setup.test.x[candidates]) == target_class
    candidates = candidates[correct]
    if len(candidates) < n_targets:
        raise InputError(
            f"only {len(candidates)} test images of class {target_class} are classified correctly; "
            f"n_targets must be <= {len(candidates)}, got {n_targets}"
        )
    targets = candidates[torch.randperm(len(candidates), generator=g)[:n_targets]]
    pool = torch.nonzero(setup.teacher_data.y == base_class).flatten()
    if len(pool) < n_poisons:
        raise InputError(
            f"the public data has {len(pool)} images of class {base_class}; n_poisons must be <= {len(pool)}"
        )
    if base_selection == "random":
        bases = torch.stack([pool[torch.randperm(len(pool), generator=g)[:n_poisons]] for _ in range(n_targets)])
    else:
        dist = torch.cdist(setup.test.x[targets].flatten(1), setup.teacher_data.x[pool].flatten(1))
        bases = pool[dist.topk(n_poisons, dim=1, largest=False).indices]
    return targets, bases


def _reinitialise(model: nn.Module, seed: int) -> nn.Module:
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for m in fresh.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
    for p in fresh.parameters():
        p.requires_grad_(True)
    return fresh


def train_surrogates(
    setup: TransferSetup, n: int = 2, epochs: int = 6, seed: int = 1000, progress: bool | None = False
) -> list[nn.Module]:
    """Gray-box surrogates: ``n`` copies of the teacher's architecture trained on the public data with other seeds.

    Model ``i`` is re-initialised and trained from seed ``seed + i``; none shares the
    teacher's weights.
    """
    check_positive_int("n", n)
    check_positive_int("epochs", epochs)
    out = []
    for i in range(n):
        model = _reinitialise(setup.teacher.model, seed + i)
        cfg = TrainConfig(epochs=epochs, seed=seed + i, progress=progress)
        out.append(fit(model, setup.teacher_data, cfg, desc=f"surrogate {i}").model)
    return out


class Victim:
    """The victim's retraining procedure in :func:`evaluate_clean_label`.

    ``"frozen"``: a student of ``setup.teacher`` with every layer up to ``setup.layer``
    frozen gets a fresh head (seeded) trained on the private data plus the poisons. When
    only the head is trainable it is trained on cached head inputs (the frozen layers'
    output in eval mode), which gives the same model much faster. ``"end_to_end"``: a
    fresh-headed copy of the teacher fine-tunes every layer.
    """

    def __init__(self, setup: TransferSetup, training: str, epochs: int, lr: float, seed: int) -> None:
        self.setup = setup
        self.training = check_choice("training", training, TRAINING)
        self.epochs = check_positive_int("epochs", epochs)
        self.lr = check_positive("lr", lr)
        self.seed = seed
        layers = param_layers(setup.teacher.model)
        if setup.layer not in layers:
            raise InputError(f"setup.layer {setup.layer!r} is not a parameter layer of the teacher ({layers})")
        self.n_frozen = layers.index(setup.layer) + 1 if training == "frozen" else 0
        self.head_only = self.n_frozen == len(layers) - 1
        self._cache: Tensor | None = None

    def _student(self) -> nn.Module:
        k = self.setup.test.num_classes
        return student_from_teacher(self.setup.teacher.model, k, self.n_frozen, seed=self.seed)

    @staticmethod
    def _head_inputs(model: nn.Module, x: Tensor) -> Tensor:
        head = dict(model.named_modules())[param_layers(model)[-1]]
        captured: list[Tensor] = []
        handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
        try:
            with torch.no_grad():
                for batch in x.split(500):
                    model(batch)
        finally:
            handle.remove()
        return torch.cat(captured)

    def train(self, poisons: Tensor | None, base_class: int) -> nn.Module:
        """The victim trained on the private data plus ``poisons`` (labelled ``base_class``), in eval mode."""
        private = self.setup.student_data
        data: Dataset = private if poisons is None else append_poisons(private, poisons, base_class)
        cfg = TrainConfig(epochs=self.epochs, lr=self.lr, seed=self.seed, progress=False)
        student = self._student().eval()
        if not self.head_only:
            return fit(student, data, cfg, desc="victim").model
        if self._cache is None:
            self._cache = self._head_inputs(student, private.x)
        feats = self._cache
        if poisons is not None:
            feats = torch.cat([feats, self._head_inputs(student, poisons)])
        head = dict(student.named_modules())[param_layers(student)[-1]]
        fit(head, Dataset(feats, data.y, list(data.classes), "head-inputs"), cfg, desc="victim head")
        return student.eval()


def head_input_features(model: nn.Module) -> Extractor:
    """A differentiable map ``x -> input of the model's head`` (its last parameter layer), flattened to ``[N, D]``.

    This is the representation a retrained linear head sees (for the zoo's ``small_cnn``
    the ReLU of ``fc1``), where Shafahi et al. (NeurIPS 2018) and Aghakhani et al.
    (EuroS&P 2021) place their collisions. Uses detached parameters in eval mode; the
    model is not changed.
    """
    head = dict(model.named_modules())[param_layers(model)[-1]]
    state = {k: v.detach() for k, v in model.named_parameters()}
    state.update(dict(model.named_buffers()))

    def features(x: Tensor) -> Tensor:
        captured: list[Tensor] = []
        handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            functional_call(model, state, (x,))
        finally:
            handle.remove()
        return captured[0].flatten(1)

    return features


def _predict(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(b).argmax(1) for b in x.split(500)])


def evaluate_clean_label(
    attack: CleanLabelAttack | None,
    setup: TransferSetup,
    *,
    target_class: int,
    base_class: int,
    n_targets: int = 20,
    n_poisons: int | None = None,
    training: str = "frozen",
    knowledge: str = "white_box",
    surrogates: Sequence[nn.Module] | None = None,
    feature_layer: str | None = None,
    base_selection: str = "random",
    n_surrogates: int = 2,
    surrogate_epochs: int = 6,
    epochs: int = 10,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool | None = None,
) -> CleanLabelResult:
    """Craft poisons for ``n_targets`` targets, retrain the victim per target, count successes.

    ``attack=None`` is the control: the unperturbed bases are inserted. Targets and bases
    come from :func:`select_targets_and_bases` (``n_poisons`` defaults to the attack's;
    ``base_selection`` "random" or "nearest"),
    so every attack sees the same ones. ``knowledge="white_box"`` crafts on the teacher's
    features at ``feature_layer`` (default ``setup.layer``, the last layer the victim's
    student freezes; :func:`head_input_features` gives the head's input instead when
    crafting by hand); ``"gray_box"`` on
    ``surrogates`` (default: :func:`train_surrogates` with ``n_surrogates`` models and
    seeds ``seed + 1000 + i``), never on the teacher. FC uses the extractors' mean
    objective; CP and BP treat them as an ensemble. ``training`` selects the victim's
    retraining (see :class:`Victim`), ``epochs`` and ``lr`` its schedule.
    """
    start = time.perf_counter()
    check_choice("knowledge", knowledge, KNOWLEDGE)
    if attack is not None and not isinstance(attack, _CleanLabel):
        raise ConfigError(f"attack must be FeatureCollision, ConvexPolytope, BullseyePolytope or None, got {attack!r}")
    k_poisons = n_poisons if n_poisons is not None else (attack.n_poisons if attack is not None else 5)
    victim = Victim(setup, training, epochs, lr, seed)
    targets, bases = select_targets_and_bases(
        setup, target_class, base_class, n_targets, k_poisons, seed, base_selection
    )
    if knowledge == "white_box":
        models: Sequence[nn.Module] = [setup.teacher.model]
    else:
        models = (
            surrogates
            if surrogates is not None
            else train_surrogates(setup, n_surrogates, surrogate_epochs, seed + 1000)
        )
        if len(models) == 0:
            raise InputError("gray-box evaluation needs at least one surrogate model")
    extractors = [layer_features(m, feature_layer or setup.layer) for m in models]
    clean = victim.train(None, base_class)
    acc_before = float((_predict(clean, setup.test.x) == setup.test.y).float().mean())
    success, preds, accs = [], [], []
    craft_seconds, max_linf = 0.0, 0.0
    label = attack.name if attack is not None else "control"
    for i in bar(range(n_targets), label, total=n_targets, enabled=progress):
        t_x = setup.test.x[targets[i]]
        b_x = setup.teacher_data.x[bases[i]]
        t0 = time.perf_counter()
        poisons = b_x.clone() if attack is None else attack.craft(extractors, t_x, b_x)
        craft_seconds += time.perf_counter() - t0
        max_linf = max(max_linf, float((poisons - b_x).abs().max()))
        model = victim.train(poisons, base_class)
        pred = _predict(model, setup.test.x)
        preds.append(int(pred[targets[i]]))
        success.append(preds[-1] == base_class)
        accs.append(float((pred == setup.test.y).float().mean()))
    ok = torch.tensor(success, dtype=torch.bool)
    return CleanLabelResult(
        attack=label,
        training=training,
        knowledge=knowledge,
        target_class=target_class,
        base_class=base_class,
        n_poisons=k_poisons,
        eps=attack.eps if attack is not None else 0.0,
        success_rate=float(ok.float().mean()),
        success=ok,
        predictions=torch.tensor(preds, dtype=torch.long),
        target_index=targets,
        base_index=bases,
        clean_accuracy_before=acc_before,
        clean_accuracy_after=sum(accs) / len(accs),
        max_linf=max_linf,
        craft_seconds=craft_seconds,
        seconds=time.perf_counter() - start,
    )
