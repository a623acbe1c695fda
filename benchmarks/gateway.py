"""The gateway under load: throughput and latency beside a bare endpoint, and zero lost audit records.

Each configuration serves the benchmarks' MNIST model (the cached small CNN, mnist5k, 8
epochs) with one uvicorn worker in a subprocess on 127.0.0.1, and ``--clients`` concurrent
clients (one asyncio task and one httpx connection pool each) send ``--requests`` requests of
one image each, one after another (a bounded loop: at most ``clients`` requests in flight):

* ``bare``: a plain FastAPI endpoint that parses the same Open Inference Protocol body and
  returns the model's probabilities (no keys, validation, quotas or log);
* ``gateway``: ``sparring serve``'s app (keys, validation, quotas, the hash-chained SQLite
  audit log with ``synchronous=FULL``), no monitors;
* ``gateway+monitors``: the same with the stateful detector (calibrated on 500 test images)
  and PRADA watching every client, alarms logged only.

A line per configuration gives throughput (requests/s), p50/p99 latency (ms) and the
overhead ratio against ``bare``; for the gateway, after the server has stopped: every
request a client saw answered (any HTTP status) has exactly one audit row (matched by the
SHA-256 of its body, which carries a unique id), no row is unaccounted for, the chain
verifies and ``PRAGMA integrity_check`` is ok. Clients replay the 5,000 mnist5k images in
order (each client its own eighth, repeated when it runs out), so the monitors' alarm counts
on this benign but repetitive traffic are reported too. Timings share two cores with the
clients and other work: they are noisy.

Usage: ``python benchmarks/gateway.py [--clients 8] [--requests 2000] [--modes bare gateway ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from _common import emit, environment, ratio, run_id, split, trained_model
from sparring.data import load_builtin

NAME = "gateway"
MODES = ("bare", "gateway", "gateway+monitors")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(mode: str, port: int, folder: Path) -> None:
    """The server process: build the app for ``mode`` and run it until terminated."""
    import uvicorn

    from sparring.models import TorchClassifier
    from sparring.serve.app import Monitor, ServeSettings, create_app
    from sparring.serve.audit import AuditLog
    from sparring.serve.keys import KeyStore
    from sparring.serve.monitors import Prada, StatefulDetector

    torch.set_num_threads(1)
    train, test = split("mnist5k", 0.2, seed=0)
    model, _, _ = trained_model(train, "small_cnn", epochs=8, seed=0)
    target = TorchClassifier(model, train.input_shape, train.num_classes)
    if mode == "bare":
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

        @app.get("/v2/health/ready")
        def ready() -> dict[str, bool]:
            return {"ready": True}

        @app.post("/v2/models/{name}/infer")
        async def infer(name: str, request: Request) -> JSONResponse:
            t = json.loads(await request.body())["inputs"][0]
            x = torch.tensor(t["data"], dtype=torch.float32).reshape(t["shape"])
            scores = target.predict_scores(x)
            out = {"name": "output", "datatype": "FP32", "shape": list(scores.shape), "data": scores.flatten().tolist()}
            return JSONResponse({"model_name": name, "outputs": [out]})

    else:
        monitors: list[Monitor] = []
        if mode == "gateway+monitors":
            detector = StatefulDetector()
            detector.calibrate(test.x[:500])
            monitors = [detector, Prada()]
        settings = ServeSettings(monitors=["stateful", "prada"] if monitors else [], on_alarm="log")
        audit = AuditLog(folder / "audit.sqlite")
        app = create_app(target, settings, KeyStore(folder / "keys.json"), audit, monitors)
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="error", access_log=False)


async def _load(url: str, keys: list[str], stream: list[torch.Tensor], requests: int) -> list[dict[str, Any]]:
    """``len(keys)`` clients, each sending ``requests`` one-image requests in turn; one record per request."""
    import httpx

    async def client(c: int, key: str) -> list[dict[str, Any]]:
        out = []
        images = stream[c]
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            for i in range(requests):
                x = images[i % len(images)]
                body = json.dumps(
                    {
                        "id": f"c{c}-r{i}",
                        "inputs": [
                            {"name": "input", "shape": [1, *x.shape], "datatype": "FP32", "data": x.flatten().tolist()}
                        ],
                    }
                ).encode()
                t0 = time.perf_counter()
                r = await http.post(url, content=body, headers={"content-type": "application/json"})
                out.append(
                    {
                        "ms": (time.perf_counter() - t0) * 1000,
                        "status": r.status_code,
                        "sha": hashlib.sha256(body).hexdigest(),
                    }
                )
        return out

    parts = await asyncio.gather(*(client(c, k) for c, k in enumerate(keys)))
    return [r for p in parts for r in p]


def _audit_check(db: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Every acknowledged request has exactly one row, no row is unaccounted for, chain and integrity ok."""
    from sparring.serve.audit import verify_log

    ok, verdict = verify_log(db)
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT input_sha256, status FROM requests").fetchall()
    conn.close()
    counts: dict[str, int] = {}
    for sha, _ in rows:
        counts[sha] = counts.get(sha, 0) + 1
    acked = {r["sha"] for r in records}
    missing = sum(1 for s in acked if counts.get(s, 0) == 0)
    duplicated = sum(1 for s in acked if counts.get(s, 0) > 1)
    return {
        "audit_rows": len(rows),
        "acknowledged": len(records),
        "lost_records": missing,
        "duplicated_records": duplicated,
        "unaccounted_rows": sum(1 for s in counts if s not in acked),
        "chain_ok": ok,
        "audit_verdict": verdict,
    }


