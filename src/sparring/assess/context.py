"""What every scenario of an assessment shares: data, the target model, and a model cache.

:func:`prepare` does all validation that can fail on user input (config, data, model
shape, access) before anything is written, so bad input leaves no half-written output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparring import __version__
from sparring.assess.config import AssessConfig
from sparring.data import Dataset, load_dataset
from sparring.errors import ConfigError, InputError
from sparring.models import Access, Classifier, SklearnClassifier, TorchClassifier, build, load_skops, load_torch_model
from sparring.models.io import import_factory, save_torch_weights
from sparring.train import TrainConfig, fit


def fingerprint(*parts: Any) -> str:
    """A stable short hash of JSON-able parts plus the sparring version."""
    blob = json.dumps([__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Context:
    """Shared state of one assessment run."""

    config: AssessConfig
    data: Dataset
    train: Dataset
    test: Dataset
    loaded: Classifier | None = None
    workdir: Path | None = None
    log: Callable[[str], None] = print
    _models: dict[str, tuple[TorchClassifier, float]] = field(default_factory=dict)
    #: Objects scenarios share within one run (e.g. a teacher and its student).
    memo: dict[str, Any] = field(default_factory=dict)

    # -- model building -----------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        """True when sparring can build and train fresh copies of the model."""
        return self.config.model.trains_here

    @property
    def model_name(self) -> str:
        """The model's name in the report: factory, skops file, or zoo architecture (default by data shape)."""
        m = self.config.model
        return m.factory or m.sklearn or m.onnx or m.architecture or default_architecture(self.data)

    def build_model(self) -> nn.Module:
        """A freshly initialised copy of the configured architecture (seeded)."""
        m = self.config.model
        if m.factory is not None:
            module = import_factory(m.factory)()
            if not isinstance(module, nn.Module):
                raise InputError(f"factory {m.factory!r} did not return a torch.nn.Module")
            return module
        arch = m.architecture or default_architecture(self.data)
        return build(arch, self.data.input_shape, self.data.num_classes, seed=self.config.seed)

    def train_config(self, epochs: int | None = None) -> TrainConfig:
        """The configured training hyper-parameters."""
        m = self.config.model
        return TrainConfig(
            epochs=epochs or m.epochs,
            batch_size=m.batch_size,
            lr=m.lr,
            optimizer=m.optimizer,
            weight_decay=m.weight_decay,
            seed=self.config.seed,
        )

    def wrap(self, model: nn.Module) -> TorchClassifier:
        """A TorchClassifier view of a module trained on this data."""
        return TorchClassifier(model, self.data.input_shape, self.data.num_classes, bounds=self.config.data.bounds)

    def cached_model(
        self,
        name: str,
        key: Any,
        train_fn: Callable[[], tuple[nn.Module, float]],
        build_fn: Callable[[], nn.Module] | None = None,
    ) -> tuple[TorchClassifier, float]:
        """Train a model once per run and per work directory; returns it and its training seconds.

        The weights are kept under ``workdir/models`` with a fingerprint of everything that
        shaped them, so an interrupted assessment resumes without retraining. ``build_fn``
        makes the empty module the stored weights load into (default :meth:`build_model`).
        """
        if name in self._models:
            return self._models[name]
        fp = fingerprint(self.config.data.model_dump(), self.config.model.model_dump(), self.config.seed, key)
        path = meta = None
        if self.workdir is not None:
            (self.workdir / "models").mkdir(parents=True, exist_ok=True)
            path = self.workdir / "models" / f"{name}.safetensors"
            meta = path.with_suffix(".json")
            if path.is_file() and meta.is_file():
                info = json.loads(meta.read_text())
                if info.get("fingerprint") == fp:
                    from safetensors.torch import load_file

                    module = (build_fn or self.build_model)()
                    module.load_state_dict(load_file(str(path)))
                    self.log(f"  reusing trained model '{name}' from {path}")
                    self._models[name] = (self.wrap(module.eval()), float(info["seconds"]))
                    return self._models[name]
        self.log(f"  training model '{name}'")
        module, seconds = train_fn()
        if path is not None and meta is not None:
            tmp = path.with_suffix(".tmp")
            save_torch_weights(module, tmp)
            tmp.replace(path)
            write_json_atomic(meta, {"fingerprint": fp, "seconds": seconds})
        self._models[name] = (self.wrap(module), seconds)
        return self._models[name]

    def target(self) -> tuple[Classifier, float]:
        """The model under assessment and its training seconds (0 when loaded from files)."""
        if self.loaded is not None:
            return self.loaded, 0.0
        return self.cached_model("standard", "standard", lambda: self.train_standard(self.train))

    def train_standard(self, data: Dataset, epochs: int | None = None) -> tuple[nn.Module, float]:
        """Train a fresh model on ``data`` with the configured settings."""
        result = fit(self.build_model(), data, self.train_config(epochs), desc="train")
        return result.model, result.seconds


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so that a reader sees the old file or the whole new one, never a part."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    tmp.replace(path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):  # tensors and numpy arrays or scalars
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def default_architecture(data: Dataset) -> str:
    """``small_cnn`` for image-shaped data ``[C, H, W]``, else ``mlp``."""
    return "small_cnn" if len(data.input_shape) == 3 else "mlp"


