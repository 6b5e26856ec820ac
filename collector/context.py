"""What the routes share: built once by ``create_app`` and handed to them through ``app.state``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector.ingest import IngestLimits
from collector.metrics import CollectorMetrics
from collector.settings import Settings
from collector.store.base import AgentRecord, Store

if TYPE_CHECKING:
    from collector.alerting.engine import Engine
    from collector.alerting.state import AlertState
    from collector.inventory import Inventory


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class AgentCache:
    """Agent records by token hash, kept ``ttl_s`` seconds: one query fewer per upload.

    A revocation made by another process (``centerwatch-collector agent revoke``) takes effect
    within ``ttl_s``; unknown tokens are not cached, so a new enrollment works at once.
    """

    store: Store
    ttl_s: float = 5.0
    _entries: dict[str, tuple[float, AgentRecord]] = field(default_factory=dict)

    async def lookup(self, token_hash: str) -> AgentRecord | None:
        now = time.monotonic()
        hit = self._entries.get(token_hash)
        if hit is not None and hit[0] > now:
            return hit[1]
        agent = await self.store.agent_by_token(token_hash)
        if agent is None:
            self._entries.pop(token_hash, None)
            return None
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[token_hash] = (now + self.ttl_s, agent)
        return agent


@dataclass
class AppContext:
    settings: Settings
    store: Store
    metrics: CollectorMetrics
    inventory: Inventory | None = None
    limits: IngestLimits = field(default_factory=IngestLimits)
    alerts: AlertState | None = None
    engine: Engine | None = None
    agents: AgentCache = field(init=False)

    def __post_init__(self) -> None:
        self.agents = AgentCache(self.store)

    def center_names(self) -> dict[str, str]:
        if self.inventory is None:
            return {}
        return {slug: center.name for slug, center in self.inventory.centers.items()}
