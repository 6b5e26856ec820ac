"""The uploader against httpx.MockTransport and a real spool in tmp_path."""

from __future__ import annotations

import asyncio
import gzip
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from agent.config import UploadConfig
from agent.errors import Retryable, UploadRejected
from agent.scheduler import PartBody
from agent.spool import Entry, Spool
from agent.uploader import Uploader, build_batch
from centerwatch.wire import BATCH_DECODER, SCHEMA_VERSION, Ack, Batch, Sample

URL = "http://collector.test/"
TOKEN = "cwa_secret-token"
AGENT = "agent-7"
NOW_MS = 1_700_000_000_000

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.db", 1 << 30, 30 * 86_400_000)
    yield s
    s.close()


def body(i: int, *, samples: int = 1) -> bytes:
    part = PartBody(
        check="host",
        started_ms=NOW_MS + i,
        duration_s=0.01,
        ok=True,
        samples=[Sample("host_cpu_usage_ratio", {"cpu": str(n)}, 0.5, NOW_MS + i) for n in range(samples)],
    )
    return msgspec.json.encode(part)


def fill(spool: Spool, n: int, *, samples: int = 1) -> list[int]:
    return [spool.append(body(i, samples=samples), NOW_MS + i) for i in range(n)]


def decode_request(request: httpx.Request) -> Batch:
    raw = request.content
    if request.headers.get("content-encoding") == "gzip":
        raw = gzip.decompress(raw)
    return BATCH_DECODER.decode(raw)


def ack(seqs: list[int]) -> httpx.Response:
    return httpx.Response(200, content=msgspec.json.encode(Ack(1, seqs, len(seqs), 0, len(seqs))))


def ack_all(request: httpx.Request) -> httpx.Response:
    return ack([p.seq for p in decode_request(request).parts])


def error(status: int, code: str, message: str = "no") -> httpx.Response:
    return httpx.Response(status, json={"error": code, "message": message})


def config(**overrides: object) -> UploadConfig:
    defaults: dict[str, object] = {"interval_s": 5.0, "backoff_min_s": 1.0, "backoff_max_s": 300.0}
    return UploadConfig(**{**defaults, **overrides})  # type: ignore[arg-type]


def uploader(spool: Spool, client: httpx.AsyncClient, cfg: UploadConfig | None = None) -> Uploader:
    return Uploader(spool, client, URL, AGENT, TOKEN, cfg or config(), clock_ms=lambda: NOW_MS, rng=random.Random(1))


