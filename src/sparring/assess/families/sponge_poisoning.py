"""Sponge poisoning: training that makes every input costlier (training-data availability).

Cinà et al. ("Energy-Latency Attacks via Sponge Poisoning", 2022) add a density-raising
term to the loss on a share of the training batches; the model keeps its accuracy while a
zero-skipping accelerator saves less energy on every input, natural ones included. The
assessed architecture is trained twice on the same data and seed, cleanly and poisoned, and
both are measured on clean test inputs with the modelled ASIC energy of Shumailov et al.
(IEEE EuroS&P 2021), beside both clean accuracies. Activation-sparsity regularisation is not
a defence against it (the poisoner controls training), so the family takes no defences.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from sparring.assess.context import Context
from sparring.assess.family import (
    TRAIN_AVAILABILITY,
    Family,
    Rating,
    Rule,
    Scenario,
    ScenarioResult,
    rated,
)
from sparring.assess.htmlkit import esc, pct, png, table
from sparring.assess.spec import Strict
from sparring.attacks.availability.cost import EnergyModel, HardwareModel, UnsupportedLayerError
from sparring.attacks.availability.poisoning import SpongePoisoning
from sparring.errors import ConfigError
from sparring.metrics import accuracy
from sparring.models import TorchClassifier

RULE = Rule(
    "energy ratio of the sponge-poisoned model on clean inputs over a cleanly trained one, minus 1 "
    "(modelled zero-skipping ASIC)",
    medium=0.1,
    high=0.5,
    note="read beside the clean-accuracy cost",
)


class SpongePoisoningSpec(Strict):
    """Sponge poisoning of ``fraction`` of the training batches with weight ``lam``.

    ``samples`` clean test inputs are measured; ``batch`` inputs share one read of the
    weights in the energy model.
    """

    fraction: float = Field(0.5, ge=0, le=1)
    lam: float = Field(1.0, ge=0)
    sigma: float = Field(1e-4, gt=0)
    samples: int = Field(500, ge=2)
    batch: int = Field(1, ge=1)


class SpongePoisoningResult(ScenarioResult):
    """Energy ratio and density of the clean and the poisoned model on clean inputs, and both accuracies."""

    clean_accuracy: float
    poisoned_accuracy: float
    ratio_clean: float
    ratio_poisoned: float
    density_clean: float
    density_poisoned: float
    increase: float
    n_samples: int
    ratios_clean: list[float]
    ratios_poisoned: list[float]
    train_seconds: float


def _html(results: list[dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    out = []
    rows = []
    for r in results:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.hist(r["ratios_clean"], bins=30, alpha=0.6, label="cleanly trained")
        ax.hist(r["ratios_poisoned"], bins=30, alpha=0.6, label="sponge-poisoned")
        ax.set_xlabel("energy ratio on clean inputs (zero-skipping / dense)")
        ax.set_ylabel("inputs")
        ax.legend(fontsize=7)
        ax.set_title(f"Sponge poisoning (fraction {r['params']['fraction']:g}, lambda {r['params']['lam']:g})")
        out.append(png(fig))
        rows.append(
            [
                esc(f"fraction {r['params']['fraction']:g}, lambda {r['params']['lam']:g}"),
                f"{r['ratio_clean']:.4f} → {r['ratio_poisoned']:.4f} ({r['increase']:+.1%})",
                f"{pct(r['density_clean'])} → {pct(r['density_poisoned'])}",
                f"{pct(r['clean_accuracy'])} → {pct(r['poisoned_accuracy'])}",
                str(r["n_samples"]),
            ]
        )
    header = ["poisoning", "energy ratio (clean → poisoned model)", "post-activation density", "clean accuracy",
              "inputs"]
    out.append(table(header, rows))
    return "".join(out)


class SpongePoisoningFamily(Family[SpongePoisoningSpec, SpongePoisoningResult]):
    """``[[sponge_poisoning]]``: the assessed architecture trained with the sponge term, against a clean copy."""

    key = "sponge_poisoning"
    title = "sponge poisoning"
    section = "Sponge poisoning (training-data availability)"
    order = 45
    spec = SpongePoisoningSpec
    result = SpongePoisoningResult
    threats = {TRAIN_AVAILABILITY: "sponge poisoning"}
    rules = {TRAIN_AVAILABILITY: RULE}
    attacks = ("sponge_poisoning",)
    smoke = {"sponge_poisoning": [{"samples": 50}]}

    def label(self, entry: SpongePoisoningSpec) -> str:
        return f"fraction-{entry.fraction:g}-lam-{entry.lam:g}"

    def check_config(self, config: Any, entries: Any) -> None:
        if entries and not config.model.trains_here:
            raise ValueError(
                "sponge poisoning retrains the model, so [model] needs 'architecture' or a 'factory' without 'weights'"
            )

    def check(self, ctx: Context, index: int, entry: SpongePoisoningSpec) -> None:
        try:
            EnergyModel().check(ctx.build_model())
        except UnsupportedLayerError as e:
            raise ConfigError(f"sponge_poisoning[{index}]: {e}") from None

    def run(self, ctx: Context, sc: Scenario) -> SpongePoisoningResult:
        sp = sc.spec
        assert isinstance(sp, SpongePoisoningSpec)
        clean, _ = ctx.target()
        assert isinstance(clean, TorchClassifier)
        attack = SpongePoisoning(sp.fraction, sp.lam, sp.sigma, seed=ctx.seed)

        def train() -> tuple[Any, float]:
            result = attack.fit(ctx.build_model(), ctx.train, ctx.train_config())
            return result.model, result.seconds

        poisoned, seconds = ctx.cached_model(f"sponge-poisoned-{sc.label}", attack.get_params(), train)
        x = ctx.test.take(sp.samples, seed=ctx.seed).x
        energy = EnergyModel(HardwareModel(batch=sp.batch))
        e_clean, e_poisoned = energy.measure(clean.model, x), energy.measure(poisoned.model, x)
        r_clean, r_poisoned = float(e_clean.ratio.mean()), float(e_poisoned.ratio.mean())
        return SpongePoisoningResult(
            kind=self.key,
            attack="sponge_poisoning",
            params=sc.params(),
            clean_accuracy=accuracy(clean, ctx.test.x, ctx.test.y),
            poisoned_accuracy=accuracy(poisoned, ctx.test.x, ctx.test.y),
            ratio_clean=r_clean,
            ratio_poisoned=r_poisoned,
            density_clean=float(e_clean.density.mean()),
            density_poisoned=float(e_poisoned.density.mean()),
            increase=r_poisoned / r_clean - 1.0,
            n_samples=len(x),
            ratios_clean=[float(v) for v in e_clean.ratio],
            ratios_poisoned=[float(v) for v in e_poisoned.ratio],
            train_seconds=seconds,
        )

    def rate(self, result: SpongePoisoningResult) -> Rating:
        return rated(
            RULE,
            result.increase,
            f"energy {result.increase:+.1%} on clean inputs (density {result.density_clean:.1%} → "
            f"{result.density_poisoned:.1%}), clean accuracy {result.clean_accuracy:.1%} → "
            f"{result.poisoned_accuracy:.1%}",
        )

    def figures(self, key: str, result: SpongePoisoningResult) -> dict[str, float]:
        return {
            f"{key}.energy_increase": result.increase,
            f"{key}.ratio_poisoned": result.ratio_poisoned,
            f"{key}.density_poisoned": result.density_poisoned,
            f"{key}.accuracy_cost": result.clean_accuracy - result.poisoned_accuracy,
        }

    def html(self, results: Mapping[str, dict[str, Any]], report: Mapping[str, Any]) -> str:
        return _html(list(results.values())) if results else ""


FAMILY = SpongePoisoningFamily()
