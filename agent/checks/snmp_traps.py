"""SNMP traps and informs from the center's gear, turned into events (v1/v2c communities, v3 authPriv).

The first run starts a listener on the agent's event loop (``agent/snmp/traps.py``) and keeps it in
module state; every run then turns the traps received since the last one into events stamped with
their receipt time, and reports the listener's counters. A changed ``listen``, ``communities``,
``users`` or device engine ID restarts the listener (traps already queued are kept); the first run
that cannot listen (port in use, a port below 1024 without the privilege) fails naming the address,
and each later run tries again. Informs are acknowledged as they arrive.

Events (label ``device``: the name from ``devices`` by sender address, else the address; ``oid``:
the trap's snmpTrapOID), from ``TRAP_KINDS`` and ``UPS_ALARM_KINDS``:

* ``snmp.link_down`` (warning; info when ifAdminStatus says the port was shut on purpose),
  ``snmp.link_up`` (IF-MIB linkDown/linkUp, labels ``ifindex`` and ``ifname``: ifName, else ifDescr,
  else the index, as the ``snmp`` check labels interfaces);
* ``snmp.cold_start`` (warning), ``snmp.warm_start``, ``snmp.auth_failure`` (warning: the device
  refused a request with wrong credentials);
* ``snmp.ups_on_battery`` (critical), ``snmp.ups_on_line``, ``snmp.ups_battery_low`` (critical),
  ``snmp.ups_battery_ok``, ``snmp.ups_overload``, ``snmp.ups_test_completed``, ``snmp.ups_alarm``
  (warning) and ``snmp.ups_alarm_cleared`` with label ``alarm`` (UPS-MIB, RFC 1628; APC PowerNet);
* ``snmp.trap`` (info) for any other trap.

The message names the device and what happened, followed by the trap's other varbinds.

Samples: ``snmp_trap_listener_up``, ``snmp_traps_received_total{kind}`` (traps turned into events,
by event kind) and ``snmp_traps_rejected_total{reason}``: ``bad_community``, ``auth`` (wrong v3 key,
unknown user, a device whose ``engine_id`` is not configured), ``time_window`` (a v3 message outside
the USM time window: a replay, or a sender that must resynchronize), ``malformed`` (not SNMP, or no
notification in it) and ``queue_full`` (``max_queue`` traps were already waiting: the oldest is
dropped). The counters run from the agent's start. A refusal is logged with the sender's address and
the reason, at most once a minute per address and reason.

v3 TRAPs are authenticated with keys localized to the sending device's snmpEngineID: give it as the
device's ``engine_id`` (hex; on net-snmp ``snmpget … 1.3.6.1.6.3.10.2.1.1.0``, on Cisco
``show snmp engineID``). INFORMs need no engine ID (the sender discovers the receiver's). Communities
and keys are secrets: masked in ``repr``, never logged, never in a sample or event. Example (the
community and keys are samples, not real ones)::

    checks:
      snmp_traps:
        interval_s: 5                  # how soon a trap becomes an event
        listen: "0.0.0.0:162"          # or "[::]:162" for IPv6 and IPv4
        communities: ["SAMPLE-trap-community"]
        users:
          - user: centerwatch
            auth_protocol: SHA-256     # SHA | SHA-256
            auth_key: "SAMPLE-auth-passphrase"
            priv_protocol: AES         # AES (128) | AES-256 | AES-256-C (Cisco)
            priv_key: "SAMPLE-priv-passphrase"
        devices:
          - {name: core-switch, address: 10.10.0.2, engine_id: "800000090300a1b2c3d4e5f6"}
          - {name: ups-1, address: 10.10.0.40}
        max_queue: 1000
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple, Protocol

import msgspec

from agent.checks.base import CheckContext, Observations
from agent.snmp.client import AuthProtocol, PrivProtocol, Secret, Value
from agent.snmp.traps import (
    REASONS,
    ReceiverSettings,
    Trap,
    TrapQueue,
    UsmUser,
    parse_listen,
    start_receiver,
)
from centerwatch.wire import Event

log = logging.getLogger("centerwatch.agent.snmp_traps")

Severity = Literal["info", "warning", "critical"]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=100)]
MAX_LABEL = 200
MAX_MESSAGE = 1000


class TrapDevice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: label value for its traps (``core-switch``, ``ups-1``)
    name: Name
    #: the IP address its traps come from
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    #: its snmpEngineID in hex (``0x`` allowed): needed to receive its v3 TRAPs
    engine_id: str = ""

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise ValueError(f"address: expected the IP address traps come from, got {self.address!r}") from None
        if self.engine_id:
            engine_id_bytes(self.engine_id)

    @property
    def ip(self) -> str:
        ip = ipaddress.ip_address(self.address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip)


def engine_id_bytes(text: str) -> bytes:
    """An snmpEngineID written in hex (``0x``, ``:`` and spaces allowed); 5 to 32 octets (RFC 3411)."""
    digits = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"engine_id: expected hex digits such as 800000090300a1b2c3d4e5f6, got {text!r}") from None
    if not 5 <= len(raw) <= 32:
        raise ValueError(f"engine_id: an snmpEngineID is 5 to 32 octets, got {len(raw)}")
    return raw


class TrapUser(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A v3 USM user (authPriv) the devices send notifications as."""

    user: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    auth_key: str
    priv_key: str
    auth_protocol: AuthProtocol = "SHA"
    #: AES is AES-128; AES-256 is net-snmp's (Blumenthal); AES-256-C is Cisco's (Reeder)
    priv_protocol: PrivProtocol = "AES"

    def __post_init__(self) -> None:
        if len(self.auth_key) < 8 or len(self.priv_key) < 8:
            raise ValueError("auth_key and priv_key: required (authPriv), at least 8 characters each")

    def __repr__(self) -> str:
        return (
            f"TrapUser(user={self.user!r}, auth_protocol={self.auth_protocol!r}, "
            f"priv_protocol={self.priv_protocol!r}, keys='***')"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [("user", self.user)]


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: ``host:port`` or ``[v6-host]:port``, IP literals
    listen: str = "0.0.0.0:162"
    #: v1/v2c communities accepted (secrets)
    communities: tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=255)], ...] = ()
    users: tuple[TrapUser, ...] = ()
    devices: tuple[TrapDevice, ...] = ()
    #: traps held between runs; beyond it the oldest is dropped (``queue_full``)
    max_queue: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000

    def __post_init__(self) -> None:
        try:
            parse_listen(self.listen)
        except ValueError as exc:
            raise ValueError(f"listen: {exc}") from None
        if len(set(self.communities)) != len(self.communities):
            raise ValueError("communities: a community is listed twice")
        users = [u.user for u in self.users]
        for user in users:
            if users.count(user) > 1:
                raise ValueError(f"users: {user!r} is listed twice (one user name has one set of keys)")
        names: set[str] = set()
        addresses: set[str] = set()
        for device in self.devices:
            if device.name in names:
                raise ValueError(f"devices: {device.name!r} is listed twice")
            if device.ip in addresses:
                raise ValueError(f"devices: address {device.address} is listed twice")
            names.add(device.name)
            addresses.add(device.ip)

    def __repr__(self) -> str:
        return (
            f"Config(listen={self.listen!r}, communities='***' x{len(self.communities)}, users={self.users!r}, "
            f"devices={self.devices!r}, max_queue={self.max_queue})"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [("listen", self.listen), ("devices", self.devices)]

    def receiver_settings(self) -> ReceiverSettings:
        host, port = parse_listen(self.listen)
        engine_ids = tuple(dict.fromkeys(engine_id_bytes(d.engine_id) for d in self.devices if d.engine_id))
        users = tuple(
            UsmUser(u.user, Secret(u.auth_key), Secret(u.priv_key), u.auth_protocol, u.priv_protocol, engine_ids)
            for u in self.users
        )
        return ReceiverSettings(host, port, tuple(Secret(c) for c in self.communities), users)


# --- what a trap means (data) ---------------------------------------------------------------------------


class Kind(NamedTuple):
    kind: str
    severity: Severity
    #: what happened, after the device name in the message
    what: str


LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
UPS_ALARM_ADDED = "1.3.6.1.2.1.33.2.0.3"
UPS_ALARM_REMOVED = "1.3.6.1.2.1.33.2.0.4"

#: snmpTrapOID → event. APC PowerNet traps are v1 enterprise-specific traps (enterprise
#: 1.3.6.1.4.1.318, specific N), which RFC 3584 turns into 1.3.6.1.4.1.318.0.N.
TRAP_KINDS: dict[str, Kind] = {
    # SNMPv2-MIB / IF-MIB generic traps
    "1.3.6.1.6.3.1.1.5.1": Kind("snmp.cold_start", "warning", "restarted (coldStart)"),
    "1.3.6.1.6.3.1.1.5.2": Kind("snmp.warm_start", "info", "reinitialized (warmStart)"),
    LINK_DOWN: Kind("snmp.link_down", "warning", "link down"),
    LINK_UP: Kind("snmp.link_up", "info", "link up"),
    "1.3.6.1.6.3.1.1.5.5": Kind("snmp.auth_failure", "warning", "refused an SNMP request with wrong credentials"),
    # UPS-MIB (RFC 1628) upsTraps
    "1.3.6.1.2.1.33.2.0.1": Kind("snmp.ups_on_battery", "critical", "UPS on battery"),
    "1.3.6.1.2.1.33.2.0.2": Kind("snmp.ups_test_completed", "info", "UPS self-test completed"),
    UPS_ALARM_ADDED: Kind("snmp.ups_alarm", "warning", "UPS alarm"),
    UPS_ALARM_REMOVED: Kind("snmp.ups_alarm_cleared", "info", "UPS alarm cleared"),
    # APC PowerNet-MIB
    "1.3.6.1.4.1.318.0.2": Kind("snmp.ups_overload", "warning", "UPS overloaded"),
    "1.3.6.1.4.1.318.0.5": Kind("snmp.ups_on_battery", "critical", "UPS on battery"),
    "1.3.6.1.4.1.318.0.7": Kind("snmp.ups_battery_low", "critical", "UPS battery low"),
    "1.3.6.1.4.1.318.0.9": Kind("snmp.ups_on_line", "info", "UPS back on mains power"),
    "1.3.6.1.4.1.318.0.11": Kind("snmp.ups_battery_ok", "info", "UPS battery no longer low"),
}
OTHER = Kind("snmp.trap", "info", "trap")

#: UPS-MIB upsWellKnownAlarms (1.3.6.1.2.1.33.1.6.3.N) by N, named as in RFC 1628.
UPS_ALARMS: dict[int, str] = dict(
    enumerate(
        (
            "batteryBad",
            "onBattery",
            "lowBattery",
            "depletedBattery",
            "tempBad",
            "inputBad",
            "outputBad",
            "outputOverload",
            "onBypass",
            "bypassBad",
            "outputOffAsRequested",
            "upsOffAsRequested",
            "chargerFailed",
            "upsOutputOff",
            "upsSystemOff",
            "fanFailure",
            "fuseFailure",
            "generalFault",
            "diagnosticTestFailed",
            "communicationsLost",
            "awaitingPower",
            "shutdownPending",
            "shutdownImminent",
            "testInProgress",
        ),
        start=1,
    )
)
UPS_WELL_KNOWN_ALARMS = "1.3.6.1.2.1.33.1.6.3."
UPS_ALARM_DESCR = "1.3.6.1.2.1.33.1.6.2.1.2."
#: (alarm trap, alarm) → a more telling event than ups_alarm / ups_alarm_cleared. RFC 1628 sends no
#: entry-added trap for onBattery (upsTrapOnBattery says it) but does send its removal.
UPS_ALARM_KINDS: dict[tuple[str, str], Kind] = {
    (UPS_ALARM_ADDED, "onBattery"): TRAP_KINDS["1.3.6.1.2.1.33.2.0.1"],
    (UPS_ALARM_REMOVED, "onBattery"): Kind("snmp.ups_on_line", "info", "UPS back on mains power"),
    (UPS_ALARM_ADDED, "lowBattery"): Kind("snmp.ups_battery_low", "critical", "UPS battery low"),
    (UPS_ALARM_ADDED, "depletedBattery"): Kind("snmp.ups_battery_low", "critical", "UPS battery depleted"),
    (UPS_ALARM_REMOVED, "lowBattery"): Kind("snmp.ups_battery_ok", "info", "UPS battery no longer low"),
    (UPS_ALARM_ADDED, "outputOverload"): Kind("snmp.ups_overload", "warning", "UPS overloaded"),
}

#: IF-MIB columns a linkDown/linkUp trap carries (instance = ifIndex)
IF_COLUMNS: dict[str, str] = {
    "1.3.6.1.2.1.2.2.1.1.": "index",
    "1.3.6.1.2.1.2.2.1.2.": "descr",
    "1.3.6.1.2.1.2.2.1.7.": "admin",
    "1.3.6.1.2.1.2.2.1.8.": "oper",
    "1.3.6.1.2.1.31.1.1.1.1.": "name",
}
IF_STATUS: dict[int, str] = dict(
    enumerate(("up", "down", "testing", "unknown", "dormant", "notPresent", "lowerLayerDown"), start=1)
)
ADMIN_DOWN = 2
#: varbinds the message leaves out: the envelope, and what the labels already say
ENVELOPE = frozenset({"1.3.6.1.6.3.1.1.4.3.0"})

KINDS: tuple[str, ...] = tuple(
    dict.fromkeys([*(k.kind for k in TRAP_KINDS.values()), *(k.kind for k in UPS_ALARM_KINDS.values()), OTHER.kind])
)


# --- trap → event (pure) ----------------------------------------------------------------------------------


def text(value: Value) -> str:
    """A value as label or message text: bytes as UTF-8 (trailing NULs dropped), else hex."""
    if isinstance(value, bytes):
        stripped = value.rstrip(b"\0")
        try:
            decoded = stripped.decode("utf-8")
        except UnicodeDecodeError:
            decoded = ""
        else:
            if decoded.isprintable():
                return decoded
        return ":".join(f"{b:02x}" for b in value)
    return str(value)


@dataclass
class Interface:
    index: str | None = None
    descr: str | None = None
    name: str | None = None
    admin: int | None = None
    oper: int | None = None


def interface_of(varbinds: Sequence[tuple[str, Value]]) -> tuple[Interface, set[str]]:
    """The interface a linkDown/linkUp trap is about, and the varbind OIDs that told it."""
    found = Interface()
    used: set[str] = set()
    for oid, value in varbinds:
        for prefix, what in IF_COLUMNS.items():
            if not oid.startswith(prefix):
                continue
            used.add(oid)
            found.index = found.index or oid[len(prefix) :]
            if what in ("admin", "oper") and isinstance(value, int):
                setattr(found, what, value)
            elif what in ("descr", "name") and text(value):
                setattr(found, what, text(value)[:MAX_LABEL])
            break
    return found, used


def ups_alarm_of(varbinds: Sequence[tuple[str, Value]]) -> tuple[str | None, set[str]]:
    """The well-known alarm a UPS-MIB alarm trap names (upsAlarmDescr), and the varbind that said it."""
    for oid, value in varbinds:
        if oid.startswith(UPS_ALARM_DESCR) and isinstance(value, str):
            if value.startswith(UPS_WELL_KNOWN_ALARMS):
                tail = value[len(UPS_WELL_KNOWN_ALARMS) :]
                if tail.isdigit():
                    return UPS_ALARMS.get(int(tail), value), {oid}
            return value, {oid}
    return None, set()


def event_for(trap: Trap, device: str) -> Event:
    """The event of one trap from ``device`` (a name, or the sender's address)."""
    kind = TRAP_KINDS.get(trap.oid, OTHER)
    labels = {"device": device, "oid": trap.oid}
    used: set[str] = set(ENVELOPE)
    what = kind.what if kind is not OTHER else f"trap {trap.oid}"
    severity: Severity = kind.severity
    if trap.oid in (LINK_DOWN, LINK_UP):
        port, used_if = interface_of(trap.varbinds)
        used |= used_if
        if port.index is not None:
            labels["ifindex"] = port.index
            labels["ifname"] = port.name or port.descr or port.index
            states = [f"ifIndex {port.index}"]
            states += [f"{w} {IF_STATUS.get(v, v)}" for w, v in (("admin", port.admin), ("oper", port.oper)) if v]
            what = f"{what} on {labels['ifname']} ({', '.join(states)})"
        if trap.oid == LINK_DOWN and port.admin == ADMIN_DOWN:
            severity = "info"  # shut down on purpose
    elif trap.oid in (UPS_ALARM_ADDED, UPS_ALARM_REMOVED):
        alarm, used_alarm = ups_alarm_of(trap.varbinds)
        used |= used_alarm
        if alarm is not None:
            labels["alarm"] = alarm[:MAX_LABEL]
            kind = UPS_ALARM_KINDS.get((trap.oid, alarm), kind)
            severity = kind.severity
            what = f"{kind.what}: {alarm}" if kind.kind in ("snmp.ups_alarm", "snmp.ups_alarm_cleared") else kind.what
    rest = [f"{oid}={text(value)}" for oid, value in trap.varbinds if oid not in used]
    message = f"{device}: {what}" + (f" — {'; '.join(rest)}" if rest else "")
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return Event(kind.kind, trap.ts_ms, labels, message, severity)


def device_names(devices: Sequence[TrapDevice]) -> dict[str, str]:
    return {d.ip: d.name for d in devices}


# --- module state and the check ----------------------------------------------------------------------------


class Receiver(Protocol):
    """What the check needs of a running listener (tests pass fakes)."""

    loop: Any

    def close(self) -> None: ...


Starter = Callable[[ReceiverSettings, TrapQueue, Counter[str], Callable[[], int]], Awaitable[Receiver]]


@dataclass
class Runtime:
    """Module state, created on first use and never at import; the counters outlive listeners."""

    rejected: Counter[str] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)
    queue: TrapQueue | None = None
    receiver: Receiver | None = None
    settings: ReceiverSettings | None = None

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.close()
        self.receiver = self.settings = None


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime  # module state, made on first use
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


