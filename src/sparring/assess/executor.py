"""Executors run planned work and store each result as it finishes; they share one interface.

:class:`LocalExecutor` runs in-process, in plan order. :class:`ProcessExecutor` (a pool of
spawned worker processes on this machine) and :class:`RayExecutor` (Ray core tasks on a
one-node cluster started here, or on an existing cluster) schedule a small task graph: the
stored artefacts each scenario declares (trained and defended models, teachers, surrogates)
are tasks that run first, in parallel, and a scenario runs once its artefacts are stored.
What crosses to a worker is the config (as JSON), the work directory and a task id; models
and datasets travel through the work directory, never through pickled closures. A worker
prepares its context once (data, model checks) and keeps it for every task it runs.

Every executor stores each result under the scenario's fingerprint, so a run interrupted on
one executor resumes on another; a task that raises is reported with its id, and the other
tasks' results are kept.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sparring.assess.context import Context, fingerprint
from sparring.assess.families import BY_KEY
from sparring.assess.family import Scenario, ScenarioResult
from sparring.assess.store import ResultStore
from sparring.errors import SparringError


def scenario_fingerprint(ctx: Context, sc: Scenario) -> str:
    """Everything that shapes a scenario's result; a stored result with another fingerprint is stale."""
    family = BY_KEY[sc.family]
    return ctx.fingerprint(sc.family, sc.params(), sc.defence, family.fingerprint(ctx, sc))


@dataclass(frozen=True)
class Task:
    """One unit of work: a scenario, or one stored artefact a scenario declares."""

    scenario: str
    artefact: str | None = None

    @property
    def id(self) -> str:
        """Stable id: ``scenario:KEY`` or ``artefact:NAME``."""
        return f"artefact:{self.artefact}" if self.artefact is not None else f"scenario:{self.scenario}"


@dataclass(frozen=True)
class Outcome:
    """What a worker sends back: the result JSON of a scenario, or the error of a failed task."""

    task: str
    result: dict[str, Any] | None
    error: str | None
    seconds: float


class Executor(ABC):
    """Runs scenarios; results keyed by scenario key; failed tasks in :attr:`failures` (task id -> error)."""

    def __init__(self) -> None:
        self.failures: dict[str, str] = {}

    @abstractmethod
    def map(
        self,
        ctx: Context,
        scenarios: list[Scenario],
        store: ResultStore | None = None,
        log: Callable[[str], None] = print,
    ) -> dict[str, ScenarioResult]:
        """Run (or reuse) every scenario; returns results by scenario key."""


def _reuse(
    ctx: Context, scenarios: list[Scenario], store: ResultStore | None, log: Callable[[str], None]
) -> tuple[dict[str, ScenarioResult], list[Scenario]]:
    """Stored results whose fingerprint matches, and the scenarios still to run."""
    results: dict[str, ScenarioResult] = {}
    todo = []
    for i, sc in enumerate(scenarios, 1):
        stored = _load(BY_KEY[sc.family], store.get(sc.key, scenario_fingerprint(ctx, sc))) if store else None
        if stored is not None:
            log(f"[{i}/{len(scenarios)}] {sc.key}: reusing stored result")
            results[sc.key] = stored
        else:
            todo.append(sc)
    return results, todo


def run_scenario(ctx: Context, sc: Scenario) -> ScenarioResult:
    """Build (or load) the scenario's artefacts, run it, and time it."""
    family = BY_KEY[sc.family]
    t0 = time.perf_counter()
    for artefact in family.artefacts(ctx, sc):
        ctx.artefact(artefact)
    result = family.run(ctx, sc)
    result.wall_seconds = time.perf_counter() - t0
    return result


def _error(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else '(no message)'}"


