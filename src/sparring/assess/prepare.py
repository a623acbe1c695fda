"""Load data and the target model and check everything that can fail on user input, writing nothing.

:func:`prepare` does all validation that can fail on user input (data, model shape, access,
each family's checks) before anything is written, so bad input leaves no half-written output.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparring.assess.context import Context
from sparring.assess.families import FAMILIES
from sparring.assess.inputs import factory_source, file_digest, input_digests
from sparring.assess.spec import BaseConfig
from sparring.data import Dataset, load_dataset
from sparring.errors import InputError
from sparring.integrity import IntegrityError, verify_digests
from sparring.models import OnnxClassifier, SklearnClassifier, load_skops, load_torch_model
from sparring.models.remote import RemoteClassifier


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
    if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == len(x):
        _check_labels_fit(data, int(out.shape[1]), "the model")
    if not isinstance(out, torch.Tensor) or out.shape != (len(x), data.num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(f"the model returns {shape} for a batch of {len(x)}, expected ({len(x)}, {data.num_classes})")


def _check_labels_fit(data: Dataset, classes: int, who: str) -> None:
    """Blame the labels, not the model, when they run past the model's ``classes`` outputs."""
    present = sorted(int(c) for c in torch.unique(data.y))
    out = [c for c in present if c >= classes]
    if not out or len(present) > classes:
        return
    shown = ", ".join(map(str, out[:5])) + (", ..." if len(out) > 5 else "")
    hint = f"; labels run {present[0]}..{present[-1]}: re-encode them as 0..{classes - 1}" if present[0] > 0 else ""
    raise InputError(
        f"label(s) {shown} of {data.name!r} are out of range for {who}'s {classes} classes (labels must be "
        f"0..{classes - 1}){hint}"
    )


def provenance(config: BaseConfig) -> list[dict[str, Any]]:
    """Verify the signed inputs before anything is loaded or imported; one row per input file.

    A signed ``[model]`` covers its weights, skops or ONNX file and its factory's source (which
    must then lie beside the config or in ``factory_path``, so it is verified before it is
    imported); a signed ``[data]`` covers the data and test data. Any mismatch raises
    :class:`~sparring.integrity.IntegrityError` (exit 2).
    """
    dc, m = config.data, config.model
    rows: list[dict[str, Any]] = []
    groups: list[tuple[Any, dict[str, str | None]]] = [
        (dc, {"data": dc.path, "test_data": dc.test_path}),
        (m, {"weights": m.weights, "sklearn": m.sklearn, "onnx": m.onnx}),
    ]
    if m.factory is not None:
        source = factory_source(m.factory, m.factory_path)
        if source is None and m.signature is not None:
            raise IntegrityError(
                f"[model] is signed, but the source of factory {m.factory!r} is not beside the config (or in "
                "factory_path), so it cannot be verified before it is imported"
            )
        groups[1][1]["factory"] = str(source) if source is not None else None
    for section, files in groups:
        present = {what: Path(p) for what, p in files.items() if p is not None and Path(p).is_file()}
        digests = {what: file_digest(p) for what, p in present.items()}  # each file is read once
        signed = None
        if section.signature is not None and present:
            named = {present[what].name: digest for what, digest in digests.items()}
            signed = verify_digests(named, section.signature, section.public_key)
        for what, p in present.items():
            row = {"input": what, "path": str(p), "sha256": digests[what], "signed": signed is not None}
            if signed is not None:
                row.update(key=signed.key, verification="verified")
            rows.append(row)
    return rows


def prepare(config: BaseConfig, log: Callable[[str], None] = print) -> Context:
    """Load data and the target model and check they fit; trains nothing and writes nothing."""
    inputs = provenance(config)  # before anything is loaded or imported
    dc = config.data
    csv = functools.partial(
        load_dataset, label_column=dc.label_column, input_shape=dc.input_shape, delimiter=dc.delimiter, header=dc.header
    )
    data = csv(dc.dataset, dc.path)
    _check_bounds(data, dc.bounds)
    if data.num_classes < 2:
        raise InputError(f"dataset {data.name!r} has fewer than 2 classes")
    if dc.test_path is not None:
        train = data
        test = csv(None, dc.test_path)
        if test.input_shape != train.input_shape:
            raise InputError(
                f"test data has sample shape {list(test.input_shape)}, training data {list(train.input_shape)}"
            )
        _check_bounds(test, dc.bounds)
    else:
        train, test = data.split(dc.test_fraction, seed=config.seed)
    digests = input_digests(config, {r["input"]: r["sha256"] for r in inputs})
    ctx = Context(config, data, train, test, log=log, inputs=digests, provenance=inputs)
    m = config.model
    if m.sklearn is not None:
        estimator = load_skops(m.sklearn, m.trusted_types)
        ctx.loaded = SklearnClassifier(estimator, data.input_shape, bounds=dc.bounds)
        _check_labels_fit(data, ctx.loaded.num_classes, "the estimator")
        if ctx.loaded.num_classes != data.num_classes:
            raise InputError(f"the estimator knows {ctx.loaded.num_classes} classes, the data has {data.num_classes}")
    elif m.onnx is not None:
        ctx.loaded = OnnxClassifier(m.onnx, data.input_shape, data.num_classes, bounds=dc.bounds, output=m.onnx_output)
        scores = ctx.loaded.predict_scores(data.x[:8])  # fails here, with a clear message, if the file does not fit
        sums = scores.sum(dim=1)
        sums_to_one = torch.allclose(sums, torch.ones_like(sums), atol=1e-3) and bool((scores >= -1e-4).all())
        if m.onnx_output == "probabilities" and not sums_to_one:
            raise InputError(
                f"onnx_output = \"probabilities\", but the model's outputs are not probabilities (the first row "
                f"sums to {float(sums[0]):.4g}): set [model] onnx_output = \"logits\" or export a softmax"
            )
        ctx.loaded.reset_queries()
    elif m.endpoint is not None:
        key = os.environ.get(m.api_key_env)
        if not key:
            raise InputError(f"[model] endpoint needs its API key in the environment variable {m.api_key_env}")
        ctx.loaded = RemoteClassifier(m.endpoint, key)
        if ctx.loaded.input_shape != data.input_shape or ctx.loaded.num_classes != data.num_classes:
            raise InputError(
                f"the endpoint serves inputs {list(ctx.loaded.input_shape)} and {ctx.loaded.num_classes} classes; "
                f"the data has {list(data.input_shape)} and {data.num_classes}"
            )
    elif m.weights is not None:
        assert m.factory is not None
        module = load_torch_model(m.factory, m.weights, m.factory_path)
        _check_model_fits(module, data)
        ctx.loaded = ctx.wrap(module)
    else:
        if m.zoo and m.architecture is None:
            log(
                f"no [model] architecture given: training the zoo's {ctx.model_name} "
                f"({'image' if ctx.model_name == 'small_cnn' else 'feature-vector'} data); set [model] to choose"
            )
        _check_model_fits(ctx.build_model(), data)
    if m.feature_layer is not None:
        ctx.feature_layer()  # a misspelt layer fails here, not mid-run
    for family in FAMILIES:
        for i, entry in enumerate(config.entries(family.key)):
            family.check(ctx, i, entry)
    return ctx
