"""Our BER codec for SNMP v2c (``agent/snmp/ber.py``) and the UDP channel and client over it.

The codec is checked against pysnmp/pyasn1's encoder (an independent implementation: same request
bytes, same values out of its responses), against hand-made broken messages (each a
``SnmpError("malformed")`` naming device and field), and by fuzzing (random and mutated replies:
never any other exception, never the community in a message). The client runs against a fake
agent on a loopback UDP socket in this process: retries, stale answers, garbage, tooBig, walks
that stay in their subtree.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder  # type: ignore[import-untyped]
from pysnmp.proto import api, rfc1902, rfc1905  # type: ignore[import-untyped]

from agent.snmp import ber
from agent.snmp.client import BerClient, Counter32, Counter64, PysnmpSession, Secret, Target, V2c
from agent.snmp.errors import SnmpError

V2 = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
COMMUNITY = "fz-community-8c1d"
WHERE = "192.0.2.7:161"
ANY_ID = range(-(2**31), 2**31)
IFX = "1.3.6.1.2.1.31.1.1.1"


def arcs(oid: str) -> tuple[int, ...]:
    return tuple(int(a) for a in oid.split("."))


def response(
    varbinds: Sequence[tuple[str, Any]],
    request_id: int = 77,
    status: int = 0,
    index: int = 0,
    community: str = COMMUNITY,
) -> bytes:
    """A v2c Response message as pysnmp encodes it."""
    pdu = V2.ResponsePDU()
    V2.apiPDU.set_defaults(pdu)
    V2.apiPDU.set_request_id(pdu, request_id)
    V2.apiPDU.set_error_status(pdu, status)
    V2.apiPDU.set_error_index(pdu, index)
    V2.apiPDU.set_varbinds(pdu, [(arcs(oid), value) for oid, value in varbinds])
    msg = V2.Message()
    V2.apiMessage.set_defaults(msg)
    V2.apiMessage.set_community(msg, community)
    V2.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def decode(data: bytes, waiting: Any = ANY_ID, community: str = COMMUNITY) -> ber.Response | None:
    return ber.decode_response(data, ber.VERSION_2C, community.encode(), waiting, WHERE)


def malformed(data: bytes) -> str:
    with pytest.raises(SnmpError) as caught:
        decode(data)
    assert caught.value.kind == "malformed"
    assert WHERE in caught.value.message
    return caught.value.message


ALL_TYPES: list[tuple[str, Any, Any]] = [
    ("1.3.6.1.2.1.1.1.0", rfc1902.OctetString(b"Linux sw 6.1 \x00\xff"), b"Linux sw 6.1 \x00\xff"),
    ("1.3.6.1.2.1.1.2.0", rfc1902.ObjectIdentifier("1.3.6.1.4.1.9.1.1208"), "1.3.6.1.4.1.9.1.1208"),
    ("1.3.6.1.2.1.1.3.0", rfc1902.TimeTicks(4294967295), 4294967295),
    ("1.3.6.1.2.1.1.7.0", rfc1902.Integer32(-2147483648), -2147483648),
    ("1.3.6.1.2.1.1.8.0", rfc1902.Integer32(2147483647), 2147483647),
    ("1.3.6.1.2.1.2.2.1.5.1", rfc1902.Gauge32(4294967295), 4294967295),
    ("1.3.6.1.2.1.2.2.1.10.1", rfc1902.Counter32(4294967295), Counter32(4294967295)),
    ("1.3.6.1.2.1.4.20.1.1.10.0.0.1", rfc1902.IpAddress("10.0.0.1"), "10.0.0.1"),
    ("1.3.6.1.4.1.2021.10.1.6.1", rfc1902.Opaque(b"\x9f\x78\x04\x3f\x80\x00\x00"), b"\x9f\x78\x04\x3f\x80\x00\x00"),
    (f"{IFX}.6.10149", rfc1902.Counter64(2**63 + 12345), Counter64(2**63 + 12345)),
    (f"{IFX}.10.10149", rfc1902.Counter64(2**64 - 1), Counter64(2**64 - 1)),
    (f"{IFX}.10.4294967295", rfc1902.Counter64(0), Counter64(0)),
    ("1.3.6.1.2.1.1.9.0", rfc1905.noSuchObject, ber.NO_SUCH_OBJECT),
    ("1.3.6.1.2.1.1.9.1", rfc1905.noSuchInstance, ber.NO_SUCH_INSTANCE),
    ("1.3.6.1.2.1.99", rfc1905.endOfMibView, ber.END_OF_MIB_VIEW),
    ("1.3.6.1.2.1.98", rfc1902.Null(""), ber.NULL),
    ("2.999.1", rfc1902.OctetString(b""), b""),
]


# --- encoding ------------------------------------------------------------------------------------


def pysnmp_request(pdu_type: str, request_id: int, oids: Sequence[str], reps: int = 0) -> bytes:
    if pdu_type == "bulk":
        pdu = V2.GetBulkRequestPDU()
        V2.apiBulkPDU.set_defaults(pdu)
        V2.apiBulkPDU.set_max_repetitions(pdu, reps)
    else:
        pdu = V2.GetRequestPDU()
        V2.apiPDU.set_defaults(pdu)
    V2.apiPDU.set_request_id(pdu, request_id)
    V2.apiPDU.set_varbinds(pdu, [(arcs(o), V2.Null("")) for o in oids])
    msg = V2.Message()
    V2.apiMessage.set_defaults(msg)
    V2.apiMessage.set_community(msg, COMMUNITY)
    V2.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


@pytest.mark.parametrize("request_id", [0, 1, 127, 128, 255, 256, 65535, 2**31 - 1])
def test_requests_are_the_bytes_pysnmp_sends(request_id: int) -> None:
    oids = ["1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.31.1.1.1.6.10101", "2.999.4294967295", "1.3.6.1.4.1.8072.3.2.10"]
    get = ber.encode_request(ber.VERSION_2C, COMMUNITY.encode(), ber.GET_REQUEST, request_id, [arcs(o) for o in oids])
    assert get == pysnmp_request("get", request_id, oids)
    bulk = ber.encode_request(
        ber.VERSION_2C, COMMUNITY.encode(), ber.GET_BULK_REQUEST, request_id, [arcs(oids[1])], 0, 100
    )
    assert bulk == pysnmp_request("bulk", request_id, oids[1:2], 100)


def test_a_long_request_uses_long_form_lengths() -> None:
    oids = [arcs(f"1.3.6.1.2.1.2.2.1.{c}.{i}") for c in range(1, 23) for i in (1, 200, 10101)]
    data = ber.encode_request(ber.VERSION_2C, COMMUNITY.encode(), ber.GET_REQUEST, 9, oids)
    assert data == pysnmp_request("get", 9, [".".join(map(str, o)) for o in oids])
    assert data[1] == 0x82  # two length octets


@pytest.mark.parametrize("oid", [(1,), (3, 1), (1, 40), (0, 39, -1), (1, 3, 2**32), tuple(range(129))], ids=str)
def test_an_oid_snmp_cannot_carry_is_refused(oid: tuple[int, ...]) -> None:
    with pytest.raises(SnmpError) as caught:
        ber.encode_oid(oid)
    assert caught.value.kind == "error"


def test_v1_has_no_getbulk() -> None:
    with pytest.raises(SnmpError):
        ber.encode_request(ber.VERSION_1, b"c", ber.GET_BULK_REQUEST, 1, [(1, 3)], 0, 10)


# --- decoding -------------------------------------------------------------------------------------


def test_every_value_type_decodes_as_pysnmp_encoded_it() -> None:
    data = response([(oid, value) for oid, value, _ in ALL_TYPES], request_id=2**31 - 1, status=0)
    answer = decode(data)
    assert answer is not None
    assert answer.request_id == 2**31 - 1
    assert (answer.error_status, answer.error_index) == (0, 0)
    assert [oid for _arcs, oid, _v in answer.varbinds] == [oid for oid, _, _ in ALL_TYPES]
    assert [a for a, _oid, _v in answer.varbinds] == [arcs(oid) for oid, _, _ in ALL_TYPES]
    for (_a, oid, got), (_, _, want) in zip(answer.varbinds, ALL_TYPES, strict=True):
        assert got == want, oid
        assert type(got) is type(want), oid


def test_counter64_above_2_63_and_counter_widths() -> None:
    answer = decode(response([(f"{IFX}.6.1", rfc1902.Counter64(2**63)), (f"{IFX}.6.2", rfc1902.Counter64(2**64 - 2))]))
    assert answer is not None
    values = [v for _a, _o, v in answer.varbinds]
    assert values == [2**63, 2**64 - 2]
    assert all(isinstance(v, Counter64) and v.bits == 64 for v in values)
    # 9 content octets with the leading zero, as the standard has it
    assert bytes.fromhex("46 09 00 80 00 00 00 00 00 00 00") in response([(f"{IFX}.6.1", rfc1902.Counter64(2**63))])


def varbind_message(value_tlv: bytes, oid_tlv: bytes = bytes.fromhex("06 03 2b 06 01"), request_id: int = 77) -> bytes:
    """A Response with one hand-encoded varbind (what pysnmp would refuse to encode)."""
    vb = oid_tlv + value_tlv
    vbs = b"\x30" + tlv_len(vb) + vb
    lst = b"\x30" + tlv_len(vbs) + vbs
    rid = ber.encode_integer(request_id)
    pdu = rid + b"\x02\x01\x00\x02\x01\x00" + lst
    body = b"\x02\x01\x01" + b"\x04" + tlv_len(COMMUNITY.encode()) + COMMUNITY.encode() + b"\xa2" + tlv_len(pdu) + pdu
    return b"\x30" + tlv_len(body) + body


def tlv_len(content: bytes) -> bytes:
    n = len(content)
    return bytes([n]) if n < 0x80 else bytes([0x82]) + n.to_bytes(2, "big")


def one_value(value_tlv: bytes) -> Any:
    answer = decode(varbind_message(value_tlv))
    assert answer is not None
    return answer.varbinds[0][2]


def test_lenient_where_net_snmp_is() -> None:
    # an unsigned type sent as a negative number within its width: read modulo 2**width
    assert one_value(bytes.fromhex("41 04 ff ff ff fe")) == 4294967294
    assert one_value(bytes.fromhex("46 08 80 00 00 00 00 00 00 00")) == 2**63
    assert one_value(bytes.fromhex("43 01 ff")) == 4294967295
    # non-minimal (BER, not DER) integers and lengths
    assert one_value(bytes.fromhex("41 05 00 00 00 00 07")) == 7
    assert one_value(bytes.fromhex("02 04 00 00 00 05")) == 5
    assert one_value(bytes.fromhex("04 81 03 61 62 63")) == b"abc"
    assert one_value(bytes.fromhex("04 84 00 00 00 01 7a")) == b"z"


@pytest.mark.parametrize(
    ("value_tlv", "what"),
    [
        ("02 05 01 00 00 00 00", "outside Integer32"),  # 2**32
        ("02 06 00 00 00 00 00 01", "integer of 6 octets"),
        ("02 00", "empty integer"),
        ("41 05 01 00 00 00 00", "outside the 32-bit range"),  # 2**32 as Counter32
        ("41 05 80 00 00 00 00", "outside the 32-bit range"),
        ("46 09 01 00 00 00 00 00 00 00 00", "outside the 64-bit range"),  # 2**64
        ("46 0a 00 00 00 00 00 00 00 00 00 01", "integer of 10 octets"),
        ("40 03 0a 00 01", "IpAddress of 3 octets"),
        ("80 01 00", "noSuchObject with 1 content octets"),
        ("82 01 00", "endOfMibView with 1 content octets"),
        ("45 01 00", "no SNMP value type"),  # NsapAddress (SNMPv1 only)
        ("24 03 04 01 61", "no SNMP value type"),  # constructed OCTET STRING
        ("30 00", "no SNMP value type"),
        ("04 80 61 00 00", "indefinite length"),
        ("04 85 00 00 00 00 01 61", "length of 5 octets"),
        ("04 05 61", "its length ends at offset"),
        ("04 01 61 62", "its length ends at offset"),
        ("06 00", "empty OID"),
        ("06 02 2b 86", "ends inside a sub-identifier"),
        ("06 03 2b 80 01", "leading 0x80"),
        ("06 07 2b 90 80 80 80 00 01", "above 4294967295"),
    ],
)
def test_a_broken_value_is_malformed_and_says_what(value_tlv: str, what: str) -> None:
    message = malformed(varbind_message(bytes.fromhex(value_tlv)))
    assert what in message
    assert "varbind 1" in message
    assert COMMUNITY not in message


def test_broken_oids_in_the_varbind_name() -> None:
    assert "ends inside a sub-identifier" in malformed(varbind_message(b"\x05\x00", bytes.fromhex("06 02 2b 86")))
    assert "no OID" in malformed(varbind_message(b"\x05\x00", bytes.fromhex("04 02 2b 06")))
    long_oid = bytes([0x06, 0x81, 140, 0x2B, *([1] * 139)])
    assert "sub-identifiers" in malformed(varbind_message(b"\x05\x00", long_oid))
    multi = bytes([0x06, 0x82, 0x02, 0x7F, 0x2B, *([0x81, 0x01] * 319)])
    assert "sub-identifiers" in malformed(varbind_message(b"\x05\x00", multi))


def test_message_framing_errors() -> None:
    good = response([("1.3.6.1.2.1.1.3.0", rfc1902.TimeTicks(5))])
    assert decode(good) is not None
    assert "octets after the message" in malformed(good + b"\x00")
    assert "runs past the end" in malformed(good[:-1])
    assert "missing" in malformed(b"")
    assert "tag 0x31" in malformed(b"\x31" + good[1:])
    assert "version: 0" in malformed(good.replace(b"\x02\x01\x01", b"\x02\x01\x00", 1))
    with pytest.raises(SnmpError) as caught:
        decode(good, community="another-one")
    assert "another community" in caught.value.message
    assert COMMUNITY not in caught.value.message and "another-one" not in caught.value.message
    # a GetRequest is no answer
    request = pysnmp_request("get", 77, ["1.3.6.1.2.1.1.3.0"])
    assert "PDU: tag 0xa0" in malformed(request)


def test_an_answer_nobody_waits_for_is_dropped_unread() -> None:
    data = response([("1.3.6.1.2.1.1.3.0", rfc1902.TimeTicks(5))], request_id=41)
    assert decode(data, waiting={40, 42}) is None
    # not read further: a late answer with a broken body is no error either
    broken = varbind_message(bytes.fromhex("02 05 01 00 00 00 00"), request_id=41)
    assert decode(broken, waiting={40}) is None
    assert decode(data, waiting={41}) is not None


def test_error_status_and_index_come_through() -> None:
    answer = decode(response([("1.3.6.1.2.1.1.3.0", rfc1902.Null(""))], status=1, index=1))
    assert answer is not None
    assert (answer.error_status, answer.error_index) == (1, 1)


def test_the_oid_cache_gives_the_same_answer_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ber, "OID_CACHE_SIZE", 4)
    monkeypatch.setattr(ber, "_oid_cache", {})
    oids = [f"{IFX}.6.{i}" for i in (1, 127, 128, 10101, 2**32 - 1, 5, 6)]
    data = response([(o, rfc1902.Counter64(i)) for i, o in enumerate(oids)])
    for _ in range(3):
        answer = decode(data)
        assert answer is not None
        assert [o for _a, o, _v in answer.varbinds] == oids
        assert [a for a, _o, _v in answer.varbinds] == [arcs(o) for o in oids]
        assert len(ber._oid_cache) <= 4


# --- fuzzing --------------------------------------------------------------------------------------


def real_replies() -> list[bytes]:
    """Replies like agents send: all value types, long-form lengths, a full GETBULK page."""
    page = [(f"1.3.6.1.2.1.2.2.1.{c}.{10100 + i}", rfc1902.Counter32(i * 7919)) for c in (10, 16) for i in range(25)]
    return [
        response([(oid, value) for oid, value, _ in ALL_TYPES]),
        response(page, request_id=123456),
        response([("1.3.6.1.2.1.1.1.0", rfc1902.OctetString(b"x" * 300))], request_id=5),
        response([("1.3.6.1.2.1.1.3.0", rfc1902.Null(""))], status=18, index=1),
    ]


def mutations(rng: random.Random, data: bytes) -> Iterator[bytes]:
    buf = bytearray(data)
    i = rng.randrange(len(buf))
    kind = rng.randrange(7)
    if kind == 0:  # flip a bit
        buf[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # a random octet
        buf[i] = rng.randrange(256)
    elif kind == 2:  # truncate
        del buf[i:]
    elif kind == 3:  # insert
        buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
    elif kind == 4:  # delete
        del buf[i : i + rng.randrange(1, 4)]
    elif kind == 5:  # a length-ish octet set to an edge
        buf[i] = rng.choice([0x00, 0x7F, 0x80, 0x81, 0x82, 0x84, 0x85, 0xFF])
    else:  # several at once
        for _ in range(rng.randrange(2, 6)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    yield bytes(buf)


def check_fuzzed(data: bytes) -> str:
    try:
        answer = decode(data)
    except SnmpError as exc:
        assert exc.kind == "malformed", exc
        assert COMMUNITY not in str(exc)
        assert WHERE in exc.message
        return "malformed"
    assert answer is None or isinstance(answer, ber.Response)
    if answer is not None:
        for arcs_, oid, value in answer.varbinds:
            assert oid == ".".join(map(str, arcs_))
            assert isinstance(value, int | str | bytes | ber.Marker)
    return "decoded"


def test_fuzzed_replies_give_an_answer_or_malformed_and_nothing_else() -> None:
    rng = random.Random(20_240_611)
    outcomes = {"malformed": 0, "decoded": 0}
    replies = real_replies()
    for _ in range(15000):
        for mutated in mutations(rng, rng.choice(replies)):
            outcomes[check_fuzzed(mutated)] += 1
    for _ in range(3000):  # random garbage, some of it starting like a message
        size = rng.randrange(0, 200)
        junk = bytes(rng.randrange(256) for _ in range(size))
        if rng.random() < 0.5:
            junk = b"\x30" + bytes([min(size, 0x7F)]) + junk
        outcomes[check_fuzzed(junk)] += 1
    assert outcomes["malformed"] > 8000
    assert outcomes["decoded"] > 300  # mutations of a value's content still decode


# --- the client over UDP, against a fake agent -------------------------------------------------------


@dataclass
class FakeAgent(asyncio.DatagramProtocol):
    """A v2c agent on 127.0.0.1 answering from ``data``; ``script`` bends its answers per request."""

    data: dict[tuple[int, ...], Any]
    #: called with (request number, request id, answer bytes); returns what to send (a list)
    script: Callable[[int, int, bytes], list[bytes]] | None = None
    too_big_above: int | None = None
    requests: list[tuple[int, int]] = field(default_factory=list)  # (request-id, max-repetitions)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, raw: bytes, addr: Any) -> None:
        msg, _ = decoder.decode(raw, asn1Spec=V2.Message())
        if bytes(V2.apiMessage.get_community(msg)) != COMMUNITY.encode():
            return  # as snmpd: a wrong community gets no answer
        pdu = V2.apiMessage.get_pdu(msg)
        request_id = int(V2.apiPDU.get_request_id(pdu))
        names = [tuple(name) for name, _ in V2.apiPDU.get_varbinds(pdu)]
        ordered = sorted(self.data)
        if pdu.isSameTypeWith(V2.GetBulkRequestPDU()):
            reps = int(V2.apiBulkPDU.get_max_repetitions(pdu))
            self.requests.append((request_id, reps))
            if self.too_big_above is not None and reps > self.too_big_above:
                answer = response([(".".join(map(str, n)), rfc1902.Null("")) for n in names], request_id, 1, 0)
            else:
                after = [o for o in ordered if o > names[0]][:reps]
                vbs = [(".".join(map(str, o)), self.data[o]) for o in after]
                if len(after) < reps:
                    vbs.append(("1.3.6.1.9.9.9", rfc1905.endOfMibView))
                answer = response(vbs, request_id)
        else:
            self.requests.append((request_id, 0))
            answer = response(
                [(".".join(map(str, n)), self.data.get(n, rfc1905.noSuchObject)) for n in names], request_id
            )
        out = [answer] if self.script is None else self.script(len(self.requests), request_id, answer)
        assert self.transport is not None
        for datagram in out:
            self.transport.sendto(datagram, addr)


@pytest.fixture
async def agent_port() -> Any:
    loop = asyncio.get_running_loop()
    made: list[asyncio.DatagramTransport] = []

    async def start(agent: FakeAgent) -> int:
        transport, _ = await loop.create_datagram_endpoint(lambda: agent, local_addr=("127.0.0.1", 0))
        made.append(transport)
        return int(transport.get_extra_info("sockname")[1])

    yield start
    for transport in made:
        transport.close()


def switch_data(rows: int = 30) -> dict[tuple[int, ...], Any]:
    data: dict[tuple[int, ...], Any] = {arcs("1.3.6.1.2.1.1.3.0"): rfc1902.TimeTicks(12345)}
    for i in range(1, rows + 1):
        data[arcs(f"1.3.6.1.2.1.2.2.1.2.{10100 + i}")] = rfc1902.OctetString(f"Gi1/0/{i}".encode())
        data[arcs(f"{IFX}.6.{10100 + i}")] = rfc1902.Counter64(2**63 + i)
    data[arcs("1.3.6.1.2.1.31.1.1.1.7.10101")] = rfc1902.Counter64(1)  # the next column
    return data


async def client_for(port: int, timeout_s: float = 0.3, retries: int = 1) -> tuple[PysnmpSession, BerClient]:
    session = PysnmpSession()
    client = await session.client(Target("127.0.0.1", port, timeout_s, retries), V2c(Secret(COMMUNITY)))
    assert isinstance(client, BerClient)
    return session, client


async def test_walk_get_and_subtree(agent_port: Any) -> None:
    agent = FakeAgent(switch_data(30))
    session, client = await client_for(await agent_port(agent))
    try:
        rows = await client.walk(f"{IFX}.6", 7)
        assert [o for o, _ in rows] == [f"{IFX}.6.{10100 + i}" for i in range(1, 31)]
        assert [v for _, v in rows] == [2**63 + i for i in range(1, 31)]
        assert all(type(v) is Counter64 for _, v in rows)
        assert [reps for _, reps in agent.requests] == [7] * 5  # 35 rows asked, the 31st ends it
        got = await client.get(["1.3.6.1.2.1.1.3.0", ".1.3.6.1.2.1.1.99.0"])
        assert got == {"1.3.6.1.2.1.1.3.0": 12345}
        assert await client.walk("1.3.6.1.2.1.99") == []  # endOfMibView at once
        assert "BerClient(127.0.0.1:" in repr(client)
    finally:
        session.close()


async def test_too_big_halves_max_repetitions(agent_port: Any) -> None:
    agent = FakeAgent(switch_data(10), too_big_above=6)
    session, client = await client_for(await agent_port(agent))
    try:
        rows = await client.walk(f"{IFX}.6", 25)
        assert len(rows) == 10
        assert [reps for _, reps in agent.requests] == [25, 12, 6, 6]
    finally:
        session.close()


async def test_a_lost_answer_is_retried_and_a_stale_one_ignored(agent_port: Any) -> None:
    def script(n: int, request_id: int, answer: bytes) -> list[bytes]:
        if n == 1:
            return []  # lost: the client resends after its timeout
        # a late answer to some earlier request first (unknown id), then the real one
        stale = response([("1.3.6.1.2.1.1.3.0", rfc1902.TimeTicks(1))], request_id=(request_id + 1000) % 2**31)
        return [stale, answer]

    agent = FakeAgent(switch_data(3), script=script)
    session, client = await client_for(await agent_port(agent), timeout_s=0.2, retries=1)
    try:
        assert await client.get(["1.3.6.1.2.1.1.3.0"]) == {"1.3.6.1.2.1.1.3.0": 12345}
        assert len(agent.requests) == 2
        assert agent.requests[0][0] == agent.requests[1][0]  # a retry resends the same request-id
    finally:
        session.close()


async def test_silence_is_a_timeout_naming_the_device_and_attempts(agent_port: Any) -> None:
    agent = FakeAgent(switch_data(3), script=lambda *_: [])
    port = await agent_port(agent)
    session, client = await client_for(port, timeout_s=0.1, retries=2)
    try:
        with pytest.raises(SnmpError) as caught:
            await client.walk(f"{IFX}.6")
        assert caught.value.kind == "timeout"
        assert f"127.0.0.1:{port}" in caught.value.message
        assert "3 attempt(s) of 0.1 s" in caught.value.message
        assert len(agent.requests) == 3
    finally:
        session.close()


async def test_a_wrong_community_times_out_and_never_shows(agent_port: Any) -> None:
    port = await agent_port(FakeAgent(switch_data(3)))
    async with PysnmpSession() as session:
        client = await session.client(Target("127.0.0.1", port, 0.1, 0), V2c(Secret("wrong-comm-77")))
        with pytest.raises(SnmpError) as caught:
            await client.get(["1.3.6.1.2.1.1.3.0"])
    assert caught.value.kind == "timeout"
    assert "wrong-comm-77" not in str(caught.value) and "wrong-comm-77" not in repr(client)


@pytest.mark.parametrize(
    ("garbage", "what"),
    [
        (lambda a: a[: len(a) // 2], "runs past the end"),
        (lambda a: a + b"\x00\x00", "octets after the message"),
        (lambda a: b"\x31" + a[1:], "tag 0x31"),
    ],
)
async def test_a_garbled_answer_fails_the_request_as_malformed(
    agent_port: Any, garbage: Callable[[bytes], bytes], what: str
) -> None:
    agent = FakeAgent(switch_data(3), script=lambda _n, _rid, answer: [garbage(answer)])
    port = await agent_port(agent)
    session, client = await client_for(port, timeout_s=2.0)
    try:
        with pytest.raises(SnmpError) as caught:
            await client.get(["1.3.6.1.2.1.1.3.0"])
        assert caught.value.kind == "malformed"
        assert what in caught.value.message
        assert f"127.0.0.1:{port}" in caught.value.message
        assert COMMUNITY not in str(caught.value)
        assert len(agent.requests) == 1  # failed at once, not after the timeout
    finally:
        session.close()


async def test_answers_that_break_the_walk_contract(agent_port: Any) -> None:
    data = switch_data(3)
    root = f"{IFX}.6"

    def going_back(_n: int, request_id: int, _answer: bytes) -> list[bytes]:
        return [
            response([(f"{root}.10102", rfc1902.Counter64(1)), (f"{root}.10101", rfc1902.Counter64(1))], request_id)
        ]

    def wrong_name(_n: int, request_id: int, _answer: bytes) -> list[bytes]:
        return [response([("1.3.6.1.2.1.1.5.0", rfc1902.OctetString(b"x"))], request_id)]

    def null_value(_n: int, request_id: int, _answer: bytes) -> list[bytes]:
        return [response([(f"{root}.10101", rfc1902.Null(""))], request_id)]

    def empty(_n: int, request_id: int, _answer: bytes) -> list[bytes]:
        return [response([], request_id)]

    def no_such_name(_n: int, request_id: int, _answer: bytes) -> list[bytes]:
        return [response([(root, rfc1902.Null(""))], request_id, status=2, index=1)]

    cases: list[tuple[Any, str, str, str]] = [
        (going_back, "walk", "malformed", "not increasing"),
        (wrong_name, "get", "malformed", "answered 1.3.6.1.2.1.1.5.0 for 1.3.6.1.2.1.1.3.0"),
        (null_value, "walk", "malformed", "NULL"),
        (empty, "walk", "malformed", "empty GETBULK"),
        (no_such_name, "walk", "no_such", "noSuchName at " + root),
    ]
    for script, call, kind, what in cases:
        agent = FakeAgent(data, script=script)
        session, client = await client_for(await agent_port(agent))
        try:
            with pytest.raises(SnmpError) as caught:
                if call == "walk":
                    await client.walk(root)
                else:
                    await client.get(["1.3.6.1.2.1.1.3.0"])
            assert caught.value.kind == kind, script.__name__
            assert what in caught.value.message, (script.__name__, caught.value.message)
        finally:
            session.close()


async def test_a_closed_session_closes_its_sockets(agent_port: Any) -> None:
    port = await agent_port(FakeAgent(switch_data(1)))
    session, client = await client_for(port)
    session.close()
    with pytest.raises(SnmpError) as caught:
        await client.get(["1.3.6.1.2.1.1.3.0"])
    assert caught.value.kind == "error"


async def test_an_unresolvable_name_is_an_error() -> None:
    async with PysnmpSession() as session:
        with pytest.raises(SnmpError) as caught:
            await session.client(Target("no-such-host.invalid", 161), V2c(Secret(COMMUNITY)))
    assert caught.value.kind == "error"
    assert "no-such-host.invalid" in caught.value.message


def test_nothing_here_needs_pysnmp_for_v2c() -> None:
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from agent.snmp.client import PysnmpSession, Target, V2c, Secret\n"
        "async def main():\n"
        "    async with PysnmpSession() as s:\n"
        "        await s.client(Target('127.0.0.1', 9), V2c(Secret('x')))\n"
        "asyncio.run(main())\n"
        "print(any(m.startswith(('pysnmp', 'pyasn1')) for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"
