"""End to end: a real collector (uvicorn, subprocess) and a real agent process on loopback."""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from centerwatch.wire import Batch, Part, Sample, encode
from tests.conftest import BIN, ROOT, Proc, free_port, http, wait_for

pytestmark = pytest.mark.integration


def start_collector(procs: Callable[..., Proc], db: Path, port: int, log: Path) -> Proc:
    proc = procs(
        [
            str(BIN / "centerwatch-collector"),
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--inventory",
            str(ROOT / "inventory"),
            "--agent-interval",
            "1",
        ],
        log,
    )
    wait_for("collector /healthz", lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200)
    return proc


def latest(url: str, name: str, **match: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in {"name": name, **match}.items())
    status, body = http("GET", f"{url}/api/v1/series/latest?{query}")
    assert status == 200, body
    result: list[dict[str, Any]] = json.loads(body)
    return result


def run_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


def test_agent_reports_to_collector_end_to_end(tmp_path: Path, procs: Callable[..., Proc]) -> None:
    db = tmp_path / "collector.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    collector = start_collector(procs, db, port, tmp_path / "collector.log")

    token = subprocess.run(
        [
            str(BIN / "centerwatch-collector"),
            "token",
            "create",
            "--db",
            str(db),
            "--center",
            "hoa-khanh",
            "--inventory",
            str(ROOT / "inventory"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert token.startswith("cwe_")
    metrics_port = free_port()
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"collector_url: {url}\nenrollment_token: {token}\ndata_dir: {tmp_path / 'agent'}\n"
        f"metrics_listen: 127.0.0.1:{metrics_port}\n"
        "upload: {interval_s: 0.2, backoff_min_s: 0.2, backoff_max_s: 1}\n"
        "checks:\n  host: {interval_s: 1, timeout_s: 5}\n"
    )
    agent = procs([str(BIN / "centerwatch-agent"), "run", "-c", str(config)], tmp_path / "agent.log")

    # 1. The agent's samples and facts are stored, labelled with its center and host.
    points = wait_for("host samples at the collector", lambda: latest(url, "host_memory_total_bytes"))
    assert points[0]["labels"]["center"] == "hoa-khanh"
    assert points[0]["value"] > 0
    identity = json.loads((tmp_path / "agent" / "identity.json").read_text())
    assert (tmp_path / "agent" / "identity.json").stat().st_mode & 0o077 == 0
    status, body = http("GET", f"{url}/api/v1/agents/{identity['agent_id']}/facts")
    facts = json.loads(body)["host"]
    assert status == 200 and facts["hostname"] and facts["memory_bytes"] > 0 and facts["nics"]

    # 2. A wrong token is refused and nothing is stored for it.
    now = int(time.time() * 1000)
    forged = encode(
        Batch(
            1,
            identity["agent_id"],
            now,
            [Part(10, "host", now, 0.0, True, samples=[Sample("host_memory_total_bytes", {}, 1.0, now)])],
        )
    )
    status, body = http("POST", f"{url}/api/v1/ingest", forged, {"Authorization": "Bearer cwa_wrong"})
    assert status == 401 and json.loads(body)["error"] == "unauthorized"

    # 3. A replayed batch is acknowledged and not stored twice.
    auth = {"Authorization": f"Bearer {identity['agent_token']}", "Content-Type": "application/json"}
    replay = encode(
        Batch(
            1,
            identity["agent_id"],
            now,
            [Part(5, "replay", now, 0.0, True, samples=[Sample("test_replay_value", {}, 42.0, now)])],
        )
    )
    first = json.loads(http("POST", f"{url}/api/v1/ingest", replay, auth)[1])
    again = json.loads(http("POST", f"{url}/api/v1/ingest", replay, auth)[1])
    assert (first["stored"], again["stored"], again["duplicates"]) == (1, 0, 1)
    status, body = http("GET", f"{url}/api/v1/series/range?name=test_replay_value&start_ms={now - 1}&end_ms={now + 1}")
    assert [len(s["points"]) for s in json.loads(body)] == [1]

    # 4. /metrics of both parse with prometheus-client's parser.
    _, text = http("GET", f"{url}/metrics")
    fams = {f.name: f for f in text_string_to_metric_families(text.decode())}
    up = {s.labels["host"]: s.value for s in fams["centerwatch_agent_up"].samples}
    assert list(up.values()) == [1.0]
    _, text = http("GET", f"http://127.0.0.1:{metrics_port}/metrics")
    agent_fams = {f.name: f for f in text_string_to_metric_families(text.decode())}
    assert "host_memory_total_bytes" in agent_fams
    assert "centerwatch_agent_spool_entries" in agent_fams
    assert agent_fams["centerwatch_agent_check_runs"].samples[0].value >= 1

    # 5. The collector restarted keeps the data; the agent spools meanwhile and catches up.
    before = run_count(db)
    assert collector.stop() == 0
    time.sleep(2.5)  # the agent keeps measuring into its spool while the collector is down
    collector = start_collector(procs, db, port, tmp_path / "collector2.log")
    assert run_count(db) >= before
    assert latest(url, "test_replay_value")[0]["value"] == 42.0
    restart_ms = int(time.time() * 1000)
    wait_for(
        "fresh samples after the restart",
        lambda: any(p["ts_ms"] > restart_ms for p in latest(url, "host_memory_total_bytes")),
    )
    # Results taken while the collector was down arrived too: no gap of more than ~2 intervals.
    status, body = http(
        "GET", f"{url}/api/v1/series/range?name=host_memory_total_bytes&start_ms={now}&end_ms={restart_ms + 5000}"
    )
    stamps = sorted(p[0] for s in json.loads(body) for p in s["points"])
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert stamps and max(gaps) < 2500, gaps

    # 6. SIGTERM stops the agent cleanly.
    assert agent.stop(signal.SIGTERM) == 0, agent.output()


def test_agent_once_prints_a_report(tmp_path: Path) -> None:
    out = subprocess.run([str(BIN / "centerwatch-agent"), "once"], check=True, capture_output=True, text=True)
    report = json.loads(out.stdout)
    assert report[0]["check"] == "host" and report[0]["ok"] is True
    names = {s[0] for s in report[0]["samples"]}
    assert {"host_memory_total_bytes", "host_uptime_seconds"} <= names


def test_bad_agent_config_names_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("collector_url: http://127.0.0.1:1\ndata_dir: /tmp/x\nupload: {interval_s: soon}\n")
    out = subprocess.run(
        [str(BIN / "centerwatch-agent"), "check-config", "-c", str(config)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert f"{config}: upload.interval_s: expected float, got str" in out.stderr
