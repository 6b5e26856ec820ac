"""POST /api/v1/enroll — an enrollment token (per center) is exchanged for an agent token."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from centerwatch.wire import SCHEMA_VERSION, EnrollRequest, EnrollResponse, encode
from collector.api.deps import Ctx
from collector.api.ingest import read_limited
from collector.auth import hash_token, new_agent_id, new_token
from collector.context import now_ms
from collector.errors import Rejected
from collector.store.base import AgentRecord

router = APIRouter()

_DECODER = msgspec.json.Decoder(EnrollRequest)


@router.post(
    "/api/v1/enroll",
    summary="Exchange a center's enrollment token for this agent's own token",
    responses={200: {"content": {"application/json": {"schema": msgspec.json.schema(EnrollResponse)}}}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": msgspec.json.schema(EnrollRequest)}},
        }
    },
)
async def enroll(request: Request, ctx: Ctx) -> Response:
    try:
        body = await read_limited(request.stream(), request.headers.get("content-length"), 64 * 1024)
    except Rejected as exc:
        raise Rejected("too_large", 413, limit=64 * 1024) from exc
    try:
        req = _DECODER.decode(body)
    except msgspec.DecodeError as exc:
        raise Rejected("bad_request", 400, detail=str(exc)) from exc
    if req.v != SCHEMA_VERSION:
        raise Rejected("bad_version", 400, got=req.v, supported=SCHEMA_VERSION)
    host = req.hostname.strip().lower()
    token = new_token("cwa")
    now = now_ms()
    record = AgentRecord(new_agent_id(), "", host, req.agent_version, req.machine_id, now, None, False)
    agent = await ctx.store.enroll(hash_token(req.token), record, hash_token(token), now)
    if agent is None:
        ctx.metrics.enrollments.labels(result="refused").inc()
        raise Rejected("enroll_refused", 403)
    ctx.metrics.enrollments.labels(result="ok").inc()
    response = EnrollResponse(SCHEMA_VERSION, agent.id, token, agent.center, agent.host)
    return Response(encode(response), media_type="application/json")
