"""POST /api/v1/ingest — the agents' batches. Thin: authenticate, decode, check, store, acknowledge.

This is the hot path (a city's agents upload every few seconds), so it is served twice over the
same core, ``handle_ingest``:

* ``IngestFastPath`` — a plain ASGI shim in front of the FastAPI app that answers
  ``POST /api/v1/ingest`` itself. FastAPI's middleware and dependency machinery cost ~6 µs per
  sample here (≈0.7 ms per 120-sample request), more than decoding and storing together.
* the FastAPI route below — the same handler, which documents the endpoint in OpenAPI and serves
  it if the shim is not installed.

The acknowledgement is sent only after the store commits.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from centerwatch.i18n import pick_lang, t
from centerwatch.wire import Ack, Batch, ErrorBody, encode
from collector.api.deps import authenticate
from collector.context import AppContext, now_ms
from collector.errors import Rejected
from collector.ingest import check_batch, decode_batch, decompress

router = APIRouter()

PATH = "/api/v1/ingest"
_BATCH_SCHEMA = msgspec.json.schema(Batch)
_ACK_SCHEMA = msgspec.json.schema(Ack)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def read_limited(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejected("too_large", 413, limit=limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise Rejected("too_large", 413, limit=limit)
        parts.append(chunk)
    return b"".join(parts)


def _error(lang: str, exc: Rejected) -> tuple[int, bytes, dict[str, str]]:
    body = ErrorBody(error=exc.code, message=t(f"api.{exc.code}", lang, **exc.fields), where=exc.where)
    headers = {"www-authenticate": "Bearer"} if exc.status == 401 else {}
    return exc.status, encode(body), headers


async def handle_ingest(
    ctx: AppContext, headers: dict[str, str], chunks: AsyncIterator[bytes]
) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and extra headers for one upload. Never raises for bad input."""
    started = time.perf_counter()
    metrics = ctx.metrics
    lang = pick_lang(headers.get("accept-language"))
    try:
        agent = await authenticate(ctx, headers.get("authorization", ""))
        body = await read_limited(chunks, headers.get("content-length"), ctx.limits.max_body_bytes)
        raw = decompress(body, headers.get("content-encoding", ""), ctx.limits)
        batch = decode_batch(raw)
        now = now_ms()
        check_batch(batch, agent.id, now, ctx.limits)
        ack = await ctx.store.ingest(agent, batch, now)
    except Rejected as exc:
        metrics.batches.labels(result=exc.code).inc()
        return _error(lang, exc)
    metrics.batches_ok.inc()
    metrics.parts_stored.inc(ack.stored)
    metrics.parts_duplicate.inc(ack.duplicates)
    metrics.samples.inc(ack.samples)
    metrics.duration.observe(time.perf_counter() - started)
    return 200, encode(ack), {}


class IngestFastPath:
    """ASGI shim: ``POST /api/v1/ingest`` straight to ``handle_ingest``, the rest to ``app``."""

    def __init__(self, app: ASGIApp, ctx: AppContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        status, body, extra = await handle_ingest(self.ctx, headers, chunks())
        response_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        response_headers += [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    def __getattr__(self, name: str) -> Any:  # app.state, app.openapi(), … of the wrapped app
        return getattr(self.app, name)


@router.post(
    PATH,
    summary="Upload a batch of check results (wire schema v1)",
    description="Authorization: Bearer <agent token>. Body: a Batch, JSON, optionally gzip "
    "(Content-Encoding: gzip). Answered with an Ack once committed; a replayed part is "
    "acknowledged and not stored twice.",
    responses={200: {"content": {"application/json": {"schema": _ACK_SCHEMA}}}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}},
)
async def ingest(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    headers = {k.lower(): v for k, v in request.headers.items()}
    status, body, extra = await handle_ingest(ctx, headers, request.stream())
    return Response(body, status_code=status, media_type="application/json", headers=extra)
