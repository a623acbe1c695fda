"""Starting the gateway: load the deployment, build (or train) its model, apply its hardening, serve it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI

from sparring.assess.prepare import prepare
from sparring.defenses.inference import HARDENING
from sparring.serve.app import Monitor, ServeConfig, create_app, load_deployment
from sparring.serve.audit import AuditLog
from sparring.serve.keys import KeyStore
from sparring.serve.monitors import Prada, StatefulDetector


def build_app(config: ServeConfig, base: Path, log: Callable[[str], None] = print) -> tuple[FastAPI, AuditLog]:
    """The app for a validated deployment config (a zoo model is trained first, seeded)."""
    ctx = prepare(config, log)
    target, _ = ctx.target()
    if config.serve.hardening is not None:
        target = HARDENING.build(config.serve.hardening).wrap(target)
    keys = KeyStore(base / config.serve.keys)
    audit = AuditLog(base / config.serve.audit)
    monitors: list[Monitor] = []
    for name in config.serve.monitors:
        if name == "stateful":
            detector = StatefulDetector()
            threshold = detector.calibrate(ctx.test.x[:500])  # benign traffic: the held-out data, in order
            log(f"stateful detector: threshold {threshold:.4g} (0.1st percentile of benign k-NN distances)")
            monitors.append(detector)
        else:
            monitors.append(Prada())
    return create_app(target, config.serve, keys, audit, monitors), audit


def serve(path: str | Path, host: str, port: int, log: Callable[[str], None] = print) -> None:
    """Serve the deployment ``path`` on ``host:port`` with one uvicorn worker until interrupted."""
    import uvicorn

    config, base = load_deployment(path)
    app, audit = build_app(config, base, log)
    log(f"serving {config.serve.name} at http://{host}:{port}/v2/models/{config.serve.name}")
    try:
        uvicorn.run(app, host=host, port=port, workers=1, log_level="warning")
    finally:
        audit.close()


@contextmanager
def serving(app: FastAPI, timeout: float = 60.0) -> Iterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1 in a background thread; yields ``http://127.0.0.1:PORT``."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the gateway did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
