"""The SNMP check against ``snmpsim`` serving real device recordings on 127.0.0.1.

``tests/data/snmpsim`` (see its README): a Cisco Catalyst 3750, an HPE ProCurve 6120XG (LLDP
neighbours), an Eaton 93E UPS (UPS-MIB), an APC rack PDU, a Ubiquiti airMAX M5 access point (all
from snmpsim-data), and hand-written recordings of a laser printer (Printer-MIB) and an APC
Smart-UPS (PowerNet-MIB), with variants (printer jammed, UPSes on battery) for the events. Each
recording is one v2c community, its file name. Every profile must be chosen by the recording's
own sysObjectID and read the recording's values; a dead endpoint, garbage and a truncated answer
stay their own device's failure.

Skipped when snmpsim is not installed, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agent.checks import snmp
from agent.checks.base import CheckContext, Observations
from agent.snmp.client import PysnmpSession, Secret, SnmpClient, Target, V2c, V2cPath
from tests.snmpsim import find_snmpsim, free_udp_port, start_snmpsim

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "snmpsim"
SYS = "1.3.6.1.2.1.1"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"


def need_snmpsim() -> None:
    if find_snmpsim() is None:
        why = "snmpsim-command-responder is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so not skipping: {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """snmpsim serving every recording of tests/data/snmpsim on one loopback port."""
    need_snmpsim()
    udp = free_udp_port()
    with start_snmpsim(DATA, [("127.0.0.1", udp)], tmp_path_factory.mktemp("snmpsim")):
        yield udp


def recording(name: str) -> dict[str, int | str]:
    """A recording's values by OID: integers as int, strings decoded, OIDs as text."""
    values: dict[str, int | str] = {}
    for line in (DATA / f"{name}.snmprec").read_text(encoding="latin-1").splitlines():
        oid, kind, value = line.split("|", 2)
        if kind == "4x":
            values[oid] = bytes.fromhex(value).decode("utf-8", errors="replace")
        elif kind in ("2", "65", "66", "67", "70"):
            values[oid] = int(value)
        else:
            values[oid] = value
    return values


