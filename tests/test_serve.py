"""The gateway (issue 14): keys, strict validation before the model runs, quotas that survive a restart,
a hash-chained audit log, and sparring attacking a deployment over HTTP (127.0.0.1 only)."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from sparring.cli import main
from sparring.data import Dataset
from sparring.models import TorchClassifier
from sparring.models.remote import RemoteClassifier
from sparring.serve.app import ServeSettings, create_app
from sparring.serve.audit import AuditLog, verify_log
from sparring.serve.keys import KeyStore


def _gateway(tmp: Path, model: TorchClassifier, **serve: Any) -> tuple[TestClient, KeyStore, AuditLog, Any]:
    keys = KeyStore(tmp / "keys.json")
    audit = AuditLog(tmp / "audit.sqlite")
    model.reset_queries()
    app = create_app(model, ServeSettings(**serve), keys, audit)
    return TestClient(app), keys, audit, model


def _body(x: torch.Tensor) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.flatten().tolist()}]}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_only_live_keys_get_answers_and_every_request_is_logged(
    tmp_path: Path, digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    client, keys, audit, _ = _gateway(tmp_path, digits_mlp)
    key = keys.add("alice")
    assert key not in (tmp_path / "keys.json").read_text()  # only the hash is stored
    x = digits_split[1].x[:4]
    ok = client.post("/v2/models/model/infer", json=_body(x), headers=_auth(key))
    assert ok.status_code == 200 and ok.json()["outputs"][0]["shape"] == [4, 10]
    for headers in ({}, _auth("sk-wrong"), {"Authorization": key}):
        refused = client.post("/v2/models/model/infer", json=_body(x), headers=headers)
        assert refused.status_code == 401 and "API key" in refused.json()["error"]
    keys.revoke("alice")
    assert client.post("/v2/models/model/infer", json=_body(x), headers=_auth(key)).status_code == 401
    audit.close()
    rows = sqlite3.connect(tmp_path / "audit.sqlite").execute("SELECT status FROM requests").fetchall()
    assert [r[0] for r in rows] == [200, 401, 401, 401, 401]


BAD_BODIES = {
    "not json": (b"{inputs:", "invalid request"),
    "wrong shape": (json.dumps(_body(torch.rand(2, 1, 4, 4))).encode(), "does not fit"),
    "too few values": (
        json.dumps({"inputs": [{**_body(torch.rand(1, 1, 8, 8))["inputs"][0], "data": [0.5]}]}).encode(),
        "values for shape",
    ),
    "NaN": (json.dumps(_body(torch.full((1, 1, 8, 8), float("nan")))).encode(), "NaN or infinite"),
    "out of bounds": (json.dumps(_body(torch.full((1, 1, 8, 8), 7.0))).encode(), "outside the model's bounds"),
    "batch over limit": (json.dumps(_body(torch.rand(9, 1, 8, 8))).encode(), "over the limit"),
    "extra field": (json.dumps({**_body(torch.rand(1, 1, 8, 8)), "debug": True}).encode(), "invalid request"),
    "oversize": (b" " * 50_000, "body over"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_invalid_queries_are_refused_before_the_model_runs(
    tmp_path: Path, digits_mlp: TorchClassifier, case: str
) -> None:
    client, keys, _, model = _gateway(tmp_path, digits_mlp, max_batch=8, max_body_bytes=40_000)
    body, reason = BAD_BODIES[case]
    response = client.post("/v2/models/model/infer", content=body, headers=_auth(keys.add("bob")))
    assert 400 <= response.status_code < 500 and reason in response.json()["error"]
    assert "\n" not in response.json()["error"] and model.queries == 0


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, str, TorchClassifier]:
    from sparring.data import digits
    from sparring.models import build

    data = digits()
    model = TorchClassifier(build("mlp", data.input_shape, data.num_classes, seed=0), data.input_shape, 10)
    client, keys, _, served = _gateway(tmp_path_factory.mktemp("fuzz"), model)
    return client, keys.add("fuzzer"), served


_JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["inputs", "shape", "data", "id", "x"]), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(body=st.one_of(st.binary(max_size=200), _JSON.map(lambda v: json.dumps(v).encode())))
def test_fuzzed_bodies_get_one_line_4xx_and_never_reach_the_model(
    fuzz_gateway: tuple[TestClient, str, TorchClassifier], body: bytes
) -> None:
    client, key, model = fuzz_gateway
    response = client.post("/v2/models/model/infer", content=body, headers=_auth(key))
    assert 400 <= response.status_code < 500, response.text
    assert "\n" not in response.json()["error"]
    assert model.queries == 0


def test_quotas_hold_across_a_restart_and_answer_429_with_retry_after(
    tmp_path: Path, digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    client, keys, audit, _ = _gateway(tmp_path, digits_mlp)
    key = keys.add("carol", per_minute=10, total=12)
    x = digits_split[1].x[:4]
    statuses = [client.post("/v2/models/model/infer", json=_body(x), headers=_auth(key)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # 8 queries in the minute, 12 would pass 10
    audit.close()
    client, _, audit, _ = _gateway(tmp_path, digits_mlp)  # a restart: the same keys file and audit log
    again = client.post("/v2/models/model/infer", json=_body(x), headers=_auth(key))
    assert again.status_code == 429 and again.headers["Retry-After"] in ("60", "86400")
    audit.close()


def test_the_audit_chain_detects_an_edited_row(
    tmp_path: Path,
    digits_mlp: TorchClassifier,
    digits_split: tuple[Dataset, Dataset],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, keys, audit, _ = _gateway(tmp_path, digits_mlp)
    key = keys.add("dave")
    for _ in range(3):
        client.post("/v2/models/model/infer", json=_body(digits_split[1].x[:2]), headers=_auth(key))
    audit.close()
    db = tmp_path / "audit.sqlite"
    assert verify_log(db) == (True, "3 requests; integrity check ok; chain intact")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE requests SET status = 500 WHERE id = 2")
    assert main(["audit", "verify", str(db)]) == 1
    assert "chain breaks at request 2" in capsys.readouterr().out
    assert main(["audit", "verify", str(tmp_path / "missing.sqlite")]) == 2  # bad input, not a failed check


# -- sparring attacks a deployment over HTTP --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, digits_mlp: TorchClassifier) -> Iterator[tuple[str, str]]:
    import uvicorn

    client, keys, audit, _ = _gateway(tmp_path, digits_mlp)
    key = keys.add("assessor")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v2/models/model", key
    server.should_exit = True
    thread.join(timeout=10)
    audit.close()


def test_a_deployment_is_attacked_over_http_as_an_outsider_would(
    served: tuple[str, str], digits_split: tuple[Dataset, Dataset], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key = served
    remote = RemoteClassifier(url, key)
    x, y = digits_split[1].x[:40], digits_split[1].y[:40]
    assert remote.input_shape == (1, 8, 8) and remote.num_classes == 10
    assert (remote.predict_labels(x) == y).float().mean() > 0.8
    monkeypatch.setenv("SPARRING_API_KEY", key)
    config = tmp_path / "remote.toml"
    config.write_text(
        f'[data]\ndataset = "digits"\n[model]\nendpoint = "{url}"\n'
        '[[evasion]]\nattack = "square"\neps = [0.2]\nsamples = 30\nmax_queries = 200\n'
    )
    assert main(["assess", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    f = report["figures"]
    assert f["evasion.square-linf.robust_accuracy@0.2"] < f["evasion.square-linf.clean_accuracy"] - 0.2
    with pytest.raises(Exception, match="API key"):
        RemoteClassifier(url, "sk-wrong")


# -- query monitors -------------------------------------------------------------------------------------------


def test_the_stateful_detector_catches_a_black_box_attack_and_blocks_its_key(
    tmp_path: Path, digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    from sparring.attacks.evasion import Square
    from sparring.serve.monitors import StatefulDetector

    train, test = digits_split
    detector = StatefulDetector(k=5)
    detector.calibrate(train.x[:300])  # benign traffic the deployment saw
    keys = KeyStore(tmp_path / "keys.json")
    audit = AuditLog(tmp_path / "audit.sqlite")
    app = create_app(digits_mlp, ServeSettings(monitors=["stateful"], on_alarm="block"), keys, audit, [detector])
    client = TestClient(app)
    benign, attacker = keys.add("benign"), keys.add("attacker")
    flagged = 0
    for x in test.x[:200]:  # benign replay: one query at a time
        r = client.post("/v2/models/model/infer", json=_body(x[None]), headers=_auth(benign))
        assert r.status_code == 200
        flagged += bool(r.json().get("error"))
    rows = sqlite3.connect(tmp_path / "audit.sqlite").execute("SELECT detail FROM requests").fetchall()
    assert sum(bool(r[0]) for r in rows) <= 4  # at most 2 % of benign queries raise an alarm
    url = "/v2/models/model/infer"

    class _Through(TorchClassifier):
        def _scores(self, x: torch.Tensor) -> torch.Tensor:  # every Square query goes through the gateway
            out = []
            for q in x:
                r = client.post(url, json=_body(q[None]), headers=_auth(attacker))
                if r.status_code != 200:
                    raise RuntimeError(r.json()["error"])
                out.append(torch.tensor(r.json()["outputs"][0]["data"]).reshape(1, -1))
            return torch.cat(out)

    through = _Through(digits_mlp.model, digits_mlp.input_shape, 10)
    with pytest.raises(RuntimeError, match="blocked: stateful detector"):
        Square(eps=0.2, max_queries=100, seed=0).run(through, test.x[:2], test.y[:2])
    again = client.post(url, json=_body(test.x[:1]), headers=_auth(attacker))
    assert again.status_code == 401  # the key stays blocked
    audit.close()


def test_prada_alarms_on_jacobian_augmentation_not_on_natural_queries(
    digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    from sparring.attacks.privacy import JacobianAugmentation
    from sparring.serve.monitors import Prada

    _, test = digits_split
    # Papernot et al.'s Jacobian-based augmentation: 10 seeds, the set doubled 6 times by a step along the
    # sign of the surrogate's gradient for the victim's label (the synthetic queries PRADA was built to catch)
    seen: list[torch.Tensor] = []

    class _Recording(TorchClassifier):
        def _labels(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.detach().clone())
            return super()._labels(x)

    victim = _Recording(digits_mlp.model, digits_mlp.input_shape, 10)
    JacobianAugmentation(seeds=10, step=0.1, epochs=5, seed=0).steal(victim, 640, pool=test.x[:10])
    queries = torch.cat(seen)
    assert len(queries) == 640

    def alarms(client: str, stream: torch.Tensor) -> list[int]:  # as the gateway sees it: requests of 10
        prada = Prada()
        return [
            i + 10
            for i in range(0, len(stream), 10)
            if prada.observe(client, stream[i : i + 10], digits_mlp.predict_labels(stream[i : i + 10]))
        ]

    # measured: the first alarm after 60 synthetic queries for four seed sets and two models (mlp, small_cnn);
    # 500 natural queries in order keep W >= 0.968 on this mlp (a small_cnn dipped to 0.943: a false alarm there)
    thief = alarms("thief", queries)
    assert thief and thief[0] <= 200
    assert alarms("benign", test.x[:500]) == []


def test_the_audit_report_flags_probing_alarms_and_keys_near_their_quota(
    tmp_path: Path,
    digits_mlp: TorchClassifier,
    digits_split: tuple[Dataset, Dataset],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, keys, audit, _ = _gateway(tmp_path, digits_mlp)
    honest, prober = keys.add("honest", total=10), keys.add("prober")
    x = digits_split[1].x[:3]
    for _ in range(3):
        client.post("/v2/models/model/infer", json=_body(x), headers=_auth(honest))  # 9 of 10 queries
    for _ in range(12):  # a client probing the validation
        client.post("/v2/models/model/infer", content=b"{}", headers=_auth(prober))
    audit.close()
    assert main(["audit", "report", str(tmp_path / "audit.sqlite"), "--keys", str(tmp_path / "keys.json")]) == 0
    out = capsys.readouterr().out
    ids = {e.name: e.key_id for e in keys.entries.values()}
    assert f"{ids['prober']}: 100% of requests were invalid" in out
    assert f"{ids['honest']}: 9 of 10 queries used" in out


class _AlarmAfter:
    """A monitor that raises its alarm from a client's ``n``-th query on (the action is what is tested)."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def observe(self, client: str, x: torch.Tensor, labels: torch.Tensor) -> str | None:
        self.seen += len(x)
        return "test monitor: alarm" if self.seen >= self.n else None


