"""Embedded SQLite backend: one file, WAL, a commit per acknowledged batch.

Layout, chosen by measurement (bench/ingest.py; figures in the README):

* ``series(id, name, labels, center, host)`` — ``labels`` is the canonical JSON of all labels
  (``center`` and ``host`` included), unique with ``name``.
* ``streams(id, agent_id, check_name, subject)`` — where samples come from: one check of one agent
  about one subject. ``series_streams`` says which streams carry a series.
* ``runs`` — one row per stored check run: its seq, timing, outcome and error, and its samples as
  packed little-endian arrays (int64 series ids, int64 ms timestamps — empty when all equal
  ``ts_min`` —, float64 values). ``UNIQUE (stream_id, seq)`` is the idempotency key (a seq belongs
  to one run of one stream, so a replay hits it) and ``(stream_id, ts_max)`` serves time windows.
  A row per *sample* with a ``(series_id, ts)`` index dirtied ~120 scattered index pages per batch
  and capped ingest near 30 k samples/s here; separate tables for idempotency keys and check status
  cost a page each per commit. One row per run writes two index entries and appends.
  Reading one series means reading the runs of its streams in a window and picking its values: a
  stream's run carries the same ~100 series each time, so this stays cheap for the dashboard and
  rule windows; rollups for long ranges come next.

Writes run on the event loop (no writer thread), each batch in one ``BEGIN IMMEDIATE`` transaction;
the acknowledgement is built only after ``COMMIT`` returns.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from centerwatch.wire import SCHEMA_VERSION, Ack, Batch, Part, check_series_names
from collector.errors import Rejected, StoreError
from collector.store.base import (
    AgentRecord,
    CheckStatus,
    EnrollToken,
    RunChunk,
    SeriesPoint,
    StoredEvent,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS enroll_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    center TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    center TEXT NOT NULL,
    host TEXT NOT NULL,
    version TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    enrolled_ms INTEGER NOT NULL,
    last_seen_ms INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    center TEXT NOT NULL,
    host TEXT NOT NULL,
    UNIQUE (name, labels)
);
CREATE INDEX IF NOT EXISTS series_center_name ON series (center, name);
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    check_name TEXT NOT NULL,
    subject TEXT NOT NULL,
    UNIQUE (agent_id, check_name, subject)
);
CREATE TABLE IF NOT EXISTS series_streams (
    series_id INTEGER NOT NULL,
    stream_id INTEGER NOT NULL,
    PRIMARY KEY (series_id, stream_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    stream_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    ts_min INTEGER NOT NULL,
    ts_max INTEGER NOT NULL,
    n INTEGER NOT NULL,
    sids BLOB NOT NULL,
    tss BLOB NOT NULL,
    vals BLOB NOT NULL,
    UNIQUE (stream_id, seq)
);
CREATE INDEX IF NOT EXISTS runs_stream_ts ON runs (stream_id, ts_max);
CREATE TABLE IF NOT EXISTS facts (
    agent_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    facts TEXT NOT NULL,
    PRIMARY KEY (agent_id, subject)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    center TEXT NOT NULL,
    host TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    labels TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts_ms);
"""

STORE_VERSION = "1"

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows: a single collector process, no lock needed
    fcntl = None

_AGENT_COLS = "id, center, host, version, machine_id, enrolled_ms, last_seen_ms, revoked"

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
_BIG_ENDIAN = sys.byteorder == "big"
_EMPTY = b""


def _unpack(row: tuple[int, bytes, bytes, bytes]) -> tuple[array[int], array[int] | None, array[float]]:
    _ts_min, sid_blob, ts_blob, val_blob = row
    sids, vals = array("q"), array("d")
    sids.frombytes(sid_blob)
    vals.frombytes(val_blob)
    tss = None
    if ts_blob:
        tss = array("q")
        tss.frombytes(ts_blob)
    if _BIG_ENDIAN:
        for arr in (sids, vals, tss):
            if arr is not None:
                arr.byteswap()
    return sids, tss, vals


def _points_in(row: tuple[int, bytes, bytes, bytes], sid: int) -> list[tuple[int, float]]:
    """The (ts_ms, value) points of series ``sid`` in one chunk row."""
    sids, tss, vals = _unpack(row)
    out: list[tuple[int, float]] = []
    start = 0
    while True:
        try:
            i = sids.index(sid, start)
        except ValueError:
            return out
        out.append((tss[i] if tss is not None else row[0], vals[i]))
        start = i + 1


