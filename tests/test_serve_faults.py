"""The gateway killed with SIGKILL in the middle of a load run and restarted on the same audit log (issue 14):
the log passes SQLite's integrity check and its chain, every request a client saw answered is in it once,
and a key's total quota stands where it stood before the crash."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import sparring
from sparring.serve.audit import AuditLog, verify_log
from sparring.serve.keys import KeyStore

QUOTA = 150


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    src = str(Path(sparring.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    code = "import sys; from sparring.cli import main; sys.exit(main())"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", str(config), "--port", str(port)], stdout=out, stderr=out, env=env
        )
    deadline = time.monotonic() + 120  # generous: start-up on a loaded machine
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the gateway did not start: {log.read_text()[-2000:]}")


def _body(tag: str, value: float) -> bytes:
    data = [value] * 64
    return json.dumps(
        {"id": tag, "inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": data}]}
    ).encode()


async def _load(url: str, keys: list[str], proc: subprocess.Popen[bytes], kill_after: int) -> list[dict[str, Any]]:
    """Clients send one-query requests in turn until the server dies; SIGKILL once ``kill_after`` are answered."""
    answered: list[dict[str, Any]] = []

    async def client(c: int, key: str) -> None:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
            for i in range(400):  # bounded: the kill comes long before
                body = _body(f"c{c}-r{i}", ((7 * i + c) % 17) / 17)
                try:
                    r = await http.post(url, content=body)
                except httpx.HTTPError:
                    return  # the server is gone: this request was never acknowledged
                answered.append({"client": c, "status": r.status_code, "sha": hashlib.sha256(body).hexdigest()})
                if len(answered) >= kill_after and proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)

    await asyncio.gather(*(client(c, k) for c, k in enumerate(keys)))
    return answered


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_gateway_restarts_with_its_log_intact_and_its_quotas_where_they_were(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        '[data]\ndataset = "digits"\n[model]\narchitecture = "mlp"\nepochs = 2\n'
        '[serve]\nname = "digits"\nkeys = "keys.json"\naudit = "audit.sqlite"\n'
    )
    store = KeyStore(tmp_path / "keys.json")
    keys = [store.add(f"loader{c}") for c in range(3)] + [store.add("metered", total=QUOTA)]
    metered_id = store.entries["metered"].key_id
    port, log = _free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}/v2/models/digits/infer"
    proc = _start(config, port, log)
    answered = asyncio.run(_load(url, keys, proc, kill_after=120))
    assert proc.wait(timeout=10) == -signal.SIGKILL  # killed mid-run, not shut down
    assert len(answered) >= 120 and {r["status"] for r in answered} == {200}
    metered_before = sum(1 for r in answered if r["client"] == 3)
    assert 0 < metered_before < QUOTA

    db = tmp_path / "audit.sqlite"
    proc = _start(config, port, log)  # the same keys file and audit log
    try:
        with sqlite3.connect(db) as conn:  # the count the restarted gateway starts from
            (counted,) = conn.execute(
                "SELECT COALESCE(SUM(n), 0) FROM requests WHERE key_id = ? AND status = 200", (metered_id,)
            ).fetchone()
        assert metered_before <= counted <= metered_before + 1  # + the one request in flight at the kill
        after = 0
        with httpx.Client(headers={"Authorization": f"Bearer {keys[3]}"}, timeout=10) as http:
            for i in range(QUOTA + 5):
                r = http.post(url, content=_body(f"after-{i}", 0.5))
                if r.status_code == 429:
                    assert r.headers["Retry-After"] and "quota" in r.json()["error"]
                    break
                assert r.status_code == 200
                after += 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert counted + after == QUOTA  # the quota went on from where it stood, not from zero

    ok, verdict = verify_log(db)
    assert ok, verdict
    audit = AuditLog(db)
    rows: dict[str, int] = {}
    for (sha,) in audit._db.execute("SELECT input_sha256 FROM requests"):
        rows[sha] = rows.get(sha, 0) + 1
    assert audit.used(metered_id) == QUOTA
    audit.close()
    assert all(rows.get(r["sha"]) == 1 for r in answered)  # every acknowledged request: exactly one row
