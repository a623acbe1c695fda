"""Executors side by side: the same assessment with local, process and ray, one after another.

Wall time of each (from a fresh work directory, the target model trained once beforehand and
shared), the speed-up over local, whether the figures are identical, Ray's start-up time and
per-task overhead, and the critical path through the task graph from the measured task times:
what 8 and 32 workers would buy at best.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import emit, run_id
from sparring.assess import assess, parse_config
from sparring.assess.executor import Executor, LocalExecutor, ProcessExecutor, RayExecutor

CONFIG: dict[str, Any] = {
    "data": {"dataset": "digits", "test_fraction": 0.25},
    "model": {"architecture": "small_cnn", "epochs": 6},
    "adversarial_training": {"eps": 0.1, "steps": 5, "epochs": 8},
    "evasion": [
        {"attack": "pgd", "eps": [0.05, 0.1, 0.2], "steps": 40, "samples": 450, "sanity_checks": False},
        {"attack": "apgd", "eps": [0.1, 0.2], "steps": 40, "samples": 450, "sanity_checks": False},
        {"attack": "square", "eps": [0.1], "samples": 200, "max_queries": 1000},
    ],
    "defences": {"evasion": ["adversarial_training", "dropout", "bit_depth:3"]},
    "backdoor": [{"attack": "badnets", "poison_fraction": 0.1, "patch_size": 2}],
    "poisoning": [{"attack": "label_flip", "fraction": [0.1, 0.3]}],
}


def _timed(executor: Executor, out: Path) -> tuple[float, dict[str, Any]]:
    # the target model is trained once, outside the timing, and copied in: every executor starts equal
    start = time.perf_counter()
    report, _ = assess(parse_config(CONFIG), out, log=lambda _m: None, executor=executor)
    return time.perf_counter() - start, report


def critical_path(report: dict[str, Any], workers: int) -> float:
    """A lower bound on wall time with ``workers``: max(longest task, total work / workers)."""
    times = [float(r.get("wall_seconds") or 0.0) for r in report["scenarios"].values()]
    return max(max(times), sum(times) / workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    run = run_id()
    base = Path(tempfile.mkdtemp(prefix="sparring-executors-"))
    warm = base / "warm"
    assess(parse_config({**CONFIG, "evasion": CONFIG["evasion"][:1], "defences": {}}), warm, log=lambda _m: None)
    runs: dict[str, tuple[float, dict[str, Any]]] = {}
    ray_start = 0.0
    for name in ("local", "process", "ray"):
        out = base / name
        shutil.copytree(warm / ".work" / "artefacts", out / ".work" / "artefacts")
        if name == "ray":
            t0 = time.perf_counter()
            ray_executor = RayExecutor(args.workers)
            ray_executor.start()
            ray_start = time.perf_counter() - t0
            executor: Executor = ray_executor
        else:
            executor = LocalExecutor() if name == "local" else ProcessExecutor(args.workers)
        runs[name] = _timed(executor, out)
    local_seconds, local = runs["local"]
    for name, (seconds, report) in runs.items():
        emit(
            "executors",
            {
                "executor": name,
                "workers": 1 if name == "local" else args.workers,
                "seconds": round(seconds, 2),
                "speedup_over_local": round(local_seconds / seconds, 2),
                "identical_figures": report["figures"] == local["figures"],
                "scenarios": len(report["scenarios"]),
            },
            run,
        )
    import ray

    @ray.remote(num_cpus=1)
    def noop() -> None:
        return None

    ray.get(noop.remote())
    t0 = time.perf_counter()
    ray.get([noop.remote() for _ in range(200)])
    overhead_ms = 1000 * (time.perf_counter() - t0) / 200
    emit("executors", {"ray_start_seconds": round(ray_start, 2), "ray_task_overhead_ms": round(overhead_ms, 2)}, run)
    for workers in (8, 32):
        bound = round(critical_path(local, workers), 2)
        emit("executors", {"estimate": "critical path", "workers": workers, "seconds": bound}, run)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
