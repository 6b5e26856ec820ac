"""Throughput test endpoints: agents download from and upload to the collector, capped in bytes.

Only enrolled agents may use them (they cost bandwidth on the government WAN); the agent's
throughput check runs them inside the maintenance window.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from collector.api.deps import Agent
from collector.errors import Rejected

router = APIRouter()

#: The most one test may move in either direction.
MAX_BYTES = 256 * 1024 * 1024
_BLOCK = os.urandom(64 * 1024)  # incompressible, so no proxy or link compression flatters the figure


@router.get("/api/v1/speedtest/download", summary="Stream N incompressible bytes to an agent")
async def download(agent: Agent, size: int = Query(alias="bytes", ge=1, le=MAX_BYTES)) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        left = size
        while left > 0:
            chunk = _BLOCK if left >= len(_BLOCK) else _BLOCK[:left]
            left -= len(chunk)
            yield chunk

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={"Content-Length": str(size), "Cache-Control": "no-store"},
    )


@router.post("/api/v1/speedtest/upload", summary="Receive and discard an agent's upload; report what arrived")
async def upload(request: Request, agent: Agent) -> dict[str, Any]:
    received = 0
    started = time.perf_counter()
    async for chunk in request.stream():
        received += len(chunk)
        if received > MAX_BYTES:
            raise Rejected("too_large", 413, limit=MAX_BYTES)
    return {"bytes": received, "seconds": time.perf_counter() - started, "agent": agent.id}
