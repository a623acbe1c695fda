"""API keys: a file that stores only their SHA-256 hashes; a key is shown once, when it is made."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from sparring.errors import ConfigError


@dataclass
class KeyEntry:
    """One client: the key's hash, a short id for logs, its quotas (queries per minute, in total)."""

    name: str
    sha256: str
    key_id: str
    per_minute: int | None = None
    total: int | None = None
    revoked: bool = False


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """The keys file (JSON): name -> :class:`KeyEntry`; never holds a key itself."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, KeyEntry] = {}
        self._stamp: int | None = None
        self._load()

    def _mtime(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _load(self) -> None:
        stamp = self._mtime()
        if stamp is not None:
            try:
                raw = json.loads(self.path.read_text())
                self.entries = {name: KeyEntry(**e) for name, e in raw.items()}
            except (json.JSONDecodeError, TypeError) as e:
                raise ConfigError(f"{self.path} is not a sparring keys file: {e}") from None
        self._stamp = stamp

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({n: asdict(e) for n, e in self.entries.items()}, indent=2))
        tmp.chmod(0o600)
        tmp.replace(self.path)
        self._stamp = self._mtime()

    def add(self, name: str, per_minute: int | None = None, total: int | None = None) -> str:
        """Make a key for ``name`` and return it (the only time it is seen)."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"a key name is letters, digits, - and _; got {name!r}")
        if name in self.entries and not self.entries[name].revoked:
            raise ConfigError(f"key {name!r} exists; revoke it first")
        for limit in (per_minute, total):
            if limit is not None and limit < 1:
                raise ConfigError(f"quotas must be >= 1, got {limit}")
        key = "sk-" + secrets.token_urlsafe(32)
        digest = _hash(key)
        self.entries[name] = KeyEntry(name, digest, digest[:12], per_minute, total)
        self._save()
        return key

    def revoke(self, name: str) -> None:
        """Revoke ``name``'s key; requests with it get 401 from then on."""
        if name not in self.entries:
            raise ConfigError(f"no key named {name!r}; keys: {', '.join(self.entries) or '(none)'}")
        self.entries[name].revoked = True
        self._save()

    def authenticate(self, key: str | None) -> KeyEntry | None:
        """The live entry ``key`` belongs to, compared in constant time against every entry; else None."""
        if not key:
            return None
        if self._mtime() != self._stamp:  # `sparring keys add/revoke` on a running gateway takes effect at once
            try:
                self._load()
            except ConfigError:
                pass  # a file caught mid-write: keep the entries read before
        digest = _hash(key)
        found = None
        for entry in self.entries.values():  # no early exit: the time does not depend on which entry matches
            if hmac.compare_digest(entry.sha256, digest) and not entry.revoked:
                found = entry
        return found
