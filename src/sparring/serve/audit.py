"""The audit log: one SQLite table of every request, each row chained to the previous one by a hash.

WAL mode with ``synchronous=FULL``: a row is on disk before the response is sent, so after a
crash every acknowledged request is in the log. One writer (a lock) appends; each row's
``chain`` is the SHA-256 of the previous row's chain and this row's fields, so deleting or
editing a row breaks every chain after it. Quotas are counted from the same table, so a
restart does not reset them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sparring.errors import InputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    key_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    n INTEGER NOT NULL,
    input_sha256 TEXT NOT NULL,
    prediction TEXT NOT NULL,
    detail TEXT NOT NULL,
    chain TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS by_key_time ON requests (key_id, time);
"""
_FIELDS = ("time", "key_id", "status", "n", "input_sha256", "prediction", "detail")


def _link(previous: str, row: tuple[Any, ...]) -> str:
    return hashlib.sha256((previous + json.dumps(list(row))).encode()).hexdigest()


class AuditLog:
    """Append-only request log and quota counter (thread-safe; one connection, one writer)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        last = self._db.execute("SELECT chain FROM requests ORDER BY id DESC LIMIT 1").fetchone()
        self._last = last[0] if last else ""

    def append(self, key_id: str, status: int, n: int, body: bytes, prediction: str = "", detail: str = "") -> None:
        """Record one request (before its response is sent)."""
        with self._lock:
            row = (time.time(), key_id, status, n, hashlib.sha256(body).hexdigest(), prediction[:512], detail[:512])
            chain = _link(self._last, row)
            self._db.execute(
                f"INSERT INTO requests ({', '.join(_FIELDS)}, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*row, chain)
            )
            self._last = chain

    def used(self, key_id: str, since: float = 0.0) -> int:
        """Queries (samples) answered for ``key_id`` since ``since`` (epoch seconds)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(n), 0) FROM requests WHERE key_id = ? AND status = 200 AND time >= ?",
                (key_id, since),
            ).fetchone()
        return int(row[0])

    def rows(self, key_id: str) -> list[tuple[int, int, str]]:
        """``(status, queries, detail)`` of every request of ``key_id``, in order."""
        with self._lock:
            return [
                (int(s), int(n), str(d))
                for s, n, d in self._db.execute(
                    "SELECT status, n, detail FROM requests WHERE key_id = ? ORDER BY id", (key_id,)
                )
            ]

    def alarmed(self, key_id: str) -> bool:
        """Whether a monitor has raised an alarm on ``key_id``'s answered queries (an answered row with a detail)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM requests WHERE key_id = ? AND status = 200 AND detail != '' LIMIT 1", (key_id,)
            ).fetchone()
        return row is not None

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


def verify_log(path: str | Path) -> tuple[bool, str]:
    """``PRAGMA integrity_check`` and the hash chain of every row: (ok, one-line verdict)."""
    p = Path(path)
    if not p.is_file():
        return False, f"no audit log at {p}"
    db = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    try:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            return False, f"SQLite integrity check failed: {check}"
        previous, n = "", 0
        for row in db.execute(f"SELECT id, {', '.join(_FIELDS)}, chain FROM requests ORDER BY id"):
            n += 1
            if _link(previous, tuple(row[1:-1])) != row[-1]:
                return False, f"the chain breaks at request {row[0]}: a row was edited or deleted"
            previous = row[-1]
    finally:
        db.close()
    return True, f"{n} requests; integrity check ok; chain intact"


def audit_report(path: str | Path, keys: dict[str, dict[str, Any]] | None = None, spike: float = 5.0) -> dict[str, Any]:
    """Anomalies in an audit log, per key (counts by status, invalid ratio, alarms, rate spikes, quota use).

    A rate spike is a minute whose volume exceeds ``spike`` times the key's median busy minute;
    ``keys`` (the keys file's entries by name) adds each key's quotas, to flag keys near them (>= 80 %).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no audit log at {p}")
    db = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT key_id, status, n, time, detail FROM requests ORDER BY id").fetchall()
    finally:
        db.close()
    per_key: dict[str, dict[str, Any]] = {}
    minutes: dict[str, dict[int, int]] = {}
    for key_id, status, n, t, detail in rows:
        k = per_key.setdefault(
            key_id,
            {
                "requests": 0,
                "queries": 0,
                "refused_invalid": 0,
                "refused_auth": 0,
                "refused_quota": 0,
                "blocked": 0,
                "alarms": [],
            },
        )
        k["requests"] += 1
        if status == 200:
            k["queries"] += n
            minutes.setdefault(key_id, {})
            minutes[key_id][int(t // 60)] = minutes[key_id].get(int(t // 60), 0) + n
            if detail:
                k["alarms"].append(detail)
        elif status in (400, 404, 413):
            k["refused_invalid"] += 1
        elif status == 401:
            k["refused_auth"] += 1
        elif status == 429:
            k["refused_quota"] += 1
        elif status == 403:
            k["blocked"] += 1
            k["alarms"].append(detail)
    quotas = {e["key_id"]: e for e in (keys or {}).values()}
    findings = []
    for key_id, k in per_key.items():
        k["invalid_ratio"] = k["refused_invalid"] / k["requests"]
        if k["requests"] >= 10 and k["invalid_ratio"] >= 0.2:
            findings.append(f"{key_id}: {k['invalid_ratio']:.0%} of requests were invalid (probing?)")
        busy = sorted(minutes.get(key_id, {}).values())
        if busy:
            median = busy[len(busy) // 2]
            spikes = [v for v in busy if v > spike * max(median, 1)]
            if spikes:
                findings.append(f"{key_id}: {len(spikes)} minute(s) above {spike:g}x its median of {median} queries")
        if k["alarms"]:
            findings.append(f"{key_id}: {len(k['alarms'])} monitor alarm(s), first: {k['alarms'][0]}")
        total = quotas.get(key_id, {}).get("total")
        if total and k["queries"] >= 0.8 * total:
            findings.append(f"{key_id}: {k['queries']} of {total} queries used")
    return {"requests": len(rows), "keys": per_key, "findings": findings}
