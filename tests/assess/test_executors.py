"""Executors (issue 11): the same figures on every executor, failures isolated, resume across executors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sparring.assess import assess, parse_config
from sparring.assess.executor import (
    GraphExecutor,
    LocalExecutor,
    Outcome,
    ProcessExecutor,
    RayExecutor,
    Task,
    run_task,
)
from sparring.assess.families import BY_KEY
from sparring.cli import main
from sparring.errors import TasksFailed

CONFIG: dict[str, Any] = {
    "data": {"dataset": "digits", "test_fraction": 0.25},
    "model": {"architecture": "mlp", "epochs": 3},
    "adversarial_training": {"eps": 0.1, "steps": 2, "epochs": 2},
    "evasion": [
        {"attack": "pgd", "eps": [0.1], "steps": 5, "samples": 60, "sanity_checks": False},
        {"attack": "fgsm", "eps": [0.1], "samples": 60, "sanity_checks": False},
    ],
    "defences": {"evasion": ["adversarial_training"]},
    "poisoning": [{"attack": "label_flip", "fraction": [0.3]}],
}


def _run(tmp: Path, name: str, executor: Any) -> tuple[dict[str, Any], list[str]]:
    log: list[str] = []
    report, _ = assess(parse_config(CONFIG), tmp / name, log=log.append, executor=executor)
    return report, log


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'sparring[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # one cluster for the whole run
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    report, _ = _run(tmp_path_factory.mktemp("local"), "out", LocalExecutor())
    return report


def test_a_process_pool_gives_the_same_figures_and_resumes_locally(local: dict[str, Any], tmp_path: Path) -> None:
    report, _ = _run(tmp_path, "out", ProcessExecutor(workers=2))
    assert report["figures"] == local["figures"]
    again, log = _run(tmp_path, "out", LocalExecutor())  # resume across executors
    assert sum(line.endswith("reusing stored result") for line in log) == len(report["scenarios"])
    assert again["figures"] == local["figures"]


def test_ray_gives_the_same_figures(local: dict[str, Any], tmp_path: Path, ray_cluster: None) -> None:
    report, log = _run(tmp_path, "out", RayExecutor(workers=2))
    assert report["figures"] == local["figures"]
    assert any("artefact:model-adversarial_training stored" in line for line in log)


def test_a_failing_scenario_keeps_the_others_and_a_rerun_retries_only_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    family = BY_KEY["poisoning"]

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in one family")

    monkeypatch.setattr(family, "run", broken)
    with pytest.raises(TasksFailed, match=r"scenario:poisoning\.label_flip: RuntimeError: a bug"):
        _run(tmp_path, "out", LocalExecutor())
    report = (tmp_path / "out" / "report.json").read_text()
    assert "scenario:poisoning.label_flip" in report and "evasion.pgd-linf" in report
    monkeypatch.undo()
    _, log = _run(tmp_path, "out", LocalExecutor())
    assert [line for line in log if not line.endswith("reusing stored result") and line.startswith("[")] == [
        "[5/5] poisoning.label_flip"
    ]


class _Inline(GraphExecutor):
    """The task graph run in this process, with one task made to fail."""

    def __init__(self, fail: str) -> None:
        super().__init__(workers=1)
        self.fail = fail
        self.outcomes: dict[str, Outcome] = {}

    def _submit(self, config: dict[str, Any], workdir: str, task: Task) -> Any:
        failed = Outcome(task.id, None, "RuntimeError: injected", 0.0)
        self.outcomes[task.id] = failed if task.id == self.fail else run_task(config, workdir, task)
        return task.id

    def _wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        return [(handles[0], self.outcomes.pop(handles[0]))]


def test_a_failed_artefact_fails_only_the_scenarios_that_need_it(tmp_path: Path) -> None:
    executor = _Inline(fail="artefact:model-adversarial_training")
    with pytest.raises(TasksFailed):
        _run(tmp_path, "out", executor)
    assert executor.failures == {
        "artefact:model-adversarial_training": "RuntimeError: injected",
        "scenario:evasion.pgd-linf+adversarial_training": "needs artefact:model-adversarial_training, which failed",
        "scenario:evasion.fgsm-linf+adversarial_training": "needs artefact:model-adversarial_training, which failed",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--executor", "process", "--address", "auto"], "goes with --executor ray"), (["--workers", "0"], ">= 1")],
)
def test_bad_executor_options_exit_2(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[data]\ndataset = "digits"\n[[membership]]\n')
    assert main(["assess", str(config), "--out", str(tmp_path / "out"), "--quiet", *args]) == 2
    assert message in capsys.readouterr().err
