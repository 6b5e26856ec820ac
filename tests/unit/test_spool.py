"""The SQLite spool: durable, ordered, bounded by size and age, with persistent drop counters."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.errors import SpoolError
from agent.spool import DISK_RESERVE_BYTES, Entry, Spool, SpoolStats

DAY_MS = 86_400_000
BIG = 1 << 30

SpoolFactory = Callable[..., Spool]


@pytest.fixture
def open_spool(tmp_path: Path) -> Iterator[SpoolFactory]:
    """Open spools on one file in tmp_path; every one is closed at teardown."""
    opened: list[Spool] = []

    def open_(max_bytes: int = BIG, max_age_ms: int = 30 * DAY_MS, path: Path | None = None) -> Spool:
        spool = Spool(path or tmp_path / "spool.db", max_bytes, max_age_ms)
        opened.append(spool)
        return spool

    yield open_
    for spool in opened:
        spool.close()


def payload(i: int, size: int = 100) -> bytes:
    head = b'{"i":%d,"pad":"' % i
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_append_select_delete_round_trip(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    seqs = [spool.append(payload(i), created_ms=1_000 + i) for i in range(3)]
    entries = spool.select(BIG, 0.25)
    assert entries == [Entry(seq, 1_000 + i, payload(i)) for i, seq in enumerate(seqs)]
    assert all(isinstance(e.payload, bytes) for e in entries)
    assert len(spool) == 3
    spool.delete(seqs[:2])
    assert [e.seq for e in spool.select(BIG, 0.25)] == seqs[2:]
    assert len(spool) == 1
    assert spool.stats_bytes() == 100
    spool.delete([seqs[2]])
    assert spool.select(BIG, 0.25) == []
    assert len(spool) == 0
    assert spool.stats() == SpoolStats(0, 0, None, 0, 0, 0)


def test_delete_nothing_and_unknown_seqs_changes_nothing(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    seq = spool.append(payload(0), 1)
    spool.delete([])
    spool.delete([seq + 100, seq + 200])
    assert len(spool) == 1
    assert spool.stats().bytes == 100


def test_delete_many_seqs_in_chunks(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    seqs = [spool.append(b'{"i":%d}' % i, i) for i in range(1_200)]
    spool.delete(seqs[:1_100])
    assert len(spool) == 100
    assert [e.seq for e in spool.select(BIG, 0.0)] == seqs[1_100:]


def test_seq_strictly_increasing_and_starts_near_time_ms_times_1024(open_spool: SpoolFactory) -> None:
    before = time.time_ns() // 1_000_000 * 1024
    spool = open_spool()
    after = time.time_ns() // 1_000_000 * 1024
    seqs = [spool.append(payload(i), 5) for i in range(20)]
    assert before < seqs[0] <= after + 1
    assert all(b > a for a, b in itertools.pairwise(seqs))
    assert seqs[-1] - seqs[0] == 19  # consecutive within one spool
    assert seqs[-1] < 2**53  # still exact in JSON and within wire.Seq


def test_reopen_keeps_entries_and_continues_seq_without_reuse(open_spool: SpoolFactory) -> None:
    first = open_spool()
    seqs = [first.append(payload(i), 10 + i) for i in range(3)]
    first.delete([seqs[-1]])  # the newest: a naive max(rowid)+1 would hand its seq out again
    first.close()
    again = open_spool()
    assert [e.seq for e in again.select(BIG, 0.0)] == seqs[:2]
    assert len(again) == 2
    assert again.stats().bytes == 200
    new = again.append(payload(9), 20)
    assert new > seqs[-1]
    assert new == seqs[-1] + 1


def test_reopen_empty_spool_after_deleting_everything_continues_seq(open_spool: SpoolFactory) -> None:
    first = open_spool()
    seqs = [first.append(payload(i), 1) for i in range(2)]
    first.delete(seqs)
    first.close()
    assert open_spool().append(payload(3), 2) > seqs[-1]


def test_size_bound_drops_oldest_and_counts_persistently(open_spool: SpoolFactory) -> None:
    spool = open_spool(max_bytes=1_000)
    seqs = [spool.append(payload(i, 300), 100 + i) for i in range(3)]  # 900 bytes: fits
    assert spool.stats().dropped_entries == 0
    seqs.append(spool.append(payload(3, 300), 103))  # 1200 > 1000: the oldest goes
    assert [e.seq for e in spool.select(BIG, 0.0)] == seqs[1:]
    stats = spool.stats()
    assert (stats.entries, stats.bytes, stats.oldest_ms) == (3, 900, 101)
    assert (stats.dropped_entries, stats.dropped_bytes) == (1, 300)
    seqs.append(spool.append(payload(4, 700), 104))  # 1600 > 1000: two more go
    assert [e.seq for e in spool.select(BIG, 0.0)] == seqs[3:]
    assert (spool.stats().dropped_entries, spool.stats().dropped_bytes) == (3, 900)
    spool.close()
    reopened = open_spool(max_bytes=1_000)
    stats = reopened.stats()
    assert (stats.entries, stats.bytes) == (2, 1_000)
    assert (stats.dropped_entries, stats.dropped_bytes) == (3, 900)


def test_age_bound_drops_entries_older_than_max_age(open_spool: SpoolFactory) -> None:
    spool = open_spool(max_age_ms=1_000)
    old = [spool.append(payload(i), created) for i, created in enumerate((0, 500, 900))]
    kept = spool.append(payload(3), 1_600)  # cutoff 600: the first two are too old
    assert [e.seq for e in spool.select(BIG, 0.0)] == [old[2], kept]
    stats = spool.stats()
    assert (stats.entries, stats.bytes, stats.oldest_ms) == (2, 200, 900)
    assert (stats.dropped_entries, stats.dropped_bytes) == (2, 200)


def test_age_and_size_bounds_together_count_each_entry_once(open_spool: SpoolFactory) -> None:
    spool = open_spool(max_bytes=500, max_age_ms=1_000)
    spool.append(payload(0, 200), 0)
    second = spool.append(payload(1, 200), 1_000)
    third = spool.append(payload(2, 200), 1_500)  # age drops #0; 400 bytes remain: fits
    assert [e.seq for e in spool.select(BIG, 0.0)] == [second, third]
    assert (spool.stats().dropped_entries, spool.stats().dropped_bytes) == (1, 200)
    fourth = spool.append(payload(3, 200), 1_600)  # 600 > 500: #1 goes for size
    assert [e.seq for e in spool.select(BIG, 0.0)] == [third, fourth]
    assert (spool.stats().dropped_entries, spool.stats().dropped_bytes, spool.stats().bytes) == (2, 400, 400)


def test_select_with_fresh_share_takes_newest_and_oldest_sorted_within_budget(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    seqs = [spool.append(payload(i), i) for i in range(10)]  # 100 bytes each
    chosen = spool.select(500, 0.4)  # 200 bytes for the newest, the rest oldest first
    assert [e.seq for e in chosen] == [*seqs[:3], *seqs[8:]]
    assert sum(len(e.payload) for e in chosen) <= 500


def test_select_fresh_share_smaller_than_one_entry_still_takes_the_newest(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    seqs = [spool.append(payload(i), i) for i in range(10)]
    assert [e.seq for e in spool.select(500, 0.1)] == [*seqs[:4], seqs[-1]]


def test_select_without_fresh_share_is_oldest_first(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    seqs = [spool.append(payload(i), i) for i in range(10)]
    assert [e.seq for e in spool.select(450, 0.0)] == seqs[:4]


def test_select_everything_when_it_fits(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    seqs = [spool.append(payload(i), i) for i in range(5)]
    for share in (0.0, 0.25, 0.5, 1.0):
        assert [e.seq for e in spool.select(10_000, share)] == seqs


def test_select_returns_the_oldest_even_if_it_alone_exceeds_the_budget(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    seqs = [spool.append(payload(i, 1_000), i) for i in range(3)]
    assert [e.seq for e in spool.select(500, 0.0)] == seqs[:1]


@pytest.mark.parametrize("share", [0.25, 1.0])
def test_select_takes_oldest_and_newest_when_one_entry_fills_the_budget(open_spool: SpoolFactory, share: float) -> None:
    """Else a budget that holds one entry would drain the backlog newest-first (LIFO)."""
    spool = open_spool()
    seqs = [spool.append(payload(i, 1_000), i) for i in range(3)]
    assert [e.seq for e in spool.select(500, share)] == [seqs[0], seqs[-1]]
    spool.delete([seqs[0], seqs[-1]])
    assert [e.seq for e in spool.select(500, share)] == [seqs[1]]


def test_select_empty_spool(open_spool: SpoolFactory) -> None:
    assert open_spool().select(1_000, 0.25) == []


def test_reject_deletes_and_counts_persistently(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    seqs = [spool.append(payload(i), i) for i in range(4)]
    spool.reject([seqs[1]])
    spool.reject([seqs[2], seqs[3]])
    assert [e.seq for e in spool.select(BIG, 0.0)] == [seqs[0]]
    stats = spool.stats()
    assert (stats.entries, stats.bytes, stats.rejected_entries, stats.dropped_entries) == (1, 100, 3, 0)
    spool.close()
    assert open_spool().stats().rejected_entries == 3


def test_stats(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    assert spool.stats() == SpoolStats(
        entries=0, bytes=0, oldest_ms=None, dropped_entries=0, dropped_bytes=0, rejected_entries=0
    )
    spool.append(payload(0, 150), 7_000)
    spool.append(payload(1, 50), 9_000)
    assert spool.stats() == SpoolStats(2, 200, 7_000, 0, 0, 0)
    assert spool.stats_bytes() == 200
    assert len(spool) == 2


def test_unopenable_spool_raises_spool_error(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(SpoolError, match=r"cannot open the spool"):
        Spool(path, BIG, DAY_MS)


def test_spool_creates_its_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "a" / "b" / "spool.db", BIG, DAY_MS)
    try:
        spool.append(payload(0), 1)
        assert (tmp_path / "a" / "b" / "spool.db").is_file()
    finally:
        spool.close()


def test_order_is_seq_not_time_across_clock_steps(open_spool: SpoolFactory) -> None:
    """A wall clock stepped back an hour, then forward two: entries drain in the order they were made."""
    spool = open_spool(max_age_ms=DAY_MS)
    hour = 3_600_000
    t0 = 1_800_000_000_000
    stamps = [t0, t0 + 200, t0 - hour, t0 - hour + 200, t0 + 2 * hour, t0 + 2 * hour + 200, t0 + 400]
    seqs = [spool.append(payload(i), created) for i, created in enumerate(stamps)]
    assert seqs == sorted(seqs)
    assert [e.seq for e in spool.select(BIG, 0.0)] == seqs  # oldest made first, whatever its stamp
    assert [e.created_ms for e in spool.select(BIG, 0.0)] == stamps
    assert spool.stats().dropped_entries == 0  # neither step made anything look older than max_age


def test_seq_base_comes_from_the_clock_handed_in(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", BIG, DAY_MS, clock_ms=lambda: 1_000)
    try:
        assert spool.append(payload(0), 5) == 1_000 * 1024 + 1
    finally:
        spool.close()


def test_nearly_full_disk_stops_growth_and_replaces_the_oldest(
    open_spool: SpoolFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = [1 << 40]
    monkeypatch.setattr("agent.spool.shutil.disk_usage", lambda _path: SimpleNamespace(free=free[0]))
    spool = open_spool()
    seqs = [spool.append(payload(i, 1_000), i) for i in range(5)]
    free[0] = DISK_RESERVE_BYTES  # the filesystem reaches the reserve: no room for one more entry
    seqs += [spool.append(payload(i, 1_000), i) for i in range(5, 8)]
    assert [e.seq for e in spool.select(BIG, 0.0)] == seqs[3:]  # same size, the 3 oldest replaced
    stats = spool.stats()
    assert (stats.entries, stats.bytes, stats.dropped_entries, stats.dropped_bytes) == (5, 5_000, 3, 3_000)


def test_disk_full_drops_oldest_until_it_fits_counts_it_and_keeps_the_database_sound(
    open_spool: SpoolFactory,
) -> None:
    """SQLite's own page limit gives the real SQLITE_FULL a full filesystem gives."""
    spool = open_spool()
    spool._db.execute("PRAGMA max_page_count=64")  # 256 KiB
    seqs = []
    for i in range(200):
        seqs.append(spool.append(payload(i, 3_000), i))  # never raises: the oldest make room
    kept = [e.seq for e in spool.select(BIG, 0.0)]
    assert kept == seqs[-len(kept) :] and 10 < len(kept) < 80  # the newest, contiguous
    stats = spool.stats()
    assert stats.dropped_entries + len(kept) == 200
    assert (stats.entries, stats.bytes) == (len(kept), 3_000 * len(kept))
    assert spool._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_disk_full_with_nothing_to_drop_counts_the_new_entry(open_spool: SpoolFactory) -> None:
    spool = open_spool()
    spool._db.execute("PRAGMA max_page_count=8")
    with pytest.raises(SpoolError, match="disk full, nothing left to drop"):
        spool.append(payload(0, 100_000), 1)
    assert (spool.stats().dropped_entries, spool.stats().dropped_bytes, len(spool)) == (1, 100_000, 0)
    spool.append(payload(1, 100), 2)  # the next write that fits also records the drop on disk
    assert spool._counter("dropped_entries") == 1


