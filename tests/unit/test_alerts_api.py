"""Alerts API and pages: reading is open, every change needs an operator token and names the operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collector.alerting.state import AlertRow
from collector.app import create_app
from collector.auth import hash_token
from collector.context import now_ms
from collector.settings import Settings

TOKEN = "cwo_test-operator-token-not-a-secret"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # no evaluation round during the test: it would resolve the hand-made alert (no data behind it)
    app = create_app(Settings(db=tmp_path / "c.db", inventory=Path("inventory"), alert_eval_interval_s=300))
    state = app.state.ctx.alerts
    state.add_operator("an", hash_token(TOKEN), now_ms())
    now = now_ms()
    row = AlertRow(
        fingerprint="f00",
        rule="uplink_down",
        center="hai-chau",
        severity="critical",
        labels={"center": "hai-chau", "uplink": "internet"},
        state="firing",
        value=2.0,
        active_ms=now,
        firing_ms=now,
        texts={
            "vi": {"summary": "Mất đường truyền internet", "description": ""},
            "en": {"summary": "internet down", "description": ""},
        },
    )
    state.save([row], [(row, now, "firing", "", "2")])
    with TestClient(app) as c:
        yield c


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_open_alerts_by_center_in_the_callers_language(client: TestClient) -> None:
    body = client.get("/api/v1/alerts", params={"center": "hai-chau", "lang": "en"}).json()
    assert [(a["rule"], a["summary"], a["state"]) for a in body] == [("uplink_down", "internet down", "firing")]
    assert client.get("/api/v1/alerts", params={"center": "tra-doc"}).json() == []
    assert client.get("/api/v1/alerts").json()[0]["summary"] == "Mất đường truyền internet"


def test_acknowledge_needs_an_operator_and_is_recorded(client: TestClient) -> None:
    (alert,) = client.get("/api/v1/alerts").json()
    r = client.post(f"/api/v1/alerts/{alert['id']}/ack", json={"comment": "x"})
    assert r.status_code == 401 and r.json()["error"] == "operator_unauthorized"
    r = client.post(
        f"/api/v1/alerts/{alert['id']}/ack", json={"comment": "x"}, headers={"Authorization": "Bearer cwa_agent"}
    )
    assert r.status_code == 401
    r = client.post(f"/api/v1/alerts/{alert['id']}/ack", json={"comment": "gọi VNPT"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged"]["by"] == "an"
    detail = client.get(f"/api/v1/alerts/{alert['id']}").json()
    assert [(h["what"], h["who"], h["note"]) for h in detail["history"]] == [
        ("firing", "", "2"),
        ("acknowledged", "an", "gọi VNPT"),
    ]
    assert client.post("/api/v1/alerts/999/ack", json={}, headers=AUTH).status_code == 404


def test_silences_are_validated_created_listed_and_expired(client: TestClient) -> None:
    bad = client.post(
        "/api/v1/silences",
        json={"matchers": [{"name": "center", "value": "(", "op": "=~"}], "duration_s": 60, "comment": "c"},
        headers=AUTH,
    )
    assert bad.status_code == 422 and bad.json()["where"].startswith("body.matchers.0")
    both = client.post(
        "/api/v1/silences",
        json={"matchers": [{"name": "center", "value": "x"}], "comment": "c"},
        headers=AUTH,
    )
    assert both.status_code == 422
    r = client.post(
        "/api/v1/silences",
        json={"matchers": [{"name": "center", "value": "hai-chau"}], "duration_s": 3600, "comment": "ISP works"},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    silence = r.json()
    assert silence["author"] == "an" and silence["active"]
    assert [s["id"] for s in client.get("/api/v1/silences").json()] == [silence["id"]]
    assert client.delete(f"/api/v1/silences/{silence['id']}").status_code == 401
    assert client.delete(f"/api/v1/silences/{silence['id']}", headers=AUTH).status_code == 200
    assert client.get("/api/v1/silences").json() == []


def test_maintenance_windows_per_known_center(client: TestClient) -> None:
    body = {"center": "hai-chau", "days": ["sat"], "start": "22:00", "end": "02:00", "comment": "ISP"}
    r = client.post("/api/v1/maintenance-windows", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["timezone"] == "Asia/Ho_Chi_Minh" and r.json()["author"] == "an"
    assert (
        client.post("/api/v1/maintenance-windows", json={**body, "center": "atlantis"}, headers=AUTH).status_code == 404
    )
    assert client.post("/api/v1/maintenance-windows", json={**body, "start": "25:00"}, headers=AUTH).status_code == 422
    assert (
        client.post("/api/v1/maintenance-windows", json={**body, "timezone": "Mars/Base"}, headers=AUTH).status_code
        == 422
    )
    (w,) = client.get("/api/v1/maintenance-windows", params={"center": "hai-chau"}).json()
    assert client.delete(f"/api/v1/maintenance-windows/{w['id']}", headers=AUTH).status_code == 200


def test_alert_pages_render_in_both_languages(client: TestClient) -> None:
    (alert,) = client.get("/api/v1/alerts").json()
    vi = client.get("/alerts").text
    assert "Mất đường truyền internet" in vi and "Hải Châu" in vi
    en = client.get("/alerts", params={"lang": "en"}).text
    assert "internet down" in en and "Open alerts by center" in en
    page = client.get(f"/alerts/{alert['id']}", params={"lang": "en"}).text
    assert "History" in page and "firing" in page
    assert client.get("/alerts/999").status_code == 404


def test_a_failing_alerts_database_is_a_503_in_the_callers_language(client: TestClient) -> None:
    client.app.state.ctx.alerts._db.close()  # type: ignore[attr-defined]
    r = client.get("/api/v1/alerts", params={"lang": "en"})
    assert r.status_code == 503 and r.json()["error"] == "store_unavailable"
    assert "database" in r.json()["message"]
