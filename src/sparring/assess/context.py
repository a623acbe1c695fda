"""What every scenario of an assessment shares: the config, the data, the target model, artefacts.

The context trains nothing and writes nothing until asked: :func:`sparring.assess.prepare.prepare`
builds it after checking the input, and scenarios ask it for trained models and shared
artefacts. An :class:`Artefact` names a thing several scenarios need (a trained model, a
teacher, a FedAvg warm-up), the parameters that shaped it (its fingerprint, with the data,
model config and seed), how to build it, and how to save and load it. The context keeps each
artefact in memory for the run and, with a work directory, on disk under
``DIR/.work/artefacts``, so an interrupted assessment resumes without rebuilding and any
worker that needs an artefact loads it instead of building it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from sparring import __version__
from sparring.assess.artefacts import load_module, save_json, save_module
from sparring.assess.spec import BaseConfig
from sparring.data import Dataset
from sparring.errors import InputError
from sparring.models import Classifier, TorchClassifier, build, find_layer
from sparring.models import feature_layer as default_feature_layer
from sparring.models.io import import_factory
from sparring.train import TrainConfig, fit

T = TypeVar("T")


@dataclass(frozen=True)
class Artefact(Generic[T]):
    """A shared artefact: ``name`` (unique in a run), ``params`` (what shaped it), ``build``.

    With ``save`` and ``load`` it is stored under the work directory (a folder per artefact)
    and loaded from there when its fingerprint matches; without them it is rebuilt by each
    process that needs it (cheap things only).
    """

    name: str
    params: Mapping[str, Any]
    build: Callable[[Context], T]
    save: Callable[[T, Path], None] | None = None
    load: Callable[[Context, Path], T] | None = None


def fingerprint(*parts: Any) -> str:
    """A stable short hash of JSON-able parts plus the sparring version."""
    blob = json.dumps([__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so that a reader sees the old file or the whole new one, never a part."""
    save_json(path, obj)


def default_architecture(data: Dataset) -> str:
    """``small_cnn`` for image-shaped data ``[C, H, W]``, else ``mlp``."""
    return "small_cnn" if len(data.input_shape) == 3 else "mlp"


