"""A tiny authoritative DNS server for the lab (UDP and TCP, asyncio, standard library only).

    python -m tests.lab.dnsd --zone lab.zone --origin lab. --listen 198.18.100.53 --listen fd00:cafe:100::53 \
        --port 53 --control control.json --ready-file ready

Zone file: one record a line, ``name [ttl] TYPE value`` with TYPE one of A, AAAA, CNAME, TXT; ``;`` and
``#`` start comments; names without a final dot are relative to the first ``--origin``.
Answers: the records (CNAMEs followed inside the zone), NOERROR with no answer for a known name
without that type, NXDOMAIN for an unknown name under an origin, REFUSED for anything else.

Failures for tests: the control file (JSON, re-read whenever it changes, replace it atomically) is
``{"mode": M, "names": {"portal.lab.": M, ...}}`` where M is ``ok``, ``servfail``, ``refused``,
``nxdomain``, ``silent`` (no answer at all) or ``delay:MS`` (answer after MS milliseconds); a name's
own entry wins over ``mode``. Every query is logged on stdout as one line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "OPT": 41, "ANY": 255}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
RCODES = {"servfail": SERVFAIL, "refused": REFUSED, "nxdomain": NXDOMAIN}
MAX_CNAME_CHAIN = 8


class FormatError(ValueError):
    pass


@dataclass(frozen=True)
class Record:
    name: str  # lower case, absolute (final dot)
    rtype: int
    ttl: int
    rdata: bytes


@dataclass
class Query:
    ident: int
    flags: int
    qname: str  # lower case, absolute
    qtype: int
    question: bytes  # the question section as received (case preserved)
    edns_size: int | None  # None: no OPT record in the query


def absolute(name: str, origin: str) -> str:
    name = name.lower()
    if name == "@":
        return origin
    return name if name.endswith(".") else f"{name}.{origin}"


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode()
            if len(raw) > 63:
                raise ValueError(f"label too long in {name!r}")
            out += bytes([len(raw)]) + raw
    return bytes(out + b"\0")


def encode_rdata(rtype: int, value: str, origin: str) -> bytes:
    if rtype == TYPES["A"]:
        return socket.inet_pton(socket.AF_INET, value)
    if rtype == TYPES["AAAA"]:
        return socket.inet_pton(socket.AF_INET6, value)
    if rtype == TYPES["CNAME"]:
        return encode_name(absolute(value, origin))
    if rtype == TYPES["TXT"]:
        raw = value.encode()
        return b"".join(bytes([len(chunk)]) + chunk for chunk in (raw[i : i + 255] for i in range(0, len(raw), 255)))
    raise ValueError(f"record type {TYPE_NAMES.get(rtype, rtype)} is not supported")


def parse_zone(text: str, origin: str) -> dict[str, list[Record]]:
    zone: dict[str, list[Record]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        lexer = shlex.shlex(line, posix=True)
        lexer.whitespace_split = True
        lexer.commenters = ";#"
        words = list(lexer)
        if not words:
            continue
        try:
            name, rest = absolute(words[0], origin), words[1:]
            ttl = 60
            if rest and rest[0].isdigit():
                ttl, rest = int(rest[0]), rest[1:]
            if len(rest) < 2 or rest[0].upper() not in TYPES:
                raise ValueError("expected: name [ttl] TYPE value")
            rtype = TYPES[rest[0].upper()]
            record = Record(name, rtype, ttl, encode_rdata(rtype, " ".join(rest[1:]), origin))
        except (ValueError, OSError) as exc:
            raise SystemExit(f"zone line {number}: {exc}: {line!r}") from None
        zone.setdefault(name, []).append(record)
    return zone


def read_name(msg: bytes, offset: int) -> tuple[str, int]:
    """A (possibly compressed) name at ``offset``; returns it and the offset after it."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(128):  # bounded: a pointer loop is a format error
        if offset >= len(msg):
            raise FormatError("name runs past the end")
        length = msg[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(msg):
                raise FormatError("truncated pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | msg[offset + 1]
            continue
        if length == 0:
            name = ".".join(labels).lower() + "."
            return (name if labels else "."), (end if end is not None else offset + 1)
        labels.append(msg[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    raise FormatError("name too long or pointer loop")


def parse_query(msg: bytes) -> Query:
    if len(msg) < 12:
        raise FormatError("short header")
    ident, flags, qdcount, ancount, nscount, arcount = struct.unpack("!6H", msg[:12])
    if qdcount != 1:
        raise FormatError(f"{qdcount} questions")
    qname, offset = read_name(msg, 12)
    if offset + 4 > len(msg):
        raise FormatError("truncated question")
    qtype, _qclass = struct.unpack("!HH", msg[offset : offset + 4])
    question = msg[12 : offset + 4]
    offset += 4
    edns_size = None
    for index in range(ancount + nscount + arcount):
        _, offset = read_name(msg, offset)
        if offset + 10 > len(msg):
            raise FormatError("truncated record")
        rtype, rclass, _ttl, rdlen = struct.unpack("!HHIH", msg[offset : offset + 10])
        if rtype == TYPES["OPT"] and index >= ancount + nscount:
            edns_size = max(512, rclass)
        offset += 10 + rdlen
    return Query(ident, flags, qname, qtype, question, edns_size)


@dataclass
class Control:
    path: Path | None
    mode: str = "ok"
    names: dict[str, str] = field(default_factory=dict)
    _stamp: tuple[int, int, int] | None = None

    def action(self, qname: str) -> str:
        self._reload()
        return self.names.get(qname, self.mode)

    def _reload(self) -> None:
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self.mode, self.names, self._stamp = "ok", {}, None
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = json.loads(self.path.read_text())
            mode = str(data.get("mode", "ok"))
            names = {absolute(str(k), "."): str(v) for k, v in dict(data.get("names", {})).items()}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            print(f"control file {self.path}: {exc}; keeping the previous one", flush=True)
            return
        self.mode, self.names, self._stamp = mode, names, stamp
        print(f"control: mode={mode} names={names}", flush=True)


class Server:
    def __init__(self, zone: dict[str, list[Record]], origins: list[str], control: Control) -> None:
        self.zone = zone
        self.origins = origins
        self.control = control

    def in_zone(self, name: str) -> bool:
        return name in self.zone or any(name == o or name.endswith("." + o) for o in self.origins)

    def handle(self, msg: bytes, peer: str, transport: str) -> tuple[bytes | None, float]:
        """The reply (None: stay silent) and how long to wait before sending it, in seconds."""
        try:
            query = parse_query(msg)
        except FormatError as exc:
            print(f"{peer} {transport} malformed query: {exc}", flush=True)
            if len(msg) >= 12 and not msg[2] & 0x80:
                ident, flags = struct.unpack("!HH", msg[:4])
                return self._header(ident, flags, FORMERR, 0, 0, False), 0.0
            return None, 0.0
        if query.flags & 0x8000:
            return None, 0.0  # a response: never answer those
        qtype_name = TYPE_NAMES.get(query.qtype, str(query.qtype))
        action = self.control.action(query.qname)
        delay = 0.0
        if action.startswith("delay:"):
            delay, action = int(action[6:]) / 1000.0, "ok"
        if action == "silent":
            print(f"{peer} {transport} {query.qname} {qtype_name} -> (silent)", flush=True)
            return None, 0.0
        opcode = (query.flags >> 11) & 0xF
        answers: list[Record] = []
        if opcode != 0:
            rcode = NOTIMP
        elif action in RCODES:
            rcode = RCODES[action]
        elif not self.in_zone(query.qname):
            rcode = REFUSED
        else:
            rcode, answers = self.lookup(query.qname, query.qtype)
        reply = self.build(query, rcode, answers, transport)
        outcome = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}.get(rcode, str(rcode))
        print(f"{peer} {transport} {query.qname} {qtype_name} -> {outcome} {len(answers)}", flush=True)
        return reply, delay

    def lookup(self, qname: str, qtype: int) -> tuple[int, list[Record]]:
        if qname not in self.zone:
            return NXDOMAIN, []
        answers: list[Record] = []
        name = qname
        for _ in range(MAX_CNAME_CHAIN):
            records = self.zone.get(name, [])
            matching = [r for r in records if qtype in (r.rtype, TYPES["ANY"])]
            cnames = [r for r in records if r.rtype == TYPES["CNAME"]]
            if matching or not cnames or qtype == TYPES["CNAME"]:
                answers += matching
                break
            answers.append(cnames[0])
            name = read_name(cnames[0].rdata, 0)[0]
        return NOERROR, answers

    @staticmethod
    def _header(
        ident: int, qflags: int, rcode: int, qdcount: int, ancount: int, aa: bool, arcount: int = 0, tc: bool = False
    ) -> bytes:
        flags = 0x8000 | (qflags & 0x7800) | (qflags & 0x0100) | rcode
        if aa:
            flags |= 0x0400
        if tc:
            flags |= 0x0200
        return struct.pack("!6H", ident, flags, qdcount, ancount, 0, arcount)

    def build(self, query: Query, rcode: int, answers: list[Record], transport: str) -> bytes:
        body = bytearray()
        for record in answers:
            owner = b"\xc0\x0c" if record.name == query.qname else encode_name(record.name)
            body += owner + struct.pack("!HHIH", record.rtype, 1, record.ttl, len(record.rdata)) + record.rdata
        opt = b"" if query.edns_size is None else b"\0" + struct.pack("!HHIH", TYPES["OPT"], 1232, 0, 0)
        aa = rcode in (NOERROR, NXDOMAIN)
        header = self._header(query.ident, query.flags, rcode, 1, len(answers), aa, 1 if opt else 0)
        reply = header + query.question + bytes(body) + opt
        limit = 65535 if transport == "tcp" else (query.edns_size or 512)
        if len(reply) > limit:  # truncated: the client retries over TCP
            header = self._header(query.ident, query.flags, rcode, 1, 0, aa, 1 if opt else 0, tc=True)
            reply = header + query.question + opt
        return reply


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply, delay = self.server.handle(data, f"{addr[0]}:{addr[1]}", "udp")
        if reply is None or self.transport is None:
            return
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self.transport.sendto, reply, addr)
        else:
            self.transport.sendto(reply, addr)


async def serve_tcp_client(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peername = writer.get_extra_info("peername")
    peer = f"{peername[0]}:{peername[1]}" if peername else "?"
    try:
        for _ in range(1000):  # bounded number of queries per connection
            length = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 30))[0]
            msg = await asyncio.wait_for(reader.readexactly(length), 30)
            reply, delay = server.handle(msg, peer, "tcp")
            if reply is None:
                continue
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def main_async(args: argparse.Namespace, zone: dict[str, list[Record]], origins: list[str]) -> None:
    server = Server(zone, origins, Control(Path(args.control) if args.control else None))
    loop = asyncio.get_running_loop()
    closers: list[asyncio.BaseTransport | asyncio.Server] = []
    for address in args.listen:
        transport, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(server), local_addr=(address, args.port))
        closers.append(transport)
        closers.append(
            await asyncio.start_server(
                lambda r, w: serve_tcp_client(server, r, w), address, args.port, reuse_address=True
            )
        )
    print(
        f"dnsd: {sum(len(v) for v in zone.values())} records, listening on {args.listen} port {args.port}", flush=True
    )
    if args.ready_file:
        await asyncio.to_thread(Path(args.ready_file).write_text, str(os.getpid()))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for closer in closers:
        closer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.dnsd", description=__doc__.splitlines()[0])
    parser.add_argument("--zone", required=True, help="zone file: name [ttl] TYPE value, one per line")
    parser.add_argument("--origin", action="append", default=[], help="zone apex served (NXDOMAIN below it)")
    parser.add_argument("--listen", action="append", required=True, help="address to bind (repeatable)")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--control", help="JSON control file for failure modes")
    parser.add_argument("--ready-file", help="written once every socket is bound")
    args = parser.parse_args(argv)
    origins = [absolute(o, ".") for o in args.origin] or ["."]
    zone = parse_zone(Path(args.zone).read_text(), origins[0])
    try:
        asyncio.run(main_async(args, zone, origins))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
