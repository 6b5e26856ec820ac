"""Fleet status: which agents and centers are heard from. Pure functions over store records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from collector.store.base import AgentRecord

AgentState = Literal["up", "silent", "never", "revoked"]


def agent_state(agent: AgentRecord, now_ms: int, interval_s: float, silent_after: float) -> AgentState:
    if agent.revoked:
        return "revoked"
    if agent.last_seen_ms is None:
        return "never"
    limit_ms = interval_s * silent_after * 1000
    return "up" if now_ms - agent.last_seen_ms <= limit_ms else "silent"


@dataclass(frozen=True)
class CenterStatus:
    slug: str
    name: str
    agents: int
    up: int

    @property
    def state(self) -> Literal["ok", "partial", "dark", "empty"]:
        if self.agents == 0:
            return "empty"
        if self.up == self.agents:
            return "ok"
        return "dark" if self.up == 0 else "partial"


def center_status(
    centers: dict[str, str],
    agents: Iterable[AgentRecord],
    now_ms: int,
    interval_s: float,
    silent_after: float,
) -> list[CenterStatus]:
    """``centers`` maps slug → display name (inventory, plus any center an agent enrolled into)."""
    totals: dict[str, list[int]] = {slug: [0, 0] for slug in centers}
    for agent in agents:
        if agent.revoked:
            continue
        entry = totals.setdefault(agent.center, [0, 0])
        entry[0] += 1
        if agent_state(agent, now_ms, interval_s, silent_after) == "up":
            entry[1] += 1
    return [
        CenterStatus(slug, centers.get(slug, slug), total, up)
        for slug, (total, up) in sorted(totals.items(), key=lambda kv: kv[0])
    ]