@dataclass
class Context:
    """Shared state of one assessment run."""

    config: BaseConfig
    data: Dataset
    train: Dataset
    test: Dataset
    loaded: Classifier | None = None
    workdir: Path | None = None
    log: Callable[[str], None] = print
    #: Digests of the input files (data, weights, model files, the factory's source).
    inputs: dict[str, str] = field(default_factory=dict)
    #: Per input file: its digest and whether a signature vouched for it (the report's provenance block).
    provenance: list[dict[str, Any]] = field(default_factory=list)
    #: Objects scenarios share within one process that are cheap to rebuild (sanity findings).
    memo: dict[str, Any] = field(default_factory=dict)
    _artefacts: dict[str, Any] = field(default_factory=dict)

    # -- the model ----------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        """True when sparring can build and train fresh copies of the model."""
        return self.config.model.trains_here

    @property
    def model_name(self) -> str:
        """The model's name in the report: factory, skops file, or zoo architecture (default by data shape)."""
        m = self.config.model
        return m.factory or m.sklearn or m.onnx or m.endpoint or m.architecture or default_architecture(self.data)

    @property
    def seed(self) -> int:
        """The assessment's seed."""
        return self.config.seed

    def build_model(self) -> nn.Module:
        """A freshly initialised copy of the configured architecture (seeded)."""
        m = self.config.model
        if m.factory is not None:
            with torch.random.fork_rng():  # a factory's initial weights follow the seed
                torch.manual_seed(self.seed)
                module = import_factory(m.factory, m.factory_path)()
            if not isinstance(module, nn.Module):
                raise InputError(f"factory {m.factory!r} did not return a torch.nn.Module")
            return module
        arch = m.architecture or default_architecture(self.data)
        return build(arch, self.data.input_shape, self.data.num_classes, seed=self.seed)

    def feature_layer(self) -> str:
        """The layer feature-space defences read: ``[model] feature_layer``, checked, or the default.

        Raises :class:`InputError` (before anything runs, when a family's check asks) if the
        model has no such layer or no linear layer to default to.
        """
        module = self.loaded.model if isinstance(self.loaded, TorchClassifier) else self.build_model()
        layer = self.config.model.feature_layer
        if layer is None:
            return default_feature_layer(module)
        find_layer(module, layer)
        return layer

    def train_config(self, epochs: int | None = None) -> TrainConfig:
        """The configured training hyper-parameters."""
        m = self.config.model
        return TrainConfig(
            epochs=epochs or m.epochs,
            batch_size=m.batch_size,
            lr=m.lr,
            optimizer=m.optimizer,
            weight_decay=m.weight_decay,
            seed=self.seed,
        )

    def wrap(self, model: nn.Module) -> TorchClassifier:
        """A TorchClassifier view of a module trained on this data."""
        return TorchClassifier(model, self.data.input_shape, self.data.num_classes, bounds=self.config.data.bounds)

    def train_standard(self, data: Dataset, epochs: int | None = None) -> tuple[nn.Module, float]:
        """Train a fresh model on ``data`` with the configured settings."""
        result = fit(self.build_model(), data, self.train_config(epochs), desc="train")
        return result.model, result.seconds

    def target(self) -> tuple[Classifier, float]:
        """The model under assessment and its training seconds (0 when loaded from files)."""
        if self.loaded is not None:
            return self.loaded, 0.0
        return self.cached_model("standard", "standard", lambda: self.train_standard(self.train))

    def cached_model(
        self,
        name: str,
        key: Any,
        train_fn: Callable[[], tuple[nn.Module, float]],
        build_fn: Callable[[], nn.Module] | None = None,
    ) -> tuple[TorchClassifier, float]:
        """A model trained once per run and work directory (an artefact); returns it and its training seconds.

        ``key`` is what shaped it besides data, model config and seed; ``build_fn`` makes the
        empty module the stored weights load into (default :meth:`build_model`).
        """
        return self.artefact(model_artefact(name, key, train_fn, build_fn or self.build_model))

    # -- artefacts ------------------------------------------------------------------------
    def fingerprint(self, *parts: Any) -> str:
        """A fingerprint of ``parts`` with the data, the model config, the input files' contents and the seed."""
        return fingerprint(
            self.config.data.model_dump(), self.config.model.model_dump(), self.inputs, self.seed, *parts
        )

    def artefact(self, a: Artefact[T]) -> T:
        """The artefact ``a``: from this run's memory, else from the work directory, else built (and stored).

        With a work directory, building and storing happen under a file lock per artefact, so
        workers of a process pool or a Ray cluster that need the same artefact build it once:
        the others wait, then load it.
        """
        if a.name in self._artefacts:
            value: T = self._artefacts[a.name]
            return value
        fp = self.fingerprint(a.name, dict(a.params))
        if self.workdir is None or a.save is None or a.load is None:
            self.log(f"  building {a.name}")
            value = a.build(self)
        else:
            folder = self.workdir / "artefacts" / _safe(a.name)
            folder.mkdir(parents=True, exist_ok=True)
            with _locked(folder / ".lock"):
                value = self._stored_or_built(a, fp, folder)
        self._artefacts[a.name] = value
        return value

    def _stored_or_built(self, a: Artefact[T], fp: str, folder: Path) -> T:
        assert a.load is not None and a.save is not None
        meta = folder / "artefact.json"
        try:
            stored = json.loads(meta.read_text()) if meta.is_file() else {}
        except (OSError, json.JSONDecodeError):
            stored = {}
        if stored.get("fingerprint") == fp:
            self.log(f"  reusing {a.name} from {folder}")
            return a.load(self, folder)
        self.log(f"  building {a.name}")
        value = a.build(self)
        meta.unlink(missing_ok=True)  # a half-saved artefact never looks valid
        a.save(value, folder)
        save_json(meta, {"fingerprint": fp, "name": a.name, "params": dict(a.params)})
        return value


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` held for the block (processes on one machine, or a shared file system)."""
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)


def model_artefact(
    name: str,
    key: Any,
    train_fn: Callable[[], tuple[nn.Module, float]],
    build_fn: Callable[[], nn.Module],
) -> Artefact[tuple[TorchClassifier, float]]:
    """A trained model as an artefact: its weights and training seconds are stored."""

    def make(ctx: Context) -> tuple[TorchClassifier, float]:
        ctx.log(f"  training model '{name}'")
        module, seconds = train_fn()
        return ctx.wrap(module), seconds

    def save(value: tuple[TorchClassifier, float], folder: Path) -> None:
        save_module(folder / "model.safetensors", value[0].model)
        save_json(folder / "seconds.json", value[1])

    def load(ctx: Context, folder: Path) -> tuple[TorchClassifier, float]:
        module = load_module(folder / "model.safetensors", build_fn())
        return ctx.wrap(module), float(json.loads((folder / "seconds.json").read_text()))

    return Artefact(f"model-{name}", {"key": key}, make, save, load)
