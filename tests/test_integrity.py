"""Signed models and datasets, and loaders that never run untrusted code (issue 16)."""

from __future__ import annotations

import base64
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from sparring.cli import main
from sparring.errors import InputError
from sparring.integrity import IntegrityError, _load_key, _pae, keygen, sign, verify
from sparring.models import load_skops, load_torch_model


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return keygen(tmp_path / "alice")


def _files(tmp: Path) -> list[Path]:
    folder = tmp / "dataset"
    (folder / "part").mkdir(parents=True)
    (folder / "part" / "a.bin").write_bytes(b"a" * 100)
    (folder / "b.bin").write_bytes(b"b" * 10)
    weights = tmp / "model.safetensors"
    weights.write_bytes(b"weights")
    return [folder, weights]


def test_a_signature_verifies_the_files_it_signed(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    paths = _files(tmp_path)
    envelope = sign(paths, keys[0])
    verified = verify(paths, envelope, keys[1])
    assert set(verified.digests) == {"dataset/b.bin", "dataset/part/a.bin", "model.safetensors"}


def _tamper(tmp: Path, case: str, paths: list[Path], envelope: dict[str, Any], keys: tuple[Path, Path]) -> Any:
    if case == "changed file":
        (tmp / "dataset" / "b.bin").write_bytes(b"B" * 10)
    elif case == "added file":
        (tmp / "dataset" / "c.bin").write_bytes(b"c")
    elif case == "missing file":
        (tmp / "dataset" / "part" / "a.bin").unlink()
    elif case == "wrong key":
        return keygen(tmp / "mallory")[1]
    elif case == "tampered manifest":
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["subject"][0]["digest"]["sha256"] = "0" * 64
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    elif case == "path escaping the folder":  # a validly signed manifest naming ../ is still refused
        subject = [{"name": "../etc/x", "digest": {"sha256": "0"}}]
        statement = {"_type": "https://in-toto.io/Statement/v1", "subject": subject}
        body = json.dumps(statement).encode()
        sig = _load_key(keys[0], private=True).sign(_pae(envelope["payloadType"], body))
        envelope["payload"] = base64.b64encode(body).decode()
        envelope["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    return keys[1]


CASES = {
    "changed file": "has changed since it was signed",
    "added file": "not covered by the signature",
    "missing file": "is signed but missing",
    "wrong key": "not made with this key",
    "tampered manifest": "tampered",
    "path escaping the folder": "escapes its folder",
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_tampering_is_detected(tmp_path: Path, keys: tuple[Path, Path], case: str) -> None:
    paths = _files(tmp_path)
    envelope = sign(paths, keys[0])
    public = _tamper(tmp_path, case, paths, envelope, keys)
    with pytest.raises(IntegrityError, match=CASES[case]):
        verify(paths, envelope, public)


def test_the_command_line_signs_verifies_and_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(p) for p in _files(tmp_path)]
    assert main(["keygen", str(tmp_path / "k")]) == 0
    assert main(["sign", *paths, "--key", str(tmp_path / "k.key"), "--out", str(tmp_path / "m.sig")]) == 0
    assert main(["verify", *paths, "--sig", str(tmp_path / "m.sig"), "--pub", str(tmp_path / "k.pub")]) == 0
    capsys.readouterr()
    Path(paths[1]).write_bytes(b"other weights")
    assert main(["verify", *paths, "--sig", str(tmp_path / "m.sig"), "--pub", str(tmp_path / "k.pub")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.safetensors has changed" in err
    assert main(["keygen", str(tmp_path / "k")]) == 2  # keys are never overwritten


# -- an assessment verifies before it loads or imports anything ----------------------------------


def _project(tmp: Path, keys: tuple[Path, Path], name: str) -> Path:
    from sparring.data import breast_cancer

    data = breast_cancer()
    np.savez(tmp / "data.npz", x=data.x.numpy(), y=data.y.numpy())
    (tmp / f"{name}.py").write_text(
        f"from pathlib import Path\nfrom torch import nn\n\nPath({str(tmp / 'imported')!r}).touch()\n\n\n"
        "def build():\n    return nn.Sequential(nn.Linear(30, 8), nn.ReLU(), nn.Linear(8, 2))\n"
    )
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 8), nn.ReLU(), nn.Linear(8, 2))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp / "model.safetensors"))
    (tmp / "model.sig").write_text(json.dumps(sign([tmp / "model.safetensors", tmp / f"{name}.py"], keys[0])))
    (tmp / "data.sig").write_text(json.dumps(sign([tmp / "data.npz"], keys[0])))
    config = f"""[data]
path = "data.npz"
signature = "data.sig"
public_key = "{keys[1].name}"
[model]
factory = "{name}:build"
weights = "model.safetensors"
signature = "model.sig"
public_key = "{keys[1].name}"
[[evasion]]
attack = "fgsm"
eps = [0.1]
samples = 20
sanity_checks = false
"""
    (tmp / "c.toml").write_text(config)
    return tmp / "c.toml"