class LocalExecutor(Executor):
    """In-process, one scenario after another (the default)."""

    def map(
        self,
        ctx: Context,
        scenarios: list[Scenario],
        store: ResultStore | None = None,
        log: Callable[[str], None] = print,
    ) -> dict[str, ScenarioResult]:
        results, todo = _reuse(ctx, scenarios, store, log)
        for sc in todo:
            log(f"[{len(results) + len(self.failures) + 1}/{len(scenarios)}] {sc.key}")
            try:
                result = run_scenario(ctx, sc)
            except Exception as e:  # isolated: the other scenarios still run and are stored
                self.failures[Task(sc.key).id] = _error(e)
                log(f"  failed: {_error(e)}")
                continue
            if store is not None:
                store.put(sc.key, scenario_fingerprint(ctx, sc), result.to_json())
            results[sc.key] = result
        return results


# -- the worker side --------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _worker_context(config: dict[str, Any], workdir: str, threads: int) -> tuple[Context, dict[str, Scenario]]:
    """The worker's context for this config and work directory, prepared once per process."""
    import torch

    from sparring.assess.config import AssessConfig
    from sparring.assess.planner import plan
    from sparring.assess.prepare import prepare

    key = fingerprint(config, workdir)
    if _WORKER.get("key") != key:
        torch.set_num_threads(threads)
        os.environ.setdefault("SPARRING_PROGRESS", "0")
        cfg = AssessConfig.model_validate(config)  # paths were made absolute by the driver
        ctx = prepare(cfg, log=lambda _msg: None)
        ctx.workdir = Path(workdir)
        _WORKER.update(key=key, ctx=ctx, scenarios={s.key: s for s in plan(cfg)})
    return _WORKER["ctx"], _WORKER["scenarios"]


def run_task(config: dict[str, Any], workdir: str, task: Task, threads: int = 1) -> Outcome:
    """Run one task in a worker: build and store an artefact, or run a scenario and return its result JSON."""
    t0 = time.perf_counter()
    try:
        ctx, scenarios = _worker_context(config, workdir, threads)
        sc = scenarios[task.scenario]
        family = BY_KEY[sc.family]
        if task.artefact is not None:
            ctx.artefact(next(a for a in family.artefacts(ctx, sc) if a.name == task.artefact))
            return Outcome(task.id, None, None, time.perf_counter() - t0)
        return Outcome(task.id, run_scenario(ctx, sc).to_json(), None, time.perf_counter() - t0)
    except Exception as e:
        return Outcome(task.id, None, _error(e), time.perf_counter() - t0)


# -- the task graph, shared by the pool executors -----------------------------------------------