def _check_bounds(data: Dataset, bounds: tuple[float, float]) -> None:
    lo, hi = float(data.x.min()), float(data.x.max())
    if lo < bounds[0] - 1e-6 or hi > bounds[1] + 1e-6:
        raise InputError(
            f"data values lie in [{lo:g}, {hi:g}], outside the input bounds {list(bounds)}; "
            "scale the data or set [data] bounds"
        )


def _check_model_fits(module: nn.Module, data: Dataset) -> None:
    x = data.x[:2]
    try:
        with torch.no_grad():
            out = module.eval()(x)
    except Exception as e:  # any failure here is a shape mismatch as far as the user is concerned
        raise InputError(f"the model cannot take the data's inputs of shape {list(data.input_shape)}: {e}") from None
    if not isinstance(out, torch.Tensor) or out.shape != (len(x), data.num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(f"the model returns {shape} for a batch of {len(x)}, expected ({len(x)}, {data.num_classes})")


def prepare(config: AssessConfig, log: Callable[[str], None] = print) -> Context:
    """Load data and the target model and check they fit; trains nothing and writes nothing."""
    dc = config.data
    data = load_dataset(dc.dataset, dc.path, label_column=dc.label_column, input_shape=dc.input_shape)
    _check_bounds(data, dc.bounds)
    if data.num_classes < 2:
        raise InputError(f"dataset {data.name!r} has fewer than 2 classes")
    if dc.test_path is not None:
        train = data
        test = load_dataset(None, dc.test_path, label_column=dc.label_column, input_shape=dc.input_shape)
        if test.input_shape != train.input_shape:
            raise InputError(
                f"test data has sample shape {list(test.input_shape)}, training data {list(train.input_shape)}"
            )
        _check_bounds(test, dc.bounds)
    else:
        train, test = data.split(dc.test_fraction, seed=config.seed)
    ctx = Context(config, data, train, test, log=log)
    m = config.model
    if m.sklearn is not None:
        estimator = load_skops(m.sklearn, m.trusted_types)
        ctx.loaded = SklearnClassifier(estimator, data.input_shape, bounds=dc.bounds)
        if ctx.loaded.num_classes != data.num_classes:
            raise InputError(f"the estimator knows {ctx.loaded.num_classes} classes, the data has {data.num_classes}")
    elif m.onnx is not None:
        from sparring.models import OnnxClassifier

        ctx.loaded = OnnxClassifier(
            m.onnx, data.input_shape, data.num_classes, bounds=dc.bounds, output=m.onnx_output
        )
        ctx.loaded.predict_labels(data.x[:2])  # fails here, with a clear message, if the file does not fit
        ctx.loaded.reset_queries()
    elif m.weights is not None:
        assert m.factory is not None
        module = load_torch_model(m.factory, m.weights)
        _check_model_fits(module, data)
        ctx.loaded = ctx.wrap(module)
    else:
        _check_model_fits(ctx.build_model(), data)
    _check_access(ctx)
    return ctx


def _check_access(ctx: Context) -> None:
    from sparring.assess.config import TRAINING_DEFENCES
    from sparring.assess.scenarios.evasion import required_access
    from sparring.models import ARCHITECTURES, describe_access

    access = ctx.loaded.access if ctx.loaded is not None else Access.ALL
    for i, ev in enumerate(ctx.config.evasion):
        missing = required_access(ev) & ~access
        if missing:
            raise ConfigError(
                f"evasion[{i}]: {ev.attack} needs {describe_access(missing)} access, but the model exposes only "
                f"{describe_access(access)}"
            )
        for d in ev.defenses:
            if d in TRAINING_DEFENCES and not ctx.trainable:
                raise ConfigError(f"evasion[{i}]: {d} retrains the model; [model] must be trainable here")
            if d == "dropout" and ctx.model_name not in ARCHITECTURES:
                raise ConfigError(f"evasion[{i}]: dropout rebuilds a zoo architecture; set [model] architecture")
            if d.startswith("median") and len(ctx.data.input_shape) != 3:
                raise ConfigError(f"evasion[{i}]: {d} smooths images [C, H, W]; the data is not image-shaped")
    k = ctx.data.num_classes
    classes = {
        "backdoor": ("target", "source"),
        "poisoning": ("source", "target"),
        "clean_label": ("target_class", "base_class"),
        "federated": ("target",),
    }
    for family, names in classes.items():
        for i, entry in enumerate(getattr(ctx.config, family)):
            for name in names:
                c = getattr(entry, name)
                if c is not None and c >= k:
                    raise ConfigError(f"{family}[{i}].{name}: class {c} does not exist (the data has {k})")
    image_only = [b.attack for b in ctx.config.backdoor if b.attack != "blended"] + [
        "federated model_replacement" for f in ctx.config.federated if f.attack == "model_replacement"
    ]
    if image_only and len(ctx.data.input_shape) != 3:
        raise ConfigError(f"{image_only[0]} stamps a patch trigger on images [C, H, W]; the data is not image-shaped")
