"""Helpers shared by the benchmarks: data, a cached trained model, timing, JSON lines.

Benchmarks run sparring and a peer library on the same model and the same inputs in one
process, so machine load affects both alike; every figure they print is also appended to
``benchmarks/results/<name>.jsonl`` (one JSON object per line, with a UTC timestamp and
the environment, so runs on different days can be told apart).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from sparring.data import Dataset, load_builtin
from sparring.models import build
from sparring.train import TrainConfig, fit

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results"

T = TypeVar("T")


def environment() -> dict[str, Any]:
    """What a timing depends on: versions, threads, cores."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def split(dataset: str = "mnist5k", test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """The seeded train/test split every benchmark uses."""
    return load_builtin(dataset).split(test_fraction, seed=seed)


def trained_model(
    train: Dataset,
    architecture: str = "small_cnn",
    epochs: int = 8,
    seed: int = 0,
    transform_name: str = "standard",
) -> tuple[nn.Module, float, bool]:
    """A zoo model trained on ``train``, cached under ``benchmarks/.cache/``.

    Returns ``(model in eval mode, training seconds, loaded_from_cache)``. The cache key
    holds every training parameter, so a change retrains instead of loading stale weights;
    delete the folder to force retraining.
    """
    from safetensors.torch import load_file, save_file

    key = f"{train.name}-{len(train)}-{architecture}-e{epochs}-s{seed}-{transform_name}-torch{torch.__version__}"
    path = CACHE / f"{key}.safetensors"
    model = build(architecture, train.input_shape, train.num_classes, seed=seed)
    if path.is_file():
        model.load_state_dict(load_file(str(path)))
        meta = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").is_file() else {}
        return model.eval(), float(meta.get("seconds", float("nan"))), True
    result = fit(model, train, TrainConfig(epochs=epochs, seed=seed, progress=False))
    CACHE.mkdir(parents=True, exist_ok=True)
    # The cache folder ignores itself, so no weights ever reach the repository.
    (CACHE / ".gitignore").write_text("*\n")
    save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps({"seconds": result.seconds}))
    return result.model.eval(), result.seconds, False


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """``with timer() as t: ...`` then ``t["seconds"]`` holds the wall time."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Run ``fn()`` and return ``(its result, wall seconds)``."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def ratio(a: float, b: float) -> float:
    """``a / b`` rounded to 3 decimals, NaN when ``b`` is 0."""
    return round(a / b, 3) if b else float("nan")


def emit(name: str, record: Mapping[str, Any], run_id: str) -> None:
    """Print ``record`` (tagged with ``run_id``) as one JSON line and append it to ``results/<name>.jsonl``."""
    line = json.dumps({**record, "run": run_id})
    print(line, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / f"{name}.jsonl").open("a") as f:
        f.write(line + "\n")


def run_id() -> str:
    """A UTC timestamp naming one benchmark run."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CountingModule(torch.nn.Module):
    """Wrap a model and count the samples sent through its forward pass (peer query counts)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.count = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += int(x.shape[0])
        return self.inner(x if x.dtype == torch.float32 else x.float())  # ART sends float64 noise


def art_estimator(model: nn.Module, input_shape: tuple[int, ...], nb_classes: int = 10) -> Any:
    """ART's PyTorchClassifier around ``model`` on [0, 1] inputs, seeded as the benchmarks seed it."""
    from art.estimators.classification import PyTorchClassifier

    np.random.seed(0)
    torch.manual_seed(0)
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=nb_classes,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's labels for ``x``, in batches of 500."""
    with torch.no_grad():
        return torch.cat([model(b).argmax(1) for b in x.split(500)])


def accuracy_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` the model labels ``y``."""
    return float((predict(model, x) == y).float().mean())


def standard_case(name: str, n: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The benchmarks' standard case: the cached mnist5k small_cnn (8 epochs, seed 0) and the first ``n`` test images.

    Returns ``(model, x, y, header)``; ``header`` is the run's first JSON line (environment,
    model, clean accuracy), to which a benchmark adds its own settings before emitting it.
    """
    train, test = split("mnist5k", 0.2, seed=0)
    model, train_seconds, cached = trained_model(train, "small_cnn", epochs=8, seed=0)
    x, y = test.x[:n], test.y[:n]
    header = {
        "benchmark": name,
        **environment(),
        "model": "small_cnn mnist5k e8 s0",
        "weights_from_cache": cached,
        "train_seconds": round(train_seconds, 2),
        "n": len(x),
        "clean_accuracy": accuracy_of(model, x, y),
    }
    return model, x, y, header
