"""The throughput check against a real collector process on loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.checks import throughput
from agent.checks.base import CheckContext, CollectorLink
from tests.conftest import BIN, Proc, free_port, http, wait_for

pytestmark = pytest.mark.integration


def test_download_and_upload_against_the_collector(tmp_path: Path, procs: Callable[..., Proc]) -> None:
    db, port = tmp_path / "c.db", free_port()
    url = f"http://127.0.0.1:{port}"
    procs([str(BIN / "centerwatch-collector"), "serve", "--db", str(db), "--port", str(port)], tmp_path / "c.log")
    wait_for("collector", lambda: http("GET", f"{url}/healthz")[0] == 200)
    token = subprocess.run(
        [str(BIN / "centerwatch-collector"), "token", "create", "--db", str(db), "--center", "lab"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    body = json.dumps({"v": 1, "token": token, "hostname": "probe", "agent_version": "t"}).encode()
    agent = json.loads(http("POST", f"{url}/api/v1/enroll", body, {"Content-Type": "application/json"})[1])

    cfg = throughput.Config(
        download_bytes=8 * 1024 * 1024, upload_bytes=4 * 1024 * 1024, ignore_window=True, contracted_download_mbps=200
    )
    ctx = CheckContext("throughput", cfg, collector=CollectorLink(url, agent["agent_token"]))
    obs = asyncio.run(throughput.collect(ctx))
    got = {(s.name, s.labels.get("direction")): s.value for s in obs.samples}
    assert got[("probe_throughput_transferred_bytes", "download")] == 8 * 1024 * 1024
    assert got[("probe_throughput_transferred_bytes", "upload")] == 4 * 1024 * 1024
    assert got[("probe_throughput_bits_per_second", "download")] > 50e6  # loopback: far above a center link
    assert got[("probe_throughput_contract_ratio", "download")] > 0.25

    # A wrong token is refused: the endpoints cost bandwidth and are for enrolled agents only.
    ctx = CheckContext("throughput", cfg, collector=CollectorLink(url, "cwa_wrong"))
    obs = asyncio.run(throughput.collect(ctx))
    assert [s.value for s in obs.samples if s.name == "probe_success"] == [0.0, 0.0]
    assert "401" in obs.events[0].message


def test_outside_the_window_nothing_is_measured() -> None:
    cfg = throughput.Config(windows=())
    obs = asyncio.run(throughput.collect(CheckContext("throughput", cfg, clock_ms=lambda: 1_800_000_000_000)))
    assert [(s.name, s.value) for s in obs.samples] == [("probe_throughput_in_window", 0.0)]
