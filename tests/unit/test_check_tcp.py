"""The TCP check against real listeners on loopback. Names are resolved by a fake: a unit test
never asks the system resolver (it may forward to the network)."""

from __future__ import annotations

import asyncio
import errno
import math
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from agent.catalog import load_catalog
from agent.checks import tcp
from agent.checks.base import CheckContext, Observations
from agent.config import AgentConfig, check_specs
from agent.errors import ConfigError
from centerwatch.wire import BATCH_DECODER, Batch, Part

NOW_MS = 1_795_900_000_000


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeResolver:
    """Answers from a table; a missing name fails like getaddrinfo does."""

    def __init__(self, table: dict[str, list[tcp.Address]]) -> None:
        self.table = table
        self.asked: list[tuple[str, int, int]] = []

    async def __call__(self, host: str, port: int, family: int) -> list[tcp.Address]:
        self.asked.append((host, port, family))
        await asyncio.sleep(0.001)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    fake = FakeResolver({})
    monkeypatch.setattr(tcp, "resolve", fake)
    return fake


async def run(*targets: tcp.Target, timeout_s: float = 1.0) -> Observations:
    return await tcp.collect(CheckContext("tcp", tcp.Config(targets, timeout_s), lambda: NOW_MS))


def values(obs: Observations, name: str) -> dict[str, float]:
    return {s.labels["target"]: s.value for s in obs.samples if s.name == name}


def reasons(obs: Observations) -> dict[str, str]:
    return {s.labels["target"]: s.labels["reason"] for s in obs.samples if s.name == "probe_failure_info"}


def assert_cataloged(obs: Observations, check: str) -> None:
    """Every sample is in agent/metrics.csv, in range, once per series, and valid on the wire."""
    catalog = load_catalog()
    for sample in obs.samples:
        entry = catalog.get(sample.name)
        assert entry is not None, f"{sample.name} is not in agent/metrics.csv"
        assert entry.type == "gauge" and math.isfinite(sample.value)
        if entry.unit == "boolean":
            assert sample.value in (0.0, 1.0), sample
        assert sample.labels["probe"] == check and sample.labels["uplink"] in ("internet", "wan", "lan")
    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in obs.samples]
    assert len(keys) == len(set(keys)), "a series is reported twice in one run"
    part = Part(1, check, NOW_MS, 0.01, True, samples=obs.samples, events=obs.events)
    batch = Batch(v=1, agent_id="a1", sent_ms=NOW_MS, parts=[part])
    assert BATCH_DECODER.decode(msgspec.json.encode(batch)) == batch


async def test_open_closed_and_unknown_name_each_get_their_result(listener: int, resolver: FakeResolver) -> None:
    resolver.table["app.example"] = [(socket.AF_INET, ("127.0.0.1", listener))]
    closed = closed_port()
    obs = await run(
        tcp.Target("127.0.0.1", listener, name="open", uplink="lan"),
        tcp.Target("127.0.0.1", closed, name="closed"),
        tcp.Target("app.example", listener, name="by-name", uplink="wan"),
        tcp.Target("nowhere.example", listener, name="unknown"),
    )

    assert values(obs, "probe_success") == {"open": 1.0, "closed": 0.0, "by-name": 1.0, "unknown": 0.0}
    assert reasons(obs) == {"closed": "refused", "unknown": "resolve_failed"}
    connect = values(obs, "probe_tcp_connect_seconds")
    assert set(connect) == {"open", "by-name"} and all(0 < v < 0.5 for v in connect.values())
    assert set(values(obs, "probe_dns_lookup_seconds")) == {"by-name"}  # only a resolved name
    assert values(obs, "probe_dns_lookup_seconds")["by-name"] > 0
    assert resolver.asked == [("app.example", listener, socket.AF_UNSPEC), ("nowhere.example", listener, 0)]
    events = {e.labels["target"]: e for e in obs.events}
    assert events["closed"].labels == {"probe": "tcp", "target": "closed", "uplink": "internet"}
    assert events["closed"].message == f"cannot connect: 127.0.0.1:{closed}: Connection refused"
    assert "nowhere.example" in events["unknown"].message and events["unknown"].kind == "probe.failed"
    assert_cataloged(obs, "tcp")