def test_entries_being_uploaded_are_not_dropped_until_released(open_spool: SpoolFactory) -> None:
    """Else a result dropped for space while the collector stores it is counted lost and arrives."""
    spool = open_spool(max_bytes=1_000)
    seqs = [spool.append(payload(i, 300), i) for i in range(3)]
    spool.hold([e.seq for e in spool.select(300, 0.0)])
    seqs.append(spool.append(payload(3, 300), 3))  # past the bound: the oldest not in flight goes
    assert [e.seq for e in spool.select(BIG, 0.0)] == [seqs[0], *seqs[2:]]
    spool.release()
    seqs.append(spool.append(payload(4, 300), 4))
    assert [e.seq for e in spool.select(BIG, 0.0)] == seqs[2:]
    assert spool.stats().dropped_entries == 2


def test_a_write_that_fails_otherwise_counts_the_lost_result(open_spool: SpoolFactory) -> None:
    """An I/O error or a user's quota (SQLite says "disk I/O error") loses the result: counted."""
    spool = open_spool()
    spool.append(payload(0), 1)
    spool._db.execute("PRAGMA query_only=1")  # every write now fails, and not for space
    with pytest.raises(SpoolError, match="cannot append; result dropped and counted"):
        spool.append(payload(1), 2)
    assert (spool.stats().dropped_entries, len(spool)) == (1, 1)  # the oldest were not touched
    spool._db.execute("PRAGMA query_only=0")
    spool.append(payload(2), 3)
    assert spool._counter("dropped_entries") == 1


def test_entries_being_uploaded_are_not_dropped_for_age_either(open_spool: SpoolFactory) -> None:
    spool = open_spool(max_age_ms=DAY_MS)
    old = [spool.append(payload(i), i) for i in (1, 2)]
    spool.hold([old[0]])
    new = spool.append(payload(3), 2 * DAY_MS)  # both are past the age bound now; the held one stays
    assert [e.seq for e in spool.select(BIG, 0.0)] == [old[0], new]
    assert spool.stats().dropped_entries == 1
