"""The alerts page: what fires now by center (notified first, then muted with the reason), pending,
active silences, and the latest resolved; one alert with its history, acknowledge and silence."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from agent.windows import DEFAULT_TZ
from centerwatch.i18n import LANGS, t
from collector.api.deps import Ctx, Lang
from collector.context import now_ms
from collector.errors import Rejected
from collector.web.pages import _ENV

router = APIRouter()
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _when(ms: int | None) -> str:
    if ms is None:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(DEFAULT_TZ)).strftime("%Y-%m-%d %H:%M:%S")


@router.get("/alerts", response_class=HTMLResponse, summary="Alerts page")
async def alerts_page(ctx: Ctx, lang: Lang) -> HTMLResponse:
    if ctx.alerts is None:
        raise Rejected("alerting_disabled", 404)
    now = now_ms()
    names = ctx.center_names()
    open_rows = ctx.alerts.open_alerts()
    open_rows.sort(key=lambda a: (a.center, a.muted != "", _SEVERITY_ORDER.get(a.severity, 3), a.firing_ms or 0))
    by_center: dict[str, list[object]] = {}
    for a in open_rows:
        by_center.setdefault(a.center, []).append(a)
    pending = [] if ctx.engine is None else [a for a in ctx.engine.open_alerts() if a.state == "pending"]
    resolved = ctx.alerts.alerts(state="resolved", limit=50)
    html = _ENV.get_template("alerts.html").render(
        t=lambda key, **kw: t(key, lang, **kw),
        lang=lang,
        langs=LANGS,
        names=names,
        by_center=by_center,
        pending=pending,
        resolved=resolved,
        silences=ctx.alerts.silences(since_ms=now),
        when=_when,
        text=lambda a, key: (a.texts.get(lang) or a.texts.get("vi") or {}).get(key, ""),
        firing=sum(1 for a in open_rows if not a.muted),
        muted=sum(1 for a in open_rows if a.muted),
    )
    return HTMLResponse(html)


@router.get("/alerts/{alert_id}", response_class=HTMLResponse, summary="One alert and its history")
async def alert_page(ctx: Ctx, lang: Lang, alert_id: int) -> HTMLResponse:
    if ctx.alerts is None:
        raise Rejected("alerting_disabled", 404)
    a = ctx.alerts.alert(alert_id)
    if a is None:
        raise Rejected("not_found", 404, what=f"alert {alert_id}")
    html = _ENV.get_template("alert.html").render(
        t=lambda key, **kw: t(key, lang, **kw),
        lang=lang,
        langs=LANGS,
        a=a,
        center_name=ctx.center_names().get(a.center, a.center),
        history=ctx.alerts.log(alert_id),
        when=_when,
        texts=a.texts.get(lang) or a.texts.get("vi") or {},
    )
    return HTMLResponse(html)