def shutdown() -> None:
    """Close the listener (tests; an agent stopping its loop)."""
    if _runtime is not None:
        _runtime.stop()


async def collect(ctx: CheckContext[Config]) -> Observations:
    return await collect_with(ctx, runtime(), start_receiver)


async def collect_with(ctx: CheckContext[Config], state: Runtime, start: Starter) -> Observations:
    cfg = ctx.config
    if state.queue is None:
        state.queue = TrapQueue(cfg.max_queue, state.rejected)
    state.queue.resize(cfg.max_queue)
    wanted = cfg.receiver_settings()
    loop = asyncio.get_running_loop()
    if state.receiver is not None and (state.settings != wanted or state.receiver.loop is not loop):
        log.info("restarting the SNMP trap listener on %s (its settings or the event loop changed)", wanted.address)
        state.stop()
    if state.receiver is None:
        state.receiver = await start(wanted, state.queue, state.rejected, ctx.clock_ms)
        state.settings = wanted
        log.info("SNMP trap listener on udp %s", wanted.address)
        if not wanted.communities and not wanted.users:
            log.warning("the SNMP trap listener has no community and no user: it refuses every notification")
    obs = Observations(ts_ms=ctx.clock_ms())
    names = device_names(cfg.devices)
    for trap in state.queue.drain():
        event = event_for(trap, names.get(trap.source, trap.source))
        state.received[event.kind] += 1
        obs.events.append(event)
    obs.add("snmp_trap_listener_up", 1.0)
    for kind in (*KINDS, *sorted(set(state.received) - set(KINDS))):
        obs.add("snmp_traps_received_total", state.received[kind], kind=kind)
    for reason in REASONS:
        obs.add("snmp_traps_rejected_total", state.rejected[reason], reason=reason)
    return obs
