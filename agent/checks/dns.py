"""DNS resolution time per resolver: a hand-written query over UDP, no resolver library.

Each query is sent to its resolver (an IP address, port 53 by default) from a non-blocking UDP
socket connected to it, so only the resolver's datagrams reach us (and an ICMP "port unreachable"
comes back as an error). The reply must carry the query's random id and echo its question. A query
that gets no reply within ``attempt_timeout_s`` is sent once more (same id: a late reply to the first
one still counts), so a dead resolver takes ``2 × attempt_timeout_s``: keep that below the check's
deadline (its schedule's ``timeout_s``).

A reply is parsed by hand, every offset bounds-checked and name-compression pointers followed only
backwards and a bounded number of times: a truncated, garbled or unrelated reply is a ``malformed``
failure, never an exception. All queries run concurrently; each is a target with its own result:

* ``probe_success``, ``probe_duration_seconds`` (the whole probe, retry included), and on failure
  ``probe_failure_info{reason}`` plus a ``probe.failed`` warning event naming the cause;
* ``probe_dns_lookup_seconds``: first send to a well-formed reply, whatever its rcode;
* ``probe_dns_answers``: addresses of the asked type in the reply's answer section.

Reasons: timeout, servfail, nxdomain, refused, wrong_answer (an address outside ``expect``),
no_answer (NOERROR without an address of the asked type), malformed, error (another rcode, an ICMP
error, a socket error). Example::

    checks:
      dns:
        timeout_s: 10           # the check's deadline (schedule)
        attempt_timeout_s: 2    # per query sent; one retry
        queries:
          - {name: dichvucong.gov.vn, resolver: 203.162.4.191}
          - {name: portal.danang.gov.vn, resolver: "10.0.0.53:53", uplink: wan, expect: [10.10.1.20]}
          - {name: example.org, resolver: "2001:4860:4860::8888", qtype: AAAA, target: google-v6}
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from agent.checks.base import CheckContext, Observations

PROBE = "dns"
Uplink = Literal["internet", "wan", "lan"]
QTYPES: dict[str, int] = {"A": 1, "AAAA": 28}
RCODES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}  # fmt: skip
_RCODE_REASONS = {2: "servfail", 3: "nxdomain", 5: "refused"}
#: Name-compression pointers followed in one name before the reply is called malformed.
MAX_POINTERS = 32
ATTEMPTS = 2  # the first send and one retry on timeout


class Query(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: The name to resolve.
    name: str
    #: The resolver: an IPv4 or IPv6 address, with an optional port ("10.0.0.53:5353", "[::1]:53").
    resolver: str
    qtype: Literal["A", "AAAA"] = "A"
    #: Addresses every answer must be among; empty: any address will do.
    expect: tuple[str, ...] = ()
    uplink: Uplink = "internet"
    #: The ``target`` label; "" means "<name>@<resolver>".
    target: str = ""

    def __post_init__(self) -> None:
        encode_name(self.name)  # raises ValueError naming the fault
        resolver_address(self.resolver)
        family = 4 if self.qtype == "A" else 6
        for address in self.expect:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"expect: {address!r} is not an IP address") from None
            if ip.version != family:
                raise ValueError(f"expect: {address!r} is not an IPv{family} address, as qtype {self.qtype} needs")

    @property
    def label(self) -> str:
        return self.target or f"{self.name}@{self.resolver}"


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    queries: tuple[Query, ...] = ()
    #: Wait for a reply this long, then send the query once more and wait as long again.
    attempt_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 2.0

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for query in self.queries:
            if query.label in seen:
                raise ValueError(f"two queries have the target {query.label!r}; give one a distinct `target`")
            seen.add(query.label)


# --- wire format ------------------------------------------------------------------------------------


class Malformed(Exception):
    """The reply cannot be a DNS answer to our query; the message says where it goes wrong."""


def encode_name(name: str) -> bytes:
    """``www.example.org`` → ``\\x03www\\x07example\\x03org\\x00``; non-ASCII labels in IDNA."""
    labels = name.removesuffix(".").split(".") if name not in ("", ".") else []
    out = bytearray()
    for label in labels:
        try:
            raw = label.encode("ascii") if label.isascii() else label.encode("idna")
        except UnicodeError:
            raise ValueError(f"name {name!r}: label {label!r} cannot be encoded (IDNA)") from None
        if not 1 <= len(raw) <= 63:
            raise ValueError(f"name {name!r}: a label has 1 to 63 bytes, {label!r} has {len(raw)}")
        out += bytes([len(raw)]) + raw
    out += b"\x00"
    if len(out) > 255:
        raise ValueError(f"name {name!r} is longer than 255 bytes in wire format")
    return bytes(out)


def resolver_address(resolver: str) -> tuple[str, int]:
    """``"192.0.2.53"``, ``"192.0.2.53:5353"``, ``"2001:db8::53"``, ``"[2001:db8::53]:5353"`` → (ip, port)."""
    host, port = resolver, "53"
    if resolver.startswith("["):
        host, sep, rest = resolver[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"resolver {resolver!r}: expected [IPv6] or [IPv6]:port")
        port = rest[1:] or port
    elif resolver.count(":") == 1:
        host, _, port = resolver.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"resolver {resolver!r}: expected an IP address, optionally with :port") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"resolver {resolver!r}: the port must be 1..65535")
    return host, int(port)


def build_query(qid: int, name: str, qtype: str) -> bytes:
    """A standard query with recursion desired and one question of class IN."""
    header = struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!2H", QTYPES[qtype], 1)


def read_name(msg: bytes, pos: int) -> tuple[bytes, int]:
    """The (lower-cased, dotted) name at ``pos`` and the offset just after it in place.

    Compression pointers must point backwards and at most ``MAX_POINTERS`` are followed, so a
    looping or forward pointer is ``Malformed`` rather than an endless loop."""
    labels: list[bytes] = []
    after: int | None = None
    size = 1
    pointers = 0
    while True:
        if pos >= len(msg):
            raise Malformed(f"a name runs past the end of the {len(msg)}-byte reply")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise Malformed("a compression pointer is cut off")
            target = ((length & 0x3F) << 8) | msg[pos + 1]
            pointers += 1
            if target >= pos or pointers > MAX_POINTERS:
                raise Malformed(f"a compression pointer at offset {pos} loops or points forward")
            if after is None:
                after = pos + 2
            pos = target
            continue
        if length & 0xC0:
            raise Malformed(f"unknown label type 0x{length & 0xC0:02x} at offset {pos}")
        if length == 0:
            return b".".join(labels).lower(), (pos + 1 if after is None else after)
        size += length + 1
        if size > 255 or pos + 1 + length > len(msg):
            raise Malformed(f"a name at offset {pos} is too long or cut off")
        labels.append(msg[pos + 1 : pos + 1 + length])
        pos += 1 + length


@dataclass(frozen=True)
class Reply:
    rcode: int
    addresses: list[str]
    answers: int  # every record of the answer section, CNAMEs included


def parse_reply(msg: bytes, qid: int, name: str, qtype: str) -> Reply:
    """Check that ``msg`` answers our query and collect the addresses of type ``qtype``."""
    if len(msg) < 12:
        raise Malformed(f"a reply of {len(msg)} bytes is shorter than a DNS header")
    rid, flags, qdcount, ancount, _, _ = struct.unpack_from("!6H", msg)
    if rid != qid:
        raise Malformed(f"the reply's id {rid} is not the query's {qid}")
    if not flags & 0x8000 or (flags >> 11) & 0xF:
        raise Malformed("not a response to a standard query (QR or OPCODE)")
    if flags & 0x0200:
        raise Malformed("the reply is truncated (TC flag); DNS over TCP is not probed")
    rcode = flags & 0xF
    pos = 12
    if qdcount == 1:
        qname, pos = read_name(msg, pos)
        if pos + 4 > len(msg):
            raise Malformed("the question is cut off")
        rtype, rclass = struct.unpack_from("!2H", msg, pos)
        pos += 4
        wanted = encode_name(name)
        if qname != read_name(wanted, 0)[0] or rtype != QTYPES[qtype] or rclass != 1:
            raise Malformed("the reply's question is not the query's")
    elif not (qdcount == 0 and rcode != 0):  # some servers drop the question from error replies
        raise Malformed(f"the reply has {qdcount} questions")
    want_type, want_len = QTYPES[qtype], (4 if qtype == "A" else 16)
    addresses: list[str] = []
    for _ in range(ancount):
        _, pos = read_name(msg, pos)
        if pos + 10 > len(msg):
            raise Malformed("an answer record is cut off")
        rtype, rclass, _ttl, rdlength = struct.unpack_from("!HHIH", msg, pos)
        pos += 10
        if pos + rdlength > len(msg):
            raise Malformed("an answer's data runs past the end of the reply")
        if rtype == want_type and rclass == 1:
            if rdlength != want_len:
                raise Malformed(f"a {qtype} record of {rdlength} bytes")
            addresses.append(str(ipaddress.ip_address(msg[pos : pos + rdlength])))
        pos += rdlength
    return Reply(rcode, addresses, ancount)


# --- the probe --------------------------------------------------------------------------------------


class _Failed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class _Result:
    query: Query
    duration_s: float = 0.0
    reason: str | None = None
    message: str = ""
    lookup_s: float | None = None
    answers: int | None = None


async def _exchange(query: Query, packet: bytes, timeout_s: float) -> tuple[bytes, float]:
    """Send ``packet`` and wait for one datagram, retrying once on timeout; (reply, seconds)."""
    host, port = resolver_address(query.resolver)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST)
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(sockaddr)  # UDP: no packet sent; filters the sources we hear from
        t0 = time.perf_counter()
        for _ in range(ATTEMPTS):
            await loop.sock_sendall(sock, packet)
            try:
                async with asyncio.timeout(timeout_s):
                    data = await loop.sock_recv(sock, 65535)
            except TimeoutError:
                continue
            return data, time.perf_counter() - t0
    raise _Failed("timeout", f"no reply from {query.resolver} to {ATTEMPTS} queries, {timeout_s:g} s each")


async def _probe(query: Query, timeout_s: float) -> _Result:
    result = _Result(query)
    t0 = time.perf_counter()
    qid = secrets.randbits(16)
    try:
        data, lookup_s = await _exchange(query, build_query(qid, query.name, query.qtype), timeout_s)
        try:
            reply = parse_reply(data, qid, query.name, query.qtype)
        except Malformed as exc:
            raise _Failed("malformed", f"malformed reply from {query.resolver}: {exc}") from None
        result.lookup_s = lookup_s
        result.answers = len(reply.addresses)
        _classify(query, reply)
    except _Failed as exc:
        result.reason, result.message = exc.reason, exc.message
    except OSError as exc:  # ICMP port/host unreachable, no route, …
        result.reason = "error"
        result.message = f"{query.resolver}: {type(exc).__name__}: {exc.strerror or exc}"
    result.duration_s = time.perf_counter() - t0
    return result


def _classify(query: Query, reply: Reply) -> None:
    where = f"{query.name} {query.qtype} @ {query.resolver}"
    if reply.rcode != 0:
        rcode = RCODES.get(reply.rcode, str(reply.rcode))
        raise _Failed(_RCODE_REASONS.get(reply.rcode, "error"), f"{where}: rcode {rcode}")
    if not reply.addresses:
        raise _Failed("no_answer", f"{where}: no {query.qtype} record ({reply.answers} answers of other types)")
    if query.expect:
        expected = {ipaddress.ip_address(a) for a in query.expect}
        unexpected = [a for a in reply.addresses if ipaddress.ip_address(a) not in expected]
        if unexpected:
            raise _Failed(
                "wrong_answer", f"{where}: got {', '.join(unexpected)}, expected one of {', '.join(query.expect)}"
            )


async def collect(ctx: CheckContext[Config]) -> Observations:
    cfg = ctx.config
    outcomes = await asyncio.gather(*(_probe(q, cfg.attempt_timeout_s) for q in cfg.queries), return_exceptions=True)
    obs = Observations(ts_ms=ctx.clock_ms())
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome  # a programming error: failures of the network are results
        labels = {"probe": PROBE, "target": outcome.query.label, "uplink": outcome.query.uplink}
        obs.probe_outcome(
            PROBE, labels["target"], labels["uplink"], reason=outcome.reason, message=outcome.message,
            duration_s=outcome.duration_s,
        )  # fmt: skip
        if outcome.lookup_s is not None:
            obs.add("probe_dns_lookup_seconds", outcome.lookup_s, **labels)
        if outcome.answers is not None:
            obs.add("probe_dns_answers", outcome.answers, **labels)
    return obs