async def test_the_next_address_is_tried_when_one_refuses(listener: int, resolver: FakeResolver) -> None:
    port = closed_port()
    resolver.table["multi.example"] = [(socket.AF_INET, ("127.0.0.1", port)), (socket.AF_INET, ("127.0.0.1", listener))]
    resolver.table["dead.example"] = [(socket.AF_INET, ("127.0.0.1", port)), (socket.AF_INET, ("127.0.0.2", port))]
    resolver.table["empty.example"] = []
    obs = await run(
        tcp.Target("multi.example", 443, name="multi"),
        tcp.Target("dead.example", 443, name="dead"),
        tcp.Target("empty.example", 443, name="empty", family="ipv6"),
    )

    assert values(obs, "probe_success") == {"multi": 1.0, "dead": 0.0, "empty": 0.0}
    assert reasons(obs) == {"dead": "refused", "empty": "resolve_failed"}
    message = next(e.message for e in obs.events if e.labels["target"] == "dead")
    assert f"127.0.0.1:{port}" in message and f"127.0.0.2:{port}" in message  # every address tried
    assert resolver.asked[-1][2] == socket.AF_INET6


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="relies on Linux dropping SYNs to a full backlog")
async def test_a_connect_that_hangs_times_out() -> None:
    with socket.socket() as server, socket.socket() as filler:
        server.bind(("127.0.0.1", 0))
        server.listen(0)  # one pending connection fills it; later SYNs are dropped
        port = server.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        obs = await run(tcp.Target("127.0.0.1", port, name="hung"), timeout_s=0.2)
        elapsed = loop.time() - t0

    assert reasons(obs) == {"hung": "timeout"}
    assert 0.2 <= values(obs, "probe_duration_seconds")["hung"] < 0.5 and elapsed < 0.5
    assert "probe_tcp_connect_seconds" not in {s.name for s in obs.samples}


async def test_ipv6_literal() -> None:
    try:
        server = socket.socket(socket.AF_INET6)
        server.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with server:
        server.listen(1)
        port = server.getsockname()[1]
        obs = await run(tcp.Target("::1", port, name="v6"), tcp.Target("[::1]", port, name="v6-brackets"))
    assert values(obs, "probe_success") == {"v6": 1.0, "v6-brackets": 1.0}
    assert "probe_dns_lookup_seconds" not in {s.name for s in obs.samples}


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "refused"),
        (TimeoutError(errno.ETIMEDOUT, "timed out"), "timeout"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable"),
        (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), "error"),
    ],
)
def test_connect_errors_are_classified(exc: OSError, reason: str) -> None:
    assert tcp.connect_reason(exc) == reason


async def test_unreachable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_route(sock: socket.socket, address: Any) -> None:
        raise OSError(errno.ENETUNREACH, f"Connect call failed {address}")  # as asyncio words it

    monkeypatch.setattr(asyncio.get_running_loop(), "sock_connect", no_route)
    obs = await run(tcp.Target("127.0.0.1", 9, name="x"))
    assert reasons(obs) == {"x": "unreachable"}
    assert obs.events[0].message == f"cannot connect: 127.0.0.1:9: {os.strerror(errno.ENETUNREACH)}"


async def test_a_programming_error_is_not_swallowed(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    async def broken(sock: socket.socket, address: Any) -> None:
        raise TypeError("bug")

    monkeypatch.setattr(asyncio.get_running_loop(), "sock_connect", broken)
    with pytest.raises(TypeError, match="bug"):
        await run(tcp.Target("127.0.0.1", listener))


def specs(checks: dict[str, Any]) -> list[Any]:
    return check_specs(AgentConfig("http://127.0.0.1:1", "/tmp/x", checks=checks), "agent.yaml")


def test_config() -> None:
    raw = {"timeout_s": 4, "probe_timeout_s": 3, "targets": [{"host": "10.0.0.1", "port": 443, "uplink": "wan"}]}
    (spec,) = specs({"tcp": raw})
    assert spec.config == tcp.Config((tcp.Target("10.0.0.1", 443, uplink="wan"),), probe_timeout_s=3.0)
    assert spec.schedule.timeout_s == 4.0  # timeout_s is the scheduler's deadline for the whole check
    assert spec.config.targets[0].label == "10.0.0.1:443"


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ({"host": "a", "port": 0}, "checks.tcp.targets[0].port: expected int >= 1"),
        ({"host": "a b", "port": 1}, "checks.tcp.targets[0]: host 'a b': expected a host name or an IP address"),
        ({"host": "a", "port": 1, "uplink": "dsl"}, "checks.tcp.targets[0].uplink: invalid enum value 'dsl'"),
        ({"port": 1}, "checks.tcp.targets[0].host: required key is missing"),
    ],
)
def test_invalid_targets_name_the_fault(target: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as info:
        specs({"tcp": {"targets": [target]}})
    assert str(info.value) == f"agent.yaml: {error}"


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="two targets are named 'a:1'"):
        specs({"tcp": {"targets": [{"host": "a", "port": 1}, {"host": "a", "port": 1}]}})
