"""Gradient availability poisoning of linear models: sparring against random flips and ART.

Setting: a seeded 75/25 split of each dataset (``breast_cancer`` min-max scaled, 569 x 30,
binary; ``digits`` 8x8 in [0, 1], 10 classes). Victims are scikit-learn's
``LogisticRegression`` and ``LinearSVC`` (squared hinge) with ``C = 1 / (reg n)``, built by
``sparring.attacks.poisoning.gradient.fit_linear``. For every poison fraction ``f`` the same
number of points, ``round(f * N_train)``, is used by each method:

* ``random_flip``: sparring's ``RandomLabelFlip`` (relabels f N training points in place);
* ``flip_copies``: ``RandomFlipCopies`` (adds f N label-flipped copies of training points);
* ``gradient``: ``GradientPoisoning`` (the same added copies, then moved by implicit-gradient
  ascent on the validation loss; 30 % of the training split is the attacker's validation);
* ``art``: ART's ``PoisoningAttackSVM`` (Biggio et al. 2012, hinge-loss ``SVC(kernel="linear")``,
  binary only, one point at a time) from the same starting points, labels, training part and
  validation part, on the linear SVM of the binary dataset.

Test accuracy is measured on the held-out 25 %. ART's points are scored with both the
``LinearSVC`` victim and the hinge ``SVC`` it optimises against (``acc_svc``), and so are
sparring's. The final ``ratio`` line gives, over all runs, the mean accuracy drop of
gradient poisoning over that of random flips (and of ART, where it ran).

Usage: ``python benchmarks/poisoning_gradient.py [--fractions 0.02 0.05 0.1 0.2] [--seeds 0 1]``.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import numpy as np
import torch

from _common import emit, environment, ratio, run_id, split, timer
from sparring.attacks.poisoning import RandomLabelFlip
from sparring.attacks.poisoning.gradient import GradientPoisoning, RandomFlipCopies, fit_linear
from sparring.data import Dataset, PoisonedDataset
from sparring.metrics import dataset_accuracy

NAME = "poisoning_gradient"
VALIDATION_FRACTION = 0.3


def svc_accuracy(data: Dataset, test: Dataset, reg: float) -> float:
    """Test accuracy of the hinge-loss ``SVC(kernel="linear")`` ART attacks (same ``C``)."""
    from sklearn.svm import SVC

    x = data.x.reshape(len(data), -1).double().numpy()
    svc = SVC(kernel="linear", C=1.0 / (reg * len(data))).fit(x, data.y.numpy())
    xt = test.x.reshape(len(test), -1).double().numpy()
    return float((svc.predict(xt) == test.y.numpy()).mean())


def run_art(
    train: Dataset, start: PoisonedDataset, reg: float, seed: int, step: float, max_iter: int
) -> tuple[Dataset, float]:
    """ART's PoisoningAttackSVM from ``start``'s poison points; returns the poisoned set and seconds."""
    from art.attacks.poisoning import PoisoningAttackSVM
    from art.estimators.classification import SklearnClassifier as ArtSklearn
    from sklearn.svm import SVC

    part, val = train.split(VALIDATION_FRACTION, seed=seed)
    flat = lambda d: d.x.reshape(len(d), -1).double().numpy()  # noqa: E731
    onehot = lambda y: np.eye(2)[y.numpy()]  # noqa: E731
    mask = start.poison_mask.numpy()
    x0 = start.x.reshape(len(start), -1).double().numpy()[mask]
    y0 = start.y.numpy()[mask]
    np.random.seed(seed)
    # probability=False explicitly: scikit-learn 1.9's "deprecated" default is truthy, and ART's
    # SVC wrapper then asks for predict_proba.
    svc = SVC(kernel="linear", C=1.0 / (reg * len(part)), probability=False)
    est = ArtSklearn(model=svc, clip_values=(0.0, 1.0))
    est.fit(flat(part), onehot(part.y))
    attack = PoisoningAttackSVM(
        est,
        step=step,
        eps=1.0,
        x_train=flat(part),
        y_train=onehot(part.y),
        x_val=flat(val),
        y_val=onehot(val.y),
        max_iter=max_iter,
        verbose=False,
    )
    with timer() as t:
        x_adv, _ = attack.poison(x0.copy(), y=np.eye(2)[y0])
    x = start.x.clone()
    x[torch.as_tensor(mask)] = torch.as_tensor(x_adv, dtype=torch.float32).reshape(-1, *train.input_shape)
    return Dataset(x, start.y.clone(), list(start.classes), f"{train.name}-art"), t["seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["breast_cancer", "digits"])
    p.add_argument("--models", nargs="+", default=["logistic_regression", "linear_svm"])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--n", type=int, default=None, help="use only the first N training points (default all)")
    p.add_argument("--steps", type=int, default=100, help="gradient steps on binary data (default 100)")
    p.add_argument("--multiclass-steps", type=int, default=30, help="gradient steps on multiclass data (default 30)")
    p.add_argument("--step-size", type=float, default=0.25)
    p.add_argument("--reg", type=float, default=1e-3)
    p.add_argument("--art-max-iter", type=int, default=20, help="ART iterations per point (default 20)")
    p.add_argument("--art-fractions", type=float, nargs="+", default=[0.02], help="fractions ART runs at (slow)")
    p.add_argument("--art-seeds", type=int, nargs="+", default=[0], help="seeds ART runs at (default 0)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    warnings.filterwarnings("ignore", message="The `probability` parameter", category=FutureWarning)
    torch.set_num_threads(args.threads)
    run = run_id()
    emit(NAME, {"benchmark": NAME, **environment(), **{k: v for k, v in vars(args).items()}}, run)
    drops: dict[str, list[float]] = {"gradient": [], "random_flip": [], "flip_copies": []}
    art_pairs: list[tuple[float, float]] = []
    art_time: list[tuple[float, float]] = []
    for ds in args.datasets:
        for seed in args.seeds:
            train, test = split(ds, 0.25, seed=seed)
            if args.n:
                train = train.subset(torch.arange(min(args.n, len(train))))
            steps = args.steps if train.num_classes == 2 else args.multiclass_steps
            for model in args.models:
                clean = dataset_accuracy(fit_linear(train, model, args.reg, seed), test)
                base: dict[str, Any] = {"dataset": ds, "model": model, "seed": seed, "n_train": len(train)}
                emit(NAME, {**base, "method": "clean", "accuracy": round(clean, 4)}, run)
                for f in args.fractions:
                    n_poison = round(f * len(train))
                    row = {**base, "fraction": f, "n_poison": n_poison, "clean": round(clean, 4)}
                    sets: dict[str, tuple[Dataset, float]] = {}
                    sets["random_flip"] = (RandomLabelFlip(f, seed).poison(train), 0.0)
                    copies = RandomFlipCopies(f, seed).poison(train)
                    sets["flip_copies"] = (copies, 0.0)
                    attack = GradientPoisoning(
                        model,
                        f,
                        steps=steps,
                        step_size=args.step_size,
                        reg=args.reg,
                        seed=seed,
                        validation_fraction=VALIDATION_FRACTION,
                        progress=False,
                    )
                    with timer() as t:
                        grad = attack.poison(train)
                    sets["gradient"] = (grad, t["seconds"])
                    assert torch.equal(grad.y, copies.y)  # same points, same labels: only the inputs moved
                    if (
                        model == "linear_svm"
                        and train.num_classes == 2
                        and n_poison > 0
                        and f in args.art_fractions
                        and seed in args.art_seeds
                    ):
                        sets["art"] = run_art(train, copies, args.reg, seed, args.step_size, args.art_max_iter)
                    accs: dict[str, float] = {}
                    for method, (data, seconds) in sets.items():
                        acc = dataset_accuracy(fit_linear(data, model, args.reg, seed), test)
                        accs[method] = acc
                        rec = {
                            **row,
                            "method": method,
                            "accuracy": round(acc, 4),
                            "drop": round(clean - acc, 4),
                            "seconds": round(seconds, 3),
                        }
                        if model == "linear_svm" and train.num_classes == 2:
                            rec["acc_svc"] = round(svc_accuracy(data, test, args.reg), 4)
                        emit(NAME, rec, run)
                    for m in drops:
                        drops[m].append(clean - accs[m])
                    if "art" in accs:
                        art_pairs.append((clean - accs["gradient"], clean - accs["art"]))
                        art_time.append((sets["gradient"][1], sets["art"][1]))
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    line: dict[str, Any] = {
        "library": "ratio",
        "runs": len(drops["gradient"]),
        "mean_drop_gradient": round(mean(drops["gradient"]), 4),
        "mean_drop_random_flip": round(mean(drops["random_flip"]), 4),
        "mean_drop_flip_copies": round(mean(drops["flip_copies"]), 4),
        "gradient_over_random_flip_drop": ratio(mean(drops["gradient"]), mean(drops["random_flip"])),
        "gradient_over_flip_copies_drop": ratio(mean(drops["gradient"]), mean(drops["flip_copies"])),
        "gradient_beats_random_flip_share": round(
            mean([float(g > r) for g, r in zip(drops["gradient"], drops["random_flip"], strict=True)]), 3
        ),
    }
    if art_pairs:
        line["art_runs"] = len(art_pairs)
        line["gradient_over_art_drop"] = ratio(mean([a for a, _ in art_pairs]), mean([b for _, b in art_pairs]))
        line["sparring_over_art_seconds"] = ratio(sum(a for a, _ in art_time), sum(b for _, b in art_time))
    emit(NAME, line, run)


if __name__ == "__main__":
    main()
