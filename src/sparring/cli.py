"""The ``sparring`` command line.

Exit codes: 0 done, 1 a ``--fail-on`` gate failed, 2 bad input (one line saying what to fix;
nothing written), 3 an internal error (one line; the traceback goes to ``OUT/.work/error.log``) or an
incomplete run (some scenarios failed, e.g. on a bug or a deployment's quota; the report lists them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sparring import __version__
from sparring.errors import SparringError, TasksFailed

if TYPE_CHECKING:
    from sparring.assess.spec import BaseConfig

EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


def _examples_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "examples"


def _cmd_assess(args: argparse.Namespace) -> int:
    from sparring.assess import assess

    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    junit = getattr(args, "junit", None)
    if junit is not None and not Path(junit).parent.is_dir():
        raise SparringError(f"--junit {junit}: the folder {Path(junit).parent} does not exist")
    from sparring.assess.executor import make_executor

    where = getattr(args, "executor", "local")
    executor = make_executor(where, getattr(args, "workers", None), getattr(args, "address", None))
    report, failed = assess(
        args.config, args.out, fail_on=args.fail_on or [], fresh=args.fresh, log=log, executor=executor
    )
    for gate in report.get("fail_on", []):
        status = "FAILED" if gate["failed"] else "passed"
        values = ", ".join(f"{k}={v:.4g}" for k, v in gate["values"].items())
        print(f"gate {gate['rule']}: {status} ({values})", file=sys.stderr)
    if junit is not None:
        from sparring.assess.markdown import junit_xml

        Path(junit).write_text(junit_xml(report, args.junit_level))
    return EXIT_GATE_FAILED if failed else 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from sparring.assess.diff import compare, load_report, parse_regression, render

    rules = [parse_regression(r) for r in args.fail_on_regression or []]
    old, new = load_report(args.old), load_report(args.new)
    regressions = [row for rule in rules for row in rule.failing(old, new)]
    print(render(compare(old, new), regressions, args.format), end="")
    return EXIT_GATE_FAILED if regressions else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    name = "quick.toml" if args.quick else "mnist.toml"
    config = _examples_dir() / name
    if not config.is_file():
        raise SparringError(f"the demo config {config} is missing; run the demo from a checkout of sparring")
    args.config, args.fail_on, args.fresh, args.junit = _signed_demo(config, Path(args.out)), [], False, None
    return _cmd_assess(args)


def _signed_demo(config: Path, out: Path) -> BaseConfig:
    """The demo config with its built-in data written to ``OUT/demo-inputs``, signed, and verified on load.

    So the demo's report opens with a verified provenance block, as a user's signed inputs would.
    """
    import json
    import tomllib

    import numpy as np

    from sparring.assess import parse_config
    from sparring.data import load_builtin
    from sparring.integrity import keygen, sign

    raw = tomllib.loads(config.read_text())
    name = raw["data"].pop("dataset")
    folder = (out / "demo-inputs").resolve()  # absolute: the config resolves relative paths against its own folder
    folder.mkdir(parents=True, exist_ok=True)
    data = load_builtin(name)
    npz = folder / f"{name}.npz"
    np.savez(npz, x=data.x.numpy(), y=data.y.numpy(), classes=np.array(data.classes))
    key, pub = folder / "demo.key", folder / "demo.pub"
    if not key.is_file() or not pub.is_file():
        key.unlink(missing_ok=True)
        pub.unlink(missing_ok=True)
        keygen(folder / "demo")
    signature = folder / "data.sig"
    signature.write_text(json.dumps(sign([npz], key), indent=2))
    raw["data"].update(path=str(npz), signature=str(signature), public_key=str(pub))
    return parse_config(raw, config.parent)


def _cmd_keygen(args: argparse.Namespace) -> int:
    from sparring.integrity import keygen

    private, public = keygen(args.out)
    print(f"wrote {private} (private: keep it secret) and {public} (public: give it to whoever verifies)")
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    import json

    from sparring.integrity import sign

    out = Path(args.out)
    if out.exists():
        raise SparringError(f"--out {out} exists; signatures are never overwritten")
    envelope = sign(args.paths, args.key)
    out.write_text(json.dumps(envelope, indent=2) + "\n")
    print(f"wrote signature {out} (key {envelope['signatures'][0]['keyid']})")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from sparring.integrity import verify

    verified = verify(args.paths, args.sig, args.pub)
    print(f"verified {len(verified.digests)} file(s) signed by key {verified.key}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from sparring.serve.server import serve
    except ImportError:
        raise SparringError("sparring serve needs FastAPI and uvicorn: pip install 'sparring[serve]'") from None

    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.public:
        raise SparringError(f"--host {args.host} exposes the model beyond this machine; add --public to mean it")
    serve(args.config, args.host, args.port, log=lambda m: print(m, file=sys.stderr))
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    from sparring.serve.keys import KeyStore

    store = KeyStore(args.keys)
    if args.action == "add":
        key = store.add(args.name, args.per_minute, args.total)
        print(key)
        print(f"key {args.name!r} added to {args.keys}; it is shown only now", file=sys.stderr)
    else:
        store.revoke(args.name)
        print(f"key {args.name!r} revoked", file=sys.stderr)
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    import json

    from sparring.serve.audit import audit_report, verify_log

    if not Path(args.db).is_file():
        raise SparringError(f"no audit log at {args.db}")
    if args.action == "verify":
        ok, verdict = verify_log(args.db)
        print(verdict)
        return 0 if ok else EXIT_GATE_FAILED
    keys = json.loads(Path(args.keys).read_text()) if args.keys and Path(args.keys).is_file() else None
    found = audit_report(args.db, keys)
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print(f"{found['requests']} requests from {len(found['keys'])} key(s)")
        for key_id, k in found["keys"].items():
            print(
                f"  {key_id}: {k['requests']} requests, {k['queries']} queries answered, {k['refused_invalid']} "
                f"invalid, {k['refused_quota']} over quota, {k['refused_auth']} unauthorised, {k['blocked']} blocked"
            )
        print("findings:" if found["findings"] else "no anomalies found")
        for f in found["findings"]:
            print(f"  {f}")
    return 0


def _cmd_list(_args: argparse.Namespace) -> int:
    from sparring.assess.families import FAMILIES
    from sparring.data import BUILTINS
    from sparring.models import ARCHITECTURES

    rows: list[tuple[str, list[str]]] = [("datasets", list(BUILTINS)), ("architectures", list(ARCHITECTURES))]
    for family in FAMILIES:
        rows.append((f"[[{family.key}]]", []))
        rows += [(f"  {label}", names) for label, names in family.catalogue()]
    width = max(len(label) for label, _ in rows)
    for label, names in rows:
        print(f"{label:{width}s}  {', '.join(names)}".rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sparring`` command."""
    p = argparse.ArgumentParser(prog="sparring", description="Attack your own models and measure what defences buy.")
    p.add_argument("--version", action="version", version=f"sparring {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assess", help="run an assessment config and write report.html and report.json")
    a.add_argument("config", help="assessment config (TOML)")
    a.add_argument("--out", required=True, help="output directory")
    a.add_argument(
        "--fail-on",
        action="append",
        metavar="RULE",
        help="exit 1 if a figure crosses a threshold, e.g. 'robust_accuracy@0.1<0.5' (repeatable)",
    )
    a.add_argument("--fresh", action="store_true", help="ignore stored results and models from an earlier run")
    a.add_argument(
        "--executor",
        choices=("local", "process", "ray"),
        default="local",
        help="where scenarios run: in this process (default), a pool of processes here, or Ray",
    )
    a.add_argument("--workers", type=int, help="parallel workers for process and ray (default: the CPU count)")
    a.add_argument("--address", help="an existing Ray cluster: auto or ray://HOST:PORT (default: start one here)")
    a.add_argument("--junit", metavar="FILE", help="also write JUnit XML: one test case per gate and per matrix cell")
    a.add_argument(
        "--junit-level",
        choices=("low", "medium", "high"),
        default="high",
        help="a matrix cell fails in the JUnit file at this risk level and above (default: high)",
    )
    a.add_argument("--quiet", action="store_true", help="no progress messages")
    a.set_defaults(func=_cmd_assess)
    d = sub.add_parser("demo", help="assess the built-in MNIST demo config into ./sparring-report")
    d.add_argument("--out", default="sparring-report", help="output directory (default: sparring-report)")
    d.add_argument("--quick", action="store_true", help="run the under-a-minute config on the digits data")
    d.add_argument("--quiet", action="store_true", help="no progress messages")
    d.set_defaults(func=_cmd_demo)
    df = sub.add_parser("diff", help="compare two assessments (report.json files or output folders)")
    df.add_argument("old", help="the earlier report.json or output folder")
    df.add_argument("new", help="the later report.json or output folder")
    df.add_argument("--format", choices=("text", "md", "json"), default="text", help="output format (default: text)")
    df.add_argument(
        "--fail-on-regression",
        action="append",
        metavar="RULE",
        help="exit 1 if a figure got worse by more than DELTA, e.g. 'evasion.*.robust_accuracy@0.1>0.02' (repeatable)",
    )
    df.set_defaults(func=_cmd_diff)
    kg = sub.add_parser("keygen", help="write a new Ed25519 key pair STEM.key and STEM.pub")
    kg.add_argument("out", metavar="STEM", help="path and name of the key files, without extension")
    kg.set_defaults(func=_cmd_keygen)
    sg = sub.add_parser("sign", help="sign the files of models and datasets (a manifest of SHA-256 digests)")
    sg.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to sign")
    sg.add_argument("--key", required=True, help="private key (from sparring keygen)")
    sg.add_argument("--out", required=True, help="signature file to write")
    sg.set_defaults(func=_cmd_sign)
    vf = sub.add_parser("verify", help="check that files are exactly those a signature covers, unchanged")
    vf.add_argument("paths", nargs="+", metavar="PATH", help="the files or folders that were signed")
    vf.add_argument("--sig", required=True, help="signature file")
    vf.add_argument("--pub", required=True, help="public key of the signer")
    vf.set_defaults(func=_cmd_verify)
    sv = sub.add_parser("serve", help="serve a model behind the gateway (Open Inference Protocol, keys, quotas, audit)")
    sv.add_argument("config", help="deployment config (TOML: [data], [model], [serve])")
    sv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8080)
    sv.add_argument("--public", action="store_true", help="allow a --host other than this machine")
    sv.set_defaults(func=_cmd_serve)
    ks = sub.add_parser("keys", help="add or revoke a gateway API key (the keys file keeps only hashes)")
    ks.add_argument("action", choices=("add", "revoke"))
    ks.add_argument("name", help="the client's name")
    ks.add_argument("--keys", default="keys.json", help="keys file (default keys.json)")
    ks.add_argument("--per-minute", type=int, help="queries per minute for this key")
    ks.add_argument("--total", type=int, help="queries in total for this key")
    ks.set_defaults(func=_cmd_keys)
    au = sub.add_parser("audit", help="check the gateway's audit log (verify: integrity and chain; report: anomalies)")
    au.add_argument("action", choices=("verify", "report"))
    au.add_argument("db", help="audit log (SQLite)")
    au.add_argument("--keys", help="keys file, to flag keys near their quota (report)")
    au.add_argument("--json", action="store_true", help="report as JSON")
    au.set_defaults(func=_cmd_audit)
    ls = sub.add_parser("list", help="list datasets, architectures, attacks and defences")
    ls.set_defaults(func=_cmd_list)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SparringError as e:
        print(f"sparring: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sparring: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except TasksFailed as e:  # the report was written; a task met a bug or, e.g., a deployment's quota
        print(f"sparring: incomplete: {_first_line(e)}", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as e:  # a bug, not bad input: one line here, the traceback in a log file
        log = _error_log(getattr(args, "out", None))
        print(f"sparring: internal error: {type(e).__name__}: {_first_line(e)} (traceback: {log})", file=sys.stderr)
        return EXIT_INTERNAL


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else "(no message)"


def _error_log(out: str | None) -> Path:
    """Write the current exception's traceback to ``OUT/.work/error.log`` (or a temp file) and return its path."""
    text = traceback.format_exc()
    for folder in ([Path(out) / ".work"] if out else []) + [Path(tempfile.gettempdir())]:
        path = folder / ("error.log" if folder.name == ".work" else "sparring-error.log")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return path
        except OSError:
            continue
    return Path("(unwritable)")


if __name__ == "__main__":
    raise SystemExit(main())
