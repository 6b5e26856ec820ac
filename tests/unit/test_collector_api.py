"""The collector's HTTP API in-process (FastAPI TestClient over the real SQLite store)."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from centerwatch.wire import Batch, Event, Part, Sample, encode
from collector.app import create_app
from collector.auth import hash_token
from collector.settings import Settings

ENROLL = "cwe_TEST-ONLY-enrollment-token"


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(db=tmp_path / "c.db", inventory=Path("inventory")))
    store = app.state.ctx.store
    asyncio.run(store.create_enroll_token(hash_token(ENROLL), "hoa-khanh", now_ms(), None, None, "test"))
    with TestClient(app) as c:
        yield c


def enroll(client: TestClient, host: str = "pc01") -> dict[str, Any]:
    r = client.post("/api/v1/enroll", json={"v": 1, "token": ENROLL, "hostname": host, "agent_version": "t"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def batch(agent_id: str, seq: int = 1, ts: int | None = None, **sample_kw: Any) -> Batch:
    ts = ts or now_ms()
    labels = sample_kw.pop("labels", {"cpu": "total"})
    samples = [Sample("host_cpu_usage_ratio", labels, 0.25, ts), Sample("host_memory_used_ratio", {}, 0.5, ts)]
    part = Part(
        seq,
        "host",
        ts,
        0.002,
        True,
        samples=samples,
        facts={"hostname": "pc01", "os": "Linux"},
        events=[Event("check.partial", ts, {"mountpoint": "/x"}, "permission denied", "warning")],
    )
    return Batch(1, agent_id, ts, [part])


def post(client: TestClient, token: str, body: bytes, **headers: str) -> Any:
    return client.post("/api/v1/ingest", content=body, headers={"Authorization": f"Bearer {token}", **headers})


def test_enroll_then_ingest_is_stored_and_acknowledged(client: TestClient) -> None:
    agent = enroll(client)
    assert agent["center"] == "hoa-khanh" and agent["host"] == "pc01"
    assert agent["agent_token"].startswith("cwa_")
    r = post(client, agent["agent_token"], encode(batch(agent["agent_id"])))
    assert r.status_code == 200, r.text
    assert r.json() == {"v": 1, "seqs": [1], "stored": 1, "duplicates": 0, "samples": 2}
    latest = client.get("/api/v1/series/latest", params={"name": "host_cpu_usage_ratio"}).json()
    assert latest[0]["value"] == 0.25
    assert latest[0]["labels"] == {"center": "hoa-khanh", "cpu": "total", "host": "pc01"}
    facts = client.get(f"/api/v1/agents/{agent['agent_id']}/facts").json()
    assert facts["host"]["os"] == "Linux"
    events = client.get("/api/v1/events").json()
    assert events[0]["kind"] == "check.partial" and events[0]["center"] == "hoa-khanh"


def test_replayed_part_is_acknowledged_not_stored_twice(client: TestClient) -> None:
    agent = enroll(client)
    body = gzip.compress(encode(batch(agent["agent_id"], seq=7)))
    first = post(client, agent["agent_token"], body, **{"Content-Encoding": "gzip"}).json()
    again = post(client, agent["agent_token"], body, **{"Content-Encoding": "gzip"}).json()
    assert (first["stored"], first["duplicates"]) == (1, 0)
    assert (again["stored"], again["duplicates"], again["seqs"]) == (0, 1, [7])
    start = now_ms() - 60_000
    found = client.get(
        "/api/v1/series/range", params={"name": "host_cpu_usage_ratio", "start_ms": start, "end_ms": now_ms()}
    ).json()
    assert len(found[0]["points"]) == 1


def test_wrong_or_missing_token_is_refused_with_a_message(client: TestClient) -> None:
    agent = enroll(client)
    body = encode(batch(agent["agent_id"]))
    r = post(client, "cwa_not-a-real-token", body)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert "Authorization" in r.json()["message"]
    r = client.post("/api/v1/ingest", content=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_revoked_agent_is_refused(client: TestClient) -> None:
    agent = enroll(client)
    asyncio.run(client.app.state.ctx.store.revoke_agent(agent["agent_id"]))  # type: ignore[attr-defined]
    r = post(client, agent["agent_token"], encode(batch(agent["agent_id"])))
    assert r.status_code == 401 and r.json()["error"] == "revoked"


def test_agent_cannot_write_another_agents_data(client: TestClient) -> None:
    a = enroll(client, "pc01")
    b = enroll(client, "pc02")
    r = post(client, a["agent_token"], encode(batch(b["agent_id"])))
    assert r.status_code == 403 and r.json()["error"] == "wrong_agent"


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        (b"{not json", "bad_json", 400),
        (b'{"v": 1, "agent_id": "x"}', "bad_schema", 400),
        (b'{"v": 9, "agent_id": "x", "new_field": 1}', "bad_version", 400),
    ],
)
def test_malformed_bodies_get_a_named_error(client: TestClient, body: bytes, code: str, status: int) -> None:
    agent = enroll(client)
    r = post(client, agent["agent_token"], body, **{"Accept-Language": "en"})
    assert r.status_code == status and r.json()["error"] == code, r.text
    assert r.json()["message"]


def test_error_messages_speak_vietnamese_by_default_and_english_on_request(client: TestClient) -> None:
    agent = enroll(client)
    vi = post(client, agent["agent_token"], b'{"v": 9}').json()["message"]
    en = post(client, agent["agent_token"], b'{"v": 9}', **{"Accept-Language": "en-US,en;q=0.9"}).json()["message"]
    assert "Phiên bản lược đồ 9" in vi
    assert "Schema version 9 is not supported" in en


def test_future_timestamp_is_refused_and_nothing_is_stored(client: TestClient) -> None:
    agent = enroll(client)
    good_then_bad = Batch(
        1,
        agent["agent_id"],
        now_ms(),
        [batch(agent["agent_id"], seq=1).parts[0], batch(agent["agent_id"], seq=2, ts=now_ms() + 3_600_000).parts[0]],
    )
    r = post(client, agent["agent_token"], encode(good_then_bad))
    assert r.status_code == 400 and r.json()["error"] == "future_timestamp"
    assert r.json()["where"] == "parts[1].samples[0]"
    assert client.get("/api/v1/series/latest", params={"name": "host_cpu_usage_ratio"}).json() == []


def test_reserved_or_invalid_label_rolls_back_the_whole_batch(client: TestClient) -> None:
    agent = enroll(client)
    ok = batch(agent["agent_id"], seq=1).parts[0]
    bad = batch(agent["agent_id"], seq=2, labels={"center": "someone-else"}).parts[0]
    r = post(client, agent["agent_token"], encode(Batch(1, agent["agent_id"], now_ms(), [ok, bad])))
    assert r.status_code == 400 and r.json()["error"] == "bad_name"
    assert r.json()["where"] == "parts[1].samples[0]"
    assert client.get("/api/v1/series/latest", params={"name": "host_cpu_usage_ratio"}).json() == []
    # The same seq 1 is then accepted: the refused batch left no idempotency key behind.
    r = post(client, agent["agent_token"], encode(Batch(1, agent["agent_id"], now_ms(), [ok])))
    assert r.json()["stored"] == 1


def test_oversize_and_bad_encoding(client: TestClient) -> None:
    agent = enroll(client)
    big = b"x" * (client.app.state.ctx.limits.max_body_bytes + 1)  # type: ignore[attr-defined]
    r = post(client, agent["agent_token"], big)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    r = post(client, agent["agent_token"], b"garbage", **{"Content-Encoding": "gzip"})
    assert r.status_code == 400 and r.json()["error"] == "bad_gzip"
    r = post(client, agent["agent_token"], b"x", **{"Content-Encoding": "br"})
    assert r.status_code == 415 and r.json()["error"] == "bad_encoding"


def test_gzip_bomb_is_refused(client: TestClient) -> None:
    agent = enroll(client)
    bomb = gzip.compress(b"[" * (70 * 1024 * 1024))
    r = post(client, agent["agent_token"], bomb, **{"Content-Encoding": "gzip"})
    assert r.status_code == 413


def test_bad_enrollment_token(client: TestClient) -> None:
    r = client.post("/api/v1/enroll", json={"v": 1, "token": "cwe_wrong-token", "hostname": "x", "agent_version": "t"})
    assert r.status_code == 403 and r.json()["error"] == "enroll_refused"


def test_metrics_parse_and_show_fleet(client: TestClient) -> None:
    agent = enroll(client)
    post(client, agent["agent_token"], encode(batch(agent["agent_id"])))
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    up = families["centerwatch_agent_up"].samples
    assert [(s.labels["center"], s.labels["host"], s.value) for s in up] == [("hoa-khanh", "pc01", 1.0)]
    stored = [s for s in families["centerwatch_ingest_samples"].samples if s.name.endswith("_total")]
    assert stored[0].value == 2
    centers = {s.labels["center"]: s.value for s in families["centerwatch_center_agents"].samples}
    assert len(centers) == 94 and centers["hoa-khanh"] == 1


def test_status_page_in_both_languages(client: TestClient) -> None:
    agent = enroll(client)
    post(client, agent["agent_token"], encode(batch(agent["agent_id"])))
    vi = client.get("/").text
    assert "Hòa Khánh" in vi and "pc01" in vi and "Đang báo cáo" in vi and "25%" in vi
    en = client.get("/", params={"lang": "en"}).text
    assert "Reporting" in en and "Public service center status" in en


def test_openapi_documents_ingest_with_the_wire_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/v1/ingest"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "Batch" in msgspec.json.encode(body).decode()
