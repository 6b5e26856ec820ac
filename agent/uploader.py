"""Sends spooled check results to the collector and deletes them only once acknowledged.

* Batches are built by splicing the spooled JSON (no decode/re-encode), gzip-compressed.
* The idempotency key of each part is ``(agent_id, seq)``, so a retry after a lost
  acknowledgement is stored once however the parts are regrouped.
* Network errors, 5xx and 429 back off exponentially with full jitter; 401/403 wait at the
  longest back-off (re-enrolment is a human decision); a batch refused for its content is split
  in halves until the one bad part is found, which is then dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import msgspec

from agent.clock import wall_ms
from agent.config import UploadConfig
from agent.errors import Retryable, UploadRejected
from agent.spool import Entry, Spool
from centerwatch.wire import ACK_DECODER, SCHEMA_VERSION, Ack, ErrorBody

log = logging.getLogger("centerwatch.agent.uploader")

_ERROR_DECODER = msgspec.json.Decoder(ErrorBody)


def build_batch(agent_id: str, sent_ms: int, entries: list[Entry]) -> bytes:
    """The Batch JSON from spooled ``PartBody`` objects: ``{"seq":N,`` + body minus its ``{``."""
    head = b'{"v":%d,"agent_id":%s,"sent_ms":%d,"parts":[' % (
        SCHEMA_VERSION,
        msgspec.json.encode(agent_id),
        sent_ms,
    )
    parts = [b'{"seq":%d,%s' % (e.seq, e.payload[1:]) for e in entries]
    return head + b",".join(parts) + b"]}"


@dataclass
class UploadStats:
    batches_ok: int = 0
    batches_failed: int = 0
    parts_sent: int = 0
    parts_rejected: int = 0
    last_success_ms: int | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


@dataclass
class Uploader:
    spool: Spool
    client: httpx.AsyncClient
    url: str
    agent_id: str
    token: str
    config: UploadConfig
    clock_ms: Callable[[], int] = wall_ms
    rng: random.Random = field(default_factory=random.Random)
    stats: UploadStats = field(default_factory=UploadStats)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def post(self, entries: list[Entry]) -> Ack:
        body = build_batch(self.agent_id, self.clock_ms(), entries)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if self.config.gzip:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        try:
            response = await self.client.post(
                self.url.rstrip("/") + "/api/v1/ingest",
                content=body,
                headers=headers,
                timeout=self.config.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 200:
            try:
                return ACK_DECODER.decode(response.content)
            except msgspec.DecodeError as exc:
                raise Retryable(f"unreadable acknowledgement: {exc}") from exc
        ours = True
        try:
            err = _ERROR_DECODER.decode(response.content)
            code, message = err.error, err.message + (f" ({err.where})" if err.where else "")
        except msgspec.DecodeError:
            ours = False  # a proxy's or load balancer's page, not the collector's verdict
            code, message = "http_error", response.text[:200]
        if response.status_code in (401, 403):
            raise Retryable(f"HTTP {response.status_code} {code}: {message}", auth=True)
        if not ours or response.status_code not in (400, 413, 415, 422):
            # Only the collector's own refusal of the content drops data; anything else may pass.
            raise Retryable(f"HTTP {response.status_code} {code}: {message}")
        raise UploadRejected(response.status_code, code, message)

    async def send(self, entries: list[Entry]) -> int:
        """Send, bisecting a refused batch down to the parts the collector will never take.

        Returns how many parts left the spool (acknowledged or refused for good)."""
        try:
            ack = await self.post(entries)
        except UploadRejected as exc:
            if len(entries) == 1:
                log.error("collector refused part seq=%d (%s); dropping it", entries[0].seq, exc)
                self.spool.reject([entries[0].seq])
                self.stats.parts_rejected += 1
                return 1
            half = len(entries) // 2
            return await self.send(entries[:half]) + await self.send(entries[half:])
        self.spool.delete(ack.seqs)
        self.stats.parts_sent += len(ack.seqs)
        return len(ack.seqs)

    async def upload_once(self) -> int:
        """Upload one batch if any is waiting; returns how many parts left the spool."""
        entries = self.spool.select(self.config.max_batch_bytes, self.config.fresh_share)
        if not entries:
            return 0
        self.spool.hold([e.seq for e in entries])  # not dropped for space while the collector stores them
        try:
            moved = await self.send(entries)
        finally:
            self.spool.release()
        self.stats.batches_ok += 1
        self.stats.last_success_ms = self.clock_ms()
        self.stats.consecutive_failures = 0
        self.stats.last_error = None
        return moved

    def backoff_s(self, auth: bool) -> float:
        cfg = self.config
        if auth:
            return cfg.backoff_max_s
        ceiling = min(cfg.backoff_max_s, cfg.backoff_min_s * 2 ** min(self.stats.consecutive_failures, 30))
        return self.rng.uniform(cfg.backoff_min_s, max(cfg.backoff_min_s, ceiling))

    async def run(self) -> None:
        while True:
            try:
                moved = await self.upload_once()
            except Retryable as exc:
                self.stats.batches_failed += 1
                self.stats.consecutive_failures += 1
                self.stats.last_error = str(exc)
                delay = self.backoff_s(exc.auth)
                log.warning("upload failed (%s); retrying in %.1f s, %d parts waiting", exc, delay, len(self.spool))
                await asyncio.sleep(delay)
                continue
            if moved and len(self.spool):
                continue  # a backlog: keep draining
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.config.interval_s)

    async def flush(self, deadline_s: float) -> None:
        """Best effort on shutdown: what is not sent stays in the spool for next time."""
        try:
            async with asyncio.timeout(deadline_s):
                while len(self.spool) and await self.upload_once():
                    pass
        except (TimeoutError, Retryable) as exc:
            log.info("shutdown flush stopped (%s); %d parts stay spooled", exc or "deadline", len(self.spool))
