"""Alerting as one part of the collector: rules + state + engine + dispatcher, started and stopped
with the app. Everything is loaded and validated at build time, so a bad rules or receivers file
stops the collector at start with the file and key named, never mid-flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from collector.alerting.engine import Engine, EngineSettings
from collector.alerting.rules import load_rules
from collector.alerting.state import AlertState
from collector.settings import Settings
from collector.store.base import Store

if TYPE_CHECKING:
    from collector.alerting.dispatch import Dispatcher
    from collector.inventory import Inventory


@dataclass
class AlertingService:
    state: AlertState
    engine: Engine
    dispatcher: Dispatcher | None
    lock_path: Path
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.start()
        self._task = asyncio.create_task(self.engine.run(self._stop, self.lock_path), name="alert-engine")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        self.state.close()


def build_alerting(
    settings: Settings,
    store: Store,
    registry: CollectorRegistry,
    *,
    inventory: Inventory | None = None,
    center_names: Callable[[], Mapping[str, str]] | None = None,
) -> AlertingService:
    rules = load_rules(settings.rules_dir)
    config = None
    if settings.alerting is not None:
        from collector.alerting.receivers import load_alerting

        config = load_alerting(settings.alerting)
    dispatcher = None
    engine_settings = EngineSettings(
        agent_interval_s=settings.agent_interval_s,
        silent_after_intervals=settings.silent_after_intervals,
        eval_interval_s=settings.alert_eval_interval_s,
        public_url=settings.public_url,
    )
    state = AlertState(settings.alerts_db)
    engine = Engine(
        rules, store, state, engine_settings, inventory=inventory, registry=registry, center_names=center_names
    )
    if config is not None:
        from collector.alerting.dispatch import Dispatcher
        from collector.alerting.notify import build_notifiers

        dispatcher = Dispatcher(config, build_notifiers(config), registry, on_delivered=engine.on_delivered)
        engine.dispatcher = dispatcher
    lock = settings.alerts_db.with_name(settings.alerts_db.name + ".lock")
    return AlertingService(state, engine, dispatcher, lock)
