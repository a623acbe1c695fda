"""The gateway: the Open Inference Protocol (KServe v2) in front of a model, with the BSI's operational measures.

Every request to a model needs an API key (``Authorization: Bearer KEY``); the body is
checked (size, JSON, one FP32/FP64 input of the model's shape, a batch within the limit,
finite values within the model's bounds) before the model runs; per-key quotas (queries per
minute, queries in total) come from the audit log, so a restart keeps them; the answer is
the model's output behind the deployment's output hardening (labels only, top-k, rounding);
every request, refused or answered, is one row of the hash-chained audit log.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sparring.assess.spec import BaseConfig, Strict, parses
from sparring.models import Access, Classifier
from sparring.serve.audit import AuditLog
from sparring.serve.keys import KeyEntry, KeyStore


class ServeSettings(Strict):
    """``[serve]``: the deployment's name, files, output hardening and limits."""

    name: str = Field("model", pattern=r"^[A-Za-z0-9_.-]+$")
    keys: str = "keys.json"
    audit: str = "audit.sqlite"
    #: Output hardening (``label_only``, ``top_k:1``, ``round:2``); none releases the probabilities.
    hardening: str | None = None
    max_batch: int = Field(256, ge=1)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    #: Query monitors (``stateful``: Chen et al. 2020; ``prada``: Juuti et al. 2019) and what an alarm does.
    monitors: list[Literal["stateful", "prada"]] = Field(default_factory=list)
    #: ``log`` records the alarm; ``throttle`` slows the key from then on; ``block`` revokes it.
    on_alarm: Literal["log", "throttle", "block"] = "log"
    #: A throttled key keeps this fraction of its per-minute limit (at least 1 query a minute) ...
    throttle: float = Field(0.1, gt=0.0, lt=1.0)
    #: ... or, when it has no per-minute limit, this many queries a minute.
    throttle_per_minute: int = Field(10, ge=1)

    @field_validator("hardening")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        from sparring.defenses.inference import HARDENING

        return None if v is None else parses(HARDENING.check, v)


class ServeConfig(BaseConfig):
    """A deployment: ``[data]`` (shape, classes, bounds; a zoo model trains on it), ``[model]`` and ``[serve]``."""

    serve: ServeSettings = ServeSettings()


class _Tensor(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    shape: list[int] = Field(min_length=1, max_length=8)
    datatype: Literal["FP32", "FP64"]
    data: list[float]


class _InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=128)
    inputs: list[_Tensor] = Field(min_length=1, max_length=1)


class Monitor(Protocol):
    """A query monitor (:mod:`sparring.serve.monitors`)."""

    def observe(self, client: str, x: torch.Tensor, labels: torch.Tensor) -> str | None:
        """Record a client's queries and their predicted labels; an alarm's reason, or None."""


