"""Clean-label targeted poisoning of a student fine-tuned from a public teacher.

Feature collision (Shafahi et al., NeurIPS 2018), convex polytope (Zhu et al., ICML 2019) and
bullseye polytope (Aghakhani et al., EuroS&P 2021). Every entry with the same classes and
seed attacks the same target images from the same base images, so the three compare on
equal terms. Gray-box attackers craft on surrogate teachers trained here with other seeds
(a shared artefact); the control inserts the unperturbed bases.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
from pydantic import Field, field_validator, model_validator
from torch import nn

from sparring.assess.artefacts import load_module, save_json, save_module
from sparring.assess.context import Artefact, Context
from sparring.assess.families.backdoor import expected_headlines, headline_figures
from sparring.assess.families.transfer_learning import setup_artefact
from sparring.assess.family import TRAIN_INTEGRITY, Family, Rating, Rule, Scenario, ScenarioResult, rated
from sparring.assess.htmlkit import esc, pct, png, table
from sparring.assess.spec import Entry, one_of
from sparring.attacks.poisoning import CLEAN_LABEL_ATTACKS
from sparring.attacks.poisoning.clean_label import CleanLabelResult, evaluate_clean_label, train_surrogates
from sparring.errors import ConfigError
from sparring.metrics import Interval, rate_interval
from sparring.models import build

RULE = Rule("share of targets misclassified as intended", medium=0.1, high=0.5)


class CleanLabelSpec(Entry):
    """Clean-label targeted poisoning in the transfer-learning setting.

    The attacker adds correctly labelled images of ``base_class`` whose features collide with
    a target image of ``target_class``, so the student classifies that image as
    ``base_class``. ``knowledge`` is ``white_box`` (the attacker has the public teacher the
    student copies) or ``gray_box`` (surrogates with other weights); ``training`` is
    ``frozen`` (the student retrains its head) or ``end_to_end``.
    """

    attack: str = "bullseye_polytope"
    knowledge: Literal["white_box", "gray_box"] = "gray_box"
    training: Literal["frozen", "end_to_end"] = "frozen"
    targets: int = Field(10, ge=1)
    n_poisons: int = Field(10, ge=1)
    eps: float = Field(0.3, gt=0, le=1)
    target_class: int = Field(1, ge=0)
    base_class: int = Field(7, ge=0)
    teacher_fraction: float = Field(0.5, gt=0, lt=1)

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return one_of(v, list(CLEAN_LABEL_ATTACKS), "clean-label attack")

    @model_validator(mode="after")
    def _consistent(self) -> CleanLabelSpec:
        if self.target_class == self.base_class:
            raise ValueError("target_class and base_class must differ")
        return self


class CleanLabelScenarioResult(ScenarioResult):
    """Share of targets the poisoned student misclassifies as the base class, beside the control's."""

    model: str
    n_targets: int
    success_rate: float
    control_success_rate: float
    success: list[bool]
    clean_accuracy_before: float
    clean_accuracy: float
    max_linf: float
    seconds_per_target: float
    seconds: float


def surrogates_artefact(ctx: Context, cl: CleanLabelSpec) -> Artefact[list[nn.Module]]:
    """The gray-box attacker's two surrogate teachers, trained on the public data (shared by the entries)."""

    def make(c: Context) -> list[nn.Module]:
        c.log("    training two gray-box surrogate teachers on the public data")
        return train_surrogates(c.artefact(setup_artefact(c, cl.teacher_fraction)), seed=c.seed + 1000)

    def save(models: list[nn.Module], folder: Path) -> None:
        for i, m in enumerate(models):
            save_module(folder / f"surrogate{i}.safetensors", m)
        save_json(folder / "count.json", len(models))

    def load(c: Context, folder: Path) -> list[nn.Module]:
        n = int(json.loads((folder / "count.json").read_text()))
        shape, k = c.data.input_shape, c.data.num_classes
        return [load_module(folder / f"surrogate{i}.safetensors", build(c.model_name, shape, k)) for i in range(n)]

    params = {"teacher_fraction": cl.teacher_fraction}
    return Artefact(f"clean_label-surrogates-{cl.teacher_fraction:g}", params, make, save, load)


def _evaluate(ctx: Context, cl: CleanLabelSpec, attack: Any) -> CleanLabelResult:
    return evaluate_clean_label(
        attack,
        ctx.artefact(setup_artefact(ctx, cl.teacher_fraction)),
        target_class=cl.target_class,
        base_class=cl.base_class,
        n_targets=cl.targets,
        n_poisons=cl.n_poisons,
        training=cl.training,
        knowledge=cl.knowledge,
        surrogates=ctx.artefact(surrogates_artefact(ctx, cl)) if cl.knowledge == "gray_box" else None,
        # the victim retrains: a fresh head to convergence (cheap on cached features), or every layer briefly
        epochs=60 if cl.training == "frozen" else 3,
        lr=0.01 if cl.training == "frozen" else 1e-3,
        seed=ctx.seed,
        progress=False,
    )


def control_artefact(ctx: Context, cl: CleanLabelSpec) -> Artefact[float]:
    """The control's success rate: the unperturbed bases inserted (the same for every attack and knowledge)."""
    params = cl.model_dump(exclude={"attack", "knowledge"})

    def make(c: Context) -> float:
        return _evaluate(c, cl.model_copy(update={"knowledge": "white_box"}), None).success_rate

    def save(rate: float, folder: Path) -> None:
        save_json(folder / "control.json", rate)

    def load(_c: Context, folder: Path) -> float:
        return float(json.loads((folder / "control.json").read_text()))

    name = "clean_label-control-" + "-".join(f"{v}" for v in params.values())
    return Artefact(name, params, make, save, load)


