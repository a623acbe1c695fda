"""Teacher→student transfer attacks and the teacher–student dissimilarity defence on MNIST.

Setting (Wang et al., USENIX Security 2018; BSI AI security guidance, reference [7]): the
mnist5k train split (4,000 images) is cut in two seeded halves. A public teacher
(small_cnn) trains on one half; the student copies it, freezes everything but the head
(``conv1, conv2, fc1``), re-initialises the head and fine-tunes on the private half
(:func:`sparring.transfer.transfer_learning_setup`). The attacker has the teacher and
public data, never the student's weights or data, and queries the student once per sample
for labels.

Attacks, on the first ``--n`` test images: untargeted PGD-20 (Linf) crafted on the
teacher; the same crafted on an independently trained surrogate (same architecture, seed 1,
trained on the public half: no shared weights); uniform random sign noise of the same
radius; and targeted internal-representation mimicry at the teacher's ``fc1`` (random
target class per image, reference images from the public half). Every attack is crafted
once and replayed on each student variant: the frozen student, a control fine-tuned with
all layers unfrozen but no penalty, and the student defended by ``TeacherDissimilarity``.

Usage: ``python benchmarks/evasion_transfer.py [--n 200] [--eps 0.1 0.2 0.3] [--mimic-eps 0.2 0.3]``.
ART has no equivalent of the transfer-learning defence; its transfer setting is just running
an attack on one estimator and predicting with another. Lines are appended to
``benchmarks/results/evasion_transfer.jsonl``.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import Tensor

from _common import emit, environment, run_id, split, timed
from sparring.attacks.evasion import PGD, InternalMimicry, Transfer
from sparring.defenses.training import TeacherDissimilarity
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit
from sparring.transfer import transfer_learning_setup

NAME = "evasion_transfer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--mimic-eps", type=float, nargs="+", default=[0.2, 0.3])
    parser.add_argument("--mimic-steps", type=int, default=30)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--weight", type=float, default=10.0)
    parser.add_argument("--grad-weight", type=float, default=1.0, help="weight of the gradient-alignment penalty")
    parser.add_argument("--seed", type=int, default=0, help="seed of the teacher/student split and training")
    parser.add_argument("--defence-epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = run_id()
    train, test = split("mnist5k")
    setup = transfer_learning_setup(train, test, seed=args.seed)
    shape = train.input_shape
    x, y = test.x[: args.n], test.y[: args.n]

    def accuracy(c: TorchClassifier) -> float:
        return float((c.predict_labels(test.x) == test.y).float().mean())

    emit(
        NAME,
        {
            "kind": "setup",
            "layer": setup.layer,
            "teacher_acc": accuracy(setup.teacher),
            "student_acc": accuracy(setup.student),
            "seconds": round(setup.seconds, 1),
            "env": environment(),
        },
        run,
    )

    # Independent surrogate: same architecture and public data as the teacher, another seed.
    surrogate_model = build("small_cnn", shape, 10, seed=1)
    sur_fit = fit(surrogate_model, setup.teacher_data, TrainConfig(epochs=6, seed=1, progress=False))
    surrogate = TorchClassifier(sur_fit.model, shape, 10)

    # Student variants: frozen (as deployed), fine-tune control, defended.
    variants: dict[str, tuple[TorchClassifier, float]] = {"frozen": (setup.student, 0.0)}
    for name, margin, weight, measure in [
        ("finetune_only", 0.0, 0.0, "representation"),
        ("dissimilarity", args.margin, args.weight, "representation"),
        ("gradient_dissimilarity", 0.0, args.grad_weight, "gradient"),
    ]:
        model = copy.deepcopy(setup.student.model)
        defence = TeacherDissimilarity(setup.teacher.model, setup.layer, margin=margin, weight=weight, measure=measure)
        res = defence.fit(model, setup.student_data, TrainConfig(epochs=args.defence_epochs, seed=1, progress=False))
        variants[name] = (TorchClassifier(res.model, shape, 10), res.seconds)
        emit(
            NAME,
            {
                "kind": "defence",
                "variant": name,
                "margin": margin,
                "weight": weight,
                "distance_per_epoch": [round(d, 3) for d in defence.last_distances],
            },
            run,
        )

    # Craft every attack once (crafting never looks at the student), replay on each variant.
    crafted: list[tuple[str, float, Tensor, Tensor | None, float, float | None]] = []
    for eps in args.eps:
        for source, clf in [("teacher", setup.teacher), ("independent_surrogate", surrogate)]:
            attack = Transfer(clf, PGD(eps=eps, steps=20, seed=0))
            result, secs = timed(lambda a=attack: a.run(setup.student, x, y))  # type: ignore[misc]
            crafted.append((f"pgd20:{source}", eps, result.x_adv, None, secs, attack.last_surrogate_success_rate))
        g = torch.Generator().manual_seed(0)
        noise = (x + eps * torch.randint(0, 2, x.shape, generator=g).float().mul(2).sub(1)).clamp(0, 1)
        crafted.append(("random_sign_noise", eps, noise, None, 0.0, None))
    g = torch.Generator().manual_seed(0)
    target = (y + torch.randint(1, 10, y.shape, generator=g)) % 10
    for eps in args.mimic_eps:
        mimic = InternalMimicry(setup.teacher, setup.layer, setup.teacher_data, eps=eps, steps=args.mimic_steps)
        result, secs = timed(lambda m=mimic: m.run(setup.student, x, y, target))  # type: ignore[misc]
        on_teacher = float((setup.teacher.predict_labels(result.x_adv) == target).float().mean())
        crafted.append(("mimicry:teacher", eps, result.x_adv, target, secs, on_teacher))

    for variant, (student, defence_seconds) in variants.items():
        row: dict[str, object] = {
            "kind": "transfer",
            "variant": variant,
            "clean_acc": round(accuracy(student), 4),
            "defence_seconds": round(defence_seconds, 1),
        }
        for attack_name, eps, x_adv, tgt, secs, source_success in crafted:
            pred = student.predict_labels(x_adv)
            success = pred != y if tgt is None else pred == tgt
            row[f"{attack_name}@{eps}"] = round(float(success.float().mean()), 3)
            if variant == "frozen":
                row[f"{attack_name}@{eps}:source_success"] = (
                    None if source_success is None else round(source_success, 3)
                )
                row[f"{attack_name}@{eps}:seconds"] = round(secs, 1)
        emit(NAME, {**row, "n": args.n}, run)


if __name__ == "__main__":
    main()
