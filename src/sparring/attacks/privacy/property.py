"""Property inference: tell from a trained model what share of its training set had a property.

Ganju et al. ("Property Inference Attacks on Fully Connected Neural Networks using
Permutation Invariant Representations", ACM CCS 2018) train shadow models on data sets
with different proportions of a property and a meta-classifier that tells the proportion
from a model. Suri & Evans ("Formalizing and Estimating Distribution Inference Risks",
PETS 2022) frame it as a distinguishing game — was the victim trained at ratio 0.5 or at
ratio α? — and show that simple meta-features (the model's outputs on a fixed query set)
and a loss test without shadow models are strong baselines. Here:

- :func:`ratio_sample` draws a training set of a given size with a given share of records
  that have the property (:class:`Property`: one or more classes, or a feature above its
  smallest value, e.g. ``fair``'s respondents with children);
- :class:`MetaClassifier` (``fit(models_a, models_b)`` then ``infer(models)``) is a logistic
  regression over the log-probabilities each model gives a fixed query set;
- :func:`loss_test` needs no shadow model: a victim trained at ratio α should fit data at
  ratio α better than data at 0.5 (Suri & Evans' loss test); :func:`threshold_test` calibrates
  that comparison on the shadow models (their threshold test);
- :func:`evaluate_property` plays the game: shadow models trained on the attacker's half of
  the data, victims on the other half, for 0.5 against each ratio; the accuracy of telling
  them apart is the figure (chance is 50 %).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from sparring.attacks.privacy.reference import train_references
from sparring.data import Dataset
from sparring.errors import InputError, check_positive_int
from sparring.models import Classifier
from sparring.params import Params
from sparring.train import TrainConfig

#: The ratio every other ratio is told apart from (Suri & Evans' reference distribution).
BASE_RATIO = 0.5
#: The smallest training set a shadow or victim model is given.
MIN_SIZE = 10


@dataclass(frozen=True)
class Property:
    """Which records have the property: their label is in ``classes``, or feature ``column`` exceeds ``above``."""

    classes: tuple[int, ...] = ()
    column: int | None = None
    above: float = 0.0
    name: str = ""

    def mask(self, data: Dataset) -> Tensor:
        """True for each record of ``data`` that has the property."""
        if self.column is not None:
            return data.x.reshape(len(data), -1)[:, self.column] > self.above
        return torch.isin(data.y, torch.tensor(self.classes, dtype=torch.long))


def max_size(has: Tensor, ratios: Sequence[float]) -> int:
    """The largest training-set size :func:`ratio_sample` can draw from a pool at every ratio."""
    n_with, n_without = int(has.sum()), int((~has).sum())
    sizes = [min(n_with / r if r > 0 else np.inf, n_without / (1 - r) if r < 1 else np.inf) for r in ratios]
    return int(min(sizes))


def ratio_sample(has: Tensor, ratio: float, size: int, generator: torch.Generator) -> Tensor:
    """Indices of ``size`` pool records, ``round(ratio * size)`` with the property, drawn without replacement."""
    k = round(ratio * size)
    with_, without = torch.nonzero(has).flatten(), torch.nonzero(~has).flatten()
    if k > len(with_) or size - k > len(without):
        raise InputError(
            f"a training set of {size} at ratio {ratio} needs {k} records with the property and {size - k} without; "
            f"the pool has {len(with_)} and {len(without)}"
        )
    pick_with = with_[torch.randperm(len(with_), generator=generator)[:k]]
    pick_without = without[torch.randperm(len(without), generator=generator)[: size - k]]
    return torch.cat([pick_with, pick_without])


def train_at_ratio(
    build: Callable[[], nn.Module],
    pool: Dataset,
    has: Tensor,
    ratio: float,
    count: int,
    size: int,
    config: TrainConfig,
) -> tuple[list[nn.Module], float]:
    """``count`` models, each trained with ``config`` on its own draw of ``size`` pool records at ``ratio``."""
    check_positive_int("models", count)
    g = torch.Generator().manual_seed(config.seed)
    keep = torch.zeros(count, len(pool), dtype=torch.bool)
    for k in range(count):
        keep[k, ratio_sample(has, ratio, size, g)] = True
    refs = train_references(build, pool, keep, config)
    return refs.models, refs.seconds


def _features(models: Sequence[Classifier], queries: Tensor) -> np.ndarray:
    """One row per model: the log-probabilities it gives every query record (Suri & Evans' simple meta-features)."""
    rows = [torch.log(m.predict_scores(queries).double().clamp_min(1e-12)).flatten() for m in models]
    return torch.stack(rows).numpy()


class MetaClassifier(Params):
    """Tells two training ratios apart from models' outputs on a fixed query set (Ganju et al., CCS 2018).

    ``fit(models_a, models_b, queries)`` trains a standardised, L2-regularised logistic
    regression (strength ``1 / c``) on one row per shadow model; ``infer(models)`` gives each
    model's probability of coming from the ``b`` side.
    """

    def __init__(self, c: float = 0.1) -> None:
        self.c = c

    def fit(self, models_a: Sequence[Classifier], models_b: Sequence[Classifier], queries: Tensor) -> MetaClassifier:
        """Learn to tell ``models_b`` from ``models_a`` by their outputs on ``queries``."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if not models_a or not models_b:
            raise InputError("the meta-classifier needs shadow models on both sides")
        self.queries_ = queries
        x = np.concatenate([_features(models_a, queries), _features(models_b, queries)])
        y = np.r_[np.zeros(len(models_a)), np.ones(len(models_b))]
        self.estimator_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.c, max_iter=5000)).fit(x, y)
        return self

    def infer(self, models: Sequence[Classifier]) -> Tensor:
        """Each model's probability of having been trained at the ``b`` ratio."""
        p = self.estimator_.predict_proba(_features(models, self.queries_))[:, 1]
        return torch.as_tensor(p)


def _share(hits: Tensor) -> float:
    return float(hits.double().mean())


def loss_test(models: Sequence[Classifier], data_a: Dataset, data_b: Dataset) -> Tensor:
    """True where a model's accuracy on ``data_b`` beats that on ``data_a`` (Suri & Evans' loss test, no shadows)."""
    return torch.as_tensor(_accuracy_gap(models, data_a, data_b) > 0)


def _accuracy_gap(models: Sequence[Classifier], data_a: Dataset, data_b: Dataset) -> np.ndarray:
    """Per model: accuracy on ``data_b`` minus accuracy on ``data_a``."""
    out = []
    for m in models:
        acc_a = float((m.predict_labels(data_a.x) == data_a.y).double().mean())
        acc_b = float((m.predict_labels(data_b.x) == data_b.y).double().mean())
        out.append(acc_b - acc_a)
    return np.asarray(out)


def threshold_test(
    shadows_a: Sequence[Classifier],
    shadows_b: Sequence[Classifier],
    models: Sequence[Classifier],
    data_a: Dataset,
    data_b: Dataset,
) -> Tensor:
    """True where a model's accuracy gap (``data_b`` minus ``data_a``) falls on the ``b`` shadows' side.

    Suri & Evans' threshold test: the loss test calibrated on shadow models, for when one
    distribution is simply harder to fit than the other. The threshold (and its direction) is
    the one that best separates the shadow models' gaps.
    """
    gap_a, gap_b = _accuracy_gap(shadows_a, data_a, data_b), _accuracy_gap(shadows_b, data_a, data_b)
    values = np.sort(np.r_[gap_a, gap_b])
    cuts = np.r_[values[0] - 1.0, (values[:-1] + values[1:]) / 2, values[-1] + 1.0]
    best, best_cut, best_sign = -1.0, 0.0, 1.0
    for cut in cuts:
        for sign in (1.0, -1.0):
            hits = (np.sum(sign * (gap_b - cut) > 0) + np.sum(sign * (gap_a - cut) <= 0)) / (len(gap_a) + len(gap_b))
            if hits > best:
                best, best_cut, best_sign = float(hits), float(cut), sign
    return torch.as_tensor(best_sign * (_accuracy_gap(models, data_a, data_b) - best_cut) > 0)


@dataclass(frozen=True)
class RatioRow:
    """Telling ``BASE_RATIO`` from ``ratio``: accuracy of the meta-classifier, the loss and threshold tests."""

    ratio: float
    accuracy: float
    loss_test: float
    threshold_test: float
    victims: int


@dataclass(frozen=True)
class PropertyResult:
    """One row per ratio, the models trained and the time they took."""

    rows: list[RatioRow]
    shadows: int
    victims: int
    size: int
    train_seconds: float
    seconds: float
    queries: int


def evaluate_property(
    build: Callable[[], nn.Module],
    wrap: Callable[[nn.Module], Classifier],
    attacker: Dataset,
    victim: Dataset,
    prop: Property,
    config: TrainConfig,
    *,
    ratios: Sequence[float] = (0.1, 0.9),
    shadows: int = 16,
    victims: int = 8,
    size: int | None = None,
    queries: int = 100,
) -> PropertyResult:
    """Play the distinguishing game of 0.5 against each ratio.

    Shadow models (``shadows`` per ratio) train on draws from ``attacker``; ``victims`` per
    ratio train on draws from ``victim`` (disjoint data, other seeds). Every model has the
    same architecture and ``config``, and trains on ``size`` records (default: the largest
    both pools allow at every ratio, at most 1,000). The meta-classifier queries ``queries``
    attacker records drawn at ratio 0.5; the loss test compares accuracy on ``queries``
    attacker records drawn at 0.5 and at the ratio.
    """
    start = time.perf_counter()
    all_ratios = [BASE_RATIO, *ratios]
    if any(not 0.0 <= r <= 1.0 for r in all_ratios) or BASE_RATIO in ratios:
        raise InputError(f"ratios must lie in [0, 1] and differ from {BASE_RATIO}, got {list(ratios)}")
    has_a, has_v = prop.mask(attacker), prop.mask(victim)
    feasible = min(max_size(has_a, all_ratios), max_size(has_v, all_ratios))
    size = min(size or 1000, feasible)
    if size < MIN_SIZE:
        raise InputError(
            f"property {prop.name or 'given'}: the data allow training sets of only {size} records at ratios "
            f"{all_ratios} ({int(has_a.sum())} of {len(attacker)} attacker records have it)"
        )
    g = torch.Generator().manual_seed(config.seed)
    probe_n = min(queries, max_size(has_a, all_ratios))
    probe = attacker.subset(ratio_sample(has_a, BASE_RATIO, probe_n, g))
    trained: dict[tuple[str, float], list[Classifier]] = {}
    train_seconds = 0.0
    for i, r in enumerate(all_ratios):
        for j, (side, pool, has, count) in enumerate(
            (("shadow", attacker, has_a, shadows), ("victim", victim, has_v, victims))
        ):
            cfg = dataclasses.replace(config, seed=config.seed + 1000 * (2 * i + j + 1), progress=False)
            models, secs = train_at_ratio(build, pool, has, r, count, size, cfg)
            trained[side, r] = [wrap(m) for m in models]
            train_seconds += secs
    before = sum(m.queries for ms in trained.values() for m in ms)
    rows = []
    for r in ratios:
        meta = MetaClassifier().fit(trained["shadow", BASE_RATIO], trained["shadow", r], probe.x)
        base_v, other_v = trained["victim", BASE_RATIO], trained["victim", r]
        guess = meta.infer([*base_v, *other_v]) >= 0.5
        truth = torch.cat([torch.zeros(len(base_v), dtype=torch.bool), torch.ones(len(other_v), dtype=torch.bool)])
        at_r = attacker.subset(ratio_sample(has_a, r, probe_n, g))
        lt = loss_test([*base_v, *other_v], probe, at_r)
        tt = threshold_test(trained["shadow", BASE_RATIO], trained["shadow", r], [*base_v, *other_v], probe, at_r)
        rows.append(RatioRow(r, _share(guess == truth), _share(lt == truth), _share(tt == truth), len(truth)))
    used = sum(m.queries for ms in trained.values() for m in ms) - before
    return PropertyResult(rows, shadows, victims, size, train_seconds, time.perf_counter() - start, used)