def _html(results: list[dict[str, Any]]) -> str:
    rows = [
        [
            esc(r["attack"]),
            esc(r["params"]["knowledge"]),
            esc(r["params"]["training"]),
            f"{r['params']['target_class']} → {r['params']['base_class']}",
            f"{r['n_targets']} targets × {r['params']['n_poisons']} poisons (eps {r['params']['eps']:g})",
            pct(r["success_rate"]),
            f"{pct(r['clean_accuracy_before'])} → {pct(r['clean_accuracy'])}",
            f"{r['seconds_per_target']:.1f} s",
        ]
        for r in results
    ]
    fig, ax = plt.subplots(figsize=(6, 3))
    names = [f"{r['attack']}\n{r['params']['knowledge']}, {r['params']['training']}" for r in results]
    ax.bar(np.arange(len(results)), [r["success_rate"] for r in results])
    ax.set_xticks(np.arange(len(results)), names, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("targets misclassified")
    ax.set_title("Clean-label targeted poisoning: success rate")
    header = [
        "attack",
        "attacker knows",
        "victim trains",
        "target → base class",
        "budget",
        "success",
        "clean acc.",
        "time per target",
    ]
    return (
        "<h3>Clean-label targeted poisoning (transfer learning)</h3>"
        + table(header, rows)
        + png(fig)
        + '<p class="muted">Success: share of target test images the poisoned student assigns to the base class. '
        "The poisons carry their correct labels and stay within eps of real base-class images.</p>"
    )


class CleanLabelFamily(Family[CleanLabelSpec, CleanLabelScenarioResult]):
    """``[[clean_label]]``: poisons that keep their labels, against a student of a public teacher."""

    key = "clean_label"
    title = "clean-label"
    section = "Training data: poisoning and backdoors"
    order = 50
    spec = CleanLabelSpec
    result = CleanLabelScenarioResult
    threats = {TRAIN_INTEGRITY: "clean-label targeted poisoning"}
    rules = {TRAIN_INTEGRITY: RULE}
    attacks = tuple(CLEAN_LABEL_ATTACKS)
    smoke = {"clean_label": [{"attack": "feature_collision", "knowledge": "white_box", "targets": 1, "n_poisons": 2}]}

    def label(self, entry: CleanLabelSpec) -> str:
        return f"{entry.attack}-{entry.knowledge}-{entry.training}"

    def check_config(self, config: Any, entries: Any) -> None:
        if entries and not config.model.zoo:
            raise ValueError("clean_label trains a zoo teacher and student: [model] needs 'architecture' (or nothing)")

    def check(self, ctx: Context, index: int, entry: CleanLabelSpec) -> None:
        k = ctx.data.num_classes
        for name in ("target_class", "base_class"):
            c = getattr(entry, name)
            if c >= k:
                raise ConfigError(f"clean_label[{index}].{name}: class {c} does not exist (the data has {k})")

    def artefacts(self, ctx: Context, sc: Scenario) -> list[Artefact[Any]]:
        cl = sc.spec
        assert isinstance(cl, CleanLabelSpec)
        out: list[Artefact[Any]] = [setup_artefact(ctx, cl.teacher_fraction), control_artefact(ctx, cl)]
        if cl.knowledge == "gray_box":
            out.append(surrogates_artefact(ctx, cl))
        return out

    def run(self, ctx: Context, sc: Scenario) -> CleanLabelScenarioResult:
        cl = sc.spec
        assert isinstance(cl, CleanLabelSpec)
        ctx.log(f"    {cl.attack} ({cl.knowledge}, {cl.training}) on {cl.targets} targets")
        attack = CLEAN_LABEL_ATTACKS.build(cl.attack, n_poisons=cl.n_poisons, eps=cl.eps, seed=ctx.seed)
        r = _evaluate(ctx, cl, attack)
        return CleanLabelScenarioResult(
            kind=self.key,
            attack=cl.attack,
            params=sc.params(),
            model="student of a public teacher",
            n_targets=len(r.success),
            success_rate=r.success_rate,
            control_success_rate=ctx.artefact(control_artefact(ctx, cl)),
            success=r.success.tolist(),
            clean_accuracy_before=r.clean_accuracy_before,
            clean_accuracy=r.clean_accuracy_after,
            max_linf=r.max_linf,
            seconds_per_target=r.seconds_per_target,
            seconds=r.seconds,
        )

    def rate(self, result: CleanLabelScenarioResult) -> Rating:
        hit = result.success_rate
        knowledge = result.params["knowledge"]
        ci = rate_interval(hit, result.n_targets) if result.n_targets else None
        return rated(RULE, hit, f"{result.attack} ({knowledge}) succeeds on {hit:.0%} of targets", ci)

    def intervals(self, key: str, result: CleanLabelScenarioResult) -> dict[str, Interval]:
        n = result.n_targets
        return {f"{key}.success_rate": rate_interval(result.success_rate, n)} if n else {}

    def figures(self, key: str, result: CleanLabelScenarioResult) -> dict[str, float]:
        return headline_figures(key, result)

    def expected_figures(self, sc: Scenario) -> list[str]:
        return expected_headlines(sc)

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(list(results.values())) if results else ""


FAMILY = CleanLabelFamily()
