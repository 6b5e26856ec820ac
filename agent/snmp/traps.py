"""An SNMP notification receiver on the running asyncio loop: traps and informs, v1/v2c and v3 USM.

``await start_receiver(settings, queue, rejected, clock_ms)`` binds the UDP socket itself (so a port
in use or a privileged port fails at once, as ``SnmpError`` naming the address) and hands it to a
pysnmp 7 engine with a ``NotificationReceiver``. Each accepted notification becomes a ``Trap`` (plain
values, receipt time, sender address) put on a bounded ``TrapQueue``; the check drains the queue on
its schedule. Informs are acknowledged by pysnmp before the trap is queued.

Every datagram is accounted for. pysnmp counts its refusals in the engine's own MIB counters
(``snmpInBadCommunityNames``, ``usmStatsWrongDigests`` …) without telling the caller, so the
receiver wraps the engine's receive callback, compares those counters before and after each
datagram and turns the difference into one reason (``classify``): ``bad_community``, ``auth``,
``time_window`` or ``malformed``; a full queue drops its oldest trap as ``queue_full``. A v3
engine-ID discovery probe (the first message of a v3 inform) is part of the protocol, not a
refusal. Refusals are logged with the sender's address and the reason, at most once a minute per
address and reason, and never with the community, a key, or the datagram's bytes.

v1 traps are accepted with the v2c communities and converted by pysnmp (RFC 3584): an APC
enterprise-specific trap 5 arrives as ``1.3.6.1.4.1.318.0.5``. The ``snmpTrapCommunity`` varbind
that conversion adds (it carries the community) is dropped here.

v3 (authPriv only): to receive a device's TRAPs the receiver must know the device's engine ID
(the keys are localized with it); INFORMs use the receiver's own engine ID, discovered by the sender.
Each user is registered for every engine ID given and for the local engine.

pysnmp is imported on ``start_receiver`` only, never at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.snmp.client import AuthProtocol, PrivProtocol, Secret, Value, dotted, scrub
from agent.snmp.errors import SnmpError

log = logging.getLogger("centerwatch.agent.snmp.traps")

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SNMP_TRAP_ENTERPRISE = "1.3.6.1.6.3.1.1.4.3.0"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"
#: added by the v1 → v2 conversion; its value is the community, so it never leaves the receiver
SNMP_TRAP_COMMUNITY = "1.3.6.1.6.3.18.1.4.0"

#: Bounds on what one queued trap holds (a trap is a few hundred bytes; a hostile one is cut here).
MAX_VARBINDS = 64
MAX_VALUE_BYTES = 512
#: One log line per (reason, address) at most this often; more are counted and said in the next.
LOG_EVERY_S = 60.0
_LOG_KEYS_MAX = 1024
#: The dispatcher's timer only expires pysnmp's caches; a receiver needs no 10 Hz wake-up.
TIMER_RESOLUTION_S = 1.0

RejectReason = Literal["bad_community", "auth", "time_window", "malformed", "queue_full"]
REASONS: tuple[RejectReason, ...] = ("bad_community", "auth", "time_window", "malformed", "queue_full")

#: The engine counters read around each datagram: (MIB module, symbol) → what moving it means.
#: ``None`` marks a step of v3 discovery, which is not a refusal.
_COUNTERS: dict[tuple[str, str], tuple[RejectReason | None, str]] = {
    ("__SNMPv2-MIB", "snmpInBadCommunityNames"): ("bad_community", "unknown community"),
    ("__SNMPv2-MIB", "snmpInBadCommunityUses"): ("bad_community", "community not allowed for this"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"): ("auth", "wrong authentication key or protocol"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"): ("auth", "wrong privacy key or protocol"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"): (
        "auth",
        "unknown user, or no engine_id configured for this user and device",
    ),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels"): ("auth", "security level is not authPriv"),
    ("__SNMP-MPD-MIB", "snmpUnknownSecurityModels"): ("auth", "unknown security model"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows"): ("time_window", "outside the USM time window"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs"): (None, "v3 engine ID discovery"),
    ("__SNMPv2-MIB", "snmpInASNParseErrs"): ("malformed", "not valid BER"),
    ("__SNMPv2-MIB", "snmpInBadVersions"): ("malformed", "unknown SNMP version"),
    ("__SNMP-MPD-MIB", "snmpInvalidMsgs"): ("malformed", "invalid message"),
    ("__SNMP-MPD-MIB", "snmpUnknownPDUHandlers"): ("malformed", "not a notification (no handler for this PDU)"),
}
COUNTER_NAMES: tuple[str, ...] = tuple(name for _, name in _COUNTERS)
_MEANING: dict[str, tuple[RejectReason | None, str]] = {name: v for (_, name), v in _COUNTERS.items()}


@dataclass(frozen=True)
class Trap:
    """One accepted notification, in plain values."""

    ts_ms: int  # when the datagram was received (wall clock, ms)
    source: str  # the sender's IP address (an IPv4-mapped IPv6 address as IPv4)
    oid: str  # snmpTrapOID
    uptime_ticks: int | None  # the sender's sysUpTime, when sent
    varbinds: tuple[tuple[str, Value], ...]  # the rest, in order, without the community


@dataclass(frozen=True)
class UsmUser:
    """A v3 user allowed to send notifications (authPriv)."""

    user: str
    auth_key: Secret
    priv_key: Secret
    auth_protocol: AuthProtocol = "SHA"
    priv_protocol: PrivProtocol = "AES"
    #: the senders' snmpEngineIDs: needed for their TRAPs; INFORMs use the receiver's own
    engine_ids: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class ReceiverSettings:
    """What the listener is made of; a change of any field means a new listener."""

    host: str
    port: int
    communities: tuple[Secret, ...] = ()
    users: tuple[UsmUser, ...] = ()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def secrets(self) -> tuple[str, ...]:
        values = [c.reveal() for c in self.communities]
        for user in self.users:
            values += [user.auth_key.reveal(), user.priv_key.reveal()]
        return tuple(v for v in values if v)


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6-host]:port`` (IP literals) → (host, port). Raises ``ValueError``."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected host:port such as 0.0.0.0:162 or [::]:162, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets: [{host}]:{port_text}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"expected an IP address to listen on, got {host!r}") from None
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1..65535, got {port}")
    return host, port


def source_address(address: Sequence[Any]) -> str:
    """The sender's IP from a transport address: zone dropped, IPv4-mapped IPv6 as IPv4."""
    host = str(address[0]).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class TrapQueue:
    """Accepted traps waiting for the check; bounded: when full, the oldest is dropped and counted."""

    def __init__(self, maxlen: int, rejected: Counter[str]) -> None:
        self._items: deque[Trap] = deque(maxlen=maxlen)
        self._rejected = rejected

    @property
    def maxlen(self) -> int:
        return self._items.maxlen or 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, trap: Trap) -> None:
        if len(self._items) == self.maxlen:
            self._rejected["queue_full"] += 1  # deque(maxlen) drops the oldest on append
        self._items.append(trap)

    def drain(self) -> list[Trap]:
        items = list(self._items)
        self._items.clear()
        return items

    def resize(self, maxlen: int) -> None:
        """A new bound; the newest traps are kept, the ones that no longer fit counted as dropped."""
        if maxlen == self.maxlen:
            return
        dropped = max(0, len(self._items) - maxlen)
        self._rejected["queue_full"] += dropped
        self._items = deque(self._items, maxlen=maxlen)


