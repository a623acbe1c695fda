"""Trustworthy runs (issue 10): results follow their inputs, runs repeat, bad input fails early and clearly."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from sparring.assess import assess, parse_config
from sparring.data import breast_cancer

_names = itertools.count()


def project(tmp: Path, weights_seed: int | None = 0) -> tuple[dict[str, Any], Path]:
    """A user's project: breast-cancer data as .npz, a factory module beside the config, maybe weights."""
    data = breast_cancer()
    np.savez(tmp / "data.npz", x=data.x.numpy(), y=data.y.numpy())
    module = f"usernet{next(_names)}"  # one module name per project: the import is cached per process
    source = "from torch import nn\n\n\ndef build():\n    return nn.Sequential(\n"
    source += "        nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2)\n    )\n"
    (tmp / f"{module}.py").write_text(source)  # beside the config: imported from the config's folder
    model: dict[str, Any] = {"factory": f"{module}:build", "epochs": 30, "lr": 0.01}
    if weights_seed is not None:
        write_weights(tmp / "model.safetensors", weights_seed)
        model["weights"] = "model.safetensors"
    config = {
        "data": {"path": "data.npz", "test_fraction": 0.25},
        "model": model,
        "evasion": [{"attack": "pgd", "eps": [0.1], "steps": 5, "samples": 30, "sanity_checks": False}],
    }
    return config, tmp


def write_weights(path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))


def run(config: dict[str, Any], base: Path, out: Path) -> tuple[dict[str, Any], list[str]]:
    log: list[str] = []
    report, _ = assess(parse_config(config, base), out, log=log.append)
    return report, log


def reused(log: list[str]) -> list[str]:
    return [line for line in log if line.endswith("reusing stored result")]


@pytest.mark.parametrize("change", ["weights", "data", "factory"])
def test_a_changed_input_file_invalidates_its_results(tmp_path: Path, change: str) -> None:
    config, base = project(tmp_path)
    first, _ = run(config, base, tmp_path / "out")
    again, log = run(config, base, tmp_path / "out")
    assert len(reused(log)) == len(first["scenarios"]) and again["figures"] == first["figures"]
    if change == "weights":
        write_weights(base / "model.safetensors", seed=1)
    elif change == "data":
        data = np.load(base / "data.npz")
        np.savez(base / "data.npz", x=data["x"][::-1].copy(), y=data["y"][::-1].copy())
    else:
        module = config["model"]["factory"].partition(":")[0]
        (base / f"{module}.py").write_text((base / f"{module}.py").read_text() + "\n# edited\n")
    changed, log = run(config, base, tmp_path / "out")
    assert reused(log) == [], log
    if change != "factory":  # an edited comment does not change the model; the result is still recomputed
        assert changed["figures"] != first["figures"]
    assert changed["model"]["inputs"][change if change != "data" else "data"] != first["model"]["inputs"][change]


def test_a_factory_model_trained_here_repeats_with_the_seed(tmp_path: Path) -> None:
    config, base = project(tmp_path, weights_seed=None)
    first, _ = run(config, base, tmp_path / "a")
    torch.manual_seed(12345)  # whatever ran before must not matter
    second, _ = run(config, base, tmp_path / "b")
    assert first["figures"] == second["figures"]
    assert first["figures"]["model.clean_accuracy"] > 0.8


# -- item 3: a useless model is not rated ------------------------------------------------------


def test_a_model_that_barely_beats_chance_rates_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)  # labels carry no signal: no model can beat the majority class
    np.savez(tmp_path / "noise.npz", x=rng.random((240, 6)), y=(rng.random(240) < 0.3).astype(np.int64))
    config = {
        "data": {"path": "noise.npz", "test_fraction": 0.25},
        "evasion": [{"attack": "pgd", "eps": [0.1], "steps": 3, "samples": 30, "sanity_checks": False}],
    }
    report, log = run(config, tmp_path, tmp_path / "out")
    assert not report["model"]["chance"]["beats_chance"]
    cell = next(c for c in report["matrix"] if c["column"] == "integrity" and c["row"] == "test-time inputs")
    assert cell["status"] == "not rated" and "barely beats chance" in cell["text"] and "level" not in cell
    assert "majority class" in report["recommendations"][0]
    assert any("no [model] architecture given: training the zoo's mlp" in line for line in log)


