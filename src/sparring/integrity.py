"""Signed manifests of models and datasets: tampering is detected before anything is loaded.

A manifest lists the SHA-256 digest of every file of the signed paths (a folder contributes
each file under it, named ``folder/relative/path``), as the subjects of an in-toto Statement
(v1). The Statement is signed with Ed25519 (through ``cryptography``, offline) in a DSSE
envelope: the signature covers the pre-authentication encoding of the payload type and the
payload, so neither can be swapped. The key id is the first 16 hex digits of the SHA-256 of
the raw public key.

Why not the OpenSSF ``model-signing`` library: it signs the same kind of in-toto manifest, but
pulls in sigstore and its network-facing dependencies; this module needs one offline
dependency and ~150 lines, and its envelope follows the same DSSE and in-toto formats.

Verification refuses (:class:`IntegrityError`, one line) a changed, added or missing file,
a wrong key, a tampered envelope or manifest, and a subject name that escapes its folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sparring.errors import InputError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:sparring:manifest:v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
_CHUNK = 1 << 20


class IntegrityError(InputError):
    """A signature or manifest does not match the files, or cannot be trusted."""


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks (:class:`InputError` if it cannot be read)."""
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    return h.hexdigest()


def manifest(paths: Sequence[str | Path]) -> dict[str, str]:
    """Subject name -> SHA-256 for every file of ``paths`` (files by name, folders file by file)."""
    out: dict[str, str] = {}
    for raw in paths:
        p = Path(raw)
        if p.is_symlink() or not p.exists():
            raise IntegrityError(f"{p}: not found (or a symbolic link, which is never signed)")
        files = [(p.name, p)] if p.is_file() else [(f"{p.name}/{f.relative_to(p).as_posix()}", f) for f in _walk(p)]
        for name, f in files:
            if name in out:
                raise IntegrityError(f"two signed files are both named {name!r}; sign them separately")
            out[name] = sha256_file(f)
    return out


def _walk(folder: Path) -> list[Path]:
    files = []
    for f in sorted(folder.rglob("*")):
        if f.is_symlink():
            raise IntegrityError(f"{f}: a symbolic link inside a signed folder is refused")
        if f.is_file():
            files.append(f)
    return files


def _pae(payload_type: str, body: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the signature covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def key_id(public_key: Any) -> str:
    """The first 16 hex digits of the SHA-256 of the raw Ed25519 public key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(stem: str | Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair to ``STEM.key`` (private, mode 600) and ``STEM.pub``; returns both paths."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    private, public = Path(f"{stem}.key"), Path(f"{stem}.pub")
    for p in (private, public):
        if p.exists():
            raise IntegrityError(f"{p} exists; choose another name (keys are never overwritten)")
    if not private.parent.is_dir():
        raise IntegrityError(f"folder {private.parent} does not exist")
    key = Ed25519PrivateKey.generate()
    private.touch(mode=0o600)
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private, public


def _load_key(path: str | Path, private: bool) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

    p = Path(path)
    if not p.is_file():
        raise IntegrityError(f"key file not found: {p}")
    try:
        key = load_pem_private_key(p.read_bytes(), None) if private else load_pem_public_key(p.read_bytes())
    except (ValueError, TypeError) as e:
        raise IntegrityError(f"{p} is not a PEM {'private' if private else 'public'} key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey if private else Ed25519PublicKey):
        raise IntegrityError(f"{p} is not an Ed25519 key")
    return key


def sign(paths: Sequence[str | Path], key: str | Path) -> dict[str, Any]:
    """The DSSE envelope of an in-toto Statement whose subjects are ``paths``' files, signed with ``key``."""
    private = _load_key(key, private=True)
    subjects = [{"name": n, "digest": {"sha256": d}} for n, d in manifest(paths).items()]
    statement = {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": {}}
    body = json.dumps(statement, sort_keys=True).encode()
    signature = private.sign(_pae(PAYLOAD_TYPE, body))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode(),
        "signatures": [{"keyid": key_id(private.public_key()), "sig": base64.b64encode(signature).decode()}],
    }


@dataclass(frozen=True)
class Verified:
    """A verified signature: the key that made it and the digests it vouches for."""

    key: str
    digests: dict[str, str]


def read_envelope(envelope: dict[str, Any] | str | Path, public: str | Path) -> Verified:
    """Check the envelope's signature with ``public`` and return the signed digests (the files are not read)."""
    from cryptography.exceptions import InvalidSignature

    if not isinstance(envelope, dict):
        p = Path(envelope)
        if not p.is_file():
            raise IntegrityError(f"signature file not found: {p}")
        try:
            envelope = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise IntegrityError(f"{p} is not a signature envelope (JSON)") from None
    assert isinstance(envelope, dict)
    key = _load_key(public, private=False)
    kid = key_id(key)
    try:
        body = base64.b64decode(envelope["payload"], validate=True)
        sigs = [s for s in envelope["signatures"] if s.get("keyid") == kid]
        payload_type = str(envelope["payloadType"])
    except (KeyError, TypeError, ValueError):
        raise IntegrityError("the signature envelope is malformed (tampered or not made by sparring sign)") from None
    if not sigs:
        raise IntegrityError(f"the signature was not made with this key (key id {kid})")
    try:
        key.verify(base64.b64decode(sigs[0]["sig"]), _pae(payload_type, body))
    except (InvalidSignature, ValueError):
        raise IntegrityError("the signature does not verify: the manifest or envelope was tampered with") from None
    statement = json.loads(body)
    digests: dict[str, str] = {}
    for s in statement.get("subject", []):
        name = str(s["name"])
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or "\\" in name:
            raise IntegrityError(f"the manifest names {name!r}, a path that escapes its folder")
        digests[name] = str(s["digest"]["sha256"])
    return Verified(kid, digests)


def verify(paths: Sequence[str | Path], envelope: dict[str, Any] | str | Path, public: str | Path) -> Verified:
    """Verify that ``paths`` are exactly the files the envelope signs, unchanged; else :class:`IntegrityError`."""
    signed = read_envelope(envelope, public)
    compare(manifest(paths), signed.digests, exact=True)
    return signed


def compare(found: dict[str, str], signed: dict[str, str], exact: bool) -> None:
    """Raise on the first changed file, file the signature lacks, or (``exact``) signed file not found."""
    for name, digest in found.items():
        if name not in signed:
            raise IntegrityError(f"{name} is not covered by the signature (an added or unsigned file)")
        if signed[name] != digest:
            raise IntegrityError(f"{name} has changed since it was signed (SHA-256 {digest[:12]}...)")
    missing = [n for n in signed if n not in found]
    if exact and missing:
        raise IntegrityError(f"{missing[0]} is signed but missing")


def verify_files(files: Iterable[str | Path], envelope: str | Path, public: str | Path) -> Verified:
    """Verify that each of ``files`` is signed, by name and digest (other signed files may exist)."""
    return verify_digests(manifest(list(files)), envelope, public)


def verify_digests(found: dict[str, str], envelope: str | Path, public: str | Path) -> Verified:
    """:func:`verify_files` for digests already computed (subject name -> SHA-256), so no file is read twice."""
    signed = read_envelope(envelope, public)
    compare(found, signed.digests, exact=False)
    return signed
