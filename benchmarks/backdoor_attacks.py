"""Backdoor variants on one small CNN per dataset: blended, BadNets all-to-one and all-to-all,
hidden trigger (sparring against ART's HiddenTriggerBackdoor), backdoored teacher -> student.

Setting: ``--dataset`` (mnist5k 80/20 or digits 75/25 split, seed 0), small_cnn, ``--epochs``
of Adam. Each backdoor model is compared with a clean model trained the same way (same
seed): ASR (share of triggered test inputs, whose true class differs from their target,
sent to the target) and clean test accuracy. Blended: 10 % poison, alpha 0.1, target 0.
BadNets: 10 % poison, 3x3 patch, target 0 (all-to-one) or i -> i+1 (all-to-all).
Hidden trigger (Saha et al., AAAI 2020): transfer-learning setup (public teacher on half the
training data, victim fine-tunes a new head, or all layers, on the other half), source 1,
target 0, every target-class image of the victim's data perturbed within ``eps``; control =
the same victim trained on the unperturbed images. ART's HiddenTriggerBackdoor runs on the
same teacher, layer, images, eps and number of steps (digits only by default: its loop is
per step and per batch, like ours). Teacher -> student: BadNets 10 % on the public half.

Usage: ``python benchmarks/backdoor_attacks.py [--dataset mnist5k] [--epochs 8] [--threads 1]``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from _common import art_estimator, emit, environment, ratio, run_id, split, timer
from sparring.attacks.poisoning import BadNets, Blended
from sparring.attacks.poisoning.hidden_trigger import HiddenTrigger, evaluate_hidden_trigger
from sparring.attacks.poisoning.teacher import TeacherBackdoor
from sparring.data import Dataset, PoisonedDataset
from sparring.metrics import accuracy, attack_success_rate
from sparring.models import TorchClassifier, build
from sparring.models.hooks import param_layers
from sparring.train import TrainConfig, fit
from sparring.transfer import TransferSetup, student_from_teacher, transfer_learning_setup

NAME = "backdoor_attacks"


def train_on(data: Dataset, epochs: int) -> TorchClassifier:
    model = build("small_cnn", data.input_shape, data.num_classes, seed=0)
    fit(model, data, TrainConfig(epochs=epochs, seed=0, progress=False))
    return TorchClassifier(model, data.input_shape, data.num_classes)


def backdoor_row(
    kind: str, poisoned: PoisonedDataset, test: Dataset, clean: TorchClassifier, epochs: int
) -> dict[str, Any]:
    assert poisoned.trigger is not None
    with timer() as t:
        clf = train_on(poisoned, epochs)
    targets = poisoned.target_of(test.y)
    acc, clean_acc = accuracy(clf, test.x, test.y), accuracy(clean, test.x, test.y)
    return {
        "library": "sparring",
        "attack": kind,
        "poison_fraction": round(poisoned.n_poisoned / len(poisoned), 4),
        "asr": round(attack_success_rate(clf, test.x, test.y, poisoned.trigger, targets), 4),
        "clean_model_asr": round(attack_success_rate(clean, test.x, test.y, poisoned.trigger, targets), 4),
        "clean_accuracy": round(acc, 4),
        "clean_model_accuracy": round(clean_acc, 4),
        "accuracy_drop": round(clean_acc - acc, 4),
        "within_2_points": clean_acc - acc <= 0.02,
        "train_seconds": round(t["seconds"], 2),
    }


def art_hidden_trigger(attack: HiddenTrigger, setup: TransferSetup, epochs: int) -> dict[str, Any]:
    """ART's HiddenTriggerBackdoor on the same teacher, layer, images and eps; victim trained as ours."""
    from art.attacks.poisoning import HiddenTriggerBackdoor, PoisoningAttackBackdoor

    data, test = setup.student_data, setup.test
    trigger = attack.trigger(data.input_shape)

    def add_patch(x: np.ndarray) -> np.ndarray:
        return trigger.apply(torch.as_tensor(x, dtype=torch.float32)).numpy()

    est = art_estimator(setup.teacher.model, data.input_shape, data.num_classes)
    art = HiddenTriggerBackdoor(
        est,
        target=np.eye(10)[attack.target],
        source=np.eye(10)[attack.source],
        feature_layer=setup.layer,
        backdoor=PoisoningAttackBackdoor(add_patch),
        eps=attack.eps,
        learning_rate=attack.lr,
        max_iter=attack.steps,
        batch_size=attack.batch_size,
        poison_percent=attack.poison_fraction,
        verbose=False,
        print_iter=10**9,
    )
    with timer() as t:
        poisons, idx = art.poison(data.x.numpy(), np.eye(10)[data.y.numpy()])
    x = data.x.clone()
    x[torch.as_tensor(idx)] = torch.as_tensor(poisons, dtype=torch.float32)
    layers = param_layers(setup.teacher.model)
    student = student_from_teacher(setup.teacher.model, 10, layers.index(setup.layer) + 1, seed=0)
    fit(student, Dataset(x, data.y.clone(), list(data.classes)), TrainConfig(epochs=epochs, seed=0, progress=False))
    clf = TorchClassifier(student, data.input_shape, 10)
    src = test.y == attack.source
    return {
        "library": "art",
        "attack": "HiddenTriggerBackdoor",
        "training": "frozen",
        "asr": round(attack_success_rate(clf, test.x[src], test.y[src], trigger, attack.target), 4),
        "clean_accuracy": round(accuracy(clf, test.x, test.y), 4),
        "n_poisons": len(idx),
        "max_linf": round(float((x - data.x).abs().max()), 4),
        "seconds": round(t["seconds"], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "digits"])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 8 mnist5k, 20 digits)")
    p.add_argument("--n", type=int, default=None, help="unused (the whole test split is evaluated)")
    p.add_argument("--steps", type=int, default=60, help="hidden-trigger optimisation steps")
    p.add_argument("--art", action="store_true", help="also run ART's HiddenTriggerBackdoor")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = run_id()
    ds = args.dataset
    epochs = args.epochs or (8 if ds == "mnist5k" else 20)
    train, test = split(ds, 0.2 if ds == "mnist5k" else 0.25, seed=0)
    emit(
        NAME,
        {
            "benchmark": NAME,
            **environment(),
            "dataset": ds,
            "model": "small_cnn",
            "epochs": epochs,
            "n_train": len(train),
            "n_test": len(test),
        },
        run,
    )
    clean = train_on(train, epochs)
    for kind, attack in (
        ("blended a0.1", Blended(target=0, poison_fraction=0.1, alpha=0.1, seed=0)),
        ("badnets all-to-one", BadNets(target=0, poison_fraction=0.1, patch_size=3, seed=0)),
        ("badnets all-to-all", BadNets(poison_fraction=0.1, patch_size=3, seed=0, all_to_all=True)),
    ):
        emit(NAME, {"dataset": ds, **backdoor_row(kind, attack.poison(train), test, clean, epochs)}, run)

    setup = transfer_learning_setup(train, test, teacher_epochs=epochs, student_epochs=epochs, seed=0)
    patch = 3 if ds == "digits" else 5
    settings = [(16 / 255, patch), (0.3, patch + 2)]
    for eps, size in settings:
        ht = HiddenTrigger(target=0, source=1, eps=eps, steps=args.steps, lr=eps / 4, patch_size=size, seed=0)
        rows = {}
        for training in ("frozen", "full"):
            r = evaluate_hidden_trigger(ht, setup, training=training, epochs=epochs, seed=0)
            rows[training] = {
                "dataset": ds,
                "library": "sparring",
                "attack": "HiddenTrigger",
                "training": training,
                "eps": round(eps, 4),
                "patch_size": size,
                "steps": args.steps,
                "asr": round(r.asr, 4),
                "control_asr": round(r.control_asr, 4),
                "clean_accuracy": round(r.clean_accuracy, 4),
                "control_accuracy": round(r.control_accuracy, 4),
                "n_poisons": r.n_poisons,
                "max_linf": round(r.max_linf, 4),
                "seconds": round(r.seconds, 2),
            }
            emit(NAME, rows[training], run)
        if args.art:
            try:
                a = art_hidden_trigger(ht, setup, epochs)
                emit(NAME, {"dataset": ds, "eps": round(eps, 4), "patch_size": size, "steps": args.steps, **a}, run)
                s = rows["frozen"]
                emit(
                    NAME,
                    {
                        "library": "ratio",
                        "dataset": ds,
                        "eps": round(eps, 4),
                        "sparring_over_art_seconds": ratio(s["seconds"], a["seconds"]),
                        "sparring_minus_art_asr": round(s["asr"] - a["asr"], 4),
                    },
                    run,
                )
            except Exception as err:
                emit(
                    NAME,
                    {
                        "dataset": ds,
                        "library": "art",
                        "attack": "HiddenTriggerBackdoor",
                        "error": f"{type(err).__name__}: {err}",
                    },
                    run,
                )

    tb = TeacherBackdoor(
        BadNets(target=0, poison_fraction=0.1, patch_size=3, seed=0),
        teacher_epochs=epochs,
        student_epochs=epochs,
        seed=0,
    ).run(train, test)
    emit(
        NAME,
        {
            "dataset": ds,
            "library": "sparring",
            "attack": "TeacherBackdoor(BadNets 10%)",
            **{
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in vars(tb).items()
                if isinstance(v, (int, float, list))
            },
        },
        run,
    )


if __name__ == "__main__":
    main()
