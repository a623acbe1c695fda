"""Signing and verification time: the demo's inputs and a 1 GB set of files, beside the raw read rate.

Hashing dominates; the read rate is measured on the same files right after they are written
(so both come from the page cache when memory allows — the figure is then the hashing rate,
which is the ceiling on this machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import emit, run_id
from sparring.integrity import keygen, sign, verify


def _read_rate(paths: list[Path]) -> float:
    start, total = time.perf_counter(), 0
    for p in paths:
        with p.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                total += len(chunk)
    return total / (time.perf_counter() - start) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    args = parser.parse_args()
    run = run_id()
    tmp = Path(tempfile.mkdtemp(prefix="sparring-integrity-"))
    key, pub = keygen(tmp / "k")
    folder = tmp / "big"
    folder.mkdir()
    size = int(args.gigabytes * 1e9)
    n_files = 8
    for i in range(n_files):
        with (folder / f"part{i}.bin").open("wb") as fh:
            left = size // n_files
            while left > 0:
                chunk = os.urandom(min(left, 1 << 24))
                fh.write(chunk)
                left -= len(chunk)
    files = sorted(folder.iterdir())
    read = _read_rate(files)
    t0 = time.perf_counter()
    envelope = sign([folder], key)
    signed = time.perf_counter() - t0
    t0 = time.perf_counter()
    verify([folder], envelope, pub)
    verified = time.perf_counter() - t0
    emit(
        "integrity",
        {
            "case": f"{args.gigabytes:g} GB in {n_files} files",
            "sign_seconds": round(signed, 2),
            "verify_seconds": round(verified, 2),
            "hash_mb_per_s": round(size / 1e6 / signed, 1),
            "read_mb_per_s": round(read, 1),
        },
        run,
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
