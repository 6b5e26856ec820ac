"""Alert state on disk, beside the samples in the collector's database: open and past alerts, their
log (state changes, mutes, acknowledgements), silences, maintenance windows, operator tokens.

Written only on change, one transaction per evaluation round; pending alerts live in memory (a
restart re-evaluates them), firing ones survive a restart with their start time and notification
state. SQL kept portable (PostgreSQL later).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from collector.alerting.mute import MaintenanceWindow, Matcher, Silence
from collector.errors import StoreError

P = ParamSpec("P")
R = TypeVar("R")


def _translated(method: Callable[Concatenate[AlertState, P], R]) -> Callable[Concatenate[AlertState, P], R]:
    """A ``sqlite3`` error of ``method`` becomes a ``StoreError`` naming the file and the operation."""

    @functools.wraps(method)
    def wrapper(self: AlertState, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {method.__name__}: {exc}") from exc

    return cast("Callable[Concatenate[AlertState, P], R]", wrapper)


SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    rule TEXT NOT NULL,
    center TEXT NOT NULL,
    severity TEXT NOT NULL,
    labels TEXT NOT NULL,
    state TEXT NOT NULL,
    value REAL,
    active_ms INTEGER NOT NULL,
    firing_ms INTEGER,
    resolved_ms INTEGER,
    muted TEXT NOT NULL DEFAULT '',
    muted_by TEXT NOT NULL DEFAULT '',
    notified INTEGER NOT NULL DEFAULT 0,
    hosts TEXT NOT NULL DEFAULT '[]',
    ack_by TEXT,
    ack_ms INTEGER,
    ack_comment TEXT,
    texts TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (fingerprint) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS alerts_center ON alerts (center, firing_ms);
CREATE TABLE IF NOT EXISTS alert_log (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    what TEXT NOT NULL,
    who TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_log_alert ON alert_log (alert_id);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_ms INTEGER NOT NULL,
    ends_ms INTEGER NOT NULL,
    author TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS maintenance_windows (
    id INTEGER PRIMARY KEY,
    center TEXT NOT NULL,
    days TEXT NOT NULL,
    start_hm TEXT NOT NULL,
    end_hm TEXT NOT NULL,
    timezone TEXT NOT NULL,
    author TEXT NOT NULL,
    comment TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS operators (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass
class AlertRow:
    """An open (pending, firing) or past alert."""

    fingerprint: str
    rule: str
    center: str
    severity: str
    labels: dict[str, str]
    state: str
    value: float
    active_ms: int
    firing_ms: int | None = None
    resolved_ms: int | None = None
    muted: str = ""
    muted_by: str = ""
    notified: bool = False
    hosts: frozenset[tuple[str, str]] = frozenset()
    ack_by: str | None = None
    ack_ms: int | None = None
    ack_comment: str | None = None
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    id: int | None = None
    #: changed since last saved
    dirty: bool = True


_COLS = (
    "id, fingerprint, rule, center, severity, labels, state, value, active_ms, firing_ms, resolved_ms,"
    " muted, muted_by, notified, hosts, ack_by, ack_ms, ack_comment, texts"
)


def _row(r: Sequence[Any]) -> AlertRow:
    return AlertRow(
        id=r[0],
        fingerprint=r[1],
        rule=r[2],
        center=r[3],
        severity=r[4],
        labels=json.loads(r[5]),
        state=r[6],
        value=r[7] if r[7] is not None else 0.0,
        active_ms=r[8],
        firing_ms=r[9],
        resolved_ms=r[10],
        muted=r[11],
        muted_by=r[12],
        notified=bool(r[13]),
        hosts=frozenset(tuple(h) for h in json.loads(r[14])),
        ack_by=r[15],
        ack_ms=r[16],
        ack_comment=r[17],
        texts=json.loads(r[18]),
        dirty=False,
    )


class AlertState:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # short waits: the evaluator runs on the event loop; a save that times out is retried
            # next round (its rows stay dirty), an API write answers 503
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=2)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=2000")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the alert tables: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    # --- alerts ----------------------------------------------------------------------------------
    @_translated
    def open_alerts(self) -> list[AlertRow]:
        return [_row(r) for r in self._db.execute(f"SELECT {_COLS} FROM alerts WHERE state <> 'resolved'")]  # noqa: S608

    @_translated
    def alerts(
        self, *, center: str | None = None, state: str | None = None, limit: int = 200, before_id: int | None = None
    ) -> list[AlertRow]:
        sql = f"SELECT {_COLS} FROM alerts WHERE 1 = 1"  # noqa: S608 - constant columns
        args: list[Any] = []
        if center:
            sql += " AND center = ?"
            args.append(center)
        if state == "open":
            sql += " AND state <> 'resolved'"
        elif state:
            sql += " AND state = ?"
            args.append(state)
        if before_id:
            sql += " AND id < ?"
            args.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [_row(r) for r in self._db.execute(sql, args)]

    @_translated
    def alert(self, alert_id: int) -> AlertRow | None:
        r = self._db.execute(f"SELECT {_COLS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()  # noqa: S608
        return _row(r) if r else None

    @_translated
    def log(self, alert_id: int) -> list[tuple[int, str, str, str]]:
        return list(
            self._db.execute("SELECT ts_ms, what, who, note FROM alert_log WHERE alert_id = ? ORDER BY id", (alert_id,))
        )

    def save(self, rows: Iterable[AlertRow], log: Iterable[tuple[AlertRow, int, str, str, str]]) -> None:
        """Insert or update ``rows`` (the dirty ones) and append ``log`` entries, in one transaction."""
        db = self._db
        inserted: list[AlertRow] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for a in rows:
                if not a.dirty:
                    continue
                values = (
                    a.fingerprint,
                    a.rule,
                    a.center,
                    a.severity,
                    json.dumps(a.labels, sort_keys=True, ensure_ascii=False),
                    a.state,
                    a.value,
                    a.active_ms,
                    a.firing_ms,
                    a.resolved_ms,
                    a.muted,
                    a.muted_by,
                    int(a.notified),
                    json.dumps(sorted(a.hosts)),
                    a.ack_by,
                    a.ack_ms,
                    a.ack_comment,
                    json.dumps(a.texts, ensure_ascii=False),
                )
                if a.id is None:
                    cur = db.execute(
                        "INSERT INTO alerts (fingerprint, rule, center, severity, labels, state, value, active_ms,"
                        " firing_ms, resolved_ms, muted, muted_by, notified, hosts, ack_by, ack_ms, ack_comment,"
                        " texts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        values,
                    )
                    a.id = int(cur.lastrowid or 0)
                    inserted.append(a)
                else:  # the acknowledgement is acknowledge()'s alone: an evaluation never overwrites it
                    db.execute(
                        "UPDATE alerts SET fingerprint = ?, rule = ?, center = ?, severity = ?, labels = ?, state = ?,"
                        " value = ?, active_ms = ?, firing_ms = ?, resolved_ms = ?, muted = ?, muted_by = ?,"
                        " notified = ?, hosts = ?, texts = ? WHERE id = ?",
                        (*values[:14], values[17], a.id),
                    )
                a.dirty = False
            for alert, ts_ms, what, who, note in log:
                db.execute(
                    "INSERT INTO alert_log (alert_id, ts_ms, what, who, note) VALUES (?, ?, ?, ?, ?)",
                    (alert.id, ts_ms, what, who, note),
                )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for a in rows:
                a.dirty = True
            for a in inserted:
                a.id = None  # rolled back: inserted again next time, not updated into nothing
            raise StoreError(f"{self.path}: saving alerts failed: {exc}") from exc

    @_translated
    def acknowledge(self, alert_id: int, who: str, comment: str, now_ms: int) -> AlertRow | None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            cur = db.execute(
                "UPDATE alerts SET ack_by = ?, ack_ms = ?, ack_comment = ? WHERE id = ?",
                (who, now_ms, comment, alert_id),
            )
            if cur.rowcount:
                db.execute(
                    "INSERT INTO alert_log (alert_id, ts_ms, what, who, note) VALUES (?, ?, 'acknowledged', ?, ?)",
                    (alert_id, now_ms, who, comment),
                )
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return self.alert(alert_id)

    # --- silences and maintenance windows ---------------------------------------------------------
    @_translated
    def add_silence(self, s: Silence) -> int:
        matchers = json.dumps([{"name": m.name, "value": m.value, "op": m.op} for m in s.matchers], ensure_ascii=False)
        cur = self._db.execute(
            "INSERT INTO silences (matchers, starts_ms, ends_ms, author, comment, created_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (matchers, s.starts_ms, s.ends_ms, s.author, s.comment, s.created_ms),
        )
        return int(cur.lastrowid or 0)

    @_translated
    def expire_silence(self, silence_id: int, now_ms: int) -> bool:
        cur = self._db.execute(
            "UPDATE silences SET ends_ms = ? WHERE id = ? AND ends_ms > ?", (now_ms, silence_id, now_ms)
        )
        return cur.rowcount > 0

    @_translated
    def silences(self, *, since_ms: int = 0) -> list[Silence]:
        rows = self._db.execute(
            "SELECT id, matchers, starts_ms, ends_ms, author, comment, created_ms FROM silences"
            " WHERE ends_ms > ? ORDER BY id",
            (since_ms,),
        )
        return [
            Silence(r[0], tuple(Matcher(**m) for m in json.loads(r[1])), r[2], r[3], r[4], r[5], r[6]) for r in rows
        ]

    @_translated
    def add_window(self, w: MaintenanceWindow) -> int:
        cur = self._db.execute(
            "INSERT INTO maintenance_windows (center, days, start_hm, end_hm, timezone, author, comment)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (w.center, json.dumps(list(w.days)), w.start, w.end, w.timezone, w.author, w.comment),
        )
        return int(cur.lastrowid or 0)

    @_translated
    def delete_window(self, window_id: int) -> bool:
        return self._db.execute("DELETE FROM maintenance_windows WHERE id = ?", (window_id,)).rowcount > 0

    @_translated
    def windows(self) -> list[MaintenanceWindow]:
        rows = self._db.execute(
            "SELECT id, center, days, start_hm, end_hm, timezone, comment, author FROM maintenance_windows ORDER BY id"
        )
        return [MaintenanceWindow(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5], r[6], r[7]) for r in rows]

    # --- operators ---------------------------------------------------------------------------------
    @_translated
    def add_operator(self, name: str, token_hash: str, now_ms: int) -> None:
        self._db.execute(
            "INSERT INTO operators (name, token_hash, created_ms) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, created_ms = excluded.created_ms,"
            " revoked = 0",
            (name, token_hash, now_ms),
        )

    @_translated
    def revoke_operator(self, name: str) -> bool:
        return self._db.execute("UPDATE operators SET revoked = 1 WHERE name = ?", (name,)).rowcount > 0

    @_translated
    def operator_by_token(self, token_hash: str) -> str | None:
        row = self._db.execute(
            "SELECT name FROM operators WHERE token_hash = ? AND revoked = 0", (token_hash,)
        ).fetchone()
        return str(row[0]) if row else None