class GraphExecutor(Executor):
    """Runs the stored artefacts first, then each scenario once its artefacts are stored."""

    def __init__(self, workers: int | None = None) -> None:
        super().__init__()
        cpus = os.cpu_count() or 1
        self.workers = max(1, workers or cpus)
        self.threads = max(1, cpus // self.workers)  # workers x threads never oversubscribe the cores

    @abstractmethod
    def _submit(self, config: dict[str, Any], workdir: str, task: Task) -> Any:
        """Start ``task``; returns a handle."""

    @abstractmethod
    def _wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        """Block until at least one handle is done; the done ones with their outcomes."""

    def _close(self) -> None:
        """Release the workers."""

    def map(
        self,
        ctx: Context,
        scenarios: list[Scenario],
        store: ResultStore | None = None,
        log: Callable[[str], None] = print,
    ) -> dict[str, ScenarioResult]:
        if ctx.workdir is None:
            raise ValueError(f"{type(self).__name__} needs a work directory: workers share artefacts through it")
        results, todo = _reuse(ctx, scenarios, store, log)
        config, workdir = ctx.config.model_dump(mode="json"), str(ctx.workdir)
        needs: dict[str, set[str]] = {}
        artefacts: dict[str, Task] = {}
        for sc in todo:
            stored = [a.name for a in BY_KEY[sc.family].artefacts(ctx, sc) if a.save is not None and a.load is not None]
            needs[sc.key] = set(stored)
            for name in stored:
                artefacts.setdefault(name, Task(sc.key, name))
        by_key = {sc.key: sc for sc in todo}
        running: dict[Any, Task] = {}
        done: set[str] = set()

        def submit(task: Task) -> None:
            running[self._submit(config, workdir, task)] = task

        def ready() -> None:
            for key in [k for k, n in needs.items() if n <= done]:
                del needs[key]
                submit(Task(key))

        try:
            for task in artefacts.values():
                submit(task)
            ready()
            while running:
                for handle, outcome in self._wait(list(running)):
                    task = running.pop(handle)
                    if outcome.error is not None:
                        self.failures[task.id] = outcome.error
                        log(f"  {task.id} failed: {outcome.error}")
                        if task.artefact is not None:  # its scenarios cannot run
                            for key in [k for k, n in needs.items() if task.artefact in n]:
                                del needs[key]
                                self.failures[Task(key).id] = f"needs {task.id}, which failed"
                        continue
                    if task.artefact is not None:
                        done.add(task.artefact)
                        log(f"  {task.id} stored ({outcome.seconds:.1f} s)")
                        ready()
                        continue
                    sc = by_key[task.scenario]
                    assert outcome.result is not None
                    result = BY_KEY[sc.family].load(outcome.result)
                    result.wall_seconds = outcome.seconds
                    if store is not None:
                        store.put(sc.key, scenario_fingerprint(ctx, sc), result.to_json())
                    results[sc.key] = result
                    waiting = len(needs)
                    log(
                        f"[{len(results)}/{len(scenarios)}] {sc.key} ({outcome.seconds:.1f} s; "
                        f"{len(running)} running, {waiting} waiting on artefacts)"
                    )
        finally:
            self._close()
        return results


class ProcessExecutor(GraphExecutor):
    """A pool of ``workers`` spawned processes on this machine, each with ``cores // workers`` torch threads."""

    def __init__(self, workers: int | None = None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        super().__init__(workers)
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))

    def _submit(self, config: dict[str, Any], workdir: str, task: Task) -> Any:
        return self._pool.submit(run_task, config, workdir, task, self.threads)

    def _wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        return [(h, h.result()) for h in done]

    def _close(self) -> None:
        self._pool.shutdown(wait=True)


class RayExecutor(GraphExecutor):
    """Ray core tasks: a one-node cluster started here (``address`` None) or an existing one (``auto``, ``ray://``).

    Each task asks Ray for ``cores // workers`` CPUs of the local node (one on a cluster);
    the work directory must be reachable by every node (a shared path).
    """

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise SparringError("--executor ray needs Ray: pip install 'sparring[ray]'") from None
        super().__init__(workers)
        self._ray = ray
        self._address = address
        self._remote: Any = None

    def start(self) -> None:
        """Start (or attach to) the cluster; done on the first task, so a config refused as bad input starts none."""
        if self._remote is not None:
            return
        if not self._ray.is_initialized():
            if self._address is None:
                self._ray.init(num_cpus=self.workers * self.threads, include_dashboard=False, log_to_driver=False)
            else:
                self._ray.init(address=self._address, log_to_driver=False)
        self._remote = self._ray.remote(num_cpus=self.threads)(run_task)

    def _submit(self, config: dict[str, Any], workdir: str, task: Task) -> Any:
        self.start()
        return self._remote.remote(config, workdir, task, self.threads)

    def _wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        done, _ = self._ray.wait(handles, num_returns=1)
        return [(h, self._ray.get(h)) for h in done]


def make_executor(name: str, workers: int | None = None, address: str | None = None) -> Executor:
    """``local``, ``process`` or ``ray`` (``address`` only for ray)."""
    if address is not None and name != "ray":
        raise SparringError("--address goes with --executor ray")
    if workers is not None and workers < 1:
        raise SparringError(f"--workers must be >= 1, got {workers}")
    if name == "local":
        return LocalExecutor()
    if name == "process":
        return ProcessExecutor(workers)
    if name == "ray":
        return RayExecutor(workers, address)
    raise SparringError(f"unknown executor {name!r}; choose local, process or ray")


def _load(family: Any, data: dict[str, Any] | None) -> ScenarioResult | None:
    """A stored result as the family's type; None if there is none or it is not one (an older format)."""
    if data is None:
        return None
    try:
        result: ScenarioResult = family.load(data)
    except ValidationError:
        return None
    return result