def classify(delta: Mapping[str, int]) -> tuple[RejectReason | None, str]:
    """Why a datagram that delivered no notification was refused, from the engine counters that
    moved while processing it: (reason, what it means). ``None`` is v3 discovery, no refusal."""
    moved = [name for name in COUNTER_NAMES if delta.get(name, 0) > 0]
    for name in moved:  # a refusal outweighs a discovery step counted on the way
        reason, meaning = _MEANING[name]
        if reason is not None:
            return reason, meaning
    if moved:
        return _MEANING[moved[0]]
    return "malformed", "no notification in it"


# --- plain values ----------------------------------------------------------------------------------


def plain_value(value: Any) -> Value:
    """A pysnmp/pyasn1 value as a ``Value`` (int, dotted OID or IP text, bytes cut at
    ``MAX_VALUE_BYTES``); anything else (Null, noSuchObject …) as its text."""
    from pyasn1.type import univ  # type: ignore[import-untyped]
    from pysnmp.proto import rfc1155, rfc1902  # type: ignore[import-untyped]

    if isinstance(value, univ.Integer):  # Integer32, Counter32/64, Gauge32, TimeTicks …
        return int(value)
    if isinstance(value, univ.ObjectIdentifier):
        return dotted(value.asTuple())
    if isinstance(value, (rfc1902.IpAddress, rfc1155.IpAddress)):  # v1's IpAddress survives the v1 → v2 conversion
        raw = bytes(value.asOctets())
        return socket.inet_ntoa(raw) if len(raw) == 4 else raw
    if isinstance(value, univ.OctetString) and not isinstance(value, univ.Null):
        return bytes(value.asOctets())[:MAX_VALUE_BYTES]
    return str(value.prettyPrint())[:MAX_VALUE_BYTES]


