"""``create_app(settings)`` wires the collector together, and does nothing else.

It returns the FastAPI app behind the ingest fast path (see ``collector/api/ingest.py``); the
wrapper forwards attribute access, so ``app.state`` and ``app.openapi()`` work as on FastAPI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from centerwatch import __version__
from collector.api import enroll, fleet, ingest, speedtest
from collector.api import errors as api_errors
from collector.api.ingest import IngestFastPath
from collector.context import AppContext
from collector.ingest import IngestLimits
from collector.metrics import CollectorMetrics
from collector.settings import Settings
from collector.store.sqlite import SqliteStore
from collector.web import pages


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

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(title="CenterWatch collector", version=__version__, lifespan=lifespan)
    app.state.ctx = ctx
    api_errors.install(app)
    for module in (ingest, enroll, fleet, speedtest, pages):
        app.include_router(module.router)
    return IngestFastPath(app, ctx)
