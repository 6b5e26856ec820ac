"""The DNS check against a real UDP responder on 127.0.0.1 written here; nothing leaves loopback."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from agent.catalog import load_catalog
from agent.checks import dns
from agent.checks.base import CheckContext, Observations
from agent.config import AgentConfig, check_specs
from agent.errors import ConfigError
from centerwatch.wire import BATCH_DECODER, Batch, Part

NOW_MS = 1_795_900_000_000


# --- a scriptable resolver --------------------------------------------------------------------------


def _rr(rtype: int, rdata: bytes, name: bytes = b"\xc0\x0c") -> bytes:
    return name + struct.pack("!HHIH", rtype, 1, 60, len(rdata)) + rdata


def _a(address: str) -> bytes:
    return _rr(1, socket.inet_pton(socket.AF_INET, address))


def _reply(query: bytes, rcode: int = 0, answers: tuple[bytes, ...] = (), flags: int = 0x8180) -> bytes:
    qid = query[:2]
    header = qid + struct.pack("!5H", flags | rcode, 1, len(answers), 0, 0)
    return header + query[12:] + b"".join(answers)


def _respond(query: bytes, seen: int) -> bytes | None:
    """The reply for a query, chosen by the first label of its name; None: stay silent."""
    mode = query[13 : 13 + query[12]].decode()
    match mode:
        case "ok":
            return _reply(query, answers=(_a("192.0.2.1"),))
        case "multi":
            return _reply(query, answers=(_a("192.0.2.1"), _a("192.0.2.2")))
        case "wrong":
            return _reply(query, answers=(_a("198.51.100.7"),))
        case "servfail":
            return _reply(query, rcode=2)
        case "nxdomain":
            return _reply(query, rcode=3)
        case "refused":
            return _reply(query, rcode=5)
        case "formerr":
            return _reply(query, rcode=1)
        case "empty":
            return _reply(query)
        case "cname":  # cname.test CNAME edge.test; edge.test A 192.0.2.9 (names compressed)
            test_at = 12 + 1 + len(mode)  # the "test" label of the question
            cname = _rr(5, b"\x04edge" + struct.pack("!H", 0xC000 | test_at))
            edge_at = len(query) + 2 + 10  # the CNAME's data: "edge" + pointer
            target = _rr(1, socket.inet_pton(socket.AF_INET, "192.0.2.9"), name=struct.pack("!H", 0xC000 | edge_at))
            return _reply(query, answers=(cname, target))
        case "aaaa":
            return _reply(query, answers=(_rr(28, socket.inet_pton(socket.AF_INET6, "2001:db8::1")),))
        case "garbage":
            return b"\x13\x37 this is not dns at all"
        case "truncated":  # a correct reply cut in the middle of its answer
            return _reply(query, answers=(_a("192.0.2.1"),))[:-3]
        case "tc":
            return _reply(query, flags=0x8380)
        case "loop":  # the answer's name is a pointer to itself
            full = _reply(query)
            return _reply(query, answers=(_rr(1, b"\x00\x00\x00\x01", name=struct.pack("!H", 0xC000 | len(full))),))
        case "other":  # an answer to a question we did not ask
            other = query[:12] + b"\x09elsewhere\x04test\x00" + query[-4:]
            return _reply(other, answers=(_a("192.0.2.1"),))
        case "late":  # the first query is lost, the retry answered
            return _reply(query, answers=(_a("192.0.2.1"),)) if seen >= 2 else None
        case _:  # "silent"
            return None


class Responder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.queries: Counter[str] = Counter()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        mode = data[13 : 13 + data[12]].decode()
        self.queries[mode] += 1
        answer = _respond(data, self.queries[mode])
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


@pytest.fixture
async def responder() -> AsyncIterator[tuple[Responder, str]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Responder, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    yield protocol, f"127.0.0.1:{port}"
    transport.close()


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(config: dns.Config) -> Observations:
    return await dns.collect(CheckContext("dns", config, lambda: NOW_MS))


def by_target(obs: Observations, name: str) -> dict[str, float]:
    return {s.labels["target"]: s.value for s in obs.samples if s.name == name}


def reasons(obs: Observations) -> dict[str, str]:
    return {s.labels["target"]: s.labels["reason"] for s in obs.samples if s.name == "probe_failure_info"}


# --- classification ---------------------------------------------------------------------------------

CASES = {
    # target: (qname, qtype, expect, reason or None)
    "ok": ("ok.test", "A", (), None),
    "ok-expected": ("ok.test", "A", ("192.0.2.1",), None),
    "multi": ("multi.test", "A", ("192.0.2.2", "192.0.2.1"), None),
    "cname": ("cname.test", "A", ("192.0.2.9",), None),
    "aaaa": ("aaaa.test", "AAAA", ("2001:db8:0::1",), None),
    "late": ("late.test", "A", (), None),
    "wrong": ("wrong.test", "A", ("192.0.2.1",), "wrong_answer"),
    "partly-wrong": ("multi.test", "A", ("192.0.2.1",), "wrong_answer"),
    "servfail": ("servfail.test", "A", (), "servfail"),
    "nxdomain": ("nxdomain.test", "A", (), "nxdomain"),
    "refused": ("refused.test", "A", (), "refused"),
    "formerr": ("formerr.test", "A", (), "error"),
    "empty": ("empty.test", "A", (), "no_answer"),
    "aaaa-for-a": ("aaaa.test", "A", (), "no_answer"),
    "garbage": ("garbage.test", "A", (), "malformed"),
    "truncated": ("truncated.test", "A", (), "malformed"),
    "tc": ("tc.test", "A", (), "malformed"),
    "loop": ("loop.test", "A", (), "malformed"),
    "other": ("other.test", "A", (), "malformed"),
    "silent": ("silent.test", "A", (), "timeout"),
}


async def test_every_outcome_is_classified_and_none_hides_another(responder: tuple[Responder, str]) -> None:
    protocol, resolver = responder
    queries: list[dns.Query] = [
        dns.Query(name, resolver, qtype, expect, target=target)  # type: ignore[arg-type]
        for target, (name, qtype, expect, _) in CASES.items()
    ]
    queries.append(dns.Query("ok.test", f"127.0.0.1:{closed_udp_port()}", target="closed", uplink="lan"))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    obs = await run(dns.Config(tuple(queries), attempt_timeout_s=0.15))
    elapsed = loop.time() - t0

    expected = {t: r for t, (_, _, _, r) in CASES.items() if r} | {"closed": "error"}
    assert reasons(obs) == expected
    success = by_target(obs, "probe_success")
    assert success == {t: 0.0 if t in expected else 1.0 for t in [*CASES, "closed"]}
    # concurrently: the silent resolver's two attempts bound the whole run
    assert 0.3 <= elapsed < 1.0
    assert protocol.queries["silent"] == 2 and protocol.queries["late"] == 2 and protocol.queries["ok"] == 2

    answers = by_target(obs, "probe_dns_answers")
    assert answers["ok"] == 1 and answers["multi"] == 2 and answers["cname"] == 1 and answers["empty"] == 0
    assert answers["servfail"] == 0 and "garbage" not in answers and "silent" not in answers
    lookup = by_target(obs, "probe_dns_lookup_seconds")
    assert 0 < lookup["ok"] < 0.15 and lookup["late"] >= 0.15  # the retry is part of the lookup
    assert "silent" not in lookup and "truncated" not in lookup and "nxdomain" in lookup
    durations = by_target(obs, "probe_duration_seconds")
    assert durations["silent"] >= 0.3 and all(d > 0 for d in durations.values())

    events = {e.labels["target"]: e for e in obs.events}
    assert set(events) == set(expected)
    assert all(e.kind == "probe.failed" and e.severity == "warning" for e in events.values())
    assert events["closed"].labels == {"probe": "dns", "target": "closed", "uplink": "lan"}
    assert "ConnectionRefusedError" in events["closed"].message
    assert "NXDOMAIN" in events["nxdomain"].message and "FORMERR" in events["formerr"].message
    assert "198.51.100.7" in events["wrong"].message and "192.0.2.2" in events["partly-wrong"].message
    assert "TC flag" in events["tc"].message and "loops" in events["loop"].message
    assert "2 queries" in events["silent"].message
    assert_cataloged(obs, "dns")


async def test_default_target_label_and_samples_are_cataloged(responder: tuple[Responder, str]) -> None:
    _, resolver = responder
    queries = (dns.Query("ok.test", resolver), dns.Query("nxdomain.test", resolver, uplink="wan"))
    obs = await run(dns.Config(queries, attempt_timeout_s=0.5))

    assert {s.labels["target"] for s in obs.samples} == {f"ok.test@{resolver}", f"nxdomain.test@{resolver}"}
    assert_cataloged(obs, "dns")


def assert_cataloged(obs: Observations, check: str) -> None:
    """Every sample is in agent/metrics.csv, in range, once per series, and valid on the wire."""
    catalog = load_catalog()
    for sample in obs.samples:
        entry = catalog.get(sample.name)
        assert entry is not None, f"{sample.name} is not in agent/metrics.csv"
        assert entry.type == "gauge" and math.isfinite(sample.value)
        if entry.unit == "boolean":
            assert sample.value in (0.0, 1.0), sample
        assert sample.labels["probe"] == check and sample.labels["uplink"] in ("internet", "wan", "lan")
    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in obs.samples]
    assert len(keys) == len(set(keys)), "a series is reported twice in one run"
    part = Part(1, check, NOW_MS, 0.01, True, samples=obs.samples, events=obs.events)
    batch = Batch(v=1, agent_id="a1", sent_ms=NOW_MS, parts=[part])
    assert BATCH_DECODER.decode(msgspec.json.encode(batch)) == batch


async def test_no_queries_no_samples() -> None:
    obs = await run(dns.Config())
    assert obs.samples == [] and obs.events == [] and obs.ts_ms == NOW_MS


async def test_ipv6_resolver(responder: tuple[Responder, str]) -> None:
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.create_datagram_endpoint(Responder, local_addr=("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        port = transport.get_extra_info("sockname")[1]
        obs = await run(dns.Config((dns.Query("ok.test", f"[::1]:{port}", target="v6"),), attempt_timeout_s=0.5))
    finally:
        transport.close()
    assert by_target(obs, "probe_success") == {"v6": 1.0}


# --- the wire format --------------------------------------------------------------------------------


def test_query_bytes() -> None:
    packet = dns.build_query(0xBEEF, "Www.Example.ORG.", "AAAA")
    assert packet == (b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03Www\x07Example\x03ORG\x00\x00\x1c\x00\x01")
    assert dns.encode_name("bộ.vn") == b"\x09xn--b-8xm\x02vn\x00"


def test_the_question_matches_case_insensitively() -> None:
    query = dns.build_query(7, "OK.test", "A")
    reply = _reply(dns.build_query(7, "ok.TEST", "A"), answers=(_a("192.0.2.1"),))
    assert dns.parse_reply(reply, 7, "OK.test", "A") == dns.Reply(0, ["192.0.2.1"], 1)
    with pytest.raises(dns.Malformed, match="id"):
        dns.parse_reply(_reply(query), 8, "OK.test", "A")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x00\x07\x80", "shorter than a DNS header"),
        (b"\x00\x07\x01\x00" + bytes(8), "not a response"),
        (b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x02ok", "past the end"),
        (b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01", "points forward"),
        (b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x80ok", "label type"),
        (b"\x00\x07\x81\x80\x00\x02\x00\x00\x00\x00\x00\x00", "2 questions"),
    ],
)
def test_malformed_replies(data: bytes, match: str) -> None:
    with pytest.raises(dns.Malformed, match=match):
        dns.parse_reply(data, 7, "ok.test", "A")


def test_mutated_replies_never_raise_anything_but_malformed() -> None:
    query = dns.build_query(7, "cname.test", "A")
    good = _respond(query, 1)
    assert good is not None and dns.parse_reply(good, 7, "cname.test", "A").addresses == ["192.0.2.9"]
    rng = random.Random(1)
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[: rng.randint(0, len(data))] if rng.random() < 0.3 else data
        with contextlib.suppress(dns.Malformed):
            dns.parse_reply(bytes(data), 7, "cname.test", "A")


# --- configuration ----------------------------------------------------------------------------------


def specs(checks: dict[str, Any]) -> list[Any]:
    return check_specs(AgentConfig("http://127.0.0.1:1", "/tmp/x", checks=checks), "agent.yaml")


def test_config_from_yaml_shape() -> None:
    (spec,) = specs({"dns": {"interval_s": 30, "queries": [{"name": "a.vn", "resolver": "[2001:db8::53]:5353"}]}})
    assert spec.config == dns.Config((dns.Query("a.vn", "[2001:db8::53]:5353"),))
    assert dns.resolver_address("[2001:db8::53]:5353") == ("2001:db8::53", 5353)
    assert dns.resolver_address("2001:db8::53") == ("2001:db8::53", 53)
    assert dns.resolver_address("192.0.2.53:5353") == ("192.0.2.53", 5353)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"name": "a.vn", "resolver": "dns.google"}, "checks.dns.queries[0]: resolver 'dns.google': expected an IP"),
        ({"name": "a.vn", "resolver": "192.0.2.1:0"}, "the port must be 1..65535"),
        ({"name": "a..vn", "resolver": "192.0.2.1"}, "a label has 1 to 63 bytes"),
        ({"name": "a.vn", "resolver": "192.0.2.1", "qtype": "MX"}, "checks.dns.queries[0].qtype: invalid enum"),
        ({"name": "a.vn", "resolver": "192.0.2.1", "expect": ["x"]}, "expect: 'x' is not an IP address"),
        ({"name": "a.vn", "resolver": "192.0.2.1", "expect": ["::1"]}, "not an IPv4 address"),
        ({"name": "a.vn", "resolver": "192.0.2.1", "port": 53}, "checks.dns.queries[0].port: unknown key"),
    ],
)
def test_invalid_queries_name_the_fault(query: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError, match=r"^agent\.yaml: checks\.dns") as info:
        specs({"dns": {"queries": [query]}})
    assert error.lower() in str(info.value).lower()


def test_duplicate_targets_are_refused() -> None:
    q = {"name": "a.vn", "resolver": "192.0.2.1"}
    with pytest.raises(ConfigError, match=r"two queries have the target 'a\.vn@192\.0\.2\.1'"):
        specs({"dns": {"queries": [q, q]}})