def _run_mode(mode: str, clients: int, requests: int, stream: list[torch.Tensor]) -> dict[str, Any]:
    from sparring.serve.keys import KeyStore

    with tempfile.TemporaryDirectory(prefix="sparring-gateway-bench-") as tmp:
        folder = Path(tmp)
        store = KeyStore(folder / "keys.json")
        keys = [store.add(f"client{c}") for c in range(clients)]
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", mode, "--port", str(port), "--folder", str(folder)],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        try:
            import httpx

            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the {mode} server did not start")
                time.sleep(0.2)
            url = f"http://127.0.0.1:{port}/v2/models/model/infer"
            t0 = time.perf_counter()
            records = asyncio.run(_load(url, keys, stream, requests))
            seconds = time.perf_counter() - t0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        ms = np.array([r["ms"] for r in records])
        statuses: dict[str, int] = {}
        for r in records:
            statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        line: dict[str, Any] = {
            "benchmark": NAME,
            "case": "load",
            "mode": mode,
            "clients": clients,
            "requests_per_client": requests,
            "requests": len(records),
            "statuses": statuses,
            "seconds": round(seconds, 2),
            "throughput_rps": round(len(records) / seconds, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
        }
        if mode != "bare":
            db = folder / "audit.sqlite"
            line.update(_audit_check(db, records))
            conn = sqlite3.connect(db)
            line["alarm_rows"] = conn.execute(
                "SELECT COUNT(*) FROM requests WHERE status = 200 AND detail != ''"
            ).fetchone()[0]
            line["alarm_rows_by_monitor"] = {
                m: conn.execute(
                    "SELECT COUNT(*) FROM requests WHERE status = 200 AND detail LIKE ?", (f"%{m}%",)
                ).fetchone()[0]
                for m in ("stateful detector", "PRADA")
            }
            conn.close()
        return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000, help="requests per client")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port, Path(args.folder))
        return
    if not (1 <= args.clients <= 64 and 1 <= args.requests <= 100_000):
        parser.error("--clients must be in 1..64 and --requests in 1..100000")
    torch.set_num_threads(1)
    rid = run_id()
    train, _ = split("mnist5k", 0.2, seed=0)
    _, _, cached = trained_model(train, "small_cnn", epochs=8, seed=0)  # cached before the servers load it
    images = load_builtin("mnist5k").x
    share = len(images) // args.clients
    stream = [images[c * share : (c + 1) * share] for c in range(args.clients)]
    emit(
        NAME,
        {
            "benchmark": NAME,
            **environment(),
            "model": "small_cnn mnist5k e8 s0",
            "weights_from_cache": cached,
            "server": "uvicorn, 1 worker, subprocess, 127.0.0.1",
            "clients": args.clients,
            "requests_per_client": args.requests,
        },
        rid,
    )
    bare: dict[str, Any] | None = None
    for mode in args.modes:
        line = _run_mode(mode, args.clients, args.requests, stream)
        if mode == "bare":
            bare = line
        elif bare is not None:
            line["throughput_ratio_vs_bare"] = ratio(line["throughput_rps"], bare["throughput_rps"])
            line["p50_ratio_vs_bare"] = ratio(line["p50_ms"], bare["p50_ms"])
            line["p99_ratio_vs_bare"] = ratio(line["p99_ms"], bare["p99_ms"])
        emit(NAME, line, rid)


if __name__ == "__main__":
    main()