def device(name: str, udp: int, community: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": "127.0.0.1", "port": udp, "community": community or name, **extra}


def state_for(path: V2cPath) -> snmp.Runtime:
    state = snmp.Runtime()
    state.session = PysnmpSession(v2c=path)  # the check keeps a session it did not make
    return state


async def poll(state: snmp.Runtime, *devices: dict[str, Any], connect: snmp.Connector | None = None) -> Observations:
    cfg = msgspec.convert({"devices": list(devices), "request_timeout_s": 1.0, "retries": 1}, snmp.Config)
    return await snmp.collect_with(CheckContext("snmp", cfg), connect or state.pysnmp_client, state)


def samples(obs: Observations, name: str, **labels: str) -> list[float]:
    return [s.value for s in obs.samples if s.name == name and labels.items() <= s.labels.items()]


def one(obs: Observations, name: str, **labels: str) -> float:
    found = samples(obs, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0]


def reasons(obs: Observations, target: str) -> list[str]:
    return [s.labels["reason"] for s in obs.samples if s.name == "probe_failure_info" and s.labels["target"] == target]


RECORDINGS = {
    "cisco-c3750": "cisco-catalyst",
    "hpe-procurve-6120xg": "generic",  # HP's enterprise, but a switch: not the printer profile
    "eaton-93e": "ups",
    "apc-smart-ups": "apc",
    "apc-ap8932-pdu": "apc",
    "ubiquiti-airmax-m5": "ubiquiti-airmax",
    "laser-printer": "printer",
}


@pytest.mark.parametrize("path", ["ber", "pysnmp"])
async def test_each_recording_gets_its_profile_and_its_values(port: int, path: V2cPath) -> None:
    state = state_for(path)
    try:
        obs = await poll(state, *(device(name, port) for name in RECORDINGS))
    finally:
        assert state.session is not None
        state.session.close()
    assert obs.facts is not None
    for name, profile in RECORDINGS.items():
        rec = recording(name)
        facts = obs.facts[name]
        assert reasons(obs, name) == [], name
        assert one(obs, "snmp_up", device=name) == 1.0
        assert facts["profile"] == profile, name
        assert facts["sysObjectID"] == rec[f"{SYS}.2.0"]
        assert facts["sysName"] == rec[f"{SYS}.5.0"]
        assert one(obs, "snmp_uptime_seconds", device=name) == pytest.approx(int(rec[f"{SYS}.3.0"]) / 100)
        if_rows = [oid for oid in rec if oid.startswith(IF_INDEX + ".")]
        assert len(facts["interfaces"]) == len(if_rows), name

    # Cisco Catalyst 3750: CPU from CISCO-PROCESS-MIB, the chassis from ENTITY-MIB
    assert one(obs, "snmp_cpu_load_ratio", device="cisco-c3750", cpu="1") == pytest.approx(0.64)
    cisco = obs.facts["cisco-c3750"]
    assert cisco["ciscoImageString"] == "CW_VERSION$12.2(50)SE5$"
    (chassis,) = cisco["chassis"]
    assert (chassis["model"], chassis["serial"], chassis["software"]) == (
        "WS-C3750G-12S-S",
        "FDO1622Y10H",
        "12.2(50)SE5",
    )
    assert samples(obs, "snmp_interface_speed_bits_per_second", device="cisco-c3750")

    # HPE ProCurve: its LLDP neighbours, local port → remote system, port and chassis
    procurve = obs.facts["hpe-procurve-6120xg"]
    assert procurve["chassis"][0]["serial"] == "3C421900TX"
    assert procurve["chassis"][0]["software"] == "Z.14.31"
    neighbours = procurve["lldp_neighbors"]
    assert len(neighbours) == 5
    nexus = next(n for n in neighbours if n["sys_name"] == "NWPU-CA-5548-01")
    assert (nexus["local_port"], nexus["port_id"], nexus["port_descr"]) == ("17", "Eth1/19", "Ethernet1/19")
    assert (nexus["chassis_id"], nexus["chassis_id_subtype"]) == ("8c:60:4f:19:16:3a", "macAddress")
    assert sorted(n["local_port"] for n in neighbours) == ["15", "16", "17", "17", "8"]

    # Eaton 93E, three phases, on mains (UPS-MIB)
    name = "eaton-93e"
    assert one(obs, "snmp_ups_on_battery", device=name) == 0.0
    assert one(obs, "snmp_ups_battery_low", device=name) == 0.0
    assert one(obs, "snmp_ups_battery_status", device=name) == 2.0
    assert one(obs, "snmp_ups_battery_charge_ratio", device=name) == 1.0
    assert one(obs, "snmp_ups_runtime_seconds", device=name) == 1092 * 60
    assert one(obs, "snmp_ups_time_on_battery_seconds", device=name) == 0.0
    assert one(obs, "snmp_ups_battery_temperature_celsius", device=name) == 25.0
    voltages = {line: one(obs, "snmp_ups_input_voltage_volts", device=name, line=line) for line in "123"}
    assert voltages == {"1": 227.0, "2": 227.0, "3": 233.0}
    loads = {line: one(obs, "snmp_ups_load_ratio", device=name, line=line) for line in "123"}
    assert loads == pytest.approx({"1": 0.21, "2": 0.16, "3": 0.12})
    assert one(obs, "snmp_ups_output_voltage_volts", device=name, line="2") == 220.0
    assert obs.facts[name]["upsManufacturer"] == "EATON"
    assert obs.facts[name]["upsModel"] == "EATON 93E 80"

    # APC Smart-UPS (PowerNet-MIB), and an APC rack PDU: same profile, no UPS readings invented
    name = "apc-smart-ups"
    assert one(obs, "snmp_ups_on_battery", device=name) == 0.0
    assert one(obs, "snmp_ups_runtime_seconds", device=name) == 4320.0  # 432000 timeticks
    assert one(obs, "snmp_ups_battery_charge_ratio", device=name) == 1.0
    assert one(obs, "snmp_ups_input_voltage_volts", device=name, line="1") == 228.0
    assert one(obs, "snmp_ups_load_ratio", device=name, line="1") == pytest.approx(0.23)
    assert one(obs, "snmp_ups_battery_replace_needed", device=name) == 0.0
    assert obs.facts[name]["upsSerialNumber"] == "AS1924123456"
    assert [
        s.name for s in obs.samples if s.name.startswith("snmp_ups_") and s.labels["device"] == "apc-ap8932-pdu"
    ] == []

    # Ubiquiti airMAX M5
    name = "ubiquiti-airmax-m5"
    assert one(obs, "snmp_wifi_frequency_hertz", device=name, radio="1") == 5.86e9
    assert one(obs, "snmp_wifi_signal_dbm", device=name, ssid="patrikeevo") == -64.0
    assert one(obs, "snmp_wifi_noise_floor_dbm", device=name) == -101.0
    assert one(obs, "snmp_wifi_ccq_ratio", device=name) == pytest.approx(0.99)
    assert one(obs, "snmp_wifi_stations", device=name) == 1.0
    assert obs.facts[name]["radios"] == [{"radio": "1", "mode": "apwds", "antenna": "Combined - 16 dB"}]

    # the laser printer
    name = "laser-printer"
    assert one(obs, "snmp_printer_status", device=name) == 3.0  # idle
    conditions = {s.labels["condition"]: s.value for s in obs.samples if s.name == "snmp_printer_error"}
    assert {c for c, v in conditions.items() if v} == {"low_paper"}
    assert one(obs, "snmp_printer_supply_level_ratio", device=name, colorant="black") == pytest.approx(0.37)
    assert samples(obs, "snmp_printer_supply_level_ratio", device=name, supply="Imaging Drum HP 32A CF232A") == []
    assert one(obs, "snmp_printer_tray_level_ratio", device=name, tray="Tray 2") == pytest.approx(20 / 250)
    assert samples(obs, "snmp_printer_tray_level_ratio", device=name, tray="Tray 1") == []  # -3
    assert one(obs, "snmp_printer_pages_total", device=name) == 48213
    assert one(obs, "snmp_printer_alert_active", device=name, code="inputMediaSupplyLow", group="input") == 1.0
    supplies = {s["supply_type"]: s["level"] for s in obs.facts[name]["supplies"]}
    assert supplies == {"tonerCartridge": 37.0, "opc": "some_remaining", "fuser": "unknown"}
    assert obs.events == []


class Swapping:
    """Connects each device with the community named for it now: one device, changing recordings."""

    def __init__(self, session: PysnmpSession, udp: int) -> None:
        self.session = session
        self.udp = udp
        self.communities: dict[str, str] = {}

    async def __call__(self, dev: snmp.Device, config: snmp.Config) -> SnmpClient:
        target = Target(dev.address, self.udp, config.request_timeout_s, config.retries)
        return await self.session.client(target, V2c(Secret(self.communities[dev.name])))


@contextlib.asynccontextmanager
async def swapping(udp: int) -> AsyncIterator[tuple[snmp.Runtime, Swapping]]:
    state = snmp.Runtime()
    async with PysnmpSession() as session:
        yield state, Swapping(session, udp)


async def test_printer_conditions_and_alerts_from_the_jammed_recording(port: int) -> None:
    async with swapping(port) as (state, connect):
        dev = device("printer", port, community="unused")
        connect.communities["printer"] = "laser-printer"
        first = await poll(state, dev, connect=connect)
        connect.communities["printer"] = "laser-printer-jammed"
        jammed = await poll(state, dev, connect=connect)
        again = await poll(state, dev, connect=connect)
    assert first.events == []
    assert sorted((e.kind, e.severity) for e in jammed.events) == [
        ("snmp.printer_door_open", "warning"),
        ("snmp.printer_jam", "warning"),
        ("snmp.printer_toner_empty", "warning"),
    ]
    assert all(e.labels == {"device": "printer", "printer": "1"} for e in jammed.events)
    assert again.events == []  # the conditions last: no new events
    conditions = {s.labels["condition"]: s.value for s in jammed.samples if s.name == "snmp_printer_error"}
    assert {c for c, v in conditions.items() if v} == {"jammed", "door_open", "no_toner", "overdue_prevent_maint"}
    assert one(jammed, "snmp_printer_status", device="printer") == 1.0  # other: not idle, not printing
    assert one(jammed, "snmp_printer_supply_level_ratio", device="printer", colorant="black") == 0.0
    assert one(jammed, "snmp_printer_pages_total", device="printer") == 48250
    alerts = {
        (s.labels["code"], s.labels["alert_severity"], s.labels["group"])
        for s in jammed.samples
        if s.name == "snmp_printer_alert_active"
    }
    assert alerts == {
        ("inputMediaSupplyLow", "warning", "input"),
        ("jam", "critical", "mediaPath"),
        ("coverOpen", "critical", "cover"),
        ("markerTonerEmpty", "critical", "markerSupplies"),
    }
    assert jammed.facts is not None  # the alerts changed: facts sent again
    texts = [a["descr"] for a in jammed.facts["printer"]["alerts"]]
    assert "13.B2.D2 Paper jam in tray 2 area" in texts


@pytest.mark.parametrize(
    ("recording_name", "outage"),
    [("eaton-93e", "eaton-93e-on-battery"), ("apc-smart-ups", "apc-smart-ups-on-battery")],
)
async def test_a_ups_going_on_battery_and_back_gives_its_events(port: int, recording_name: str, outage: str) -> None:
    async with swapping(port) as (state, connect):
        dev = device("ups", port, community="unused")
        observed = []
        for community in (recording_name, outage, outage, recording_name):
            connect.communities["ups"] = community
            observed.append(await poll(state, dev, connect=connect))
    normal, on_battery, still, back = observed
    assert normal.events == []
    assert [(e.kind, e.severity) for e in on_battery.events] == [("snmp.ups_on_battery", "critical")]
    assert still.events == []
    # back on the first recording: its sysUpTime is earlier, so the check sees a restart too
    assert sorted((e.kind, e.severity) for e in back.events) == [
        ("snmp.rebooted", "warning"),
        ("snmp.ups_on_line", "info"),
    ]
    assert one(on_battery, "snmp_ups_on_battery", device="ups") == 1.0
    assert one(on_battery, "snmp_ups_time_on_battery_seconds", device="ups") in (60.0, 120.0)
    assert one(on_battery, "snmp_ups_input_voltage_volts", device="ups", line="1") == 0.0
    assert one(back, "snmp_ups_on_battery", device="ups") == 0.0


# --- failures -------------------------------------------------------------------------------------------


class Garbage(asyncio.DatagramProtocol):
    """Answers every datagram with bytes that are no SNMP message."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(b"\x30\x82\xff\xffnot snmp at all", addr)


class Truncating(asyncio.DatagramProtocol):
    """Forwards each request to snmpsim and answers with the first two thirds of its reply."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        task = asyncio.get_running_loop().create_task(self.relay(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def relay(self, data: bytes, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(("127.0.0.1", self.upstream))
            await loop.sock_sendall(sock, data)
            try:
                async with asyncio.timeout(3.0):
                    reply = await loop.sock_recv(sock, 65535)
            except TimeoutError:
                return
        self.transport.sendto(reply[: len(reply) * 2 // 3], addr)


async def test_a_dead_endpoint_garbage_and_a_truncated_answer_fail_only_their_device(port: int) -> None:
    loop = asyncio.get_running_loop()
    garbage, _ = await loop.create_datagram_endpoint(Garbage, local_addr=("127.0.0.1", 0))
    truncating, proxy = await loop.create_datagram_endpoint(lambda: Truncating(port), local_addr=("127.0.0.1", 0))
    dead = free_udp_port()  # nothing listens there
    state = snmp.Runtime()
    try:
        obs = await poll(
            state,
            device("laser-printer", port),
            device("dead", dead, community="laser-printer"),
            device("garbage", garbage.get_extra_info("sockname")[1], community="laser-printer"),
            device("truncated", truncating.get_extra_info("sockname")[1], community="laser-printer"),
            device("eaton-93e", port),
        )
    finally:
        garbage.close()
        truncating.close()
        if state.session is not None:
            state.session.close()
    assert reasons(obs, "dead") == ["timeout"]
    assert reasons(obs, "garbage") == ["malformed"]
    assert reasons(obs, "truncated") == ["malformed"]
    for failed in ("dead", "garbage", "truncated"):
        assert one(obs, "snmp_up", device=failed) == 0.0
        assert samples(obs, "snmp_printer_status", device=failed) == []
    messages = {e.labels["target"]: e.message for e in obs.events if e.kind == "probe.failed"}
    assert set(messages) == {"dead", "garbage", "truncated"}
    assert all("laser-printer" not in m for m in messages.values())  # the community is never told
    # the good devices in the same run
    for good in ("laser-printer", "eaton-93e"):
        assert reasons(obs, good) == []
        assert one(obs, "snmp_up", device=good) == 1.0
    assert one(obs, "snmp_printer_pages_total", device="laser-printer") == 48213
    assert one(obs, "snmp_ups_on_battery", device="eaton-93e") == 0.0
    assert proxy.tasks == set() or all(t.done() for t in proxy.tasks)
