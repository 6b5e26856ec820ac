"""The SNMP check against fake devices (a dict of OIDs behind the ``SnmpClient`` Protocol): rates
across runs, restarts, wraps, interface events, facts, and each failure kept to its own device;
the profile features printers, UPSes, ENTITY-MIB and LLDP use (BITS, special values, lookups,
row filters, scalar events, fact tables read less often)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from agent.catalog import load_catalog
from agent.checks import snmp
from agent.checks.base import CheckContext, Observations
from agent.config import AgentConfig, check_specs
from agent.errors import ConfigError
from agent.snmp.client import V3, Counter32, Counter64, Secret, V2c, Value, scrub
from agent.snmp.errors import ProfileError, SnmpError
from agent.snmp.profiles import build_profiles
from centerwatch.wire import Event, Sample

NOW_MS = 1_795_900_000_000
COMMUNITY = "c0mmunity-Xq7"
AUTH_KEY = "auth-key-Zr41p"
PRIV_KEY = "priv-key-Yw83k"
CATALYST = "1.3.6.1.4.1.9.1.1208"
NET_SNMP = "1.3.6.1.4.1.8072.3.2.10"

SYS = "1.3.6.1.2.1.1"
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"


def arcs(oid: str) -> tuple[int, ...]:
    return tuple(int(a) for a in oid.split("."))


class FakeClient:
    """A device as a dict of OIDs. ``fail`` is raised on every request; ``delay_s`` slows each."""

    def __init__(self, data: Mapping[str, Value], fail: BaseException | None = None, delay_s: float = 0.0) -> None:
        self.data = dict(data)
        self.fail = fail
        self.delay_s = delay_s
        self.walks: list[tuple[str, int]] = []
        self.gets: list[list[str]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def _enter(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        if self.fail is not None:
            raise self.fail

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        self.gets.append(list(oids))
        await self._enter()
        return {o: self.data[o] for o in oids if o in self.data}

    async def walk(self, root: str, max_repetitions: int = 25) -> list[tuple[str, Value]]:
        self.walks.append((root, max_repetitions))
        await self._enter()
        prefix = root + "."
        return sorted(((o, v) for o, v in self.data.items() if o.startswith(prefix)), key=lambda ov: arcs(ov[0]))


@dataclass
class Clock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Connector:
    clients: dict[str, Any] = field(default_factory=dict)
    fail: dict[str, BaseException] = field(default_factory=dict)

    async def __call__(self, device: snmp.Device, config: snmp.Config) -> Any:
        if device.name in self.fail:
            raise self.fail[device.name]
        return self.clients[device.name]


def switch(
    *,
    ticks: int = 360_000,
    sys_oid: str = CATALYST,
    in_octets: Mapping[int, int] | None = None,
    out_octets: Mapping[int, int] | None = None,
    in_errors: Mapping[int, int] | None = None,
    oper: Mapping[int, int] | None = None,
    admin: Mapping[int, int] | None = None,
    speed_mbps: Mapping[int, int] | None = None,
) -> dict[str, Value]:
    """A two-port switch: ifIndex 1 (Gi1/0/1, 1 Gbit/s, up) and 2 (Gi1/0/2, 100 Mbit/s)."""
    names = {1: "Gi1/0/1", 2: "Gi1/0/2"}
    in_octets = in_octets or {1: 1_000_000, 2: 0}
    out_octets = out_octets or {1: 2_000_000, 2: 0}
    in_errors = in_errors or {1: 5, 2: 0}
    oper = oper or {1: 1, 2: 2}
    admin = admin or {1: 1, 2: 1}
    speed_mbps = speed_mbps or {1: 1000, 2: 100}
    data: dict[str, Value] = {
        f"{SYS}.1.0": b"Cisco IOS Software, C2960X Software",
        f"{SYS}.2.0": sys_oid,
        f"{SYS}.3.0": ticks,
        f"{SYS}.4.0": b"noc@example.invalid",
        f"{SYS}.5.0": b"sw-core",
        f"{SYS}.6.0": b"Rack 1\x00",
        "1.3.6.1.4.1.9.9.25.1.1.1.2.5": b"CW_VERSION$15.2(7)E4$",
        "1.3.6.1.4.1.9.9.109.1.1.1.1.7.1": 12,
        "1.3.6.1.2.1.25.3.3.1.2.196608": 40,  # hrProcessorLoad (read by generic devices only)
        "1.3.6.1.2.1.25.2.3.1.3.1": b"Physical memory",
        "1.3.6.1.2.1.25.2.3.1.4.1": 1024,
        "1.3.6.1.2.1.25.2.3.1.5.1": 1000,
        "1.3.6.1.2.1.25.2.3.1.6.1": 250,
    }
    for i, name in names.items():
        data[f"{IF}.2.{i}"] = name.encode()
        data[f"{IFX}.1.{i}"] = name.encode()
        data[f"{IFX}.18.{i}"] = b"uplink" if i == 1 else b""
        data[f"{IFX}.15.{i}"] = speed_mbps[i]
        data[f"{IF}.7.{i}"] = admin[i]
        data[f"{IF}.8.{i}"] = oper[i]
        data[f"{IFX}.6.{i}"] = Counter64(in_octets[i])
        data[f"{IFX}.10.{i}"] = Counter64(out_octets[i])
        data[f"{IF}.14.{i}"] = Counter32(in_errors[i])
        data[f"{IF}.20.{i}"] = Counter32(0)
        data[f"{IF}.13.{i}"] = Counter32(0)
        data[f"{IF}.19.{i}"] = Counter32(0)
    return data


def v2c(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": "192.0.2.10", "community": COMMUNITY, **extra}


def config(*devices: dict[str, Any], **extra: Any) -> snmp.Config:
    return msgspec.convert({"devices": list(devices), **extra}, snmp.Config)


async def run(cfg: snmp.Config, connect: Connector, state: snmp.Runtime, clock: Clock) -> Observations:
    ctx: CheckContext[snmp.Config] = CheckContext("snmp", cfg, lambda: NOW_MS)
    return await snmp.collect_with(ctx, connect, state, clock)


def values(obs: Observations, name: str, **labels: str) -> list[float]:
    return [s.value for s in obs.samples if s.name == name and labels.items() <= s.labels.items()]


def one(obs: Observations, name: str, **labels: str) -> float:
    found = values(obs, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0]


def assert_cataloged(obs: Observations) -> None:
    catalog = load_catalog()
    for sample in obs.samples:
        assert sample.name in catalog, sample.name
    # every event survives the wire schema (kind pattern, severities)
    msgspec.json.decode(msgspec.json.encode(obs.events), type=list[Event])
    msgspec.json.decode(msgspec.json.encode(obs.samples), type=list[Sample])


# --- one healthy device across runs -------------------------------------------------------------------


async def test_first_run_reports_gauges_and_facts_but_no_rates() -> None:
    client = FakeClient(switch())
    obs = await run(config(v2c("sw")), Connector({"sw": client}), snmp.Runtime(), Clock())
    assert one(obs, "snmp_up", device="sw") == 1.0
    assert one(obs, "snmp_uptime_seconds", device="sw") == pytest.approx(3600.0)
    assert one(obs, "snmp_poll_duration_seconds", device="sw") >= 0.0
    labels = {"device": "sw", "ifname": "Gi1/0/1", "ifindex": "1"}
    assert one(obs, "snmp_interface_speed_bits_per_second", **labels) == 1e9
    assert one(obs, "snmp_interface_oper_up", **labels) == 1.0
    assert one(obs, "snmp_interface_oper_up", device="sw", ifindex="2") == 0.0
    assert one(obs, "snmp_interface_admin_up", device="sw", ifindex="2") == 1.0
    assert values(obs, "snmp_interface_in_bits_per_second") == []  # first reading: no rate
    assert values(obs, "snmp_interface_utilization_ratio") == []
    assert values(obs, "snmp_interface_errors_per_second") == []
    # a Catalyst: CPU from CISCO-PROCESS-MIB, not hrProcessorLoad
    assert one(obs, "snmp_cpu_load_ratio", device="sw", cpu="1") == pytest.approx(0.12)
    assert ("1.3.6.1.2.1.25.3.3.1.2", 25) not in client.walks
    assert one(obs, "snmp_storage_used_ratio", device="sw", storage="Physical memory") == 0.25
    assert one(obs, "snmp_storage_size_bytes", device="sw", storage="Physical memory") == 1024 * 1000
    assert obs.events == []
    assert obs.subject == "snmp"
    assert obs.facts is not None
    facts = obs.facts["sw"]
    assert facts["profile"] == "cisco-catalyst"
    assert facts["sysName"] == "sw-core"
    assert facts["sysLocation"] == "Rack 1"  # trailing NUL dropped
    assert facts["sysObjectID"] == CATALYST
    assert facts["ciscoImageString"] == "CW_VERSION$15.2(7)E4$"
    assert facts["interfaces"][0] == {
        "ifindex": "1",
        "ifname": "Gi1/0/1",
        "descr": "Gi1/0/1",
        "alias": "uplink",
        "speed": 1e9,
        "admin_status": "up",
        "oper_status": "up",
    }
    assert facts["interfaces"][1]["oper_status"] == "down"
    assert_cataloged(obs)


async def test_second_run_gives_rates_utilization_and_errors() -> None:
    clock, state = Clock(), snmp.Runtime()
    client = FakeClient(switch())
    connect = Connector({"sw": client})
    cfg = config(v2c("sw"))
    await run(cfg, connect, state, clock)
    clock.t += 10.0
    client.data = switch(
        ticks=361_000,
        in_octets={1: 1_000_000 + 125_000_000, 2: 0},  # 1e9 bits in 10 s: 100 Mbit/s
        out_octets={1: 2_000_000 + 12_500_000, 2: 0},  # 10 Mbit/s
        in_errors={1: 5 + 30, 2: 0},
    )
    obs = await run(cfg, connect, state, clock)
    labels = {"device": "sw", "ifname": "Gi1/0/1", "ifindex": "1"}
    assert one(obs, "snmp_interface_in_bits_per_second", **labels) == pytest.approx(1e8)
    assert one(obs, "snmp_interface_out_bits_per_second", **labels) == pytest.approx(1e7)
    assert one(obs, "snmp_interface_utilization_ratio", direction="in", **labels) == pytest.approx(0.1)
    assert one(obs, "snmp_interface_utilization_ratio", direction="out", **labels) == pytest.approx(0.01)
    assert one(obs, "snmp_interface_errors_per_second", direction="in", **labels) == pytest.approx(3.0)
    assert one(obs, "snmp_interface_errors_per_second", direction="out", **labels) == 0.0
    assert one(obs, "snmp_interface_discards_per_second", direction="in", **labels) == 0.0
    assert one(obs, "snmp_interface_in_bits_per_second", device="sw", ifindex="2") == 0.0
    assert obs.facts is None  # unchanged since the last run: not sent again
    assert_cataloged(obs)


async def test_the_second_run_sizes_each_walk_from_the_first() -> None:
    clock, state = Clock(), snmp.Runtime()
    client = FakeClient(switch())
    connect = Connector({"sw": client})
    cfg = config(v2c("sw"), max_repetitions=40)
    await run(cfg, connect, state, clock)
    assert {reps for _root, reps in client.walks} == {40}
    client.walks.clear()
    await run(cfg, connect, state, clock)
    reps = dict(client.walks)
    assert reps[f"{IFX}.6"] == 3  # two rows and the one past the end
    assert reps["1.3.6.1.4.1.9.9.109.1.1.1.1.7"] == 2


async def test_restart_gives_an_event_and_no_rates_that_round() -> None:
    clock, state = Clock(), snmp.Runtime()
    client = FakeClient(switch(ticks=9_000_000))
    connect = Connector({"sw": client})
    cfg = config(v2c("sw"))
    await run(cfg, connect, state, clock)
    clock.t += 60.0
    # rebooted: uptime 30 s, counters restarted from zero
    client.data = switch(ticks=3_000, in_octets={1: 10_000, 2: 0}, out_octets={1: 20_000, 2: 0})
    obs = await run(cfg, connect, state, clock)
    assert [e.kind for e in obs.events] == ["snmp.rebooted"]
    assert obs.events[0].labels == {"device": "sw"}
    assert obs.events[0].severity == "warning"
    assert values(obs, "snmp_interface_in_bits_per_second") == []
    assert values(obs, "snmp_interface_errors_per_second") == []
    assert one(obs, "snmp_up", device="sw") == 1.0
    assert one(obs, "snmp_uptime_seconds", device="sw") == 30.0
    # the next round has rates again, against the post-restart reading
    clock.t += 10.0
    client.data = switch(ticks=4_000, in_octets={1: 10_000 + 1250, 2: 0}, out_octets={1: 20_000, 2: 0})
    obs = await run(cfg, connect, state, clock)
    assert one(obs, "snmp_interface_in_bits_per_second", device="sw", ifindex="1") == pytest.approx(1000.0)
    assert obs.events == []


async def test_counter64_wrap_at_line_rate_is_a_rate_and_a_reset_is_not() -> None:
    clock, state = Clock(), snmp.Runtime()
    top = 1 << 64
    client = FakeClient(switch(in_octets={1: top - 50_000_000, 2: 5_000_000}))
    connect = Connector({"sw": client})
    cfg = config(v2c("sw"))
    await run(cfg, connect, state, clock)
    clock.t += 10.0
    # port 1 wrapped after 100e6 octets (80 Mbit/s on a 1 Gbit/s port: plausible);
    # port 2 dropped from 5e6 to 10 on a 100 Mbit/s port: counters were cleared
    client.data = switch(ticks=361_000, in_octets={1: 50_000_000, 2: 10})
    obs = await run(cfg, connect, state, clock)
    assert one(obs, "snmp_interface_in_bits_per_second", device="sw", ifindex="1") == pytest.approx(8e7)
    assert values(obs, "snmp_interface_in_bits_per_second", device="sw", ifindex="2") == []
    assert values(obs, "snmp_interface_utilization_ratio", device="sw", ifindex="2", direction="in") == []


async def test_interface_down_event_only_while_administratively_up() -> None:
    clock, state = Clock(), snmp.Runtime()
    client = FakeClient(switch(oper={1: 1, 2: 1}, admin={1: 1, 2: 1}))
    connect = Connector({"sw": client})
    cfg = config(v2c("sw"))
    await run(cfg, connect, state, clock)
    clock.t += 10
    # port 1 lost its link; port 2 was shut down on purpose
    client.data = switch(ticks=361_000, oper={1: 7, 2: 2}, admin={1: 1, 2: 2})
    obs = await run(cfg, connect, state, clock)
    assert [(e.kind, e.labels.get("ifname"), e.severity) for e in obs.events] == [
        ("snmp.interface_down", "Gi1/0/1", "warning")
    ]
    assert obs.events[0].labels == {"device": "sw", "ifindex": "1", "ifname": "Gi1/0/1"}
    assert "up → lowerLayerDown" in obs.events[0].message
    assert obs.facts is not None  # oper status changed: facts sent again
    assert obs.facts["sw"]["interfaces"][0]["oper_status"] == "lowerLayerDown"
    clock.t += 10
    client.data = switch(ticks=362_000, oper={1: 1, 2: 2}, admin={1: 1, 2: 2})
    obs = await run(cfg, connect, state, clock)
    assert [(e.kind, e.labels.get("ifname")) for e in obs.events] == [("snmp.interface_up", "Gi1/0/1")]


async def test_a_generic_device_reads_host_resources() -> None:
    client = FakeClient(switch(sys_oid=NET_SNMP))
    obs = await run(config(v2c("nas")), Connector({"nas": client}), snmp.Runtime(), Clock())
    assert one(obs, "snmp_cpu_load_ratio", device="nas", cpu="196608") == pytest.approx(0.4)
    assert obs.facts is not None
    assert obs.facts["nas"]["profile"] == "generic"
    assert "ciscoImageString" not in obs.facts["nas"]


async def test_a_configured_profile_wins_over_sysobjectid() -> None:
    client = FakeClient(switch(sys_oid=CATALYST))
    obs = await run(config(v2c("sw", profile="generic")), Connector({"sw": client}), snmp.Runtime(), Clock())
    assert obs.facts is not None
    assert obs.facts["sw"]["profile"] == "generic"
    assert one(obs, "snmp_cpu_load_ratio", device="sw", cpu="196608") == pytest.approx(0.4)


async def test_an_unknown_configured_profile_fails_the_run_loudly() -> None:
    with pytest.raises(
        ProfileError,
        match=r"devices\.sw\.profile: no profile 'catalyst'; known: apc, cisco-catalyst, generic, printer, ",
    ):
        await run(config(v2c("sw", profile="catalyst")), Connector({}), snmp.Runtime(), Clock())


async def test_facts_are_resent_after_facts_interval() -> None:
    clock, state = Clock(), snmp.Runtime()
    connect = Connector({"sw": FakeClient(switch())})
    cfg = config(v2c("sw"), facts_interval_s=300)
    assert (await run(cfg, connect, state, clock)).facts is not None
    clock.t += 60
    assert (await run(cfg, connect, state, clock)).facts is None
    clock.t += 300
    assert (await run(cfg, connect, state, clock)).facts is not None


async def test_a_removed_device_leaves_the_state() -> None:
    clock, state = Clock(), snmp.Runtime()
    connect = Connector({"a": FakeClient(switch()), "b": FakeClient(switch())})
    await run(config(v2c("a"), v2c("b")), connect, state, clock)
    assert set(state.devices) == {"a", "b"}
    obs = await run(config(v2c("a")), connect, state, clock)
    assert set(state.devices) == {"a"}
    assert obs.facts is not None and set(obs.facts) == {"a"}


# --- failures stay with their device ------------------------------------------------------------------


def garbage_counter() -> dict[str, Value]:
    data = switch()
    data[f"{IFX}.6.1"] = b"\xff\xfe not a number"
    return data


def out_of_subtree() -> FakeClient:
    class Escaping(FakeClient):
        async def walk(self, root: str, max_repetitions: int = 25) -> list[tuple[str, Value]]:
            rows = await super().walk(root, max_repetitions)
            return [*rows, ("1.3.6.1.2.1.99.1", 1)]

    return Escaping(switch())


FAILING: dict[str, tuple[Any, str, str]] = {
    "dead": (FakeClient(switch(), SnmpError("timeout", "no answer from 192.0.2.10:161")), "timeout", "no answer"),
    "badkey": (FakeClient(switch(), SnmpError("auth", "Wrong SNMP PDU digest")), "auth", "digest"),
    "nosys": (FakeClient({k: v for k, v in switch().items() if k != f"{SYS}.2.0"}), "no_such", "sysObjectID"),
    "badticks": (FakeClient({**switch(), f"{SYS}.3.0": b"soon"}), "malformed", "sysUpTime"),
    "badcounter": (FakeClient(garbage_counter()), "malformed", f"{IFX}.6.1"),
    "escapes": (out_of_subtree(), "malformed", "outside the subtree"),
    "crash": (FakeClient(switch(), RuntimeError("bug in a fake")), "error", "RuntimeError"),
}


async def test_each_failure_is_its_devices_result_and_the_others_go_on() -> None:
    names = ["good", *FAILING]
    clients = {"good": FakeClient(switch()), **{n: c for n, (c, _r, _m) in FAILING.items()}}
    obs = await run(config(*(v2c(n) for n in names)), Connector(clients), snmp.Runtime(), Clock())
    assert one(obs, "snmp_up", device="good") == 1.0
    assert one(obs, "snmp_interface_speed_bits_per_second", device="good", ifindex="1") == 1e9
    events = {e.labels["target"]: e for e in obs.events if e.kind == "probe.failed"}
    for name, (_client, reason, text) in FAILING.items():
        assert one(obs, "snmp_up", device=name) == 0.0, name
        assert one(obs, "snmp_poll_duration_seconds", device=name) >= 0.0
        assert one(obs, "probe_failure_info", probe="snmp", target=name, uplink="lan") == 1.0
        assert values(obs, "probe_failure_info", target=name, reason=reason) == [1.0], name
        assert events[name].labels == {"probe": "snmp", "target": name, "uplink": "lan", "reason": reason}
        assert events[name].severity == "warning"
        assert text in events[name].message, (name, events[name].message)
        # nothing half-done from a failed device: only its up, duration and failure samples
        own = {s.name for s in obs.samples if name in (s.labels.get("device"), s.labels.get("target"))}
        assert own == {"snmp_up", "snmp_poll_duration_seconds", "probe_failure_info"}, name
    assert values(obs, "probe_failure_info", target="good") == []
    assert obs.facts is not None
    assert obs.facts["dead"] == {"reachable": False}
    assert obs.facts["good"]["reachable"] is True
    assert_cataloged(obs)


async def test_a_device_failing_later_keeps_its_last_facts_marked_unreachable() -> None:
    clock, state = Clock(), snmp.Runtime()
    client = FakeClient(switch())
    connect = Connector({"sw": client})
    cfg = config(v2c("sw"))
    await run(cfg, connect, state, clock)
    client.fail = SnmpError("timeout", "no answer")
    clock.t += 10
    obs = await run(cfg, connect, state, clock)
    assert obs.facts is not None
    assert obs.facts["sw"]["reachable"] is False
    assert obs.facts["sw"]["sysName"] == "sw-core"
    # back: rates against the last good reading, 20 s before
    client.fail = None
    clock.t += 10
    client.data = switch(ticks=362_000, in_octets={1: 1_000_000 + 2_500_000, 2: 0})
    obs = await run(cfg, connect, state, clock)
    assert one(obs, "snmp_interface_in_bits_per_second", device="sw", ifindex="1") == pytest.approx(1e6)


async def test_a_connect_failure_is_the_devices_result() -> None:
    connect = Connector({"ok": FakeClient(switch())}, fail={"unresolvable": SnmpError("error", "cannot resolve")})
    obs = await run(config(v2c("ok"), v2c("unresolvable")), connect, snmp.Runtime(), Clock())
    assert values(obs, "probe_failure_info", target="unresolvable", reason="error") == [1.0]
    assert one(obs, "snmp_up", device="ok") == 1.0


async def test_a_slow_device_is_cut_at_its_poll_budget() -> None:
    connect = Connector({"slow": FakeClient(switch(), delay_s=5.0), "fast": FakeClient(switch())})
    cfg = config(v2c("slow"), v2c("fast"), poll_budget_s=0.1)
    started = asyncio.get_running_loop().time()
    obs = await run(cfg, connect, snmp.Runtime(), Clock())
    assert asyncio.get_running_loop().time() - started < 2.0
    assert values(obs, "probe_failure_info", target="slow", reason="timeout") == [1.0]
    assert one(obs, "snmp_up", device="fast") == 1.0


async def test_concurrency_bounds_devices_in_flight() -> None:
    shared = FakeClient(switch(), delay_s=0.002)
    connect = Connector({f"d{i}": shared for i in range(6)})
    cfg = config(*(v2c(f"d{i}") for i in range(6)), concurrency=2)
    obs = await run(cfg, connect, snmp.Runtime(), Clock())
    assert shared.max_in_flight == 2
    assert values(obs, "snmp_up") == [1.0] * 6


# --- configuration and secrets ------------------------------------------------------------------------


def specs(checks: dict[str, Any]) -> list[Any]:
    cfg = AgentConfig(collector_url="http://127.0.0.1:8080", data_dir="/d", checks={"snmp": checks})
    return check_specs(cfg, "agent.yaml")


def test_config_defaults_and_a_v3_device() -> None:
    (spec,) = specs(
        {
            "interval_s": 60,
            "devices": [
                v2c("sw"),
                {
                    "name": "rt",
                    "address": "10.0.0.1",
                    "version": "v3",
                    "user": "cw",
                    "auth_protocol": "SHA-256",
                    "auth_key": AUTH_KEY,
                    "priv_protocol": "AES-256",
                    "priv_key": PRIV_KEY,
                },
            ],
        }
    )
    cfg = spec.config
    assert (cfg.max_repetitions, cfg.request_timeout_s, cfg.retries, cfg.concurrency) == (25, 2.0, 1, 8)
    assert spec.schedule.interval_s == 60
    sw, rt = cfg.devices
    assert (sw.port, sw.version, sw.profile) == (161, "v2c", None)
    assert sw.credentials() == V2c(Secret(COMMUNITY))
    assert rt.credentials() == V3("cw", Secret(AUTH_KEY), Secret(PRIV_KEY), "SHA-256", "AES-256")


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ({"name": "sw", "address": "10.0.0.2"}, "community: required for a v2c device"),
        ({**v2c("sw"), "auth_key": AUTH_KEY}, "user, auth_key and priv_key are for v3 devices"),
        (
            {"name": "r", "address": "a", "version": "v3", "user": "u", "auth_key": "short", "priv_key": PRIV_KEY},
            "at least 8",
        ),
        ({"name": "r", "address": "a", "version": "v3", "auth_key": AUTH_KEY, "priv_key": PRIV_KEY}, "user: required"),
        ({**v2c("sw"), "version": "v1"}, "checks.snmp.devices[0].version: invalid enum value 'v1'"),
        ({**v2c("sw"), "auth_protocol": "MD5"}, "checks.snmp.devices[0].auth_protocol: invalid enum value 'MD5'"),
        ({**v2c("sw"), "communty": "x"}, "checks.snmp.devices[0].communty: unknown key"),
        ({**v2c("a b")}, "checks.snmp.devices[0].name"),
    ],
)
def test_invalid_devices_are_refused_without_echoing_secrets(device: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        specs({"devices": [device]})
    assert message in str(info.value)
    for secret in (COMMUNITY, AUTH_KEY, PRIV_KEY, "short"):
        assert secret not in str(info.value)


def test_duplicate_device_names_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"devices: 'sw' is listed twice"):
        specs({"devices": [v2c("sw"), v2c("sw")]})


def test_timeout_s_and_interval_s_stay_the_schedulers() -> None:
    (spec,) = specs({"timeout_s": 30, "interval_s": 120, "devices": [v2c("sw")]})
    assert (spec.schedule.timeout_s, spec.schedule.interval_s) == (30, 120)


def test_repr_and_str_of_config_and_credentials_hide_secrets() -> None:
    (spec,) = specs(
        {
            "devices": [
                v2c("sw"),
                {"name": "r", "address": "a", "version": "v3", "user": "u", "auth_key": AUTH_KEY, "priv_key": PRIV_KEY},
            ]
        }
    )
    shown = " ".join(
        [
            repr(spec),
            str(spec.config),
            repr(spec.config.devices),
            repr([d.credentials() for d in spec.config.devices]),
            str(spec.config.devices[1].credentials().priv_key),
            f"{spec.config.devices[0]}",
        ]
    )
    for secret in (COMMUNITY, AUTH_KEY, PRIV_KEY):
        assert secret not in shown
    assert "***" in shown


async def test_secrets_never_reach_samples_events_or_facts() -> None:
    clients = {"sw": FakeClient(switch()), "dead": FakeClient(switch(), SnmpError("timeout", "no answer"))}
    v3 = {"name": "dead", "address": "a", "version": "v3", "user": "u", "auth_key": AUTH_KEY, "priv_key": PRIV_KEY}
    obs = await run(config(v2c("sw"), v3), Connector(clients), snmp.Runtime(), Clock())
    text = msgspec.json.encode([obs.samples, obs.events, obs.facts]).decode()
    for secret in (COMMUNITY, AUTH_KEY, PRIV_KEY):
        assert secret not in text


def test_error_text_is_scrubbed_of_secrets() -> None:
    assert scrub(f"bad community {COMMUNITY} from x", [COMMUNITY]) == "bad community *** from x"


def test_importing_the_check_does_not_import_pysnmp() -> None:
    code = "import sys, agent.checks.snmp; sys.exit(1 if any(m.startswith('pysnmp') for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


async def test_an_unexpected_error_quoting_a_secret_is_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    leaky = FakeClient(switch(), RuntimeError(f"library bug: community {COMMUNITY!r} rejected"))
    obs = await run(config(v2c("sw")), Connector({"sw": leaky}), snmp.Runtime(), Clock())
    (event,) = obs.events
    assert event.labels["reason"] == "error"
    assert "library bug: community '***' rejected" in event.message
    assert COMMUNITY not in event.message
    assert COMMUNITY not in caplog.text


# --- printers, UPSes, inventory and neighbours ----------------------------------------------------------

HP_PRINTER = "1.3.6.1.4.1.11.2.3.9.1"
HR = "1.3.6.1.2.1.25"
PRT = "1.3.6.1.2.1.43"
UPS = "1.3.6.1.2.1.33.1"
EATON = "1.3.6.1.4.1.705.1"


def printer(*, errors: bytes = b"\x80\x00", toner: int = 37, ticks: int = 500_000) -> dict[str, Value]:
    """A laser printer: black toner (toner/100), a drum at -3 "some remaining", a fuser with no
    amounts (-1, -2), two trays (Tray 1 at -3, Tray 2 with 20 of 250 sheets), one alert."""
    data: dict[str, Value] = {
        f"{SYS}.1.0": b"HP ETHERNET MULTI-ENVIRONMENT",
        f"{SYS}.2.0": HP_PRINTER,
        f"{SYS}.3.0": ticks,
        f"{SYS}.5.0": b"printer-1",
        f"{HR}.3.5.1.1.1": 3,  # hrPrinterStatus idle
        f"{HR}.3.5.1.2.1": errors,  # hrPrinterDetectedErrorState
        f"{PRT}.5.1.1.16.1": b"HP LaserJet Pro M404dn",
        f"{PRT}.5.1.1.17.1": b"PHBQB12345",
        f"{PRT}.10.2.1.4.1.1": Counter32(48213),
        f"{PRT}.12.1.1.4.1.1": b"black",
    }
    supplies = [
        (1, 3, 21, b"Black Cartridge", 100, toner),
        (0, 3, 9, b"Imaging Drum", 23000, -3),
        (0, 3, 15, b"Fuser Kit", -1, -2),
    ]
    for i, (colorant, cls, kind, descr, maxc, level) in enumerate(supplies, start=1):
        for col, value in ((3, colorant), (4, cls), (5, kind), (6, descr), (8, maxc), (9, level)):
            data[f"{PRT}.11.1.1.{col}.1.{i}"] = value
    for i, (name, maxc, level) in enumerate([(b"Tray 1", 100, -3), (b"Tray 2", 250, 20)], start=1):
        data[f"{PRT}.8.2.1.9.1.{i}"] = maxc
        data[f"{PRT}.8.2.1.10.1.{i}"] = level
        data[f"{PRT}.8.2.1.13.1.{i}"] = name
    for col, value in ((2, 4), (4, 8), (5, 2), (6, 0), (7, 807), (8, b"Tray 2 low on paper")):
        data[f"{PRT}.18.1.1.{col}.1.5"] = value
    return data


async def test_a_printer_reports_conditions_supplies_trays_pages_and_alerts() -> None:
    obs = await run(config(v2c("prn")), Connector({"prn": FakeClient(printer())}), snmp.Runtime(), Clock())
    assert one(obs, "snmp_up", device="prn") == 1.0
    assert one(obs, "snmp_printer_status", device="prn", printer="1") == 3.0
    errors = {s.labels["condition"]: s.value for s in obs.samples if s.name == "snmp_printer_error"}
    assert len(errors) == 15  # one per defined bit
    assert errors["low_paper"] == 1.0  # bit 0: the first octet's high bit
    assert {c for c, v in errors.items() if v} == {"low_paper"}
    ratios = [(s.labels, s.value) for s in obs.samples if s.name == "snmp_printer_supply_level_ratio"]
    # the drum (-3 "some remaining") and the fuser (-1 / -2) give no ratio
    assert ratios == [
        ({"device": "prn", "supply": "Black Cartridge", "supply_type": "tonerCartridge", "colorant": "black"}, 0.37)
    ]
    assert [(s.labels["tray"], s.value) for s in obs.samples if s.name == "snmp_printer_tray_level_ratio"] == [
        ("Tray 2", 0.08)
    ]
    assert one(obs, "snmp_printer_pages_total", device="prn", printer="1", marker="1") == 48213
    (alert,) = (s for s in obs.samples if s.name == "snmp_printer_alert_active")
    assert alert.value == 1.0
    assert alert.labels == {
        "device": "prn",
        "alert": "5",  # prtAlertIndex; the hrDeviceIndex arc is no label
        "code": "inputMediaSupplyLow",
        "alert_severity": "warning",
        "group": "input",
    }
    assert obs.facts is not None
    facts = obs.facts["prn"]
    assert facts["profile"] == "printer"
    assert facts["printer_general"] == [
        {"printer": "1", "printer_name": "HP LaserJet Pro M404dn", "serial": "PHBQB12345"}
    ]
    levels = {f["supply"]: (f["colorant"], f["level"], f["max"]) for f in facts["supplies"]}
    assert levels == {
        "Black Cartridge": ("black", 37.0, 100.0),
        "Imaging Drum": ("none", "some_remaining", 23000.0),  # colorant index 0: the tag's default
        "Fuser Kit": ("none", "unknown", "unlimited"),
    }
    assert facts["alerts"][0]["descr"] == "Tray 2 low on paper"
    assert obs.events == []
    assert_cataloged(obs)


async def test_printer_events_fire_when_a_condition_appears_not_while_it_lasts() -> None:
    clock, state = Clock(), snmp.Runtime()
    client = FakeClient(printer(errors=b"\x80\x00"))
    connect = Connector({"prn": client})
    cfg = config(v2c("prn"))
    assert (await run(cfg, connect, state, clock)).events == []  # nothing to compare with yet
    clock.t += 60
    # jammed (bit 5), door open (4), toner empty (3) and overdue maintenance (14, second octet)
    client.data = printer(errors=b"\x1c\x02", toner=0, ticks=506_000)
    obs = await run(cfg, connect, state, clock)
    assert sorted((e.kind, e.severity) for e in obs.events) == [
        ("snmp.printer_door_open", "warning"),
        ("snmp.printer_jam", "warning"),
        ("snmp.printer_toner_empty", "warning"),
    ]
    jam = next(e for e in obs.events if e.kind == "snmp.printer_jam")
    assert jam.labels == {"device": "prn", "printer": "1"}
    assert jam.message == "prn printer=1: jammed"
    errors = {s.labels["condition"]: s.value for s in obs.samples if s.name == "snmp_printer_error"}
    assert {c for c, v in errors.items() if v} == {"jammed", "door_open", "no_toner", "overdue_prevent_maint"}
    assert one(obs, "snmp_printer_supply_level_ratio", device="prn", supply="Black Cartridge") == 0.0
    clock.t += 60
    client.data = printer(errors=b"\x1c\x02", toner=0, ticks=512_000)
    assert (await run(cfg, connect, state, clock)).events == []  # still jammed: no new event
    assert_cataloged(obs)


async def test_a_bits_value_that_is_no_octet_string_gives_no_condition_and_no_failure() -> None:
    obs = await run(
        config(v2c("prn")), Connector({"prn": FakeClient({**printer(), f"{HR}.3.5.1.2.1": 4})}), snmp.Runtime(), Clock()
    )
    assert one(obs, "snmp_up", device="prn") == 1.0
    assert values(obs, "snmp_printer_error") == []


def test_bit_set_reads_bits_from_the_first_octets_high_bit() -> None:
    assert snmp.bit_set(b"\x80", 0) is True
    assert snmp.bit_set(b"\x80", 1) is False
    assert snmp.bit_set(b"\x00\x02", 14) is True
    assert snmp.bit_set(b"\x80", 14) is False  # past the value's octets: clear
    assert snmp.bit_set(b"", 0) is False
    assert snmp.bit_set(4, 0) is None


def ups(
    *, source: int = 3, battery: int = 2, minutes: int = 1092, on_battery_s: int = 0, ticks: int = 700_000
) -> dict[str, Value]:
    data: dict[str, Value] = {
        f"{SYS}.1.0": b"EATON 93E 80",
        f"{SYS}.2.0": EATON,
        f"{SYS}.3.0": ticks,
        f"{UPS}.1.1.0": b"EATON",
        f"{UPS}.2.1.0": battery,
        f"{UPS}.2.2.0": on_battery_s,
        f"{UPS}.2.3.0": minutes,
        f"{UPS}.2.4.0": 100,
        f"{UPS}.2.7.0": 25,
        f"{UPS}.4.1.0": source,
    }
    for line, (vin, vout, load) in enumerate([(227, 220, 21), (233, 221, 16)], start=1):
        data[f"{UPS}.3.3.1.3.{line}"] = vin if source != 5 else 0
        data[f"{UPS}.4.4.1.2.{line}"] = vout
        data[f"{UPS}.4.4.1.5.{line}"] = load
    return data


async def test_a_ups_reports_battery_input_output_and_events_on_the_output_source() -> None:
    clock, state = Clock(), snmp.Runtime()
    client = FakeClient(ups())
    connect = Connector({"ups": client})
    cfg = config(v2c("ups"))
    obs = await run(cfg, connect, state, clock)
    assert one(obs, "snmp_ups_on_battery", device="ups") == 0.0
    assert one(obs, "snmp_ups_battery_low", device="ups") == 0.0
    assert one(obs, "snmp_ups_battery_status", device="ups") == 2.0
    assert one(obs, "snmp_ups_runtime_seconds", device="ups") == 1092 * 60
    assert one(obs, "snmp_ups_battery_charge_ratio", device="ups") == 1.0
    assert one(obs, "snmp_ups_time_on_battery_seconds", device="ups") == 0.0
    assert one(obs, "snmp_ups_battery_temperature_celsius", device="ups") == 25.0
    assert one(obs, "snmp_ups_input_voltage_volts", device="ups", line="2") == 233.0
    assert one(obs, "snmp_ups_output_voltage_volts", device="ups", line="1") == 220.0
    assert one(obs, "snmp_ups_load_ratio", device="ups", line="1") == pytest.approx(0.21)
    assert obs.events == []
    assert obs.facts is not None and obs.facts["ups"]["upsManufacturer"] == "EATON"
    assert_cataloged(obs)
    # the mains fail: an on-battery event, critical
    clock.t += 60
    client.data = ups(source=5, battery=3, minutes=-1, on_battery_s=45, ticks=706_000)
    obs = await run(cfg, connect, state, clock)
    assert [(e.kind, e.severity, e.labels) for e in obs.events] == [
        ("snmp.ups_on_battery", "critical", {"device": "ups"})
    ]
    assert obs.events[0].message == "ups: output_source normal → battery"
    assert one(obs, "snmp_ups_on_battery", device="ups") == 1.0
    assert one(obs, "snmp_ups_battery_low", device="ups") == 1.0
    assert one(obs, "snmp_ups_time_on_battery_seconds", device="ups") == 45.0
    assert values(obs, "snmp_ups_runtime_seconds") == []  # -1: below valid_min, no sample
    assert one(obs, "snmp_ups_input_voltage_volts", device="ups", line="1") == 0.0
    # still on battery: no new event; then the mains are back
    clock.t += 60
    client.data = ups(source=5, ticks=712_000)
    assert (await run(cfg, connect, state, clock)).events == []
    clock.t += 60
    client.data = ups(source=3, ticks=718_000)
    obs = await run(cfg, connect, state, clock)
    assert [(e.kind, e.severity) for e in obs.events] == [("snmp.ups_on_line", "info")]
    assert_cataloged(obs)


def chassis_and_neighbours(data: dict[str, Value]) -> dict[str, Value]:
    """ENTITY-MIB: a chassis (1) holding a module (2); LLDP: one neighbour on local port 3."""
    ent, lldp = "1.3.6.1.2.1.47.1.1.1.1", "1.0.8802.1.1.2.1"
    for index, cls, model, serial in ((1, 3, b"WS-C2960X-48TS-L", b"FOC1234X0AB"), (2, 9, b"C2960X-STACK", b"FOC999")):
        data[f"{ent}.5.{index}"] = cls
        data[f"{ent}.13.{index}"] = model
        data[f"{ent}.11.{index}"] = serial
        data[f"{ent}.10.{index}"] = b"15.2(7)E4"
    data[f"{lldp}.3.7.1.3.3"] = b"Gi1/0/3"  # lldpLocPortId
    data[f"{lldp}.3.7.1.4.3"] = b"GigabitEthernet1/0/3"  # lldpLocPortDesc
    rem = f"{lldp}.4.1.1"
    for col, value in ((4, 4), (5, b"\x00\x11\x22\x33\x44\x55"), (6, 5), (7, b"eth0"), (9, b"ap-lobby")):
        data[f"{rem}.{col}.123456.3.1"] = value  # lldpRemTimeMark 123456, local port 3, index 1
    return data


async def test_chassis_and_lldp_neighbours_are_facts_read_again_only_after_refresh_s() -> None:
    clock, state = Clock(), snmp.Runtime()
    client = FakeClient(chassis_and_neighbours(switch()))
    connect = Connector({"sw": client})
    cfg = config(v2c("sw"))
    obs = await run(cfg, connect, state, clock)
    assert obs.facts is not None
    facts = obs.facts["sw"]
    # only the chassis row (entPhysicalClass 3), not the module
    assert facts["chassis"] == [
        {"entity": "1", "model": "WS-C2960X-48TS-L", "serial": "FOC1234X0AB", "software": "15.2(7)E4"}
    ]
    assert facts["lldp_neighbors"] == [
        {
            "local_port_num": "3",  # lldpRemTimeMark (first index arc) is no label
            "neighbor": "1",
            "local_port": "GigabitEthernet1/0/3",  # looked up in lldpLocPortTable
            "sys_name": "ap-lobby",
            "port_id": "eth0",
            "port_id_subtype": "interfaceName",
            "chassis_id": "00:11:22:33:44:55",
            "chassis_id_subtype": "macAddress",
        }
    ]
    entity_walk = "1.3.6.1.2.1.47.1.1.1.1.13"
    assert entity_walk in [root for root, _ in client.walks]
    # 15 minutes later: the interfaces are walked again, the chassis (refresh_s 3600) is not
    client.walks.clear()
    clock.t += 900
    obs = await run(cfg, connect, state, clock)
    walked = [root for root, _ in client.walks]
    assert f"{IFX}.6" in walked
    assert entity_walk not in walked
    assert "1.0.8802.1.1.2.1.4.1.1.9" in walked  # LLDP: refresh_s 900 passed
    # its last reading still gives the facts
    assert state.devices["sw"].facts is not None
    assert state.devices["sw"].facts["chassis"][0]["serial"] == "FOC1234X0AB"
    client.walks.clear()
    clock.t += 3600
    await run(cfg, connect, state, clock)
    assert entity_walk in [root for root, _ in client.walks]


async def test_an_oid_read_by_two_columns_is_walked_once_per_poll() -> None:
    profiles = build_profiles(
        {
            "two": (
                "sysobjectid: ['*']\ntables:\n  - name: t\n    index: [i]\n    columns:\n"
                "      - {id: a, oid: 1.3.6.1.4.1.99.1, metric: snmp_cpu_load_ratio}\n"
                "      - {id: b, oid: 1.3.6.1.4.1.99.1, true_values: [7], metric: snmp_interface_oper_up}\n",
                "two.yaml",
            )
        }
    )
    client = FakeClient({f"{SYS}.2.0": NET_SNMP, f"{SYS}.3.0": 100, "1.3.6.1.4.1.99.1.1": 7})
    ctx: CheckContext[snmp.Config] = CheckContext("snmp", config(v2c("d")), lambda: NOW_MS)
    obs = await snmp.collect_with(ctx, Connector({"d": client}), snmp.Runtime(), Clock(), profiles)
    assert [root for root, _ in client.walks] == ["1.3.6.1.4.1.99.1"]
    assert one(obs, "snmp_cpu_load_ratio", device="d", i="1") == 7.0
    assert one(obs, "snmp_interface_oper_up", device="d", i="1") == 1.0
