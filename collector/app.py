"""``create_app(settings)`` wires the collector together, and does nothing else.

It returns the FastAPI app behind the ingest fast path (see ``collector/api/ingest.py``); the
wrapper forwards attribute access, so ``app.state`` and ``app.openapi()`` work as on FastAPI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from centerwatch import __version__
from collector.api import alerts, enroll, fleet, ingest, speedtest
from collector.api import errors as api_errors
from collector.api.ingest import IngestFastPath
from collector.context import AppContext
from collector.ingest import IngestLimits
from collector.metrics import CollectorMetrics
from collector.settings import Settings
from collector.store.sqlite import SqliteStore
from collector.web import alerts_page, pages


def create_app(settings: Settings) -> IngestFastPath:
    inventory = None
    if settings.inventory is not None:
        from collector.inventory import load_inventory

        inventory = load_inventory(settings.inventory)
    store = SqliteStore(settings.db, synchronous=settings.durability.upper(), background_checkpoint=True)
    ctx = AppContext(
        settings=settings,
        store=store,
        metrics=CollectorMetrics(),
        inventory=inventory,
        limits=IngestLimits(
            max_body_bytes=settings.max_body_bytes,
            max_future_ms=settings.max_future_s * 1000,
            max_age_ms=settings.max_age_days * 86_400_000,
        ),
    )

    alerting = None
    if settings.alerts_enabled:
        from collector.alerting.service import build_alerting

        alerting = build_alerting(
            settings, store, ctx.metrics.registry, inventory=inventory, center_names=ctx.center_names
        )
        ctx.alerts = alerting.state
        ctx.engine = alerting.engine

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if alerting is not None:
            alerting.start()
        try:
            yield
        finally:
            if alerting is not None:
                await alerting.stop()
            await store.close()

    app = FastAPI(title="CenterWatch collector", version=__version__, lifespan=lifespan)
    app.state.ctx = ctx
    api_errors.install(app)
    for module in (ingest, enroll, fleet, speedtest, alerts, alerts_page, pages):
        app.include_router(module.router)
    return IngestFastPath(app, ctx)