class Refused(Exception):
    """A request refused before the model runs: HTTP ``status`` with a one-line ``reason``."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


def create_app(
    target: Classifier,
    settings: ServeSettings,
    keys: KeyStore,
    audit: AuditLog,
    monitors: Sequence[Monitor] = (),
) -> FastAPI:
    """The FastAPI app serving ``target`` (already behind its output hardening) as ``settings.name``.

    Each accepted request is shown to every monitor; with ``on_alarm = "block"`` an alarm
    revokes the key (the answer is withheld, 403) and the key stays blocked; with
    ``"throttle"`` the answer is sent and the key's per-minute limit is cut to
    ``settings.throttle`` of itself (``throttle_per_minute`` for a key without one), beyond
    which it gets 429 with ``Retry-After``. A throttled key is one with an alarm in the audit
    log, so the throttle survives a restart.
    """
    app = FastAPI(title=f"sparring gateway: {settings.name}", docs_url=None, redoc_url=None, openapi_url=None)
    labels_only = Access.SCORES not in target.access
    shape = list(target.input_shape)
    lo, hi = target.bounds
    throttled: dict[str, bool] = {}  # key id -> has an alarm (read from the audit log once per key)

    def per_minute(entry: KeyEntry) -> int | None:
        if settings.on_alarm != "throttle":
            return entry.per_minute
        if entry.key_id not in throttled:
            throttled[entry.key_id] = audit.alarmed(entry.key_id)
        if not throttled[entry.key_id]:
            return entry.per_minute
        if entry.per_minute is None:
            return settings.throttle_per_minute
        return max(1, int(entry.per_minute * settings.throttle))

    def refuse(e: Refused, key_id: str, body: bytes) -> JSONResponse:
        audit.append(key_id, e.status, 0, body, detail=e.reason)
        return JSONResponse({"error": e.reason}, status_code=e.status, headers=e.headers)

    def authorised(request: Request) -> tuple[str, Any]:
        header = request.headers.get("authorization", "")
        entry = keys.authenticate(header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None)
        if entry is None:
            raise Refused(401, "a valid API key is required (Authorization: Bearer KEY)")
        return entry.key_id, entry

    @app.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/models/{name}")
    def metadata(name: str, request: Request) -> JSONResponse:
        try:
            authorised(request)
            if name != settings.name:
                raise Refused(404, f"no model named {name!r}")
        except Refused as e:
            return refuse(e, "-", b"")
        out_shape, out_type = ([-1], "INT64") if labels_only else ([-1, target.num_classes], "FP32")
        return JSONResponse(
            {
                "name": settings.name,
                "platform": "pytorch",
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *shape]}],
                "outputs": [{"name": "output", "datatype": out_type, "shape": out_shape}],
                "parameters": {
                    "access": "labels" if labels_only else "scores",
                    "bounds": [lo, hi],
                    "num_classes": target.num_classes,
                    "max_batch": settings.max_batch,
                },
            }
        )

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> JSONResponse:
        key_id, body = "-", b""
        try:
            key_id, entry = authorised(request)
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
                raise Refused(413, f"body over {settings.max_body_bytes} bytes")
            body = await request.body()
            if len(body) > settings.max_body_bytes:
                raise Refused(413, f"body over {settings.max_body_bytes} bytes")
            if name != settings.name:
                raise Refused(404, f"no model named {name!r}")
            x = _tensor(body, shape, settings.max_batch, (lo, hi))
            now = time.time()
            if entry.total is not None and audit.used(key_id) + len(x) > entry.total:
                raise Refused(429, f"query quota of {entry.total} spent", {"Retry-After": "86400"})
            limit = per_minute(entry)
            if limit is not None and audit.used(key_id, now - 60) + len(x) > limit:
                slowed = " (throttled after a monitor alarm)" if limit != entry.per_minute else ""
                raise Refused(429, f"over {limit} queries per minute{slowed}", {"Retry-After": "60"})
        except Refused as e:
            return refuse(e, key_id, body)
        predicted = target.predict_labels(x)
        alarms = [a for m in monitors if (a := m.observe(key_id, x, predicted)) is not None]
        if alarms and settings.on_alarm == "block":
            keys.revoke(entry.name)
            reason = f"blocked: {alarms[0]}"
            audit.append(key_id, 403, len(x), body, prediction=str(predicted.tolist()), detail=reason)
            return JSONResponse({"error": reason}, status_code=403)
        if alarms and settings.on_alarm == "throttle":
            throttled[key_id] = True
        if labels_only:
            out = predicted
            output = {"name": "output", "datatype": "INT64", "shape": [len(x)], "data": out.tolist()}
            shown = out.tolist()
        else:
            scores = target.predict_scores(x)
            output = {
                "name": "output",
                "datatype": "FP32",
                "shape": list(scores.shape),
                "data": scores.flatten().tolist(),
            }
            shown = scores.argmax(dim=1).tolist()
        audit.append(key_id, 200, len(x), body, prediction=str(shown), detail="; ".join(alarms))
        return JSONResponse({"model_name": settings.name, "outputs": [output]})

    return app


def _tensor(body: bytes, shape: list[int], max_batch: int, bounds: tuple[float, float]) -> torch.Tensor:
    """The request's input as a tensor, or :class:`Refused` (400) with the first thing wrong with it."""
    try:
        req = _InferRequest.model_validate_json(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise Refused(400, f"invalid request: {where}: {first['msg']}") from None
    t = req.inputs[0]
    if t.shape[1:] != shape or t.shape[0] < 1:
        raise Refused(400, f"input shape {t.shape} does not fit [N, {', '.join(map(str, shape))}]")
    if t.shape[0] > max_batch:
        raise Refused(400, f"batch of {t.shape[0]} over the limit of {max_batch}")
    if len(t.data) != math.prod(t.shape):
        raise Refused(400, f"{len(t.data)} values for shape {t.shape} ({math.prod(t.shape)} expected)")
    x = torch.tensor(t.data, dtype=torch.float32).reshape(t.shape)
    if not bool(torch.isfinite(x).all()):
        raise Refused(400, "input holds NaN or infinite values")
    if float(x.min()) < bounds[0] or float(x.max()) > bounds[1]:
        raise Refused(400, f"input values outside the model's bounds [{bounds[0]:g}, {bounds[1]:g}]")
    return x


def load_deployment(path: str | Path) -> tuple[ServeConfig, Path]:
    """Read and validate a ``sparring serve`` config; relative paths are resolved against its folder."""
    import tomllib

    from sparring.assess.config import _resolve_paths, format_validation_error
    from sparring.errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        raw = tomllib.loads(p.read_text())
        cfg = ServeConfig.model_validate(raw)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p} is not valid TOML: {e}") from None
    except ValidationError as e:
        raise ConfigError(f"invalid config: {format_validation_error(e)}") from None
    resolved = _resolve_paths(cfg, p.parent)
    assert isinstance(resolved, ServeConfig)
    return resolved, p.parent