async def eventually(condition: Callable[[], bool], limit_s: float = 1.0) -> None:
    """Poll ``condition`` every 5 ms until it holds; fail after ``limit_s``."""
    for _ in range(int(limit_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"condition not met within {limit_s} s")


def client_for(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# -- the batch ---------------------------------------------------------------------------------------


def test_build_batch_decodes_with_the_wire_schema(spool: Spool) -> None:
    seqs = fill(spool, 3, samples=2)
    raw = build_batch(AGENT, NOW_MS, spool.select(1 << 20, 0.25))
    batch = BATCH_DECODER.decode(raw)
    assert (batch.v, batch.agent_id, batch.sent_ms) == (SCHEMA_VERSION, AGENT, NOW_MS)
    assert [p.seq for p in batch.parts] == seqs
    first = batch.parts[0]
    assert (first.check, first.started_ms, first.ok, first.subject, first.error) == ("host", NOW_MS, True, "host", None)
    assert first.samples == [Sample("host_cpu_usage_ratio", {"cpu": str(n)}, 0.5, NOW_MS) for n in range(2)]


def test_build_batch_of_failed_run_and_quoted_agent_id() -> None:
    failed = msgspec.json.encode(PartBody("dns", NOW_MS, 2.0, False, 'timeout "after" 2 s'))
    batch = BATCH_DECODER.decode(build_batch('a"b', NOW_MS, [Entry(5, NOW_MS, failed)]))
    assert batch.agent_id == 'a"b'
    assert batch.parts[0].seq == 5
    assert (batch.parts[0].ok, batch.parts[0].error, batch.parts[0].samples) == (False, 'timeout "after" 2 s', [])


# -- one post ----------------------------------------------------------------------------------------


async def test_ack_deletes_exactly_the_acked_seqs(spool: Spool) -> None:
    seqs = fill(spool, 4)
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return ack([seqs[0], seqs[2]])  # the collector vouches for two parts only

    async with client_for(handler) as client:
        up = uploader(spool, client)
        moved = await up.upload_once()
    assert moved == 2
    assert [e.seq for e in spool.select(1 << 20, 0.0)] == [seqs[1], seqs[3]]
    assert up.stats.parts_sent == 2
    assert (up.stats.batches_ok, up.stats.last_success_ms, up.stats.consecutive_failures) == (1, NOW_MS, 0)
    [request] = requests
    assert request.method == "POST"
    assert str(request.url) == "http://collector.test/api/v1/ingest"


async def test_request_is_gzipped_json_with_bearer_token(spool: Spool) -> None:
    seqs = fill(spool, 2)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ack_all(request)

    async with client_for(handler) as client:
        await uploader(spool, client).upload_once()
    [request] = seen
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"
    assert request.content[:2] == b"\x1f\x8b"
    batch = BATCH_DECODER.decode(gzip.decompress(request.content))
    assert [p.seq for p in batch.parts] == seqs
    assert len(spool) == 0


async def test_gzip_off_sends_plain_json(spool: Spool) -> None:
    fill(spool, 1)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ack_all(request)

    async with client_for(handler) as client:
        await uploader(spool, client, config(gzip=False)).upload_once()
    assert "content-encoding" not in seen[0].headers
    assert BATCH_DECODER.decode(seen[0].content).agent_id == AGENT


async def test_empty_spool_sends_nothing(spool: Spool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing to send")

    async with client_for(handler) as client:
        assert await uploader(spool, client).upload_once() == 0


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(lambda: error(500, "internal"), id="500"),
        pytest.param(lambda: httpx.Response(502, text="<html>Bad Gateway</html>"), id="502-html"),
        pytest.param(lambda: error(429, "busy"), id="429"),
        pytest.param(lambda: error(408, "slow"), id="408"),
        pytest.param(lambda: httpx.Response(200, content=b"not an ack"), id="200-unreadable"),
    ],
)
async def test_server_trouble_is_retryable_and_keeps_entries(
    spool: Spool, response: Callable[[], httpx.Response]
) -> None:
    seqs = fill(spool, 3)
    async with client_for(lambda request: response()) as client:
        up = uploader(spool, client)
        with pytest.raises(Retryable) as info:
            await up.upload_once()
    assert info.value.auth is False
    assert [e.seq for e in spool.select(1 << 20, 0.0)] == seqs
    assert spool.stats().rejected_entries == 0


async def test_connection_error_is_retryable_and_keeps_entries(spool: Spool) -> None:
    seqs = fill(spool, 2)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with client_for(handler) as client:
        with pytest.raises(Retryable, match=r"^ConnectError: connection refused$") as info:
            await uploader(spool, client).upload_once()
    assert info.value.auth is False
    assert len(spool) == len(seqs)


@pytest.mark.parametrize(("status", "code"), [(401, "unauthorized"), (401, "revoked"), (403, "wrong_agent")])
async def test_auth_refusal_is_retryable_at_the_longest_backoff(spool: Spool, status: int, code: str) -> None:
    fill(spool, 2)
    async with client_for(lambda request: error(status, code, "who are you")) as client:
        up = uploader(spool, client, config(backoff_min_s=0.5, backoff_max_s=42.0))
        with pytest.raises(Retryable) as info:
            await up.upload_once()
    assert info.value.auth is True
    assert str(info.value) == f"HTTP {status} {code}: who are you"
    assert up.backoff_s(info.value.auth) == 42.0
    assert len(spool) == 2
    assert spool.stats().rejected_entries == 0


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_refusal_without_json_body_keeps_entries(spool: Spool, status: int) -> None:
    fill(spool, 2)
    async with client_for(lambda request: httpx.Response(status, text="<html>Unauthorized</html>")) as client:
        with pytest.raises(Retryable) as info:
            await uploader(spool, client).upload_once()
    assert info.value.auth is True
    assert len(spool) == 2


async def test_post_raises_upload_rejected_for_content_refusal(spool: Spool) -> None:
    fill(spool, 1)
    entries = spool.select(1 << 20, 0.0)
    refusal = httpx.Response(400, json={"error": "bad_name", "message": "bad label", "where": "parts[0]"})
    async with client_for(lambda request: refusal) as client:
        with pytest.raises(UploadRejected) as info:
            await uploader(spool, client).post(entries)
    assert (info.value.status, info.value.code) == (400, "bad_name")
    assert str(info.value) == "HTTP 400 bad_name: bad label (parts[0])"


async def test_bisection_drops_only_the_refused_part(spool: Spool) -> None:
    seqs = fill(spool, 4)
    poison = seqs[2]
    batches: list[list[int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        parts = [p.seq for p in decode_request(request).parts]
        batches.append(parts)
        if poison in parts:
            return error(400, "bad_name", "invalid label name")
        return ack(parts)

    async with client_for(handler) as client:
        up = uploader(spool, client)
        await up.upload_once()
    assert len(spool) == 0
    assert spool.stats().rejected_entries == 1
    assert (up.stats.parts_sent, up.stats.parts_rejected) == (3, 1)
    assert batches == [seqs, seqs[:2], seqs[2:], [seqs[2]], [seqs[3]]]


async def test_retryable_during_bisection_keeps_unsent_parts(spool: Spool) -> None:
    seqs = fill(spool, 4)
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        parts = [p.seq for p in decode_request(request).parts]
        if calls == 1:
            return error(400, "bad_name")
        if calls == 2:
            return ack(parts)
        return error(503, "unavailable")

    async with client_for(handler) as client:
        with pytest.raises(Retryable):
            await uploader(spool, client).upload_once()
    assert [e.seq for e in spool.select(1 << 20, 0.0)] == seqs[2:]
    assert spool.stats().rejected_entries == 0


# -- back-off ----------------------------------------------------------------------------------------


class TopRng(random.Random):
    """Always draws the top of the range, to read the back-off ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_backoff_grows_to_the_ceiling_and_stays_within_bounds(spool: Spool) -> None:
    async with client_for(ack_all) as client:
        up = uploader(spool, client, config(backoff_min_s=0.5, backoff_max_s=30.0))
        up.rng = TopRng()
        ceilings = []
        for failures in range(10):
            up.stats.consecutive_failures = failures
            ceilings.append(up.backoff_s(auth=False))
        assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
        up.rng = random.Random(7)
        for failures in [*range(40), 1_000]:
            up.stats.consecutive_failures = failures
            for _ in range(20):
                assert 0.5 <= up.backoff_s(auth=False) <= 30.0
        assert up.backoff_s(auth=True) == 30.0


async def test_run_backs_off_after_failures_and_counts_them(spool: Spool) -> None:
    fill(spool, 2)
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return error(503, "unavailable") if calls <= 2 else ack_all(request)

    async with client_for(handler) as client:
        up = uploader(spool, client, config(backoff_min_s=0.01, backoff_max_s=0.02, interval_s=10.0))
        task = asyncio.create_task(up.run())
        try:
            await eventually(lambda: len(spool) == 0)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert calls == 3
    assert (up.stats.batches_failed, up.stats.batches_ok, up.stats.consecutive_failures) == (2, 1, 0)
    assert up.stats.last_error is None


# -- the loop ----------------------------------------------------------------------------------------


async def test_run_drains_a_backlog_of_several_batches_then_waits(spool: Spool) -> None:
    seqs = fill(spool, 30, samples=3)  # ~ 250 bytes each; 1000-byte batches
    batches: list[list[int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        parts = [p.seq for p in decode_request(request).parts]
        batches.append(parts)
        return ack(parts)

    async with client_for(handler) as client:
        up = uploader(spool, client, config(max_batch_bytes=1_000, interval_s=10.0))
        task = asyncio.create_task(up.run())
        try:
            await eventually(lambda: len(spool) == 0)
            sent = len(batches)
            await asyncio.sleep(0.05)
            assert len(batches) == sent  # empty spool: waiting for the interval, not polling
            assert not task.done()
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert len(batches) > 1
    assert sorted(s for b in batches for s in b) == seqs
    assert all(b == sorted(b) for b in batches)
    assert up.stats.parts_sent == 30


async def test_wake_sends_new_entries_before_the_interval(spool: Spool) -> None:
    batches: list[list[int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        parts = [p.seq for p in decode_request(request).parts]
        batches.append(parts)
        return ack(parts)

    async with client_for(handler) as client:
        up = uploader(spool, client, config(interval_s=10.0))
        task = asyncio.create_task(up.run())
        try:
            await asyncio.sleep(0.01)
            [seq] = fill(spool, 1)
            up.wake.set()
            await eventually(lambda: len(spool) == 0)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert batches == [[seq]]


async def test_flush_sends_what_it_can_and_swallows_retryable(spool: Spool) -> None:
    fill(spool, 3)
    async with client_for(lambda request: error(503, "unavailable")) as client:
        await uploader(spool, client).flush(0.5)
    assert len(spool) == 3
    async with client_for(ack_all) as client:
        await uploader(spool, client).flush(0.5)
    assert len(spool) == 0
