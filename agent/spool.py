"""The durable queue between checks and the uploader: SQLite in WAL mode, bounded by size and age.

Each entry is one check run (a ``Part`` without its ``seq``), stored as JSON. The entry's rowid is
its ``seq``: AUTOINCREMENT never reuses one, and a new spool starts its sequence at the current
time in milliseconds × 1024, so a wiped or reinstalled spool does not collide with sequence
numbers the collector has already seen for this agent.

What is dropped to stay within bounds (oldest first) is counted, persistently, and reported.

The order of entries is their seq, never a timestamp: a step of the wall clock (NTP, an operator,
a dead CMOS battery) changes the ``created_ms`` an entry carries but not where it drains.

The filesystem can fill up below ``max_bytes`` (a small partition, another program's files). The
spool then stops growing: once less than ``DISK_RESERVE_BYTES`` would be left free on its
filesystem (free pages inside the database count as free), each new entry replaces as many of the
oldest as its size, dropped and counted like any other drop; the spool never shrinks itself to win
the reserve back. The reserve is what SQLite needs to keep working on a nearly full disk: the WAL is
checkpointed every ``_WAL_PAGES`` pages and truncated back to ``_WAL_KEEP_BYTES``, and a checkpoint
that cannot grow the database file leaves the WAL unable to take even a DELETE. If the disk fills
anyway (something else wrote faster), a write that fails with "disk full" drops the oldest entries
and retries; when nothing is left to drop, the new entry is dropped, counted, and ``SpoolError``
raised. A failed write leaves the database as it was (SQLite rolls the transaction back).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.clock import wall_ms
from agent.errors import SpoolError

log = logging.getLogger("centerwatch.agent.spool")

#: WAL auto-checkpoint threshold (pages of 4 KiB) and the size the WAL is truncated back to: the
#: WAL's share of a full disk stays near 1 MiB (SQLite's default lets it reach 4 MiB first).
_WAL_PAGES = 256
_WAL_KEEP_BYTES = 1024 * 1024
#: On a full disk, drop at least this much of the oldest per round to make room (pages freed by a
#: DELETE are reused by later INSERTs, so one round makes room for many appends).
_ROOM_BYTES = 64 * 1024
_ROOM_ROUNDS = 8
#: Free space the spool leaves on its filesystem: WAL growth between checkpoints plus a margin.
DISK_RESERVE_BYTES = 2 * _WAL_KEEP_BYTES


def _disk_full(exc: sqlite3.DatabaseError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


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
    def __init__(self, path: Path, max_bytes: int, max_age_ms: int, clock_ms: Callable[[], int] = wall_ms) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_ms = max_age_ms
        #: seqs of the batch being uploaded: never dropped while the collector may be storing them,
        #: or a result would be counted as dropped and arrive all the same
        self._in_flight: frozenset[int] = frozenset()
        #: drops made while the disk was too full to record them; written with the next commit
        self._unsaved_dropped = 0
        self._unsaved_dropped_bytes = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA cache_size=-512")  # 512 KiB: the spool is append/scan only
            self._db.execute(f"PRAGMA wal_autocheckpoint={_WAL_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit={_WAL_KEEP_BYTES}")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'entries', ? WHERE NOT EXISTS"
                " (SELECT 1 FROM sqlite_sequence WHERE name = 'entries')",
                (clock_ms() * 1024,),
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
        """Store one entry durably and enforce the bounds; returns its seq.

        If the filesystem is full, the oldest entries are dropped (and counted) until it fits.
        If nothing is left to drop, or the write fails otherwise (an I/O error, a user's disk
        quota, which SQLite reports as an I/O error), the new entry is the one dropped: counted,
        and ``SpoolError`` says so. No result is lost without being counted."""
        for _round in range(_ROOM_ROUNDS):
            try:
                return self._append(payload, created_ms)
            except sqlite3.DatabaseError as exc:
                self._abort()
                error = exc
                if not _disk_full(exc):
                    break
            if not self._make_room(max(_ROOM_BYTES, 2 * len(payload))):
                break
        self._unsaved_dropped += 1
        self._unsaved_dropped_bytes += len(payload)
        why = "disk full, nothing left to drop" if _disk_full(error) else "cannot append"
        raise SpoolError(f"{self.path}: {why}; result dropped and counted: {error}") from error

    def _append(self, payload: bytes, created_ms: int) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        cur = db.execute(
            "INSERT INTO entries (created_ms, size, payload) VALUES (?, ?, ?)",
            (created_ms, len(payload), payload),
        )
        seq = int(cur.lastrowid or 0)
        dropped, dropped_bytes = self._enforce_bounds(created_ms, len(payload), self._room())
        self._save_unsaved()
        db.execute("COMMIT")
        self._unsaved_dropped = self._unsaved_dropped_bytes = 0
        self._count += 1 - dropped
        self._bytes += len(payload) - dropped_bytes
        return seq

    def _abort(self) -> None:
        """Roll back whatever is open (SQLite may have done it already) and re-read the totals."""
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._resync()
        except sqlite3.DatabaseError as exc:
            log.warning("spool %s: rollback failed: %s", self.path, exc)

    def _save_unsaved(self) -> None:
        if self._unsaved_dropped:
            self._bump("dropped_entries", self._unsaved_dropped)
            self._bump("dropped_bytes", self._unsaved_dropped_bytes)

    def _make_room(self, want_bytes: int) -> bool:
        """The disk is full: drop the oldest entries holding ``want_bytes``; False if none left."""
        db = self._db
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # gives the WAL's disk space back
        except sqlite3.DatabaseError as exc:
            log.debug("spool %s: checkpoint on a full disk: %s", self.path, exc)
        victims: list[tuple[int]] = []
        freed = 0
        for seq, size in db.execute("SELECT seq, size FROM entries ORDER BY seq"):
            if freed >= want_bytes:
                break
            if seq in self._in_flight:
                continue
            victims.append((seq,))
            freed += size
        if not victims:
            return False
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("DELETE FROM entries WHERE seq = ?", victims)
            self._bump("dropped_entries", len(victims))
            self._bump("dropped_bytes", freed)
            self._save_unsaved()
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._abort()
            if not _disk_full(exc):
                raise SpoolError(f"{self.path}: cannot drop entries to make room: {exc}") from exc
            return False  # even a delete does not fit: the WAL has no room left at all
        self._unsaved_dropped = self._unsaved_dropped_bytes = 0
        self._count -= len(victims)
        self._bytes -= freed
        log.warning(
            "spool %s: the disk is full below spool.max_bytes; dropped the %d oldest result(s), %d bytes",
            self.path,
            len(victims),
            freed,
        )
        return True

    def _room(self) -> int:
        """Bytes the spool may still grow by on its filesystem before it eats into the reserve."""
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:  # the directory is gone: rely on the disk-full path
            return 1 << 62
        page_size, free_pages = self._db.execute(
            "SELECT page_size, freelist_count FROM pragma_page_size, pragma_freelist_count"
        ).fetchone()
        return free + int(page_size) * int(free_pages) - DISK_RESERVE_BYTES

    def _enforce_bounds(self, now_ms: int, added: int, room: int) -> tuple[int, int]:
        """Drop (and count) what is past the age bound, the size bound or the disk's ``room``;
        returns the entries and bytes dropped."""
        db = self._db
        dropped = dropped_bytes = 0
        cutoff = now_ms - self.max_age_ms
        aged = [
            (seq, size)
            for seq, size in db.execute("SELECT seq, size FROM entries WHERE created_ms < ?", (cutoff,))
            if seq not in self._in_flight  # the batch being uploaded is never dropped
        ]
        if aged:
            db.executemany("DELETE FROM entries WHERE seq = ?", [(seq,) for seq, _ in aged])
            dropped, dropped_bytes = len(aged), sum(size for _, size in aged)
        excess = self._bytes + added - dropped_bytes - self.max_bytes
        if room < added:  # the disk is nearly full: the new entry replaces the oldest, no growth
            excess = max(excess, added - dropped_bytes)
        if excess > 0:
            victims = []
            freed = 0
            for seq, size in db.execute("SELECT seq, size FROM entries ORDER BY seq"):
                if freed >= excess:
                    break
                if seq in self._in_flight:
                    continue
                victims.append((seq,))
                freed += size
            db.executemany("DELETE FROM entries WHERE seq = ?", victims)
            dropped += len(victims)
            dropped_bytes += freed
        if dropped:
            self._bump("dropped_entries", dropped)
            self._bump("dropped_bytes", dropped_bytes)
        return dropped, dropped_bytes

    def _resync(self) -> None:
        row = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM entries").fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])

    def select(self, budget_bytes: int, fresh_share: float) -> list[Entry]:
        """Entries for the next upload: mostly the oldest, plus a share of the newest.

        A long backlog drains oldest-first while fresh results still reach the collector in every
        batch, so an outage's backlog never delays what is happening now. The oldest entry is in
        every batch, even when the newest alone fills the budget: otherwise a budget that holds one
        entry would drain the backlog newest-first.
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
        oldest_taken = False
        for seq, created, payload in self._db.execute("SELECT seq, created_ms, payload FROM entries ORDER BY seq"):
            if seq in chosen:
                break
            if oldest_taken and used + len(payload) > budget_bytes:
                break
            chosen[seq] = Entry(seq, created, bytes(payload))
            used += len(payload)
            oldest_taken = True
        return [chosen[seq] for seq in sorted(chosen)]

    def hold(self, seqs: list[int]) -> None:
        """These entries are being uploaded: keep them from being dropped until ``release`` (the
        bounds may be overshot by one batch meanwhile)."""
        self._in_flight = frozenset(seqs)

    def release(self) -> None:
        """The upload is over (acknowledged, refused or failed): what is left of the held entries
        may be dropped again to stay within bounds."""
        self._in_flight = frozenset()

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
            self._abort()
            raise SpoolError(f"{self.path}: cannot delete acknowledged entries: {exc}") from exc
        self._count -= removed
        self._bytes -= freed

    def reject(self, seqs: list[int]) -> None:
        """Drop entries the collector refused for their content; counted, never retried."""
        self.delete(seqs)
        try:
            self._bump("rejected_entries", len(seqs))
        except sqlite3.DatabaseError as exc:
            raise SpoolError(f"{self.path}: cannot count rejected entries: {exc}") from exc

    def stats(self) -> SpoolStats:
        oldest = self._db.execute("SELECT min(created_ms) FROM entries").fetchone()[0]
        return SpoolStats(
            entries=self._count,
            bytes=self._bytes,
            oldest_ms=oldest,
            dropped_entries=self._counter("dropped_entries") + self._unsaved_dropped,
            dropped_bytes=self._counter("dropped_bytes") + self._unsaved_dropped_bytes,
            rejected_entries=self._counter("rejected_entries"),
        )

    def stats_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._count
