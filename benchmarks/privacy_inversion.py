"""Model inversion: sparring's gradient inversion (and DeepInversion) against ART's MIFace, judged against a reference.

The benchmarks' MNIST target (cached small CNN, mnist5k, 8 epochs, seed 0) and a reference
small CNN trained the same way on the training set minus the evaluated members (seed 1) are
inverted for every class, ``--per-class`` images each, from the same starting points
(mid-grey plus uniform noise 0.2 wide, sparring's default), by sparring's
:class:`GradientInversion` (Adam, total-variation and L2 priors, projected onto [0, 1]) and
by ART's ``MIFace`` (gradient ascent on the class output, clipped to [0, 1]; ``max_iter`` =
the same number of steps, its default window 100 and threshold 0.99, learning rate 0.1).
Both are scored alike: the accuracy of an MLP evaluation classifier (trained on every sample
except the evaluated ones, seed 2) on the inversions, and the nearest-neighbour test (share
of inversions nearer one of ``--samples`` same-class members than one of as many same-class
unseen test images; 0.5 is chance). The gap target minus reference is the leak; its
interval is given as if the inversions were independent (``nn_gap_ci95``) and with Kish's
effective sample size of inversions clustered by class (``nn_gap_ci95_clustered``). ``--deep``
adds DeepInversion on a BatchNorm target (``small_cnn_bn``, trained the same way) with its
own reference (no peer: ART has none). ``--gmi`` adds GMI (Zhang et al., CVPR 2020) on the
same small-CNN target and reference: one GAN prior trained on the held-out images outside the
nearest-neighbour test (disjoint from both models' training data), then used for both models
(no peer: ART has none).
own reference (no peer: ART has none), and the ``group_norm`` defence: the same BatchNorm
architecture with every BatchNorm replaced by GroupNorm (Opacus' ``ModuleValidator.fix``, as
DP-SGD trains it), target and reference trained the same way (not cached), inverted by
gradient inversion, which is what DeepInversion falls back to on it.
Timings are noisy on a shared machine.

Usage: ``python benchmarks/privacy_inversion.py [--per-class 5] [--steps 200] [--deep] [--gmi] [--only-gmi]``.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

from _common import emit, environment, ratio, run_id, split, timer, trained_model
from sparring.attacks.privacy.gmi import GMI
from sparring.attacks.privacy.inversion import (
    DeepInversion,
    GradientInversion,
    InversionAttack,
    gap_interval,
    inversion_split,
    nearest_neighbour_test,
)
from sparring.data import Dataset
from sparring.defenses.training.dp_sgd import fix_module
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit

NAME = "privacy_inversion"


class _Fixed(GradientInversion):
    """sparring's gradient inversion from given starting images (so both libraries start alike)."""

    start: torch.Tensor

    def run(self, clf: TorchClassifier, labels: torch.Tensor) -> torch.Tensor:
        return self._descend(clf, self.start.clone(), labels, torch.Generator().manual_seed(self.seed))


def _art_miface(model: nn.Module, start: torch.Tensor, labels: torch.Tensor, steps: int) -> torch.Tensor:
    from art.attacks.inference.model_inversion import MIFace

    from _common import art_estimator

    est = art_estimator(model, tuple(start.shape[1:]), 10)
    attack = MIFace(est, max_iter=steps, window_length=100, threshold=0.99, learning_rate=0.1,
                    batch_size=len(start), verbose=False)
    return torch.as_tensor(attack.infer(start.numpy().copy(), labels.numpy()), dtype=torch.float32)


def _score(
    images: torch.Tensor, labels: torch.Tensor, evaluator: TorchClassifier, members: Dataset, unseen: Dataset
) -> tuple[float, float, float]:
    acc = float((evaluator.predict_labels(images) == labels).float().mean())
    nn_test = nearest_neighbour_test(images, labels, members, unseen)
    return acc, nn_test.closer_to_member, nn_test.effective_n