def test_a_signed_project_runs_with_a_verified_provenance_block(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    config = _project(tmp_path, keys, "signednet0")
    assert main(["assess", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    rows = {r["input"]: r for r in report["model"]["provenance"]}
    assert set(rows) == {"data", "weights", "factory"}
    assert all(r["verification"] == "verified" for r in rows.values())
    assert "Provenance" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize("change", ["weights", "factory", "data"])
def test_a_tampered_input_stops_the_run_before_anything_is_loaded(
    tmp_path: Path, keys: tuple[Path, Path], change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _project(tmp_path, keys, f"signednet{1 + ['weights', 'factory', 'data'].index(change)}")
    target = {"weights": "model.safetensors", "factory": "", "data": "data.npz"}[change]
    if change == "factory":
        module = next(p for p in tmp_path.glob("signednet*.py"))
        module.write_text(module.read_text() + "\nimport os  # injected\n")
    else:
        path = tmp_path / str(target)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1  # one bit
        path.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert main(["assess", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has changed since it was signed" in err
    assert not out.exists() and not (tmp_path / "imported").exists()  # the factory was never imported


# -- loaders never run untrusted code ------------------------------------------------------------------


class _Marker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


class _Nested:
    def __init__(self, inner: bytes) -> None:
        self.inner = inner

    def __reduce__(self) -> tuple[Any, ...]:
        return (pickle.loads, (self.inner,))


class _ViaImportlib:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import importlib

        return (importlib.import_module, (f"no_such_module_{self.marker.name}",))


def _malicious(tmp: Path, case: str) -> Path:
    marker = tmp / "marker"
    if case == "reduce":
        blob = pickle.dumps(_Marker(marker), protocol=4)
    elif case == "nested pickle.loads":
        blob = pickle.dumps(_Nested(pickle.dumps(_Marker(marker), protocol=2)), protocol=5)
    elif case == "importlib":
        blob = pickle.dumps(_ViaImportlib(marker), protocol=3)
    elif case == "pickle renamed .safetensors":
        path = tmp / "model.safetensors"
        path.write_bytes(pickle.dumps(_Marker(marker), protocol=2))
        return path
    else:  # a torch.save zip whose data.pkl is the payload
        path = tmp / "model.pt"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", pickle.dumps(_Marker(marker), protocol=2))
            z.writestr("archive/version", "3\n")
        return path
    path = tmp / "model.pt"
    path.write_bytes(blob)
    return path


@pytest.mark.parametrize(
    "case", ["reduce", "nested pickle.loads", "importlib", "pickle renamed .safetensors", "torch.save zip"]
)
def test_every_loader_refuses_a_malicious_pickle(tmp_path: Path, case: str) -> None:
    path = _malicious(tmp_path, case)
    (tmp_path / "tinynet.py").write_text("from torch import nn\n\n\ndef build():\n    return nn.Linear(2, 2)\n")
    with pytest.raises(InputError, match="pickle"):
        load_torch_model("tinynet:build", path, tmp_path)
    with pytest.raises(InputError, match=r"pickle|skops"):
        load_skops(path)
    assert not (tmp_path / "marker").exists()


def test_data_files_never_unpickle_object_arrays(tmp_path: Path) -> None:
    from sparring.data.loaders import load_npz

    np.savez(tmp_path / "d.npz", x=np.array([_Marker(tmp_path / "marker")], dtype=object), y=np.array([0]))
    with pytest.raises(InputError, match="cannot read"):
        load_npz(tmp_path / "d.npz")
    assert not (tmp_path / "marker").exists()