# -- item 4: the feature layer, exit codes -------------------------------------------------------


def test_the_default_feature_layer_is_the_input_of_the_last_linear_layer() -> None:
    from sparring.models import capture, feature_layer

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    assert feature_layer(net) == "3:input"
    x = torch.rand(5, 1, 8, 8)
    with capture(net, "3:input") as seen:
        net(x)
    assert torch.equal(seen[0], net[2](net[1](net[0](x))))  # what enters the head, not what leaves it


def test_feature_space_defences_run_on_a_users_factory(tmp_path: Path) -> None:
    module = f"usermlp{next(_names)}"
    (tmp_path / f"{module}.py").write_text(
        "from torch import nn\n\n\ndef build():\n    return nn.Sequential(\n"
        "        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)\n    )\n"
    )
    config = {
        "data": {"dataset": "digits"},
        "model": {"factory": f"{module}:build", "epochs": 2, "lr": 0.01},
        "backdoor": [
            {"attack": "badnets", "poison_fraction": 0.1, "patch_size": 3, "defences": ["activation_clustering"]}
        ],
    }
    report, _ = run(config, tmp_path, tmp_path / "out")  # before: "model has no layer named 'penultimate'"
    assert "backdoor.badnets+activation_clustering.detector_fpr" in report["figures"]


