"""The status page: centers and their agents, last seen and key health, in Vietnamese or English."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from centerwatch.i18n import LANGS, t
from collector.api.deps import Ctx, Lang
from collector.context import now_ms
from collector.fleet import agent_state, center_status

router = APIRouter()

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)


@dataclass(frozen=True)
class AgentRow:
    id: str
    host: str
    state: str
    ago_s: int | None
    version: str
    cpu: float | None
    memory: float | None
    disk: float | None
    failing: tuple[str, ...]


def _by_host(points: list[tuple[dict[str, str], float]], reduce: str = "max") -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for labels, value in points:
        key = (labels.get("center", ""), labels.get("host", ""))
        out[key] = max(out.get(key, value), value) if reduce == "max" else value
    return out


@router.get("/", response_class=HTMLResponse, summary="Status page")
async def status_page(request: Request, ctx: Ctx, lang: Lang) -> HTMLResponse:
    s = ctx.settings
    now = now_ms()
    agents = await ctx.store.agents()
    store = ctx.store
    cpu = _by_host(
        [(p.labels, p.value) for p in await store.latest("host_cpu_usage_ratio") if p.labels.get("cpu") == "total"]
    )
    mem = _by_host([(p.labels, p.value) for p in await store.latest("host_memory_used_ratio")])
    disk = _by_host([(p.labels, p.value) for p in await store.latest("host_filesystem_used_ratio")])
    failing: dict[str, list[str]] = {}
    for status in await store.check_status():
        if not status.ok:
            failing.setdefault(status.agent_id, []).append(status.check)
    rows: dict[str, list[AgentRow]] = {}
    for a in agents:
        key = (a.center, a.host)
        rows.setdefault(a.center, []).append(
            AgentRow(
                a.id,
                a.host,
                agent_state(a, now, s.agent_interval_s, s.silent_after_intervals),
                None if a.last_seen_ms is None else max(0, (now - a.last_seen_ms) // 1000),
                a.version,
                cpu.get(key),
                mem.get(key),
                disk.get(key),
                tuple(failing.get(a.id, ())),
            )
        )
    centers = center_status(ctx.center_names(), agents, now, s.agent_interval_s, s.silent_after_intervals)
    # Centers with agents first (they have something to show), then the rest of the inventory.
    centers.sort(key=lambda c: (c.agents == 0, c.state != "dark", c.slug))
    html = _ENV.get_template("status.html").render(
        t=lambda key, **kw: t(key, lang, **kw),
        lang=lang,
        langs=LANGS,
        centers=centers,
        rows=rows,
        totals={
            "centers": len(centers),
            "agents": sum(c.agents for c in centers),
            "up": sum(c.up for c in centers),
        },
    )
    return HTMLResponse(html)
