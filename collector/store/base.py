"""The store interface: one contract, two backends (SQLite embedded now; PostgreSQL for scale-out).

Every method is a coroutine so a networked backend can await; the SQLite backend does its short
writes on the event loop itself (see FIELD-NOTES: a writer thread beside a busy loop starves).
SQL in the backends stays portable (no SQLite-only syntax in the shared statements).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from centerwatch.wire import Ack, Batch


@dataclass(frozen=True)
class AgentRecord:
    id: str
    center: str
    host: str
    version: str
    machine_id: str
    enrolled_ms: int
    last_seen_ms: int | None
    revoked: bool


@dataclass(frozen=True)
class EnrollToken:
    id: int
    center: str
    created_ms: int
    expires_ms: int | None
    max_uses: int | None
    uses: int
    revoked: bool
    note: str


@dataclass(frozen=True)
class SeriesPoint:
    series_id: int
    name: str
    labels: dict[str, str]
    ts_ms: int
    value: float


@dataclass(frozen=True)
class RunChunk:
    """The samples of one stored run: parallel arrays; ``tss`` None when all share ``ts_min``."""

    id: int
    ts_min: int
    sids: Sequence[int]
    tss: Sequence[int] | None
    vals: Sequence[float]


@dataclass(frozen=True)
class CheckStatus:
    agent_id: str
    check: str
    ts_ms: int
    ok: bool
    duration_s: float
    error: str | None


@dataclass(frozen=True)
class StoredEvent:
    id: int
    agent_id: str
    center: str
    host: str
    ts_ms: int
    kind: str
    severity: str
    labels: dict[str, str]
    message: str


class Store(Protocol):
    async def close(self) -> None: ...

    # enrollment and agents
    async def create_enroll_token(
        self, token_hash: str, center: str, now_ms: int, expires_ms: int | None, max_uses: int | None, note: str
    ) -> int: ...
    async def enroll_tokens(self) -> list[EnrollToken]: ...
    async def revoke_enroll_token(self, token_id: int) -> bool: ...
    async def enroll(
        self, enroll_hash: str, agent: AgentRecord, agent_token_hash: str, now_ms: int
    ) -> AgentRecord | None: ...
    async def agent_by_token(self, token_hash: str) -> AgentRecord | None: ...
    async def agents(self) -> list[AgentRecord]: ...
    async def revoke_agent(self, agent_id: str) -> bool: ...

    # ingest
    async def ingest(self, agent: AgentRecord, batch: Batch, now_ms: int) -> Ack: ...

    # reads for the API, pages and rules
    async def latest(self, name: str, match: dict[str, str] | None = None) -> list[SeriesPoint]: ...
    async def range(
        self, name: str, match: dict[str, str] | None, start_ms: int, end_ms: int
    ) -> dict[int, list[tuple[int, float]]]: ...
    async def facts(self, agent_id: str) -> dict[str, dict[str, Any]]: ...
    async def check_status(self, agent_id: str | None = None) -> list[CheckStatus]: ...
    async def events(self, limit: int = 100, center: str | None = None) -> list[StoredEvent]: ...
    async def counts(self) -> dict[str, int]: ...

    # the alert evaluator follows the tail of stored runs
    async def runs_after(self, after_id: int, limit: int = 2000) -> list[RunChunk]: ...
    async def last_run_id_before(self, received_ms: int) -> int: ...
    async def series_info(self, ids: Sequence[int]) -> dict[int, tuple[str, dict[str, str]]]: ...
