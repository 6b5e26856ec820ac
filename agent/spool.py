"""The durable queue between checks and the uploader: SQLite in WAL mode, bounded by size and age.

Each entry is one check run (a ``Part`` without its ``seq``), stored as JSON. The entry's rowid is
its ``seq``: AUTOINCREMENT never reuses one, and a new spool starts its sequence at the current
time in milliseconds × 1024, so a wiped or reinstalled spool does not collide with sequence
numbers the collector has already seen for this agent.

What is dropped to stay within bounds (oldest first) is counted, persistently, and reported.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from agent.errors import SpoolError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_created ON entries (created_ms);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Entry:
    seq: int
    created_ms: int
    payload: bytes


@dataclass(frozen=True)
class SpoolStats:
    entries: int
    bytes: int
    oldest_ms: int | None
    dropped_entries: int
    dropped_bytes: int
    rejected_entries: int


class Spool:
    def __init__(self, path: Path, max_bytes: int, max_age_ms: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_ms = max_age_ms
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA cache_size=-512")  # 512 KiB: the spool is append/scan only
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'entries', ? WHERE NOT EXISTS"
                " (SELECT 1 FROM sqlite_sequence WHERE name = 'entries')",
                (time.time_ns() // 1_000_000 * 1024,),
            )
            row = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM entries").fetchone()
        except sqlite3.DatabaseError as exc:
            raise SpoolError(f"{path}: cannot open the spool: {exc}") from exc
        self._count = int(row[0])
        self._bytes = int(row[1])

    def close(self) -> None:
        self._db.close()

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def append(self, payload: bytes, created_ms: int) -> int:
        """Store one entry durably and enforce the bounds; returns its seq."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            cur = db.execute(
                "INSERT INTO entries (created_ms, size, payload) VALUES (?, ?, ?)",
                (created_ms, len(payload), payload),
            )
            seq = int(cur.lastrowid or 0)
            self._count += 1
            self._bytes += len(payload)
            self._enforce_bounds(created_ms)
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._resync()
            raise SpoolError(f"{self.path}: cannot append: {exc}") from exc
        return seq

    def _enforce_bounds(self, now_ms: int) -> None:
        db = self._db
        dropped = dropped_bytes = 0
        cutoff = now_ms - self.max_age_ms
        row = db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM entries WHERE created_ms < ?", (cutoff,)
        ).fetchone()
        if row[0]:
            db.execute("DELETE FROM entries WHERE created_ms < ?", (cutoff,))
            dropped, dropped_bytes = int(row[0]), int(row[1])
        excess = self._bytes - dropped_bytes - self.max_bytes
        if excess > 0:
            victims = []
            freed = 0
            for seq, size in db.execute("SELECT seq, size FROM entries ORDER BY seq"):
                if freed >= excess:
                    break
                victims.append((seq,))
                freed += size
            db.executemany("DELETE FROM entries WHERE seq = ?", victims)
            dropped += len(victims)
            dropped_bytes += freed
        if dropped:
            self._count -= dropped
            self._bytes -= dropped_bytes
            self._bump("dropped_entries", dropped)
            self._bump("dropped_bytes", dropped_bytes)

    def _resync(self) -> None:
        row = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM entries").fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])

    def select(self, budget_bytes: int, fresh_share: float) -> list[Entry]:
        """Entries for the next upload: mostly the oldest, plus a share of the newest.

        A long backlog drains oldest-first while fresh results still reach the collector in every
        batch, so an outage's backlog never delays what is happening now.
        """
        fresh_budget = int(budget_bytes * fresh_share)
        chosen: dict[int, Entry] = {}
        used = 0
        if fresh_budget:
            for seq, created, payload in self._db.execute(
                "SELECT seq, created_ms, payload FROM entries ORDER BY seq DESC"
            ):
                if chosen and used + len(payload) > fresh_budget:
                    break
                chosen[seq] = Entry(seq, created, bytes(payload))
                used += len(payload)
        for seq, created, payload in self._db.execute("SELECT seq, created_ms, payload FROM entries ORDER BY seq"):
            if seq in chosen:
                break
            if chosen and used + len(payload) > budget_bytes:
                break
            chosen[seq] = Entry(seq, created, bytes(payload))
            used += len(payload)
        return [chosen[seq] for seq in sorted(chosen)]

    def delete(self, seqs: list[int]) -> None:
        if not seqs:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            freed = 0
            removed = 0
            for chunk_start in range(0, len(seqs), 500):
                chunk = seqs[chunk_start : chunk_start + 500]
                marks = ",".join("?" * len(chunk))
                row = db.execute(
                    f"SELECT count(*), coalesce(sum(size), 0) FROM entries WHERE seq IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchone()
                db.execute(f"DELETE FROM entries WHERE seq IN ({marks})", chunk)  # noqa: S608
                removed += int(row[0])
                freed += int(row[1])
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            db.execute("ROLLBACK")
            raise SpoolError(f"{self.path}: cannot delete acknowledged entries: {exc}") from exc
        self._count -= removed
        self._bytes -= freed

    def reject(self, seqs: list[int]) -> None:
        """Drop entries the collector refused for their content; counted, never retried."""
        self.delete(seqs)
        self._bump("rejected_entries", len(seqs))

    def stats(self) -> SpoolStats:
        oldest = self._db.execute("SELECT min(created_ms) FROM entries").fetchone()[0]
        return SpoolStats(
            entries=self._count,
            bytes=self._bytes,
            oldest_ms=oldest,
            dropped_entries=self._counter("dropped_entries"),
            dropped_bytes=self._counter("dropped_bytes"),
            rejected_entries=self._counter("rejected_entries"),
        )

    def stats_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._count