def make_trap(ts_ms: int, source: str, varbinds: Sequence[tuple[str, Value]]) -> Trap | None:
    """A ``Trap`` from a notification's varbinds (sysUpTime.0 and snmpTrapOID.0 first, RFC 3416);
    ``None`` without a snmpTrapOID."""
    oid: str | None = None
    uptime: int | None = None
    rest: list[tuple[str, Value]] = []
    for name, value in varbinds:
        if name == SNMP_TRAP_OID and isinstance(value, str):
            oid = value
        elif name == SYS_UPTIME and isinstance(value, int):
            uptime = value
        elif name != SNMP_TRAP_COMMUNITY and len(rest) < MAX_VARBINDS:
            rest.append((name, value))
    if oid is None:
        return None
    return Trap(ts_ms, source, oid, uptime, tuple(rest))


# --- the receiver ------------------------------------------------------------------------------------


def _bind_error(settings: ReceiverSettings, exc: OSError) -> SnmpError:
    where = f"cannot listen for SNMP traps on udp {settings.address}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        hint = "; ports below 1024 need root or CAP_NET_BIND_SERVICE" if settings.port < 1024 else ""
        return SnmpError("error", f"{where}: permission denied{hint}")
    if exc.errno == errno.EADDRINUSE:
        return SnmpError("error", f"{where}: the address is in use (another trap receiver, such as snmptrapd?)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return SnmpError("error", f"{where}: no interface has this address")
    return SnmpError("error", f"{where}: {exc.strerror or exc}")


def bind_socket(settings: ReceiverSettings) -> socket.socket:
    """The listening UDP socket; ``SnmpError`` naming the address when it cannot be had."""
    v6 = ":" in settings.host
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if v6 and ipaddress.ip_address(settings.host).is_unspecified:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # [::] takes IPv4 senders too
        sock.bind((settings.host, settings.port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise _bind_error(settings, exc) from None
    return sock


@dataclass
class RefusalLog:
    """Warns about refused datagrams: one line per (reason, address) a minute, the rest counted."""

    last: dict[tuple[str, str], float] = field(default_factory=dict)
    suppressed: Counter[tuple[str, str]] = field(default_factory=Counter)

    def warn(self, reason: str, source: str, meaning: str, now: float) -> None:
        key = (reason, source)
        last = self.last.get(key)
        if last is not None and now - last < LOG_EVERY_S:
            self.suppressed[key] += 1
            return
        if len(self.last) >= _LOG_KEYS_MAX:
            self.last.clear()
        self.last[key] = now
        more = self.suppressed.pop(key, 0)
        tail = f" ({more} more like it since the last report)" if more else ""
        log.warning("SNMP notification from %s refused: %s (%s)%s", source, reason, meaning, tail)


class TrapReceiver:
    """One listener: a UDP socket, a pysnmp engine and its notification receiver, on one loop."""

    def __init__(
        self,
        settings: ReceiverSettings,
        queue: TrapQueue,
        rejected: Counter[str],
        clock_ms: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.rejected = rejected
        self.clock_ms = clock_ms
        self.loop: asyncio.AbstractEventLoop | None = None
        #: the address the socket is bound to (the port when asked for port 0)
        self.bound: tuple[str, int] | None = None
        self._engine: Any = None
        self._dispatcher: Any = None
        self._ntfrcv: Any = None
        self._sock: socket.socket | None = None
        self._counters: list[tuple[str, Any]] = []
        self._current: tuple[int, str] | None = None  # (receipt ms, source) of the datagram in hand
        self._outcome: Literal["accepted", "malformed"] | None = None
        self._log = RefusalLog()
        self._secrets = settings.secrets()

    def __repr__(self) -> str:
        return f"TrapReceiver({self.settings.address})"

    async def start(self) -> None:
        from pysnmp.carrier.asyncio.dgram import udp, udp6  # type: ignore[import-untyped]
        from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher  # type: ignore[import-untyped]
        from pysnmp.entity import config, engine  # type: ignore[import-untyped]
        from pysnmp.entity.rfc3413 import ntfrcv  # type: ignore[import-untyped]
        from pysnmp.error import PySnmpError  # type: ignore[import-untyped]
        from pysnmp.proto import rfc1902

        loop = asyncio.get_running_loop()
        sock = self._sock = bind_socket(self.settings)
        try:
            snmp = engine.SnmpEngine()
            dispatcher = AsyncioDispatcher(loop=loop)
            dispatcher.set_timer_resolution(TIMER_RESOLUTION_S)
            snmp.register_transport_dispatcher(dispatcher)
            # the engine's own callback only calls receive_message; ours counts around it
            dispatcher.unregister_recv_callback()
            dispatcher.register_recv_callback(self._datagram)
            self._engine, self._dispatcher, self.loop = snmp, dispatcher, loop
            mib = snmp.get_mib_builder()
            self._counters = [(name, mib.import_symbols(module, name)[0]) for module, name in _COUNTERS]
            for index, community in enumerate(self.settings.communities):
                config.add_v1_system(snmp, f"cw-trap-{index}", community.reveal())
            auth = {"SHA": config.USM_AUTH_HMAC96_SHA, "SHA-256": config.USM_AUTH_HMAC192_SHA256}
            priv = {
                "AES": config.USM_PRIV_CFB128_AES,
                "AES-256": config.USM_PRIV_CFB256_AES_BLUMENTHAL,
                "AES-256-C": config.USM_PRIV_CFB256_AES,
            }
            for user in self.settings.users:
                auth_protocol, priv_protocol = auth[user.auth_protocol], priv[user.priv_protocol]
                # a passphrase → master key is 1 MB of hashing (~25 ms); do it once per user, not
                # once per engine ID (localizing a master key is one more hash)
                master_auth = config.AUTH_SERVICES[auth_protocol].hash_passphrase(
                    rfc1902.OctetString(user.auth_key.reveal())
                )
                master_priv = config.PRIV_SERVICES[priv_protocol].hash_passphrase(
                    auth_protocol, rfc1902.OctetString(user.priv_key.reveal())
                )
                for engine_id in (*user.engine_ids, None):  # None: the local engine, for informs
                    config.add_v3_user(
                        snmp,
                        user.user,
                        auth_protocol,
                        master_auth,
                        priv_protocol,
                        master_priv,
                        authKeyType=config.USM_KEY_TYPE_MASTER,
                        privKeyType=config.USM_KEY_TYPE_MASTER,
                        **({"securityEngineId": engine_id} if engine_id is not None else {}),
                    )
            kind = udp6.Udp6AsyncioTransport if sock.family == socket.AF_INET6 else udp.UdpAsyncioTransport
            domain = udp6.DOMAIN_NAME if sock.family == socket.AF_INET6 else udp.DOMAIN_NAME
            transport = kind(loop=loop)
            await loop.create_datagram_endpoint(lambda: transport, sock=sock)
            config.add_transport(snmp, domain, transport)
            self._ntfrcv = ntfrcv.NotificationReceiver(snmp, self._notification)
        except PySnmpError as exc:
            self.close()
            text = scrub(str(exc), self._secrets)
            raise SnmpError(
                "error", f"cannot start the SNMP trap receiver on {self.settings.address}: {text}"
            ) from None
        except BaseException:
            self.close()
            raise
        self.bound = sock.getsockname()[:2]

    def close(self) -> None:
        """Release the socket and the engine's timer. Safe to call twice or on a closed loop."""
        if self._ntfrcv is not None and self._engine is not None:
            with contextlib.suppress(Exception):
                self._ntfrcv.close(self._engine)
        if self._dispatcher is not None:
            with contextlib.suppress(Exception):  # a dispatcher on a closed loop has nothing left to release
                self._dispatcher.close_dispatcher()
        if self._sock is not None:
            # the transport closes its socket a loop iteration later; a restart on the same port
            # binds now, so close it here (asyncio has already stopped reading it)
            self._sock.close()
        self._ntfrcv = self._dispatcher = self._engine = self._sock = None

    # --- per datagram (on the loop, from the transport's datagram_received) ---

    def _snapshot(self) -> list[int]:
        return [int(symbol.syntax) for _, symbol in self._counters]

    def _datagram(self, _dispatcher: Any, domain: Any, address: Any, message: bytes) -> None:
        if self._engine is None:
            return
        source = source_address(address)
        before = self._snapshot()
        self._current, self._outcome = (self.clock_ms(), source), None
        failure: BaseException | None = None
        try:
            self._engine.message_dispatcher.receive_message(self._engine, domain, address, message)
        except Exception as exc:  # noqa: BLE001 - pysnmp raises on some garbage; the listener goes on
            failure = exc
        finally:
            self._current = None
        if self._outcome == "accepted":
            return
        if self._outcome == "malformed":
            reason, meaning = "malformed", "a notification without snmpTrapOID"
        elif failure is not None:
            # the exception's text may quote the datagram (a mistyped community): only its type
            reason, meaning = "malformed", f"undecodable ({type(failure).__name__})"
        else:
            after = self._snapshot()
            delta = {name: a - b for (name, _), a, b in zip(self._counters, after, before, strict=True)}
            found, meaning = classify(delta)
            if found is None:
                log.debug("SNMP %s from %s", meaning, source)
                return
            reason = found
        self.rejected[reason] += 1
        self._log.warn(reason, source, meaning, time.monotonic())

    def _notification(
        self, _engine: Any, _state: Any, _context_engine: Any, _context: Any, varbinds: Any, _cb: Any
    ) -> None:
        # must not raise: pysnmp would leave the request's transport info behind
        current = self._current
        if current is None:
            return
        try:
            values = [(dotted(name.asTuple()), plain_value(value)) for name, value in varbinds]
            trap = make_trap(current[0], current[1], values)
        except Exception:  # noqa: BLE001
            trap = None
        if trap is None:
            self._outcome = "malformed"
            return
        self._outcome = "accepted"
        self.queue.put(trap)


async def start_receiver(
    settings: ReceiverSettings, queue: TrapQueue, rejected: Counter[str], clock_ms: Callable[[], int]
) -> TrapReceiver:
    """A started receiver on the running loop; ``SnmpError`` naming the address if it cannot listen."""
    receiver = TrapReceiver(settings, queue, rejected, clock_ms)
    await receiver.start()
    return receiver