def test_an_internal_error_exits_3_with_one_line_and_a_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sparring.assess import run as run_module
    from sparring.cli import main

    config, base = project(tmp_path)
    (base / "c.toml").write_text(toml(config))

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug\nwith two lines")

    monkeypatch.setattr(run_module, "build_report", broken)
    out = tmp_path / "out"
    assert main(["assess", str(base / "c.toml"), "--out", str(out), "--quiet"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "internal error: RuntimeError: a bug" in err and "Traceback" not in err
    assert "Traceback" in (out / ".work" / "error.log").read_text()


def test_a_scenario_stopped_by_a_quota_is_an_incomplete_run_not_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sparring.assess.families import BY_KEY
    from sparring.cli import main
    from sparring.errors import QueryBudgetExceeded

    config, base = project(tmp_path)
    (base / "c.toml").write_text(toml(config))

    def stopped(*_args: Any, **_kwargs: Any) -> Any:
        raise QueryBudgetExceeded("http://127.0.0.1:8080: quota of 100 queries spent")

    monkeypatch.setattr(BY_KEY["evasion"], "run", stopped)
    out = tmp_path / "out"
    assert main(["assess", str(base / "c.toml"), "--out", str(out), "--quiet"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sparring: incomplete:") and "quota of 100" in err
    assert "internal error" not in err and (out / "report.json").is_file()


def toml(config: dict[str, Any]) -> str:
    """A config dict as TOML (tables, then arrays of tables)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = []
    for key, v in config.items():
        for entry in v if isinstance(v, list) else [v]:
            lines.append(f"[[{key}]]" if isinstance(v, list) else f"[{key}]")
            lines += [f"{k} = {value(x)}" for k, x in entry.items()]
    return "\n".join(lines) + "\n"


# -- item 5: a figure the sample cannot resolve ----------------------------------------------------


def test_membership_with_too_few_non_members_is_not_measurable(tmp_path: Path) -> None:
    config, base = project(tmp_path, weights_seed=None)
    config.pop("evasion")
    config["membership"] = [{"samples": 60}]
    report, _ = run(config, base, tmp_path / "out")
    cell = next(c for c in report["matrix"] if c["column"] == "privacy" and c["row"] == "test-time inputs")
    assert cell["status"] == "not measurable" and "not measurable with" in cell["text"] and "level" not in cell
    assert "membership.loss_threshold.auc" in report["intervals"]


# -- item 9: stable names, gates checked before the run ---------------------------------------------


def test_named_entries_keep_their_keys_when_entries_are_added() -> None:
    from sparring.assess.planner import plan

    one = {"data": {"dataset": "digits"}, "evasion": [{"attack": "pgd", "eps": [0.1], "name": "main"}]}
    two = {**one, "evasion": [*one["evasion"], {"attack": "pgd", "eps": [0.2]}]}
    assert [s.key for s in plan(parse_config(one))] == ["evasion.main"]
    assert [s.key for s in plan(parse_config(two))] == ["evasion.main", "evasion.pgd-linf"]


def test_gates_are_checked_before_the_run_by_value_and_norm(tmp_path: Path) -> None:
    from sparring.assess.gates import check_gates, parse_gate
    from sparring.assess.planner import plan
    from sparring.assess.run import expected_figures
    from sparring.errors import ConfigError

    config = {
        "data": {"dataset": "digits"},
        "evasion": [{"attack": "pgd", "eps": [0.1]}, {"attack": "pgd", "norm": "l2", "eps": [0.1]}],
    }
    expected = expected_figures(plan(parse_config(config)))
    warnings: list[str] = []
    check_gates([parse_gate("evasion.pgd-linf.robust_accuracy@0.10<0.5")], expected, warnings.append)
    assert warnings == []
    check_gates([parse_gate("robust_accuracy@0.1<0.5")], expected, warnings.append)
    assert len(warnings) == 1 and "several norms (l2, linf)" in warnings[0]
    with pytest.raises(ConfigError, match="matches no figure this config will report"):
        check_gates([parse_gate("robust_accuracy@0.3<0.5")], expected, warnings.append)
    out = tmp_path / "out"
    with pytest.raises(ConfigError):
        assess(parse_config(config), out, fail_on=["evasion.pgd-linf.asr>0.5"], log=lambda _m: None)
    assert not out.exists()


# -- item 10: smaller ones ----------------------------------------------------------------------------


def test_fresh_removes_the_previous_report_before_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sparring.assess import executor

    config, base = project(tmp_path)
    out = tmp_path / "out"
    run(config, base, out)
    assert (out / "report.html").is_file()

    def interrupted(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(executor.LocalExecutor, "map", interrupted)
    with pytest.raises(KeyboardInterrupt):
        assess(parse_config(config, base), out, fresh=True, log=lambda _m: None)
    assert not (out / "report.html").exists() and not (out / "report.json").exists()


def test_autoattack_checkpoints_are_removed_once_the_curve_is_complete(tmp_path: Path) -> None:
    config, base = project(tmp_path)
    entry = {"attack": "autoattack", "version": "fast", "eps": [0.05], "samples": 8, "sanity_checks": False}
    config["evasion"] = [entry]
    report, _ = run(config, base, tmp_path / "out")
    assert "evasion.autoattack-linf.robust_accuracy@0.05" in report["figures"]
    assert not [p for p in (tmp_path / "out" / ".work").rglob("*.pt")]


def test_scikit_learn_trees_load_without_listing_their_types(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    from sparring.models import load_skops

    data = breast_cancer()
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(data.x.numpy(), data.y.numpy())
    sio.dump(tree, tmp_path / "tree.skops")
    loaded = load_skops(tmp_path / "tree.skops")
    assert (loaded.predict(data.x.numpy()) == tree.predict(data.x.numpy())).all()


def test_declared_probabilities_are_checked(tmp_path: Path) -> None:
    from sparring.errors import InputError
    from sparring.models import export_onnx

    config, base = project(tmp_path)
    net = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))
    export_onnx(net, (30,), base / "logits.onnx")
    config["model"] = {"onnx": "logits.onnx", "onnx_output": "probabilities"}
    with pytest.raises(InputError, match="not probabilities"):
        run(config, base, tmp_path / "out")
