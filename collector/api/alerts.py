"""Alerts API: open and past alerts by center, one alert with its history, acknowledge; silences and
maintenance windows. Reading is open like the status page; every change needs an operator token
(``centerwatch-collector operator add NAME``) and is recorded under the operator's name."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.windows import DEFAULT_TZ, Day
from collector.alerting.mute import MaintenanceWindow, Matcher, Silence
from collector.alerting.state import AlertRow, AlertState
from collector.api.deps import Ctx, Lang
from collector.auth import hash_token
from collector.context import AppContext, now_ms
from collector.errors import Rejected

router = APIRouter()

MAX_SILENCE_MS = 90 * 86_400_000


def _alerts(ctx: AppContext) -> AlertState:
    if ctx.alerts is None:
        raise Rejected("alerting_disabled", 404)
    return ctx.alerts


async def get_operator(request: Request) -> str:
    """The operator behind ``Authorization: Bearer <token>``, or ``Rejected`` (401)."""
    ctx: AppContext = request.app.state.ctx
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Rejected("operator_unauthorized", 401)
    name = _alerts(ctx).operator_by_token(hash_token(token.strip()))
    if name is None:
        raise Rejected("operator_unauthorized", 401)
    return name


Operator = Annotated[str, Depends(get_operator)]


def alert_json(a: AlertRow, lang: str) -> dict[str, Any]:
    texts = a.texts.get(lang) or a.texts.get("vi") or {}
    return {
        "id": a.id,
        "fingerprint": a.fingerprint,
        "rule": a.rule,
        "center": a.center,
        "severity": a.severity,
        "state": a.state,
        "labels": a.labels,
        "value": a.value,
        "summary": texts.get("summary", ""),
        "description": texts.get("description", ""),
        "active_ms": a.active_ms,
        "firing_ms": a.firing_ms,
        "resolved_ms": a.resolved_ms,
        "muted": a.muted,
        "muted_by": a.muted_by,
        "notified": a.notified,
        "acknowledged": None if a.ack_by is None else {"by": a.ack_by, "ms": a.ack_ms, "comment": a.ack_comment},
    }


@router.get("/api/v1/alerts", summary="Alerts, newest first: open ones by default")
async def list_alerts(
    ctx: Ctx,
    lang: Lang,
    center: str | None = None,
    state: Literal["open", "pending", "firing", "resolved", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    store = _alerts(ctx)
    if state == "pending":
        engine = ctx.engine
        rows = [] if engine is None else [a for a in engine.open_alerts() if a.state == "pending"]
        return [alert_json(a, lang) for a in rows if center is None or a.center == center][:limit]
    wanted = None if state == "all" else state
    rows = store.alerts(center=center, state=wanted, limit=limit, before_id=before_id)
    return [alert_json(a, lang) for a in rows]


@router.get("/api/v1/alerts/{alert_id}", summary="One alert with its history")
async def get_alert(ctx: Ctx, lang: Lang, alert_id: int) -> dict[str, Any]:
    store = _alerts(ctx)
    a = store.alert(alert_id)
    if a is None:
        raise Rejected("not_found", 404, what=f"alert {alert_id}")
    out = alert_json(a, lang)
    out["history"] = [{"ms": ts, "what": what, "who": who, "note": note} for ts, what, who, note in store.log(alert_id)]
    return out


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Annotated[str, Field(max_length=2000)] = ""


@router.post("/api/v1/alerts/{alert_id}/ack", summary="Acknowledge an alert (who, when, comment)")
async def ack_alert(ctx: Ctx, lang: Lang, operator: Operator, alert_id: int, body: AckBody) -> dict[str, Any]:
    a = _alerts(ctx).acknowledge(alert_id, operator, body.comment, now_ms())
    if a is None:
        raise Rejected("not_found", 404, what=f"alert {alert_id}")
    return alert_json(a, lang)


class MatcherBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=64)]
    value: Annotated[str, Field(max_length=1024)]
    op: Literal["=", "!=", "=~", "!~"] = "="

    @model_validator(mode="after")
    def _regex(self) -> MatcherBody:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return self


class SilenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: Annotated[list[MatcherBody], Field(min_length=1, max_length=20)]
    starts_ms: int | None = None
    ends_ms: int | None = None
    duration_s: Annotated[float, Field(gt=0)] | None = None
    comment: Annotated[str, Field(min_length=1, max_length=2000)]

    @model_validator(mode="after")
    def _end(self) -> SilenceBody:
        if (self.ends_ms is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_ms and duration_s")
        return self


def silence_json(s: Silence, now: int) -> dict[str, Any]:
    return {
        "id": s.id,
        "matchers": [{"name": m.name, "value": m.value, "op": m.op} for m in s.matchers],
        "starts_ms": s.starts_ms,
        "ends_ms": s.ends_ms,
        "author": s.author,
        "comment": s.comment,
        "active": s.active(now),
    }


@router.get("/api/v1/silences", summary="Silences not yet ended")
async def list_silences(ctx: Ctx) -> list[dict[str, Any]]:
    now = now_ms()
    return [silence_json(s, now) for s in _alerts(ctx).silences(since_ms=now)]


@router.post("/api/v1/silences", status_code=201, summary="Silence alerts matching label matchers")
async def add_silence(ctx: Ctx, operator: Operator, body: SilenceBody) -> dict[str, Any]:
    now = now_ms()
    starts = body.starts_ms if body.starts_ms is not None else now
    ends = body.ends_ms if body.ends_ms is not None else starts + int((body.duration_s or 0) * 1000)
    if ends <= max(starts, now):
        raise Rejected("silence_ends_past", 422, "ends_ms")
    if ends - starts > MAX_SILENCE_MS:
        raise Rejected("silence_too_long", 422, "ends_ms", days=MAX_SILENCE_MS // 86_400_000)
    matchers = tuple(Matcher(m.name, m.value, m.op) for m in body.matchers)
    silence = Silence(0, matchers, starts, ends, operator, body.comment, now)
    silence_id = _alerts(ctx).add_silence(silence)
    return silence_json(Silence(silence_id, matchers, starts, ends, operator, body.comment, now), now)


@router.delete("/api/v1/silences/{silence_id}", summary="Expire a silence now")
async def expire_silence(ctx: Ctx, operator: Operator, silence_id: int) -> dict[str, Any]:
    if not _alerts(ctx).expire_silence(silence_id, now_ms()):
        raise Rejected("not_found", 404, what=f"active silence {silence_id}")
    return {"id": silence_id, "expired_by": operator}


class WindowBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    center: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
    days: Annotated[list[Day], Field(min_length=1)]
    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    timezone: str = DEFAULT_TZ
    comment: Annotated[str, Field(max_length=2000)] = ""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


def window_json(w: MaintenanceWindow, now: int) -> dict[str, Any]:
    return {
        "id": w.id,
        "center": w.center,
        "days": list(w.days),
        "start": w.start,
        "end": w.end,
        "timezone": w.timezone,
        "author": w.author,
        "comment": w.comment,
        "open": w.open_at(now),
    }


@router.get("/api/v1/maintenance-windows", summary="Recurring maintenance windows by center")
async def list_windows(ctx: Ctx, center: str | None = None) -> list[dict[str, Any]]:
    now = now_ms()
    return [window_json(w, now) for w in _alerts(ctx).windows() if center is None or w.center == center]


@router.post("/api/v1/maintenance-windows", status_code=201, summary="Add a center's weekly maintenance window")
async def add_window(ctx: Ctx, operator: Operator, body: WindowBody) -> dict[str, Any]:
    if ctx.inventory is not None and body.center not in ctx.inventory.centers:
        raise Rejected("not_found", 404, "center", what=f"center {body.center}")
    w = MaintenanceWindow(0, body.center, tuple(body.days), body.start, body.end, body.timezone, body.comment, operator)
    window_id = _alerts(ctx).add_window(w)
    return window_json(
        MaintenanceWindow(window_id, w.center, w.days, w.start, w.end, w.timezone, w.comment, operator), now_ms()
    )


@router.delete("/api/v1/maintenance-windows/{window_id}", summary="Delete a maintenance window")
async def delete_window(ctx: Ctx, operator: Operator, window_id: int) -> dict[str, Any]:
    if not _alerts(ctx).delete_window(window_id):
        raise Rejected("not_found", 404, what=f"maintenance window {window_id}")
    return {"id": window_id, "deleted_by": operator}