def test_an_alarm_can_throttle_the_key_and_the_throttle_survives_a_restart(
    tmp_path: Path, digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    keys = KeyStore(tmp_path / "keys.json")
    key, other = keys.add("eve", per_minute=100), keys.add("frank", per_minute=100)
    settings_ = ServeSettings(on_alarm="throttle", throttle=0.1)
    audit = AuditLog(tmp_path / "audit.sqlite")
    client = TestClient(create_app(digits_mlp, settings_, keys, audit, [_AlarmAfter(3)]))
    x = digits_split[1].x[:1]
    url = "/v2/models/model/infer"
    statuses = [client.post(url, json=_body(x), headers=_auth(key)).status_code for _ in range(12)]
    # the 3rd query raises the alarm and is answered; the key then gets 10 % of its 100 a minute: 10 in all
    assert statuses == [200] * 10 + [429] * 2
    slowed = client.post(url, json=_body(x), headers=_auth(key))
    assert slowed.headers["Retry-After"] == "60" and "throttled" in slowed.json()["error"]
    audit.close()
    audit = AuditLog(tmp_path / "audit.sqlite")  # a restart: fresh monitors, the same audit log
    client = TestClient(create_app(digits_mlp, settings_, keys, audit, [_AlarmAfter(10**6)]))
    assert client.post(url, json=_body(x), headers=_auth(key)).status_code == 429
    assert all(client.post(url, json=_body(x), headers=_auth(other)).status_code == 200 for _ in range(15))
    audit.close()
    with pytest.raises(Exception, match="throttle"):
        ServeSettings(on_alarm="throttle", throttle=1.5)


def test_keys_added_or_revoked_by_the_cli_take_effect_on_a_running_gateway(
    tmp_path: Path, digits_mlp: TorchClassifier, digits_split: tuple[Dataset, Dataset]
) -> None:
    client, keys, audit, _ = _gateway(tmp_path, digits_mlp)
    url, body = "/v2/models/model/infer", _body(digits_split[1].x[:1])
    old = keys.add("grace")
    time.sleep(0.01)  # a distinct modification time on coarse file systems
    assert main(["keys", "revoke", "grace", "--keys", str(tmp_path / "keys.json")]) == 0  # another process's store
    assert client.post(url, json=body, headers=_auth(old)).status_code == 401
    new = KeyStore(tmp_path / "keys.json").add("heidi")
    assert client.post(url, json=body, headers=_auth(new)).status_code == 200
    audit.close()
