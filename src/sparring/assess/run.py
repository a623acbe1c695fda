"""``sparring assess``: config in, report out."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from sparring import __version__
from sparring.assess.config import load_config
from sparring.assess.context import Context, write_json_atomic
from sparring.assess.executor import Executor, LocalExecutor
from sparring.assess.families import BY_KEY, FAMILIES
from sparring.assess.family import Scenario
from sparring.assess.gates import check_gates, parse_gate
from sparring.assess.html import render
from sparring.assess.markdown import render_markdown
from sparring.assess.planner import plan
from sparring.assess.prepare import prepare
from sparring.assess.report import build_report
from sparring.assess.spec import BaseConfig
from sparring.assess.store import ResultStore
from sparring.data import Dataset
from sparring.errors import ConfigError, TasksFailed
from sparring.metrics import accuracy, rate_interval
from sparring.models import Classifier


def assess(
    config: BaseConfig | str | Path,
    out: str | Path,
    fail_on: Sequence[str] = (),
    fresh: bool = False,
    log: Callable[[str], None] = print,
    executor: Executor | None = None,
) -> tuple[dict[str, Any], bool]:
    """Run an assessment and write ``out/report.html``, ``out/report.json`` and ``out/report.md``.

    Everything that can fail on user input (config, data, model shape, access, gate syntax)
    is checked before ``out`` is created. Per-scenario results and shared artefacts are kept
    under ``out/.work`` so an interrupted run resumes; ``fresh`` ignores them. Returns the
    report and whether any gate failed.
    """
    cfg = config if isinstance(config, BaseConfig) else load_config(config)
    gates = [parse_gate(rule) for rule in fail_on]
    scenarios = plan(cfg)
    check_gates(gates, expected_figures(scenarios), log)
    ctx = prepare(cfg, log)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} exists and is not a directory")
    started = time.perf_counter()
    work = out_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    if fresh:  # nothing of the earlier run stays: a stale report beside new partial results would mislead
        for f in [*work.rglob("*"), *(out_dir / f"report.{ext}" for ext in ("json", "html", "md"))]:
            if f.is_file():
                f.unlink()
    ctx.workdir = work
    log(f"sparring {__version__}: {len(scenarios)} scenarios on {ctx.data.name} -> {out_dir}")
    target, train_seconds = ctx.target()
    model = _model_info(ctx, target, train_seconds)
    runner = executor or LocalExecutor()
    results = runner.map(ctx, scenarios, ResultStore(work / "results"), log)
    report = build_report(cfg, model, results, time.perf_counter() - started)
    report["failures"] = [{"task": task, "error": error} for task, error in runner.failures.items()]
    failed = False
    gate_error: ConfigError | None = None
    try:
        report["fail_on"] = [g.check(report["figures"]) for g in gates]
        failed = any(g["failed"] for g in report["fail_on"])
    except ConfigError as e:  # a gate naming no figure: still write the report, then report the error
        gate_error = e
    write_json_atomic(out_dir / "report.json", report)
    for name, text in (("report.html", render(report)), ("report.md", render_markdown(report))):
        tmp = out_dir / f"{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out_dir / name)
    log(f"report: {out_dir / 'report.html'}")
    if runner.failures:
        first = next(iter(runner.failures.items()))
        raise TasksFailed(
            f"{len(runner.failures)} task(s) failed, e.g. {first[0]}: {first[1]}; the report lists them, and a rerun "
            "retries only them"
        )
    if gate_error is not None:
        raise gate_error
    return report, failed


def expected_figures(scenarios: list[Scenario]) -> list[str]:
    """Every figure key (globs allowed) the scenarios will report, known before they run."""
    out = ["model.clean_accuracy"]
    for sc in scenarios:
        out += BY_KEY[sc.family].expected_figures(sc)
    for f in FAMILIES:
        out += f.expected_extras([sc for sc in scenarios if sc.family == f.key])
    return out


def chance(clean_accuracy: float, train: Dataset, test: Dataset) -> dict[str, Any]:
    """Whether a model beats always answering the training set's majority class, beyond its 95 % interval.

    The baseline is that answer's accuracy on the test set; the model beats chance when the
    Clopper-Pearson interval of its clean accuracy lies wholly above it.
    """
    majority = int(torch.bincount(train.y).argmax())
    baseline = float((test.y == majority).float().mean())
    ci = rate_interval(clean_accuracy, len(test))
    return {"majority_accuracy": baseline, "interval": ci.as_dict(), "beats_chance": ci.low > baseline}


def _model_info(ctx: Context, target: Classifier, train_seconds: float) -> dict[str, Any]:
    clean = accuracy(target, ctx.test.x, ctx.test.y)
    odds = chance(clean, ctx.train, ctx.test)
    info: dict[str, Any] = {
        "name": ctx.model_name,
        "data": ctx.data.name,
        "n_train": len(ctx.train),
        "n_test": len(ctx.test),
        "input_shape": list(ctx.data.input_shape),
        "num_classes": ctx.data.num_classes,
        "clean_accuracy": clean,
        "chance": odds,
        "train_seconds": train_seconds,
        "inputs": ctx.inputs,
        "provenance": ctx.provenance,
    }
    if not odds["beats_chance"]:
        ctx.log(
            f"warning: clean accuracy {clean:.1%} does not clearly beat the majority class "
            f"({odds['majority_accuracy']:.1%}); no risk will be rated"
        )
    return info
