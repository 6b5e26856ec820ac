"""The SNMP trap check without a network: trap → event mapping (the tables), naming the sender,
the bounded queue, how a refused datagram is classified, the config, and the check's runs over a
fake listener (restart on a config change, receipt timestamps, counters)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from agent.catalog import load_catalog
from agent.checks import snmp_traps
from agent.checks.base import CheckContext, Observations
from agent.config import AgentConfig, check_specs
from agent.errors import ConfigError
from agent.snmp.client import Value
from agent.snmp.errors import SnmpError
from agent.snmp.traps import (
    COUNTER_NAMES,
    REASONS,
    SNMP_TRAP_COMMUNITY,
    SNMP_TRAP_OID,
    SYS_UPTIME,
    ReceiverSettings,
    Trap,
    TrapQueue,
    classify,
    make_trap,
    parse_listen,
    plain_value,
    source_address,
)
from centerwatch.wire import Event, Sample

COMMUNITY = "trap-c0mm-Xq7"
AUTH_KEY = "auth-key-Zr41p"
PRIV_KEY = "priv-key-Yw83k"
SECRETS = (COMMUNITY, AUTH_KEY, PRIV_KEY)
NOW_MS = 1_795_900_000_000
IF = "1.3.6.1.2.1.2.2.1"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"


def trap(oid: str, *varbinds: tuple[str, Value], source: str = "10.0.0.2", ts_ms: int = NOW_MS - 5000) -> Trap:
    return Trap(ts_ms, source, oid, 12345, tuple(varbinds))


def wire_ok(events: list[Event]) -> None:
    msgspec.json.decode(msgspec.json.encode(events), type=list[Event])


# --- the tables ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oid", "kind", "severity"),
    [
        ("1.3.6.1.6.3.1.1.5.1", "snmp.cold_start", "warning"),
        ("1.3.6.1.6.3.1.1.5.2", "snmp.warm_start", "info"),
        (LINK_DOWN, "snmp.link_down", "warning"),
        (LINK_UP, "snmp.link_up", "info"),
        ("1.3.6.1.6.3.1.1.5.5", "snmp.auth_failure", "warning"),
        ("1.3.6.1.2.1.33.2.0.1", "snmp.ups_on_battery", "critical"),
        ("1.3.6.1.2.1.33.2.0.2", "snmp.ups_test_completed", "info"),
        ("1.3.6.1.2.1.33.2.0.3", "snmp.ups_alarm", "warning"),
        ("1.3.6.1.2.1.33.2.0.4", "snmp.ups_alarm_cleared", "info"),
        ("1.3.6.1.4.1.318.0.5", "snmp.ups_on_battery", "critical"),
        ("1.3.6.1.4.1.318.0.9", "snmp.ups_on_line", "info"),
        ("1.3.6.1.4.1.318.0.7", "snmp.ups_battery_low", "critical"),
        ("1.3.6.1.4.1.318.0.11", "snmp.ups_battery_ok", "info"),
        ("1.3.6.1.4.1.9.9.41.2.0.1", "snmp.trap", "info"),  # a Cisco syslog trap: not in the table
    ],
)
def test_each_known_trap_has_its_event(oid: str, kind: str, severity: str) -> None:
    event = snmp_traps.event_for(trap(oid), "core-switch")
    assert (event.kind, event.severity) == (kind, severity)
    assert event.labels["device"] == "core-switch"
    assert event.labels["oid"] == oid
    assert event.message.startswith("core-switch: ")
    assert event.ts_ms == NOW_MS - 5000  # the receipt time, not the run's
    wire_ok([event])


def test_every_table_entry_is_a_valid_event_kind() -> None:
    kinds = [k.kind for k in snmp_traps.TRAP_KINDS.values()] + [k.kind for k in snmp_traps.UPS_ALARM_KINDS.values()]
    assert set(kinds) <= set(snmp_traps.KINDS)
    assert "snmp.trap" in snmp_traps.KINDS
    wire_ok([Event(kind, NOW_MS) for kind in snmp_traps.KINDS])


def test_link_down_names_the_interface_from_its_varbinds() -> None:
    event = snmp_traps.event_for(
        trap(
            LINK_DOWN,
            (f"{IF}.1.3", 3),
            (f"{IF}.2.3", b"GigabitEthernet0/3"),
            (f"{IF}.7.3", 1),
            (f"{IF}.8.3", 2),
            ("1.3.6.1.4.1.9.2.2.1.1.20.3", b"Lost Carrier"),  # Cisco locIfReason: kept in the message
        ),
        "core-switch",
    )
    assert event.kind == "snmp.link_down"
    assert event.severity == "warning"
    assert event.labels == {
        "device": "core-switch",
        "oid": LINK_DOWN,
        "ifindex": "3",
        "ifname": "GigabitEthernet0/3",
    }
    assert event.message == (
        "core-switch: link down on GigabitEthernet0/3 (ifIndex 3, admin up, oper down)"
        " — 1.3.6.1.4.1.9.2.2.1.1.20.3=Lost Carrier"
    )


def test_link_name_prefers_ifname_then_ifdescr_then_the_index() -> None:
    with_name = trap(LINK_UP, (f"{IF}.2.7", b"GigabitEthernet1/0/7"), ("1.3.6.1.2.1.31.1.1.1.1.7", b"Gi1/0/7"))
    assert snmp_traps.event_for(with_name, "sw").labels["ifname"] == "Gi1/0/7"
    bare = trap(LINK_UP, (f"{IF}.1.12", 12))
    assert snmp_traps.event_for(bare, "sw").labels | {} == {
        "device": "sw",
        "oid": LINK_UP,
        "ifindex": "12",
        "ifname": "12",
    }


def test_a_port_shut_on_purpose_is_not_a_warning() -> None:
    event = snmp_traps.event_for(trap(LINK_DOWN, (f"{IF}.1.4", 4), (f"{IF}.7.4", 2), (f"{IF}.8.4", 2)), "sw")
    assert (event.kind, event.severity) == ("snmp.link_down", "info")
    assert "admin down" in event.message


def test_link_trap_without_interface_varbinds_still_is_an_event() -> None:
    event = snmp_traps.event_for(trap(LINK_DOWN), "sw")
    assert event.kind == "snmp.link_down"
    assert "ifindex" not in event.labels
    assert event.message == "sw: link down"


@pytest.mark.parametrize(
    ("oid", "alarm_oid", "kind", "severity", "alarm"),
    [
        ("1.3.6.1.2.1.33.2.0.4", "1.3.6.1.2.1.33.1.6.3.2", "snmp.ups_on_line", "info", "onBattery"),
        ("1.3.6.1.2.1.33.2.0.3", "1.3.6.1.2.1.33.1.6.3.3", "snmp.ups_battery_low", "critical", "lowBattery"),
        ("1.3.6.1.2.1.33.2.0.4", "1.3.6.1.2.1.33.1.6.3.3", "snmp.ups_battery_ok", "info", "lowBattery"),
        ("1.3.6.1.2.1.33.2.0.3", "1.3.6.1.2.1.33.1.6.3.5", "snmp.ups_alarm", "warning", "tempBad"),
        ("1.3.6.1.2.1.33.2.0.4", "1.3.6.1.2.1.33.1.6.3.16", "snmp.ups_alarm_cleared", "info", "fanFailure"),
        ("1.3.6.1.2.1.33.2.0.3", "1.3.6.1.4.1.534.1.7.99", "snmp.ups_alarm", "warning", "1.3.6.1.4.1.534.1.7.99"),
    ],
)
def test_ups_mib_alarm_traps_name_the_alarm(oid: str, alarm_oid: str, kind: str, severity: str, alarm: str) -> None:
    event = snmp_traps.event_for(
        trap(oid, ("1.3.6.1.2.1.33.1.6.2.1.1.7", 7), ("1.3.6.1.2.1.33.1.6.2.1.2.7", alarm_oid)), "ups-1"
    )
    assert (event.kind, event.severity, event.labels["alarm"]) == (kind, severity, alarm)
    assert "1.3.6.1.2.1.33.1.6.2.1.2.7=" not in event.message  # said by the label, not repeated


def test_an_unknown_trap_keeps_its_oid_and_varbinds() -> None:
    event = snmp_traps.event_for(
        trap(
            "1.3.6.1.4.1.14179.2.6.3.1",
            ("1.3.6.1.4.1.14179.2.6.2.20.0", b"\x00\x1a\x2b\x3c\x4d\x5e"),  # a MAC: shown as hex
            ("1.3.6.1.4.1.14179.2.6.2.35.0", b"AP-lobby\x00"),
            ("1.3.6.1.4.1.14179.2.6.2.36.0", 42),
            ("1.3.6.1.6.3.1.1.4.3.0", "1.3.6.1.4.1.14179"),  # snmpTrapEnterprise: left out
        ),
        "10.0.0.9",
    )
    assert (event.kind, event.severity) == ("snmp.trap", "info")
    assert event.labels == {"device": "10.0.0.9", "oid": "1.3.6.1.4.1.14179.2.6.3.1"}
    assert event.message == (
        "10.0.0.9: trap 1.3.6.1.4.1.14179.2.6.3.1 — 1.3.6.1.4.1.14179.2.6.2.20.0=00:1a:2b:3c:4d:5e; "
        "1.3.6.1.4.1.14179.2.6.2.35.0=AP-lobby; 1.3.6.1.4.1.14179.2.6.2.36.0=42"
    )


def test_a_long_trap_gives_a_bounded_message() -> None:
    big = trap("1.3.6.1.4.1.99.0.1", *((f"1.3.6.1.4.1.99.1.{i}", b"x" * 400) for i in range(40)))
    event = snmp_traps.event_for(big, "sw")
    assert len(event.message) == snmp_traps.MAX_MESSAGE
    assert event.message.endswith("…")
    wire_ok([event])


# --- from varbinds to a queued trap -----------------------------------------------------------------------


def test_make_trap_splits_the_envelope_and_drops_the_community() -> None:
    made = make_trap(
        NOW_MS,
        "10.0.0.40",
        [
            (SYS_UPTIME, 4242),
            (SNMP_TRAP_OID, "1.3.6.1.4.1.318.0.5"),
            ("1.3.6.1.6.3.18.1.3.0", "10.0.0.40"),
            (SNMP_TRAP_COMMUNITY, COMMUNITY.encode()),  # added by the v1 → v2 conversion
            ("1.3.6.1.4.1.318.2.3.3.0", b"UPS: On battery power in response to an input power problem."),
        ],
    )
    assert made is not None
    assert (made.ts_ms, made.source, made.oid, made.uptime_ticks) == (NOW_MS, "10.0.0.40", "1.3.6.1.4.1.318.0.5", 4242)
    assert [oid for oid, _ in made.varbinds] == ["1.3.6.1.6.3.18.1.3.0", "1.3.6.1.4.1.318.2.3.3.0"]
    assert COMMUNITY not in repr(made)
    assert COMMUNITY not in snmp_traps.event_for(made, "ups").message


def test_a_notification_without_trap_oid_is_no_trap() -> None:
    assert make_trap(NOW_MS, "10.0.0.2", [(SYS_UPTIME, 1), ("1.3.6.1.2.1.1.5.0", b"x")]) is None
    assert make_trap(NOW_MS, "10.0.0.2", [(SNMP_TRAP_OID, b"not an oid")]) is None


def test_a_trap_keeps_a_bounded_number_of_varbinds() -> None:
    many: list[tuple[str, Value]] = [(SNMP_TRAP_OID, "1.3.6.1.4.1.99.0.1")]
    many += [(f"1.3.6.1.4.1.99.1.{i}", i) for i in range(500)]
    made = make_trap(NOW_MS, "10.0.0.2", many)
    assert made is not None and len(made.varbinds) == 64


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (("10.0.0.2", 40000), "10.0.0.2"),
        (("::ffff:10.0.0.2", 40000, 0, 0), "10.0.0.2"),
        (("fe80::1%eth0", 40000, 0, 2), "fe80::1"),
        (("2001:DB8::1", 162, 0, 0), "2001:db8::1"),
    ],
)
def test_source_address_is_the_plain_ip(address: tuple[Any, ...], expected: str) -> None:
    assert source_address(address) == expected


def test_plain_values_of_pysnmp_types() -> None:
    from pyasn1.type import univ  # type: ignore[import-untyped]
    from pysnmp.proto import rfc1155, rfc1902  # type: ignore[import-untyped]

    assert plain_value(rfc1902.TimeTicks(4242)) == 4242
    assert plain_value(rfc1902.Counter64(2**64 - 1)) == 2**64 - 1
    assert plain_value(rfc1902.Integer32(-3)) == -3
    assert plain_value(rfc1902.OctetString(b"Gi0/3")) == b"Gi0/3"
    assert plain_value(univ.OctetString(b"x" * 2000)) == b"x" * 512
    assert plain_value(rfc1902.ObjectIdentifier("1.3.6.1.4.1.318")) == "1.3.6.1.4.1.318"
    assert plain_value(rfc1902.IpAddress("10.0.0.40")) == "10.0.0.40"
    assert plain_value(rfc1155.IpAddress("10.0.0.41")) == "10.0.0.41"  # what a v1 trap carries
    assert plain_value(univ.Null("")) == ""


# --- the queue ------------------------------------------------------------------------------------------


def test_the_queue_is_bounded_and_drops_the_oldest() -> None:
    rejected: Counter[str] = Counter()
    queue = TrapQueue(3, rejected)
    for i in range(5):
        queue.put(trap(f"1.3.6.1.4.1.99.0.{i}"))
    assert len(queue) == 3
    assert rejected["queue_full"] == 2
    assert [t.oid[-1] for t in queue.drain()] == ["2", "3", "4"]
    assert len(queue) == 0 and queue.drain() == []


def test_shrinking_the_queue_keeps_the_newest_and_counts_the_rest() -> None:
    rejected: Counter[str] = Counter()
    queue = TrapQueue(10, rejected)
    for i in range(6):
        queue.put(trap(f"1.3.6.1.4.1.99.0.{i}"))
    queue.resize(4)
    assert rejected["queue_full"] == 2
    queue.resize(100)
    assert [t.oid[-1] for t in queue.drain()] == ["2", "3", "4", "5"]
    assert queue.maxlen == 100


# --- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moved", "reason"),
    [
        ({"snmpInBadCommunityNames": 1}, "bad_community"),
        ({"usmStatsWrongDigests": 1}, "auth"),
        ({"usmStatsDecryptionErrors": 1}, "auth"),
        ({"usmStatsUnknownUserNames": 1}, "auth"),
        ({"usmStatsUnsupportedSecLevels": 1}, "auth"),
        ({"usmStatsNotInTimeWindows": 1}, "time_window"),
        ({"snmpInASNParseErrs": 1}, "malformed"),
        ({"snmpInBadVersions": 1}, "malformed"),
        ({"snmpUnknownPDUHandlers": 1}, "malformed"),
        ({}, "malformed"),
        ({"usmStatsUnknownEngineIDs": 1}, None),  # v3 discovery before an inform: not a refusal
        ({"usmStatsUnknownEngineIDs": 1, "usmStatsWrongDigests": 1}, "auth"),
    ],
)
def test_classify_turns_engine_counters_into_one_reason(moved: dict[str, int], reason: str | None) -> None:
    assert set(moved) <= set(COUNTER_NAMES)
    found, meaning = classify({name: moved.get(name, 0) for name in COUNTER_NAMES})
    assert found == reason
    assert meaning


# --- config ------------------------------------------------------------------------------------------------


def specs(checks: dict[str, Any]) -> list[Any]:
    cfg = AgentConfig(collector_url="http://127.0.0.1:8080", data_dir="/d", checks={"snmp_traps": checks})
    return check_specs(cfg, "agent.yaml")


USER = {"user": "centerwatch", "auth_protocol": "SHA-256", "auth_key": AUTH_KEY, "priv_key": PRIV_KEY}


def test_config_defaults_and_a_full_example() -> None:
    (spec,) = specs(
        {
            "interval_s": 5,
            "listen": "[::]:1162",
            "communities": [COMMUNITY],
            "users": [USER],
            "devices": [
                {"name": "core-switch", "address": "10.10.0.2", "engine_id": "0x800000090300A1B2C3D4E5F6"},
                {"name": "ups-1", "address": "10.10.0.40"},
            ],
        }
    )
    cfg: snmp_traps.Config = spec.config
    assert spec.schedule.interval_s == 5
    settings = cfg.receiver_settings()
    assert (settings.host, settings.port, settings.address) == ("::", 1162, "[::]:1162")
    assert [c.reveal() for c in settings.communities] == [COMMUNITY]
    (user,) = settings.users
    assert user.engine_ids == (bytes.fromhex("800000090300a1b2c3d4e5f6"),)
    assert (user.auth_protocol, user.priv_protocol) == ("SHA-256", "AES")
    assert cfg.max_queue == 1000
    assert snmp_traps.Config().listen == "0.0.0.0:162"  # `checks: {snmp_traps: {}}` is valid


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        ({"communities": [COMMUNITY], "listen": "localhost:162"}, "listen: expected an IP address"),
        ({"communities": [COMMUNITY], "listen": "0.0.0.0"}, "listen: expected host:port"),
        ({"communities": [COMMUNITY], "listen": "::1:162"}, "listen: an IPv6 address goes in brackets"),
        ({"communities": [COMMUNITY], "listen": "0.0.0.0:70000"}, "listen: port must be 1..65535"),
        ({"communities": [COMMUNITY, COMMUNITY]}, "communities: a community is listed twice"),
        ({"communities": [""]}, "checks.snmp_traps.communities[0]"),
        ({"users": [USER, USER]}, "users: 'centerwatch' is listed twice"),
        ({"users": [{**USER, "auth_key": "short"}]}, "at least 8 characters"),
        ({"users": [{**USER, "auth_protocol": "MD5"}]}, "invalid enum value 'MD5'"),
        ({"users": [{**USER, "password": AUTH_KEY}]}, "checks.snmp_traps.users[0].password: unknown key"),
        (
            {"communities": [COMMUNITY], "devices": [{"name": "sw", "address": "sw.example"}]},
            "address: expected the IP address traps come from",
        ),
        (
            {"communities": [COMMUNITY], "devices": [{"name": "sw", "address": "10.0.0.2", "engine_id": "zz"}]},
            "engine_id: expected hex digits",
        ),
        (
            {"communities": [COMMUNITY], "devices": [{"name": "sw", "address": "10.0.0.2", "engine_id": "8000"}]},
            "engine_id: an snmpEngineID is 5 to 32 octets",
        ),
        (
            {
                "communities": [COMMUNITY],
                "devices": [{"name": "sw", "address": "10.0.0.2"}, {"name": "sw", "address": "10.0.0.3"}],
            },
            "devices: 'sw' is listed twice",
        ),
        (
            {
                "communities": [COMMUNITY],
                "devices": [{"name": "a", "address": "10.0.0.2"}, {"name": "b", "address": "::ffff:10.0.0.2"}],
            },
            "devices: address ::ffff:10.0.0.2 is listed twice",
        ),
        ({"communities": [COMMUNITY], "max_queue": 0}, "checks.snmp_traps.max_queue"),
    ],
)
def test_invalid_config_is_refused_without_echoing_secrets(checks: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        specs(checks)
    assert message in str(info.value)
    assert "agent.yaml" in str(info.value)
    for secret in (*SECRETS, "short"):
        assert secret not in str(info.value)


def test_repr_of_the_config_hides_communities_and_keys() -> None:
    (spec,) = specs({"communities": [COMMUNITY], "users": [USER], "devices": [{"name": "sw", "address": "10.0.0.2"}]})
    settings = spec.config.receiver_settings()
    shown = " ".join([repr(spec), str(spec.config), repr(spec.config.users), repr(settings), str(settings)])
    for secret in SECRETS:
        assert secret not in shown
    assert "centerwatch" in shown and "10.0.0.2" in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.0.0.0:162", ("0.0.0.0", 162)), ("127.0.0.1:1162", ("127.0.0.1", 1162)), ("[::1]:162", ("::1", 162))],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


# --- the check over a fake listener -----------------------------------------------------------------------


@dataclass
class FakeReceiver:
    settings: ReceiverSettings
    queue: TrapQueue
    loop: Any
    closed: bool = False

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeStarter:
    started: list[FakeReceiver] = field(default_factory=list)
    fail: BaseException | None = None
    clocks: list[Callable[[], int]] = field(default_factory=list)

    async def __call__(
        self, settings: ReceiverSettings, queue: TrapQueue, rejected: Counter[str], clock_ms: Callable[[], int]
    ) -> FakeReceiver:
        import asyncio

        if self.fail is not None:
            raise self.fail
        receiver = FakeReceiver(settings, queue, asyncio.get_running_loop())
        self.started.append(receiver)
        self.clocks.append(clock_ms)
        return receiver


def config(**extra: Any) -> snmp_traps.Config:
    base: dict[str, Any] = {
        "listen": "127.0.0.1:1162",
        "communities": [COMMUNITY],
        "devices": [{"name": "core-switch", "address": "10.0.0.2"}],
    }
    return msgspec.convert({**base, **extra}, snmp_traps.Config)


async def run(cfg: snmp_traps.Config, state: snmp_traps.Runtime, starter: FakeStarter) -> Observations:
    ctx: CheckContext[snmp_traps.Config] = CheckContext("snmp_traps", cfg, lambda: NOW_MS)
    return await snmp_traps.collect_with(ctx, state, starter)


def counter(obs: Observations, name: str, **labels: str) -> float:
    (value,) = [s.value for s in obs.samples if s.name == name and labels.items() <= s.labels.items()]
    return value


def assert_cataloged(obs: Observations) -> None:
    catalog = load_catalog()
    for sample in obs.samples:
        assert sample.name in catalog, sample.name
    msgspec.json.decode(msgspec.json.encode(obs.events), type=list[Event])
    msgspec.json.decode(msgspec.json.encode(obs.samples), type=list[Sample])


async def test_first_run_starts_the_listener_and_later_runs_drain_it() -> None:
    state, starter = snmp_traps.Runtime(), FakeStarter()
    obs = await run(config(), state, starter)
    assert len(starter.started) == 1
    assert starter.clocks[0]() == NOW_MS  # traps are stamped with the check's clock
    assert obs.events == []
    assert counter(obs, "snmp_trap_listener_up") == 1.0
    assert counter(obs, "snmp_traps_received_total", kind="snmp.link_down") == 0.0
    assert {s.labels["reason"] for s in obs.samples if s.name == "snmp_traps_rejected_total"} == set(REASONS)
    assert_cataloged(obs)

    receiver = starter.started[0]
    receiver.queue.put(trap(LINK_DOWN, (f"{IF}.1.3", 3), source="10.0.0.2", ts_ms=NOW_MS - 9000))
    receiver.queue.put(trap("1.3.6.1.4.1.318.0.5", source="10.0.0.77", ts_ms=NOW_MS - 4000))
    state.rejected["bad_community"] += 2
    obs = await run(config(), state, starter)
    assert len(starter.started) == 1  # same settings: same listener
    assert [(e.kind, e.labels["device"], e.ts_ms) for e in obs.events] == [
        ("snmp.link_down", "core-switch", NOW_MS - 9000),
        ("snmp.ups_on_battery", "10.0.0.77", NOW_MS - 4000),  # unknown sender: its address
    ]
    assert obs.ts_ms == NOW_MS
    assert counter(obs, "snmp_traps_received_total", kind="snmp.link_down") == 1.0
    assert counter(obs, "snmp_traps_received_total", kind="snmp.ups_on_battery") == 1.0
    assert counter(obs, "snmp_traps_rejected_total", reason="bad_community") == 2.0
    assert_cataloged(obs)

    obs = await run(config(), state, starter)
    assert obs.events == []
    assert counter(obs, "snmp_traps_received_total", kind="snmp.link_down") == 1.0  # a counter: it stays


async def test_a_changed_listener_config_restarts_it_and_keeps_queued_traps() -> None:
    state, starter = snmp_traps.Runtime(), FakeStarter()
    await run(config(), state, starter)
    first = starter.started[0]
    first.queue.put(trap("1.3.6.1.6.3.1.1.5.1"))
    # devices and max_queue are applied in place
    await run(config(devices=[{"name": "sw-renamed", "address": "10.0.0.2"}], max_queue=5), state, starter)
    assert len(starter.started) == 1 and not first.closed
    assert state.queue is not None and state.queue.maxlen == 5
    first.queue.put(trap("1.3.6.1.6.3.1.1.5.1"))
    # a new community, a new port, a new user or engine ID: a new listener
    obs = await run(config(communities=["another-c0mmunity"]), state, starter)
    assert first.closed and len(starter.started) == 2
    assert [e.kind for e in obs.events] == ["snmp.cold_start"]
    await run(config(communities=["another-c0mmunity"], listen="127.0.0.1:1163"), state, starter)
    await run(config(listen="127.0.0.1:1163", users=[USER]), state, starter)
    with_engine = [{"name": "sw", "address": "10.0.0.2", "engine_id": "8000000001020304"}]
    await run(config(listen="127.0.0.1:1163", users=[USER], devices=with_engine), state, starter)
    assert len(starter.started) == 5
    assert [r.closed for r in starter.started] == [True, True, True, True, False]


async def test_a_listener_that_cannot_start_fails_the_run_and_is_retried() -> None:
    state = snmp_traps.Runtime()
    starter = FakeStarter(fail=SnmpError("error", "cannot listen for SNMP traps on udp 127.0.0.1:1162: in use"))
    with pytest.raises(SnmpError, match=r"127\.0\.0\.1:1162"):
        await run(config(), state, starter)
    assert state.receiver is None
    starter.fail = None
    obs = await run(config(), state, starter)
    assert counter(obs, "snmp_trap_listener_up") == 1.0
    assert len(starter.started) == 1


async def test_a_full_queue_is_counted_between_runs() -> None:
    state, starter = snmp_traps.Runtime(), FakeStarter()
    await run(config(max_queue=2), state, starter)
    for i in range(5):
        starter.started[0].queue.put(trap(f"1.3.6.1.4.1.99.0.{i}"))
    obs = await run(config(max_queue=2), state, starter)
    assert [e.labels["oid"] for e in obs.events] == ["1.3.6.1.4.1.99.0.3", "1.3.6.1.4.1.99.0.4"]
    assert counter(obs, "snmp_traps_rejected_total", reason="queue_full") == 3.0
    assert counter(obs, "snmp_traps_received_total", kind="snmp.trap") == 2.0


def test_the_check_is_registered_and_importing_it_does_not_import_pysnmp() -> None:
    from agent.config import CHECK_MODULES

    assert CHECK_MODULES["snmp_traps"] == "agent.checks.snmp_traps"
    code = (
        "import sys, agent.checks.snmp_traps, agent.snmp.traps; "
        "sys.exit(1 if any(m.startswith('pysnmp') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_refusals_are_logged_at_most_once_a_minute_per_address_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    from agent.snmp.traps import RefusalLog

    refusals = RefusalLog()
    with caplog.at_level("WARNING", logger="centerwatch.agent.snmp.traps"):
        for _ in range(3):
            refusals.warn("bad_community", "10.0.0.9", "unknown community", now=100.0)
        refusals.warn("auth", "10.0.0.9", "wrong authentication key or protocol", now=101.0)
        refusals.warn("bad_community", "10.0.0.9", "unknown community", now=161.0)
    assert caplog.messages == [
        "SNMP notification from 10.0.0.9 refused: bad_community (unknown community)",
        "SNMP notification from 10.0.0.9 refused: auth (wrong authentication key or protocol)",
        "SNMP notification from 10.0.0.9 refused: bad_community (unknown community)"
        " (2 more like it since the last report)",
    ]


async def test_a_listener_without_credentials_says_it_refuses_everything(caplog: pytest.LogCaptureFixture) -> None:
    state, starter = snmp_traps.Runtime(), FakeStarter()
    with caplog.at_level("WARNING", logger="centerwatch.agent.snmp_traps"):
        await run(config(communities=[]), state, starter)
    assert "no community and no user: it refuses every notification" in caplog.text


def test_the_example_in_the_module_docstring_is_a_valid_config() -> None:
    import textwrap

    from agent.config import parse_yaml

    doc = snmp_traps.__doc__ or ""
    example = textwrap.dedent(doc.split("samples, not real ones)::", 1)[1])
    data = parse_yaml(example, "snmp_traps docstring")
    (spec,) = check_specs(AgentConfig(collector_url="http://127.0.0.1:8080", data_dir="/d", checks=data["checks"]))
    cfg: snmp_traps.Config = spec.config
    assert [d.name for d in cfg.devices] == ["core-switch", "ups-1"]
    assert all("SAMPLE" in secret for secret in (*cfg.communities, cfg.users[0].auth_key, cfg.users[0].priv_key))
