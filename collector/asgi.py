"""ASGI factory for multi-worker serving: each worker builds its app from CENTERWATCH_SETTINGS."""

from __future__ import annotations

import os

from collector.api.ingest import IngestFastPath
from collector.app import create_app
from collector.settings import Settings


def build() -> IngestFastPath:
    return create_app(Settings.model_validate_json(os.environ["CENTERWATCH_SETTINGS"]))