def _row(
    attack: str, t: tuple[float, float, float], r: tuple[float, float, float], n: int, seconds: float
) -> dict[str, Any]:
    ci = gap_interval(t[1], n, r[1], n)
    clustered = gap_interval(t[1], t[2], r[1], r[2])
    return {
        "attack": attack,
        "eval_accuracy_target": round(t[0], 3),
        "eval_accuracy_reference": round(r[0], 3),
        "eval_gap": round(t[0] - r[0], 3),
        "nn_target": round(t[1], 3),
        "nn_reference": round(r[1], 3),
        "nn_gap": round(t[1] - r[1], 3),
        "nn_gap_ci95": [round(ci.low, 3), round(ci.high, 3)],
        "nn_effective_n": [round(t[2], 1), round(r[2], 1)],
        "nn_gap_ci95_clustered": [round(clustered.low, 3), round(clustered.high, 3)],
        "n": n,
        "seconds_target": round(seconds, 2),
    }


def _gmi(
    args: argparse.Namespace,
    public: Dataset,
    labels: torch.Tensor,
    target: TorchClassifier,
    reference: TorchClassifier,
    ev: TorchClassifier,
    members: Dataset,
    unseen: Dataset,
    rid: str,
) -> None:
    """GMI on the target and the reference with one GAN prior trained on ``public``."""
    attack = GMI(n=args.per_class, steps=args.steps, seed=0, gan_epochs=args.gan_epochs)
    trained = attack.fit(public)
    res = []
    for clf in (target, reference):
        with timer() as t:
            x = attack.invert(clf, list(range(10)))
        res.append((_score(x, labels, ev, members, unseen), t["seconds"]))
    row = _row("sparring gmi (small_cnn)", res[0][0], res[1][0], len(labels), res[0][1])
    samples = trained.gan.sample(500)
    hist = torch.bincount(ev.predict_labels(samples), minlength=10)
    emit(NAME, {
        **row, "gan_seconds": round(trained.seconds, 2), "public_samples": len(public),
        "gan_epochs": args.gan_epochs, "restarts": attack.restarts, "prior": attack.prior,
        "gan_sample_classes": hist.tolist(),
    }, rid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--deep", action="store_true")
    ap.add_argument("--gmi", action="store_true")
    ap.add_argument("--only-gmi", action="store_true", help="skip the gradient and MIFace lines")
    ap.add_argument("--gan-epochs", type=int, default=GMI().gan_epochs)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rid = run_id()
    train, test = split("mnist5k", 0.2, seed=0)
    sp = inversion_split(train.y, test.y, 10, args.samples, seed=0)
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[sp.members] = False
    held = torch.ones(len(test), dtype=torch.bool)
    held[sp.non_members] = False
    ref_data = train.subset(keep, f"{train.name}-minus-members{args.samples}")
    ev_data = Dataset(
        torch.cat([train.x[keep], test.x[held]]), torch.cat([train.y[keep], test.y[held]]),
        list(train.classes), f"inversion-evaluator{args.samples}",
    )
    members, unseen = train.subset(sp.members), test.subset(sp.non_members)
    wrap = lambda m: TorchClassifier(m, train.input_shape, 10)  # noqa: E731
    target, _, cached = trained_model(train, "small_cnn", epochs=8, seed=0)
    reference, _, _ = trained_model(ref_data, "small_cnn", epochs=8, seed=1)
    evaluator, _, _ = trained_model(ev_data, "mlp", epochs=8, seed=2)
    ev = wrap(evaluator)
    emit(NAME, {
        "benchmark": NAME, **environment(), "target": "small_cnn mnist5k e8 s0", "cached": cached,
        "target_accuracy": round(wrap(target).predict_labels(test.x).eq(test.y).float().mean().item(), 4),
        "reference_accuracy": round(wrap(reference).predict_labels(test.x).eq(test.y).float().mean().item(), 4),
        "evaluator_accuracy_on_evaluated": round(
            ev.predict_labels(torch.cat([members.x, unseen.x]))
            .eq(torch.cat([members.y, unseen.y]))
            .float()
            .mean()
            .item(),
            4,
        ),
        "per_class": args.per_class, "steps": args.steps, "samples_per_class": sp.per_class,
    }, rid)
    labels = torch.arange(10).repeat_interleave(args.per_class)
    if args.gmi or args.only_gmi:
        _gmi(args, test.subset(held), labels, wrap(target), wrap(reference), ev, members, unseen, rid)
    if args.only_gmi:
        return
    noise = torch.rand((len(labels), *train.input_shape), generator=torch.Generator().manual_seed(0)) - 0.5
    start = 0.5 + 0.2 * noise  # sparring's default starts (spread 0.2), given to both libraries
    ours = _Fixed(n=args.per_class, steps=args.steps, seed=0)
    ours.start = start
    scores: dict[str, Any] = {}
    for who, model in (("target", target), ("reference", reference)):
        with timer() as t:
            x = ours.run(wrap(model), labels)
        scores[f"sparring-{who}"] = (_score(x, labels, ev, members, unseen), t["seconds"])
        with timer() as t:
            x = _art_miface(model, start, labels, args.steps)
        scores[f"art-{who}"] = (_score(x, labels, ev, members, unseen), t["seconds"])
    s_row = _row("sparring gradient inversion", scores["sparring-target"][0], scores["sparring-reference"][0],
                 len(labels), scores["sparring-target"][1])
    a_row = _row("ART MIFace", scores["art-target"][0], scores["art-reference"][0], len(labels),
                 scores["art-target"][1])
    emit(NAME, s_row, rid)
    emit(NAME, a_row, rid)
    emit(NAME, {
        "comparison": "sparring vs ART MIFace",
        "eval_accuracy_target": [s_row["eval_accuracy_target"], a_row["eval_accuracy_target"]],
        "nn_gap": [s_row["nn_gap"], a_row["nn_gap"]],
        "time_ratio_sparring_over_art": ratio(scores["sparring-target"][1], scores["art-target"][1]),
    }, rid)
    if args.deep:
        bn_target, _, _ = trained_model(train, "small_cnn_bn", epochs=8, seed=0)
        bn_reference, _, _ = trained_model(ref_data, "small_cnn_bn", epochs=8, seed=1)
        results = {}
        for name, attack in (("gradient", GradientInversion), ("deep_inversion", DeepInversion)):
            inv: InversionAttack = attack(n=args.per_class, steps=args.steps, seed=0)
            res = []
            for model in (bn_target, bn_reference):
                with timer() as t:
                    x = inv.invert(wrap(model), list(range(10)))
                res.append((_score(x, labels, ev, members, unseen), t["seconds"]))
            results[name] = _row(f"sparring {name} (small_cnn_bn)", res[0][0], res[1][0], len(labels), res[0][1])
            emit(NAME, results[name], rid)
        gn = []
        for data, seed in ((train, 0), (ref_data, 1)):
            module = fix_module(build("small_cnn_bn", train.input_shape, 10, seed=seed))
            gn.append(fit(module, data, TrainConfig(epochs=8, seed=seed, progress=False)).model.eval())
        inv = GradientInversion(n=args.per_class, steps=args.steps, seed=0)
        res = []
        for model in gn:
            with timer() as t:
                x = inv.invert(wrap(model), list(range(10)))
            res.append((_score(x, labels, ev, members, unseen), t["seconds"]))
        row = _row("sparring deep_inversion+group_norm (ran as gradient)", res[0][0], res[1][0], len(labels), res[0][1])
        gn_accuracy = wrap(gn[0]).predict_labels(test.x).eq(test.y).float().mean().item()
        row["group_norm_target_accuracy"] = round(gn_accuracy, 4)
        bn_accuracy = wrap(bn_target).predict_labels(test.x).eq(test.y).float().mean().item()
        row["batch_norm_target_accuracy"] = round(bn_accuracy, 4)
        emit(NAME, row, rid)


if __name__ == "__main__":
    main()
