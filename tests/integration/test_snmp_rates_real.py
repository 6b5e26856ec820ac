"""Interface rates from a real SNMP agent, against counter deltas set by the test: snmpsim serves a
one-interface recording that the test rewrites between polls, then is restarted on the same port.

snmpsim re-reads a recording whose modification time changed (``RecordIndex.get_handles``
compares ``st_mtime`` in whole seconds, and rebuilds its index when the text is not older than the
index): each phase is written with ``os.replace`` and stamped with an mtime of its own, seconds
into the future, so every phase is served as written. The check's monotonic clock is a fake
advanced by exactly 60 s per poll, so each rate is the delta × 8 / 60, exactly, whatever the
machine's speed. Phases, one poll each:

1. ifHCInOctets 2**64 - 6e6 (a counter close to its end): no rate on a first reading;
2. +4.5e6 octets → 600,000 bit/s in; ifInErrors (32 bits) +120 → 2 /s;
3. the 64-bit counter wraps to 6e6 (+7.5e6 across 2**64) → 1,000,000 bit/s, no spike; the
   32-bit ifInErrors wraps too (+300 → 5 /s);
4. snmpsim restarted with sysUpTime 30 s and counters near zero: an ``snmp.rebooted`` event and
   no rate at all that poll (no spike from the reset);
5. +3e6 octets → 400,000 bit/s: rates resume.

Skipped when snmpsim is not installed, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from agent.checks import snmp
from agent.checks.base import CheckContext, Observations
from tests.snmpsim import SnmpSim, find_snmpsim, free_udp_port, start_snmpsim

pytestmark = pytest.mark.integration

COMMUNITY = "rates"
HOST = "127.0.0.1"
TOP = 2**64
TOP32 = 2**32


def need_snmpsim() -> None:
    if find_snmpsim() is None:
        why = "snmpsim-command-responder is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so not skipping: {why}")
        pytest.skip(why)


@dataclass(frozen=True)
class Phase:
    uptime_ticks: int
    in_octets: int
    out_octets: int
    in_errors: int


def recording(p: Phase) -> str:
    """A generic device (net-snmp's sysObjectID) with one 1 Gbit/s interface."""
    lines = [
        "1.3.6.1.2.1.1.1.0|4|CenterWatch rates test agent",
        "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10",
        f"1.3.6.1.2.1.1.3.0|67|{p.uptime_ticks}",
        "1.3.6.1.2.1.1.5.0|4|rates-sw",
        "1.3.6.1.2.1.2.2.1.1.1|2|1",
        "1.3.6.1.2.1.2.2.1.2.1|4|eth0",
        "1.3.6.1.2.1.2.2.1.7.1|2|1",
        "1.3.6.1.2.1.2.2.1.8.1|2|1",
        "1.3.6.1.2.1.2.2.1.13.1|65|0",
        f"1.3.6.1.2.1.2.2.1.14.1|65|{p.in_errors}",
        "1.3.6.1.2.1.2.2.1.19.1|65|0",
        "1.3.6.1.2.1.2.2.1.20.1|65|0",
        "1.3.6.1.2.1.31.1.1.1.1.1|4|eth0",
        f"1.3.6.1.2.1.31.1.1.1.6.1|70|{p.in_octets}",
        f"1.3.6.1.2.1.31.1.1.1.10.1|70|{p.out_octets}",
        "1.3.6.1.2.1.31.1.1.1.15.1|66|1000",
        "1.3.6.1.2.1.31.1.1.1.18.1|4|uplink",
    ]
    return "\n".join(lines) + "\n"


class Agent:
    """snmpsim serving ``rates.snmprec`` on one port; ``serve`` rewrites it, ``restart`` restarts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.data.mkdir()
        self.port = free_udp_port(HOST)
        self.sim: SnmpSim | None = None
        self.stamp = int(time.time()) + 100  # past any index snmpsim builds during the test

    def serve(self, phase: Phase) -> None:
        path = self.data / f"{COMMUNITY}.snmprec"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(recording(phase), encoding="utf-8")
        os.replace(tmp, path)
        self.stamp += 10
        os.utime(path, (self.stamp, self.stamp))

    def start(self) -> None:
        self.sim = start_snmpsim(self.data, [(HOST, self.port)], self.folder / f"log-{self.stamp}")

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    need_snmpsim()
    made = Agent(tmp_path)
    try:
        yield made
    finally:
        made.stop()


@dataclass
class Clock:
    t: float = 5000.0

    def __call__(self) -> float:
        return self.t


def rates(obs: Observations) -> dict[str, float]:
    """The interface's rate samples, by metric (and direction for errors)."""
    out: dict[str, float] = {}
    for s in obs.samples:
        if s.name.endswith("_per_second") and s.name != "snmp_interface_speed_bits_per_second":
            assert s.labels["device"] == "sw" and s.labels["ifname"] == "eth0", s
            out[f"{s.name}/{s.labels.get('direction', '')}".rstrip("/")] = s.value
    return out


async def test_rates_match_known_deltas_across_a_64_bit_wrap_and_an_agent_restart(agent: Agent) -> None:
    cfg = msgspec.convert(
        {"devices": [{"name": "sw", "address": HOST, "port": agent.port, "community": COMMUNITY}]}, snmp.Config
    )
    ctx: CheckContext[snmp.Config] = CheckContext("snmp", cfg, lambda: 1_795_900_000_000)
    state = snmp.Runtime()
    clock = Clock()

    async def poll(phase: Phase) -> Observations:
        agent.serve(phase)
        clock.t += 60.0
        obs = await snmp.collect_with(ctx, state.pysnmp_client, state, clock)
        up = [s.value for s in obs.samples if s.name == "snmp_up"]
        assert up == [1.0], obs.events
        uptime = [s.value for s in obs.samples if s.name == "snmp_uptime_seconds"]
        assert uptime == [phase.uptime_ticks / 100]  # the phase written is the phase served
        return obs

    try:
        agent.serve(Phase(1_000_000, TOP - 6_000_000, 1_000, TOP32 - 240))
        agent.start()
        first = await poll(Phase(1_000_000, TOP - 6_000_000, 1_000, TOP32 - 240))
        assert rates(first) == {}  # a first reading has no rate

        steady = await poll(Phase(1_006_000, TOP - 1_500_000, 1_000 + 1_500_000, TOP32 - 120))
        assert rates(steady) == {
            "snmp_interface_in_bits_per_second": 600_000.0,  # 4.5e6 octets × 8 / 60 s
            "snmp_interface_out_bits_per_second": 200_000.0,
            "snmp_interface_errors_per_second/in": 2.0,
            "snmp_interface_errors_per_second/out": 0.0,
            "snmp_interface_discards_per_second/in": 0.0,
            "snmp_interface_discards_per_second/out": 0.0,
        }
        ratio = [s.value for s in steady.samples if s.name == "snmp_interface_utilization_ratio"]
        assert sorted(ratio) == [0.0002, 0.0006]

        wrapped = await poll(Phase(1_012_000, 6_000_000, 1_000 + 3_000_000, 180))
        assert rates(wrapped)["snmp_interface_in_bits_per_second"] == 1_000_000.0  # (1.5e6 + 6e6) × 8 / 60
        assert rates(wrapped)["snmp_interface_out_bits_per_second"] == 200_000.0
        assert rates(wrapped)["snmp_interface_errors_per_second/in"] == 5.0  # 32-bit wrap: (120 + 180) / 60
        assert not [e for e in wrapped.events if e.kind == "snmp.rebooted"]

        # the agent restarts: sysUpTime back to 30 s, counters from (almost) zero
        agent.stop()
        restarted_phase = Phase(3_000, 40_000, 10_000, 3)
        agent.serve(restarted_phase)
        agent.start()
        after = await poll(restarted_phase)
        assert rates(after) == {}
        assert not [s for s in after.samples if s.name == "snmp_interface_utilization_ratio"]
        reboots = [e for e in after.events if e.kind == "snmp.rebooted"]
        assert len(reboots) == 1 and reboots[0].labels["device"] == "sw"
        assert "no rates this round" in reboots[0].message

        resumed = await poll(Phase(9_000, 40_000 + 3_000_000, 10_000 + 600_000, 63))
        assert rates(resumed) == {
            "snmp_interface_in_bits_per_second": 400_000.0,
            "snmp_interface_out_bits_per_second": 80_000.0,
            "snmp_interface_errors_per_second/in": 1.0,
            "snmp_interface_errors_per_second/out": 0.0,
            "snmp_interface_discards_per_second/in": 0.0,
            "snmp_interface_discards_per_second/out": 0.0,
        }
        assert not [e for e in resumed.events if e.kind == "snmp.rebooted"]
    finally:
        if state.session is not None:
            state.session.close()
