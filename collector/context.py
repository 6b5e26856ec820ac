"""What the routes share: built once by ``create_app`` and handed to them through ``app.state``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector.ingest import IngestLimits
from collector.metrics import CollectorMetrics
from collector.settings import Settings
from collector.store.base import Store

if TYPE_CHECKING:
    from collector.inventory import Inventory


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class AppContext:
    settings: Settings
    store: Store
    metrics: CollectorMetrics
    inventory: Inventory | None = None
    limits: IngestLimits = field(default_factory=IngestLimits)

    def center_names(self) -> dict[str, str]:
        if self.inventory is None:
            return {}
        return {slug: center.name for slug, center in self.inventory.centers.items()}
