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
