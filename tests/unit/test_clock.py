"""The agent's wall clock and its test-only offset seam."""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent.catalog import load_catalog
from agent.clock import OFFSET_FILE_ENV, OffsetClock, clock_from_env, wall_ms
from agent.runtime import spool_report
from agent.spool import Spool

HOUR_MS = 3_600_000


def set_offset(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a new inode: seen as a change even within one mtime tick


def test_off_by_default() -> None:
    assert clock_from_env({}) is wall_ms
    assert clock_from_env({OFFSET_FILE_ENV: ""}) is wall_ms


def test_offset_file_steps_the_clock_forward_and_back(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    clock = clock_from_env({OFFSET_FILE_ENV: str(path)})
    assert isinstance(clock, OffsetClock)
    assert abs(clock() - wall_ms()) < 1_000  # no file yet: no offset
    set_offset(path, f"{2 * HOUR_MS}\n")
    assert abs(clock() - wall_ms() - 2 * HOUR_MS) < 1_000
    set_offset(path, str(-HOUR_MS))
    assert abs(clock() - wall_ms() + HOUR_MS) < 1_000


def test_unreadable_or_empty_offset_keeps_the_last_one(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    set_offset(path, str(HOUR_MS))
    clock = OffsetClock(path)
    clock()
    for text in ("", "not a number"):
        set_offset(path, text)
        assert abs(clock() - wall_ms() - HOUR_MS) < 1_000
    path.unlink()
    assert abs(clock() - wall_ms() - HOUR_MS) < 1_000


def test_spool_report_carries_the_spool_counters_and_is_cataloged(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", 1024 * 1024, HOUR_MS)
    try:
        spool.append(b'{"x":"' + b"a" * 600_000 + b'"}', 1)
        spool.append(b'{"x":"' + b"b" * 600_000 + b'"}', 2)  # past 1 MiB: the first is dropped
        seq = spool.append(b'{"y":1}', 3)
        spool.reject([seq])
        now = int(time.time() * 1000)
        body = spool_report(spool, now)
    finally:
        spool.close()
    assert (body.check, body.started_ms, body.ok) == ("agent", now, True)
    values = {s.name: s.value for s in body.samples}
    assert values == {
        "centerwatch_agent_spool_entries": 1.0,
        "centerwatch_agent_spool_bytes": 600_008.0,
        "centerwatch_agent_spool_dropped_entries_total": 1.0,
        "centerwatch_agent_spool_rejected_entries_total": 1.0,
    }
    assert all(s.ts_ms == now and s.labels == {} for s in body.samples)
    assert set(values) <= set(load_catalog())
