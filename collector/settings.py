"""Collector settings: typed, validated at start, every error naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    db: Path = Field(default=Path("centerwatch.db"), description="SQLite database file")
    host: str = Field(default="127.0.0.1", description="listen address")
    port: int = Field(default=8080, ge=1, le=65535)
    inventory: Path | None = Field(default=None, description="Ansible inventory directory")
    public_url: str = Field(default="", description="URL agents and browsers use; shown on start")
    lang: Literal["vi", "en"] = "vi"
    durability: Literal["normal", "full"] = Field(
        default="normal",
        description="SQLite synchronous mode: normal survives a process crash, full a power loss too",
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_future_s: int = Field(default=300, ge=0, description="refuse samples stamped further ahead")
    max_age_days: int = Field(default=35, ge=1, description="refuse samples older than this")
    agent_interval_s: float = Field(default=15.0, gt=0, description="expected report interval")
    silent_after_intervals: float = Field(
        default=2.5,
        gt=0,
        description="an agent is silent after this many intervals without a report (2.5: a dark center is"
        " one alert within three intervals)",
    )
    workers: int = Field(default=1, ge=1, le=64)
    alerting: Path | None = Field(default=None, description="notification receivers file (alerting.yaml)")
    rules_dir: Path | None = Field(default=None, description="site alert rules (*.yaml) on top of the shipped ones")
    alert_eval_interval_s: float = Field(default=5.0, gt=0, le=300, description="alert evaluation period")
    alerts_enabled: bool = Field(default=True, description="evaluate alert rules in this process")

    @property
    def alerts_db(self) -> Path:
        """Alerts, silences and operators: beside the samples, in their own file (no lock shared with ingest)."""
        return self.db.with_name(f"{self.db.stem}.alerts{self.db.suffix or '.db'}")
