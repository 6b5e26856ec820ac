"""The network round: probes together, and a verdict per uplink from their samples."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.catalog import load_catalog
from agent.checks import icmp, network, tcp
from agent.checks.base import CheckContext, Observations


def round_obs(*pings: tuple[str, str, int, int], dns: tuple[tuple[str, bool], ...] = (),
              services: tuple[tuple[str, bool], ...] = ()) -> Observations:  # fmt: skip
    obs = Observations(ts_ms=1)
    for name, uplink, sent, received in pings:
        rtts = [0.001] * received
        icmp.report(obs, icmp.Target(name=name, address="x", uplink=uplink), icmp.RoundResult(sent, rtts))  # type: ignore[arg-type]
    for uplink, ok in dns:
        obs.add("probe_success", 1.0 if ok else 0.0, probe="dns", target="q", uplink=uplink)
    for uplink, ok in services:
        obs.add("probe_success", 1.0 if ok else 0.0, probe="http", target="s", uplink=uplink)
    return obs


def states(obs: Observations, gateway: str | None = "gw") -> dict[str, tuple[str, str]]:
    return {u: (v.state, v.segment) for u, v in network.verdicts(obs, gateway, network.Limits()).items()}


def test_internet_cut_while_the_wan_works() -> None:
    obs = round_obs(
        ("gw", "lan", 20, 20),
        ("isp", "internet", 20, 0),
        ("gov", "wan", 20, 20),
        dns=(("internet", False), ("wan", True)),
        services=(("internet", False), ("wan", True)),
    )
    assert states(obs) == {"internet": ("down", "uplink"), "wan": ("healthy", "none")}


def test_router_dead_blames_the_lan_for_both_uplinks() -> None:
    obs = round_obs(("gw", "lan", 20, 0), ("isp", "internet", 20, 0), ("gov", "wan", 20, 0))
    assert states(obs) == {"internet": ("down", "lan"), "wan": ("down", "lan")}


def test_unresolvable_target_counts_as_lost() -> None:
    obs = Observations(ts_ms=1)
    failed = icmp.RoundResult(0, [], error="resolve_failed: x")
    icmp.report(obs, icmp.Target(name="portal", address="nowhere"), failed)
    assert states(obs, None) == {"internet": ("down", "uplink")}


def test_dns_failure_is_placed_at_dns() -> None:
    obs = round_obs(("gw", "lan", 20, 20), ("isp", "internet", 20, 20), dns=(("internet", False),),
                    services=(("internet", False),))  # fmt: skip
    assert states(obs) == {"internet": ("down", "dns")}


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_a_real_round_on_loopback(listener: int) -> None:
    cfg = network.Config(
        gateway=icmp.Target(name="gw", address="127.0.0.1"),
        icmp=icmp.Config(
            targets=(icmp.Target(name="portal", address="::1"),), count=5, spacing_s=0.01, reply_timeout_s=0.3
        ),
        tcp=tcp.Config(
            targets=(
                tcp.Target(host="127.0.0.1", port=listener, name="igate"),
                tcp.Target(host="127.0.0.1", port=1, name="closed", uplink="wan"),
            )
        ),
    )
    obs = await network.collect(CheckContext("network", cfg))
    state = {s.labels["uplink"]: s.value for s in obs.samples if s.name == "center_network_state"}
    assert state == {"internet": 0.0, "wan": 2.0}  # wan: its only service refused the connection
    faults = {s.labels["uplink"]: s.labels["segment"] for s in obs.samples if s.name == "center_network_fault_info"}
    assert faults == {"wan": "service"}
    assert [e.kind for e in obs.events if e.kind.startswith("network.")] == ["network.down"]
    assert {s.name for s in obs.samples} <= set(load_catalog())
