"""Read API: agents, centers, latest values, facts, events; /metrics and /healthz."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collector.api.deps import Ctx
from collector.context import now_ms
from collector.errors import Rejected
from collector.fleet import agent_state, center_status
from collector.metrics import FleetSnapshot

router = APIRouter()


@router.get("/healthz", summary="Liveness and store reachability")
async def healthz(ctx: Ctx) -> dict[str, Any]:
    counts = await ctx.store.counts()
    return {"status": "ok", **counts}


@router.get("/metrics", summary="Prometheus metrics of the collector and the fleet")
async def metrics(ctx: Ctx) -> Response:
    s = ctx.settings
    agents = await ctx.store.agents()
    now = now_ms()
    centers = center_status(ctx.center_names(), agents, now, s.agent_interval_s, s.silent_after_intervals)
    ctx.metrics.fleet.snapshot = FleetSnapshot(now, agents, centers, s.agent_interval_s, s.silent_after_intervals)
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/agents", summary="Enrolled agents with their state")
async def agents(ctx: Ctx) -> list[dict[str, Any]]:
    s = ctx.settings
    now = now_ms()
    return [
        {
            "id": a.id,
            "center": a.center,
            "host": a.host,
            "version": a.version,
            "enrolled_ms": a.enrolled_ms,
            "last_seen_ms": a.last_seen_ms,
            "state": agent_state(a, now, s.agent_interval_s, s.silent_after_intervals),
        }
        for a in await ctx.store.agents()
    ]


@router.get("/api/v1/agents/{agent_id}/facts", summary="Latest facts an agent reported, by subject")
async def facts(agent_id: str, ctx: Ctx) -> dict[str, dict[str, Any]]:
    if not any(a.id == agent_id for a in await ctx.store.agents()):
        raise Rejected("not_found", 404, where="agent_id", what=agent_id)
    return await ctx.store.facts(agent_id)


@router.get("/api/v1/centers", summary="Centers with enrolled and reporting agents")
async def centers(ctx: Ctx) -> list[dict[str, Any]]:
    s = ctx.settings
    agents = await ctx.store.agents()
    rows = center_status(ctx.center_names(), agents, now_ms(), s.agent_interval_s, s.silent_after_intervals)
    return [{"slug": c.slug, "name": c.name, "agents": c.agents, "up": c.up, "state": c.state} for c in rows]


@router.get("/api/v1/series/latest", summary="Latest value of every series of a metric")
async def latest(
    ctx: Ctx,
    name: str = Query(min_length=1, max_length=200),
    center: str | None = None,
    host: str | None = None,
) -> list[dict[str, Any]]:
    match = {k: v for k, v in (("center", center), ("host", host)) if v}
    points = await ctx.store.latest(name, match or None)
    return [{"labels": p.labels, "ts_ms": p.ts_ms, "value": p.value} for p in points]


@router.get("/api/v1/series/range", summary="Samples of a metric's series in a time window")
async def series_range(
    ctx: Ctx,
    name: str = Query(min_length=1, max_length=200),
    start_ms: int = Query(ge=0),
    end_ms: int = Query(ge=0),
    center: str | None = None,
    host: str | None = None,
) -> list[dict[str, Any]]:
    if end_ms < start_ms:
        raise Rejected("bad_request", 400, where="end_ms", detail="end_ms < start_ms")
    match = {k: v for k, v in (("center", center), ("host", host)) if v}
    found = await ctx.store.range(name, match or None, start_ms, end_ms)
    return [{"series_id": sid, "points": points} for sid, points in found.items()]


@router.get("/api/v1/events", summary="Recent events (device appeared, trap, check partial failure)")
async def events(ctx: Ctx, center: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    return [
        {
            "ts_ms": e.ts_ms,
            "center": e.center,
            "host": e.host,
            "kind": e.kind,
            "severity": e.severity,
            "labels": e.labels,
            "message": e.message,
        }
        for e in await ctx.store.events(limit, center)
    ]
