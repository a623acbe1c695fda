"""Per-scenario results, stored atomically as they finish so that a rerun resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparring.assess.context import write_json_atomic


class ResultStore:
    """One JSON file per scenario under ``root``; a result counts only if its fingerprint matches."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in key)
        return self.root / f"{safe}.json"

    def get(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """The stored result for ``key`` if it was made with the same ``fingerprint``."""
        p = self._path(key)
        if not p.is_file():
            return None
        try:
            stored = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if stored.get("fingerprint") != fingerprint:
            return None
        result = stored.get("result")
        return result if isinstance(result, dict) else None

    def put(self, key: str, fingerprint: str, result: dict[str, Any]) -> None:
        """Store a finished scenario's result."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self._path(key), {"fingerprint": fingerprint, "result": result})