def canonical_labels(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _agent(row: tuple[Any, ...]) -> AgentRecord:
    return AgentRecord(
        id=row[0],
        center=row[1],
        host=row[2],
        version=row[3],
        machine_id=row[4],
        enrolled_ms=row[5],
        last_seen_ms=row[6],
        revoked=bool(row[7]),
    )


@dataclass
class _Prepared:
    part: Part
    stream_id: int | None
    ids: list[int | None]
    tss: bytes
    vals: bytes
    ts_min: int
    ts_max: int
    keys: list[SeriesKey] = field(default_factory=list)
    sids: bytes | None = _EMPTY


def _pack_ids(ids: list[int]) -> bytes:
    arr = array("q", ids)
    if _BIG_ENDIAN:
        arr.byteswap()
    return arr.tobytes()


class WriteLock:
    """An exclusive lock around write transactions, shared by every collector process on the file.

    With several uvicorn workers on one database, SQLite's own busy handler made a waiting writer
    sleep (1, 2, 5… ms) and the workers together did less than one alone. ``flock`` wakes the waiter
    the moment the other commits (~0.1 ms), so two workers add up. A no-op where flock is missing.
    """

    def __init__(self, path: Path) -> None:
        self._fd: int | None = None
        if fcntl is not None:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Checkpointer(threading.Thread):
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection every ``interval_s``."""

    def __init__(self, path: Path, interval_s: float = 1.0) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.path = path
        self.interval_s = interval_s
        self._stop_event = threading.Event()
        self.runs = 0
        self.last_error: str | None = None

    def run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout=1000")
            while not self._stop_event.wait(self.interval_s):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.runs += 1
                except sqlite3.DatabaseError as exc:  # busy or I/O trouble: try again next tick
                    self.last_error = str(exc)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


class SqliteStore:
    def __init__(self, path: Path, *, synchronous: str = "NORMAL", background_checkpoint: bool = False) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.executescript(SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key='store_version'").fetchone()
            if found is None:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('store_version', ?)", (STORE_VERSION,))
            elif found[0] != STORE_VERSION:
                raise StoreError(f"{path}: store version {found[0]}, this collector reads {STORE_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc
        self._checkpointer: Checkpointer | None = None
        if background_checkpoint:
            # Checkpoints (copying the WAL back into the database, with fsync) blocked the event
            # loop for milliseconds at a time when SQLite ran them inside a commit; a thread with
            # its own connection does them instead, PASSIVE so writers never wait for it.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = Checkpointer(path)
            self._checkpointer.start()
        self._write_lock = WriteLock(path.with_name(path.name + ".writelock"))
        self._last_seen: dict[str, int] = {}
        self._shapes: dict[int, tuple[list[tuple[str, dict[str, str]]], bytes]] = {}
        self._streams: dict[tuple[str, str, str], int] = {}
        self._series: dict[int, dict[SeriesKey, int]] = {}

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._write_lock.close()
        self._db.close()

    # ----------------------------------------------------------------- enrollment and agents
    async def create_enroll_token(
        self, token_hash: str, center: str, now_ms: int, expires_ms: int | None, max_uses: int | None, note: str
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO enroll_tokens (token_hash, center, created_ms, expires_ms, max_uses, note)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (token_hash, center, now_ms, expires_ms, max_uses, note),
        )
        return int(cur.lastrowid or 0)

    async def enroll_tokens(self) -> list[EnrollToken]:
        rows = self._db.execute(
            "SELECT id, center, created_ms, expires_ms, max_uses, uses, revoked, note FROM enroll_tokens ORDER BY id"
        ).fetchall()
        return [EnrollToken(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7]) for r in rows]

    async def revoke_enroll_token(self, token_id: int) -> bool:
        cur = self._db.execute("UPDATE enroll_tokens SET revoked = 1 WHERE id = ?", (token_id,))
        return cur.rowcount > 0

    async def enroll(
        self, enroll_hash: str, agent: AgentRecord, agent_token_hash: str, now_ms: int
    ) -> AgentRecord | None:
        """Spend one use of an enrollment token and register the agent, atomically.

        Returns None when the token is unknown, revoked, expired or used up. Re-enrolling the same
        host of the same center replaces its token (a reinstalled PC) and keeps its series.
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT id, center FROM enroll_tokens WHERE token_hash = ? AND revoked = 0"
                " AND (expires_ms IS NULL OR expires_ms > ?) AND (max_uses IS NULL OR uses < max_uses)",
                (enroll_hash, now_ms),
            ).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return None
            token_id, center = row
            db.execute("UPDATE enroll_tokens SET uses = uses + 1 WHERE id = ?", (token_id,))
            existing = db.execute(
                "SELECT id FROM agents WHERE center = ? AND host = ?", (center, agent.host)
            ).fetchone()
            agent_id = existing[0] if existing else agent.id
            db.execute(
                "INSERT INTO agents (id, token_hash, center, host, version, machine_id, enrolled_ms, revoked)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 0)"
                " ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash,"
                " version = excluded.version, machine_id = excluded.machine_id,"
                " enrolled_ms = excluded.enrolled_ms, revoked = 0",
                (agent_id, agent_token_hash, center, agent.host, agent.version, agent.machine_id, now_ms),
            )
            found = db.execute(f"SELECT {_AGENT_COLS} FROM agents WHERE id = ?", (agent_id,)).fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return _agent(found)

    async def agent_by_token(self, token_hash: str) -> AgentRecord | None:
        row = self._db.execute(f"SELECT {_AGENT_COLS} FROM agents WHERE token_hash = ?", (token_hash,)).fetchone()
        return _agent(row) if row else None

    async def agents(self) -> list[AgentRecord]:
        rows = self._db.execute(f"SELECT {_AGENT_COLS} FROM agents ORDER BY center, host").fetchall()
        return [_agent(r) for r in rows]

    async def revoke_agent(self, agent_id: str) -> bool:
        cur = self._db.execute("UPDATE agents SET revoked = 1 WHERE id = ?", (agent_id,))
        return cur.rowcount > 0

    # ----------------------------------------------------------------------------- ingest
    def _stream_id(self, agent: AgentRecord, check: str, subject: str) -> int:
        db = self._db
        db.execute(
            "INSERT INTO streams (agent_id, check_name, subject) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (agent.id, check, subject),
        )
        row = db.execute(
            "SELECT id FROM streams WHERE agent_id = ? AND check_name = ? AND subject = ?",
            (agent.id, check, subject),
        ).fetchone()
        return int(row[0])

    def _series_id(self, agent: AgentRecord, stream_id: int, name: str, labels: dict[str, str], where: str) -> int:
        problem = check_series_names(name, labels)
        if problem:
            raise Rejected("bad_name", 400, where=where, detail=problem)
        full = dict(labels)
        full["center"] = agent.center
        full["host"] = agent.host
        text = canonical_labels(full)
        db = self._db
        db.execute(
            "INSERT INTO series (name, labels, center, host) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (name, text, agent.center, agent.host),
        )
        sid = int(db.execute("SELECT id FROM series WHERE name = ? AND labels = ?", (name, text)).fetchone()[0])
        db.execute(
            "INSERT INTO series_streams (series_id, stream_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (sid, stream_id),
        )
        return sid

    def _prepare(self, agent: AgentRecord, part: Part) -> _Prepared:
        """The CPU-heavy half of storing a run, done before the write lock is taken."""
        stream_id = self._streams.get((agent.id, part.check, part.subject))
        if not part.samples:
            return _Prepared(part, stream_id, [], _EMPTY, _EMPTY, part.started_ms, part.started_ms)
        # A stream's runs usually carry the same series in the same order: comparing (name,
        # labels) pairs with the last run's (in C) is much cheaper than building and hashing a
        # key per sample, and the packed ids are reused as they are.
        pairs = [(x.name, x.labels) for x in part.samples]
        shape = self._shapes.get(stream_id) if stream_id is not None else None
        keys: list[SeriesKey] = []
        if shape is not None and shape[0] == pairs:
            ids: list[int | None] = []
            sids: bytes | None = shape[1]
        else:
            cache = self._series.get(stream_id, {}) if stream_id is not None else {}
            keys = [(name, tuple(labels.items())) for name, labels in pairs]
            ids = [cache.get(k) for k in keys]
            sids = None
            if None not in ids:
                sids = _pack_ids(ids)  # type: ignore[arg-type]  # no None left
                if stream_id is not None:
                    self._shapes[stream_id] = (pairs, sids)
        ts_arr = array("q", [x.ts_ms for x in part.samples])
        val_arr = array("d", [x.value for x in part.samples])
        ts_min, ts_max = min(ts_arr), max(ts_arr)
        if _BIG_ENDIAN:
            ts_arr.byteswap()
            val_arr.byteswap()
        tss = _EMPTY if ts_min == ts_max else ts_arr.tobytes()
        return _Prepared(part, stream_id, ids, tss, val_arr.tobytes(), ts_min, ts_max, keys, sids)

    async def ingest(self, agent: AgentRecord, batch: Batch, now_ms: int) -> Ack:
        db = self._db
        stored = duplicates = samples = 0
        seqs: list[int] = []
        new_streams: list[tuple[str, str, str]] = []
        new_series: list[tuple[int, SeriesKey]] = []
        prepared = [self._prepare(agent, part) for part in batch.parts]
        self._write_lock.acquire()
        db.execute("BEGIN IMMEDIATE")
        try:
            for p_index, prep in enumerate(prepared):
                part = prep.part
                seqs.append(part.seq)
                stream_id = prep.stream_id
                if stream_id is None:
                    skey = (agent.id, part.check, part.subject)
                    stream_id = self._streams.get(skey)  # an earlier part of this batch made it
                    if stream_id is None:
                        stream_id = self._stream_id(agent, part.check, part.subject)
                        self._streams[skey] = stream_id
                        self._series[stream_id] = {}
                        new_streams.append(skey)
                if prep.sids is None:  # series seen for the first time (on this stream)
                    cache = self._series[stream_id]
                    ids = prep.ids
                    for i, k in enumerate(prep.keys):
                        if ids[i] is None:
                            sid = cache.get(k)  # the same new series twice in one batch
                            if sid is None:
                                x = part.samples[i]
                                where = f"parts[{p_index}].samples[{i}]"
                                sid = self._series_id(agent, stream_id, x.name, x.labels, where)
                                cache[k] = sid
                                new_series.append((stream_id, k))
                            ids[i] = sid
                    prep.sids = _pack_ids(ids)  # type: ignore[arg-type]  # no None left
                cur = db.execute(
                    "INSERT INTO runs (stream_id, seq, started_ms, received_ms, duration_s, ok, error,"
                    " ts_min, ts_max, n, sids, tss, vals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (
                        stream_id, part.seq, part.started_ms, now_ms, part.duration_s, int(part.ok), part.error,
                        prep.ts_min, prep.ts_max, len(part.samples), prep.sids, prep.tss, prep.vals,
                    ),
                )  # fmt: skip
                if cur.rowcount == 0:  # stored before: acknowledged again, nothing else written
                    duplicates += 1
                    continue
                stored += 1
                samples += len(part.samples)
                if part.facts is not None:
                    db.execute(
                        "INSERT INTO facts (agent_id, subject, ts_ms, facts) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (agent_id, subject) DO UPDATE SET ts_ms = excluded.ts_ms,"
                        " facts = excluded.facts WHERE excluded.ts_ms >= facts.ts_ms",
                        (agent.id, part.subject, part.started_ms, msgspec.json.encode(part.facts).decode()),
                    )
                if part.events:
                    db.executemany(
                        "INSERT INTO events (agent_id, center, host, ts_ms, kind, severity, labels, message)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                agent.id,
                                agent.center,
                                agent.host,
                                e.ts_ms,
                                e.kind,
                                e.severity,
                                canonical_labels(e.labels),
                                e.message,
                            )
                            for e in part.events
                        ],
                    )
            # last_seen at most once a second per agent: a page write per commit saved under load
            if now_ms - self._last_seen.get(agent.id, 0) >= 1000:
                db.execute(
                    "UPDATE agents SET last_seen_ms = ? WHERE id = ? AND (last_seen_ms IS NULL OR last_seen_ms < ?)",
                    (now_ms, agent.id, now_ms),
                )
                seen_update = True
            else:
                seen_update = False
            db.execute("COMMIT")
        except BaseException as exc:
            db.execute("ROLLBACK")
            self._write_lock.release()
            # ids handed out inside the rolled-back transaction are void
            for stream_id, key in new_series:
                self._series.get(stream_id, {}).pop(key, None)
            for skey in new_streams:
                self._series.pop(self._streams.pop(skey), None)
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{self.path}: ingest failed: {exc}") from exc
            raise
        self._write_lock.release()
        if seen_update:
            self._last_seen[agent.id] = now_ms
        return Ack(SCHEMA_VERSION, seqs, stored, duplicates, samples)

    # ------------------------------------------------------------------------------ reads
    def _match_series(self, name: str, match: dict[str, str] | None) -> list[tuple[int, dict[str, str]]]:
        sql = "SELECT id, labels FROM series WHERE name = ?"
        args: list[Any] = [name]
        if match and "center" in match:
            sql += " AND center = ?"
            args.append(match["center"])
        found = []
        for sid, text in self._db.execute(sql, args):
            labels = json.loads(text)
            if not match or all(labels.get(k) == v for k, v in match.items()):
                found.append((sid, labels))
        return found

    def _streams_of(self, sid: int) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT stream_id FROM series_streams WHERE series_id = ?", (sid,))]

    async def latest(self, name: str, match: dict[str, str] | None = None) -> list[SeriesPoint]:
        points = []
        for sid, labels in self._match_series(name, match):
            best: tuple[int, float] | None = None
            for stream_id in self._streams_of(sid):
                rows = self._db.execute(
                    "SELECT ts_min, sids, tss, vals FROM runs WHERE stream_id = ? AND n > 0"
                    " ORDER BY ts_max DESC LIMIT 8",
                    (stream_id,),
                )
                for row in rows:
                    found = _points_in(row, sid)
                    if found:
                        last = max(found)
                        if best is None or last[0] > best[0]:
                            best = last
                        break
            if best is not None:
                points.append(SeriesPoint(sid, name, labels, best[0], best[1]))
        return points

    async def range(
        self, name: str, match: dict[str, str] | None, start_ms: int, end_ms: int
    ) -> dict[int, list[tuple[int, float]]]:
        out: dict[int, list[tuple[int, float]]] = {}
        for sid, _labels in self._match_series(name, match):
            points: list[tuple[int, float]] = []
            for stream_id in self._streams_of(sid):
                rows = self._db.execute(
                    "SELECT ts_min, sids, tss, vals FROM runs WHERE stream_id = ? AND ts_max >= ? AND ts_min <= ?",
                    (stream_id, start_ms, end_ms),
                )
                for row in rows:
                    points.extend(p for p in _points_in(row, sid) if start_ms <= p[0] <= end_ms)
            points.sort()
            out[sid] = points
        return out

    async def runs_after(self, after_id: int, limit: int = 2000) -> list[RunChunk]:
        """Runs with samples stored after run ``after_id``, oldest first: the tail the alert
        evaluator follows (a backfilled run has a new id, whatever its timestamps)."""
        rows = self._db.execute(
            "SELECT id, ts_min, sids, tss, vals FROM runs WHERE id > ? AND n > 0 ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        out = []
        for row in rows:
            sids, tss, vals = _unpack(row[1:])
            out.append(RunChunk(row[0], row[1], sids, tss, vals))
        return out

    async def last_run_id_before(self, received_ms: int) -> int:
        """The id of the last run received before ``received_ms`` (0 if none): where to start
        following the tail to see every run received since. Binary search on the id, as
        received_ms grows with it (a clock step only moves the start a little)."""
        db = self._db
        row = db.execute("SELECT max(id) FROM runs").fetchone()
        lo, hi = 0, int(row[0] or 0)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            got = db.execute("SELECT id, received_ms FROM runs WHERE id >= ? ORDER BY id LIMIT 1", (mid,)).fetchone()
            if got is not None and got[1] < received_ms:
                lo = int(got[0])
            else:
                hi = mid - 1
        return lo

    async def series_info(self, ids: Sequence[int]) -> dict[int, tuple[str, dict[str, str]]]:
        """name and labels (center and host included) of the given series."""
        out: dict[int, tuple[str, dict[str, str]]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for sid, name, text in self._db.execute(
                f"SELECT id, name, labels FROM series WHERE id IN ({marks})", chunk
            ):
                out[int(sid)] = (name, json.loads(text))
        return out

    async def facts(self, agent_id: str) -> dict[str, dict[str, Any]]:
        rows = self._db.execute("SELECT subject, facts FROM facts WHERE agent_id = ?", (agent_id,))
        return {subject: json.loads(text) for subject, text in rows}

    async def check_status(self, agent_id: str | None = None) -> list[CheckStatus]:
        """The latest run of every check (per subject), from the ``runs`` table."""
        sql = (
            "SELECT s.agent_id, s.check_name, r.started_ms, r.ok, r.duration_s, r.error FROM streams s"
            " JOIN runs r ON r.id = (SELECT id FROM runs WHERE stream_id = s.id ORDER BY ts_max DESC LIMIT 1)"
        )
        rows = (
            self._db.execute(sql + " WHERE s.agent_id = ? ORDER BY s.check_name", (agent_id,))
            if agent_id
            else self._db.execute(sql + " ORDER BY s.agent_id, s.check_name")
        )
        return [CheckStatus(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    async def events(self, limit: int = 100, center: str | None = None) -> list[StoredEvent]:
        sql = "SELECT id, agent_id, center, host, ts_ms, kind, severity, labels, message FROM events"
        args: list[Any] = []
        if center:
            sql += " WHERE center = ?"
            args.append(center)
        sql += " ORDER BY ts_ms DESC, id DESC LIMIT ?"
        args.append(limit)
        return [
            StoredEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8])
            for r in self._db.execute(sql, args)
        ]

    async def counts(self) -> dict[str, int]:
        db = self._db
        return {
            "series": int(db.execute("SELECT count(*) FROM series").fetchone()[0]),
            "runs": int(db.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]),
            "agents": int(db.execute("SELECT count(*) FROM agents").fetchone()[0]),
        }
