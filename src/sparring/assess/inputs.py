"""Digests of an assessment's input files, so a stored result is reused only for the same inputs.

A result's fingerprint covers the config; the files it names (data, test data, weights, the
skops or ONNX model) and the factory's source can change under the same name. Their SHA-256
digests join every fingerprint, so a changed input invalidates exactly the results and
artefacts built from it, and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping
from pathlib import Path

from sparring.assess.spec import BaseConfig
from sparring.integrity import sha256_file
from sparring.models.io import import_module_from

file_digest = sha256_file


def factory_source(spec: str, search: str | None) -> Path | None:
    """The source file of a factory's module in the folder ``search``, found without importing it."""
    if search is None:
        return None
    parts = spec.partition(":")[0].split(".")
    base = Path(search).joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def factory_digest(spec: str, search: str | None) -> str:
    """SHA-256 of the source file of a factory's module (of its name when the source is not a file)."""
    module_name = spec.partition(":")[0]
    try:
        module = import_module_from(module_name, search)
        source = inspect.getsourcefile(module)
    except (ImportError, TypeError):
        source = None
    if source is None:
        return hashlib.sha256(module_name.encode()).hexdigest()
    return file_digest(source)


def input_digests(config: BaseConfig, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{what: sha256}`` for every input file the config names, and the factory's source.

    ``known`` holds digests of input files already read (:func:`~sparring.assess.prepare.provenance`),
    so a file is hashed once; the factory's digest is always that of the module as imported.
    """
    known = {k: v for k, v in (known or {}).items() if k != "factory"}
    files = {
        "data": config.data.path,
        "test_data": config.data.test_path,
        "weights": config.model.weights,
        "sklearn": config.model.sklearn,
        "onnx": config.model.onnx,
    }
    out = {what: known.get(what) or file_digest(p) for what, p in files.items() if p is not None and Path(p).is_file()}
    if config.model.factory is not None:
        out["factory"] = factory_digest(config.model.factory, config.model.factory_path)
    return out
