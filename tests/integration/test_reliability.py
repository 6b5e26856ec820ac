"""Nothing lost: the collector killed under load, the collector down while agents keep measuring,
an agent restarted during the outage, a full spool, the agent's clock stepped back and forward, and
the spool's disk full. Every count is checked end to end.

Outages are compressed in time (seconds instead of the field's 30 minutes) by running the checks
every 0.2 s instead of every 15 s: the number of spooled results is what matters, and it is the
same order (a 30-minute outage at 15 s is 120 results; here 30 s at 0.2 s is ~150).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from pathlib import Path

import pytest

from centerwatch.wire import Batch, Part, Sample, encode
from tests.conftest import BIN, Proc, free_port, http, wait_for

pytestmark = pytest.mark.integration


def serve(procs: Callable[..., Proc], db: Path, port: int, log: Path) -> Proc:
    proc = procs(
        [str(BIN / "centerwatch-collector"), "serve", "--db", str(db), "--port", str(port), "--agent-interval", "1"],
        log,
    )
    wait_for("collector /healthz", lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200)
    return proc


def token(db: Path, center: str = "hoa-khanh") -> str:
    return subprocess.run(
        [str(BIN / "centerwatch-collector"), "token", "create", "--db", str(db), "--center", center],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def enroll(port: int, enroll_token: str, host: str) -> tuple[str, str]:
    body = json.dumps({"v": 1, "token": enroll_token, "hostname": host, "agent_version": "t"}).encode()
    status, answer = http("POST", f"http://127.0.0.1:{port}/api/v1/enroll", body, {"Content-Type": "application/json"})
    assert status == 200, answer
    data = json.loads(answer)
    return data["agent_id"], data["agent_token"]


def test_sigkill_under_load_loses_no_acknowledged_batch(tmp_path: Path, procs: Callable[..., Proc]) -> None:
    db, port = tmp_path / "c.db", free_port()
    collector = serve(procs, db, port, tmp_path / "c0.log")
    enroll_token = token(db)
    agents = [enroll(port, enroll_token, f"pc{i:02d}") for i in range(4)]
    acked: dict[tuple[str, int], int] = {}  # (agent, seq) → samples acknowledged
    lock = threading.Lock()
    stop = threading.Event()
    attempts = [0]

    def agent_loop(agent_id: str, agent_token: str) -> None:
        seq = 1
        while not stop.is_set():
            now = int(time.time() * 1000)
            samples = [Sample("test_value", {"i": str(i)}, float(seq), now) for i in range(60)]
            body = encode(Batch(1, agent_id, now, [Part(seq, "load", now, 0.0, True, samples=samples)]))
            while not stop.is_set():  # like the real uploader: the same part until it is acknowledged
                attempts[0] += 1
                conn = HTTPConnection("127.0.0.1", port, timeout=5)
                try:
                    conn.request("POST", "/api/v1/ingest", body, {"Authorization": f"Bearer {agent_token}"})
                    response = conn.getresponse()
                    payload = response.read()
                except (OSError, HTTPException):  # HTTPException: killed mid-answer (IncompleteRead)
                    time.sleep(0.05)
                    continue
                finally:
                    conn.close()
                if response.status == 200:
                    ack = json.loads(payload)
                    with lock:
                        acked[(agent_id, seq)] = len(samples)
                    assert ack["seqs"] == [seq]
                    break
                time.sleep(0.05)
            seq += 1

    threads = [threading.Thread(target=agent_loop, args=a, daemon=True) for a in agents]
    for t in threads:
        t.start()
    rng = random.Random(7)
    for kill in range(3):
        time.sleep(rng.uniform(1.0, 2.0))
        os.kill(collector.popen.pid, signal.SIGKILL)
        collector.popen.wait(timeout=10)
        collector = serve(procs, db, port, tmp_path / f"c{kill + 1}.log")
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    collector.stop()

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute(
            "SELECT s.agent_id, r.seq, r.n FROM runs r JOIN streams s ON s.id = r.stream_id WHERE s.check_name = 'load'"
        ).fetchall()
    stored = {(agent_id, seq): n for agent_id, seq, n in rows}
    assert len(rows) == len(stored), "a part was stored twice"
    missing = [key for key in acked if key not in stored]
    assert not missing, f"acknowledged but not stored: {missing[:5]}"
    assert all(stored[key] == n for key, n in acked.items())
    assert len(acked) > 100 and attempts[0] > len(acked)  # there was load, and retries across the kills


def agent_config(
    path: Path,
    url: str,
    enroll_token: str,
    data_dir: Path,
    max_bytes: int = 256 * 1024 * 1024,
    every: float = 0.2,
    *,
    metrics_listen: str = "",
    max_batch_bytes: int = 65536,
    fresh_share: float = 0.25,
    report_interval_s: float = 60.0,
) -> Path:
    path.write_text(
        f"collector_url: {url}\nenrollment_token: {enroll_token}\ndata_dir: {data_dir}\n"
        f"metrics_listen: '{metrics_listen}'\n"
        f"spool: {{max_bytes: {max_bytes}, report_interval_s: {report_interval_s}}}\n"
        "upload: {interval_s: 0.2, backoff_min_s: 0.2, backoff_max_s: 1, "
        f"max_batch_bytes: {max_batch_bytes}, fresh_share: {fresh_share}}}\n"
        f"checks:\n  host: {{interval_s: {every}, timeout_s: 5, facts: false}}\n"
    )
    return path


def host_runs(db: Path) -> list[tuple[int, int, int]]:
    """(seq, started_ms, received_ms) of every stored host run, in seq order."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT r.seq, r.started_ms, r.received_ms FROM runs r JOIN streams s ON s.id = r.stream_id"
            " WHERE s.check_name = 'host' ORDER BY r.seq"
        ).fetchall()


def test_outage_with_agent_restart_drains_everything_at_true_timestamps(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    db, port = tmp_path / "c.db", free_port()
    url = f"http://127.0.0.1:{port}"
    collector = serve(procs, db, port, tmp_path / "c0.log")
    config = agent_config(tmp_path / "agent.yaml", url, token(db), tmp_path / "agent")
    run = [str(BIN / "centerwatch-agent"), "run", "-c", str(config)]
    agent = procs(run, tmp_path / "a0.log")
    wait_for("first results", lambda: len(host_runs(db)) >= 5)

    collector.stop(signal.SIGKILL)
    outage_start = int(time.time() * 1000)
    time.sleep(4)
    assert agent.stop(signal.SIGTERM) == 0  # the agent restarted in the middle of the outage
    agent = procs(run, tmp_path / "a1.log")
    time.sleep(4)
    outage_end = int(time.time() * 1000)
    collector = serve(procs, db, port, tmp_path / "c1.log")

    def drained() -> bool:
        spool = sqlite3.connect(tmp_path / "agent" / "spool.db")
        try:
            left = spool.execute("SELECT count(*) FROM entries WHERE created_ms < ?", (outage_end,)).fetchone()[0]
        finally:
            spool.close()
        return left == 0

    wait_for("the backlog to drain", drained, timeout=60)
    assert agent.stop(signal.SIGTERM) == 0
    runs = host_runs(db)
    seqs = [r[0] for r in runs]
    assert len(seqs) == len(set(seqs))
    during = [r for r in runs if outage_start <= r[1] <= outage_end]
    # ~40 results were measured during the 8 s outage (0.2 s interval), minus the restart gap
    assert len(during) >= 25, len(during)
    # stored at their true timestamps: measured during the outage, received after it
    assert all(received >= outage_end for _seq, _started, received in during)
    # the backlog drained oldest-first: no batch sent more than its fresh share (16 KiB, three host
    # results) ahead of older results still waiting
    assert max(sent_ahead(all_runs(db), outage_end)) <= 4
    # no gap in the measurements longer than the agent's own restart
    starts = sorted(r[1] for r in runs)
    gaps = sorted(b - a for a, b in itertools.pairwise(starts))
    assert gaps[-2] < 1500, gaps[-5:]  # one gap for the restart, the rest at the 0.2 s interval
    collector.stop()


def test_full_spool_drops_oldest_counts_and_reports_it(tmp_path: Path, procs: Callable[..., Proc]) -> None:
    db, port = tmp_path / "c.db", free_port()
    url = f"http://127.0.0.1:{port}"
    collector = serve(procs, db, port, tmp_path / "c0.log")
    config = agent_config(
        tmp_path / "agent.yaml", url, token(db), tmp_path / "agent", max_bytes=1024 * 1024, every=0.02
    )
    agent = procs([str(BIN / "centerwatch-agent"), "run", "-c", str(config)], tmp_path / "a.log")
    wait_for("first results", lambda: len(host_runs(db)) >= 2)
    collector.stop(signal.SIGKILL)

    def dropped() -> int:
        spool = sqlite3.connect(tmp_path / "agent" / "spool.db")
        try:
            row = spool.execute("SELECT value FROM counters WHERE name = 'dropped_entries'").fetchone()
            size = spool.execute("SELECT sum(size) FROM entries").fetchone()[0] or 0
        finally:
            spool.close()
        assert size <= 1024 * 1024  # bounded
        return int(row[0]) if row else 0

    # ~5 KB per host result at up to 50 per second: 1 MiB is full within seconds
    wait_for("the spool to reach its bound and drop", lambda: dropped() > 0, timeout=90, every=0.5)
    assert agent.stop(signal.SIGTERM) == 0
    # the count survives a restart and is exported on the agent's own /metrics
    metrics_port = free_port()
    config.write_text(config.read_text().replace("metrics_listen: ''", f"metrics_listen: 127.0.0.1:{metrics_port}"))
    before_restart = dropped()
    agent = procs([str(BIN / "centerwatch-agent"), "run", "-c", str(config)], tmp_path / "a1.log")
    text = wait_for(
        "agent /metrics", lambda: http("GET", f"http://127.0.0.1:{metrics_port}/metrics")[1].decode(), timeout=20
    )
    line = next(x for x in text.splitlines() if x.startswith("centerwatch_agent_spool_dropped_entries_total"))
    assert float(line.split()[-1]) >= before_restart > 0  # monotonic: it only grows while the outage lasts
    agent.stop()


# --- what the stored runs say about a drain, and the agent's own counters ---------------------------


@dataclass(frozen=True)
class Run:
    rowid: int  # the collector's insertion order
    check: str
    seq: int
    started_ms: int
    received_ms: int  # one value per acknowledged batch
    duration_s: float


def all_runs(db: Path) -> list[Run]:
    """Every stored run of every check (one agent per database in these tests), in insertion order."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT r.id, s.check_name, r.seq, r.started_ms, r.received_ms, r.duration_s"
            " FROM runs r JOIN streams s ON s.id = r.stream_id ORDER BY r.id"
        ).fetchall()
    finally:
        conn.close()
    return [Run(*row) for row in rows]


def reported(db: Path, metric: str) -> float | None:
    """The value of ``metric`` in the newest ``agent`` part the collector stored (the agent's own report)."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT r.sids, r.vals FROM runs r JOIN streams s ON s.id = r.stream_id"
            " WHERE s.check_name = 'agent' ORDER BY r.seq DESC LIMIT 1"
        ).fetchone()
        names = dict(conn.execute("SELECT id, name FROM series").fetchall())
    finally:
        conn.close()
    if row is None:
        return None
    sids, vals = array("q"), array("d")  # the store's packed little-endian arrays
    sids.frombytes(row[0])
    vals.frombytes(row[1])
    return next((v for sid, v in zip(sids, vals, strict=True) if names[sid] == metric), None)


def scrape(url: str, name: str, labels: str = "") -> float:
    """One value from a /metrics page (0 when the series is absent)."""
    status, body = http("GET", url)
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + (labels or " ")) and not line.startswith("#"):
            return float(line.split()[-1])
    return 0.0


def spool_state(data_dir: Path) -> tuple[list[int], int, int, int]:
    """Seqs still spooled, the last seq ever given, and the drop and refusal counters (agent stopped)."""
    conn = sqlite3.connect(data_dir / "spool.db")
    try:
        left = [r[0] for r in conn.execute("SELECT seq FROM entries ORDER BY seq")]
        last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()[0]
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    finally:
        conn.close()
    return left, int(last), int(counters.get("dropped_entries", 0)), int(counters.get("rejected_entries", 0))


def sent_ahead(runs: list[Run], since_ms: int) -> list[int]:
    """Per batch received since ``since_ms``: how many of its parts went ahead of an older part that
    was still waiting (stored by a later batch). Oldest-first with a fresh share means only the
    batch's few newest parts may; a drain that starts anywhere else shows many."""
    batches: dict[int, list[int]] = {}
    for run in runs:
        if run.received_ms >= since_ms:
            batches.setdefault(run.received_ms, []).append(run.seq)
    order = sorted(batches)
    ahead = []
    oldest_later = 1 << 62
    for received in reversed(order):
        ahead.append(sum(1 for seq in batches[received] if seq > oldest_later))
        oldest_later = min(oldest_later, *batches[received])
    return ahead[::-1]


# --- the agent's clock stepped, live and during an outage -------------------------------------------

HOUR_MS = 3_600_000
_REFUSED = re.compile(r"refused part seq=(\d+) \(HTTP 400 future_timestamp: \D*(\d{13})\D+(\d{13})")


def test_clock_steps_lose_nothing_and_refused_future_parts_are_counted_and_reported(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    """The agent's wall clock jumps back 1 h and forward 2 h, live and while the collector is down.

    Nothing may be lost or stored twice: every seq the agent's spool gave is stored exactly once,
    or refused by the collector's ``max_future_s`` rule (a part stamped 2 h ahead: stored at that
    time it would show a center as alive in the future) and then counted by the agent, on its
    /metrics and in its next report to the collector, and by the collector's refusal counter.
    Parts stamped 1 h back are stored at the time they carry. The spool drains by seq, so the
    order of measurement survives the steps."""
    db, port, metrics_port = tmp_path / "c.db", free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    offset = tmp_path / "clock-offset-ms"

    def step(ms: int) -> None:
        (tmp_path / "offset.tmp").write_text(str(ms))
        os.replace(tmp_path / "offset.tmp", offset)

    step(0)
    collector = serve(procs, db, port, tmp_path / "c0.log")
    data_dir = tmp_path / "agent"
    config = agent_config(
        tmp_path / "agent.yaml",
        url,
        token(db),
        data_dir,
        metrics_listen=f"127.0.0.1:{metrics_port}",
        report_interval_s=0.5,
    )
    env = {"CENTERWATCH_AGENT_CLOCK_OFFSET_FILE": str(offset)}
    agent = procs([str(BIN / "centerwatch-agent"), "run", "-c", str(config)], tmp_path / "a.log", env)
    wait_for("first results", lambda: len(host_runs(db)) >= 3)
    test_start = int(time.time() * 1000) - 5_000

    for ms, seconds in ((-HOUR_MS, 1.5), (2 * HOUR_MS, 1.5), (0, 1.0)):  # live
        step(ms)
        time.sleep(seconds)
    collector.stop(signal.SIGKILL)
    outage_start = int(time.time() * 1000)
    for ms, seconds in ((0, 0.6), (2 * HOUR_MS, 1.5), (-HOUR_MS, 1.5), (0, 0.6)):  # collector down
        step(ms)
        time.sleep(seconds)
    outage_end = int(time.time() * 1000)
    collector = serve(procs, db, port, tmp_path / "c1.log")

    def settled() -> bool:
        # drained, and a report made after the last refusal has reached the collector
        refused = len(_REFUSED.findall(agent.output()))
        return (
            scrape(f"http://127.0.0.1:{metrics_port}/metrics", "centerwatch_agent_spool_entries") <= 2
            and reported(db, "centerwatch_agent_spool_rejected_entries_total") == refused
        )

    wait_for("the backlog to drain and the refusals to be reported", settled, timeout=30, every=0.2)
    agent_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    rejected_on_agent = scrape(agent_metrics, "centerwatch_agent_spool_rejected_entries_total")
    refused_by_collector = scrape(f"{url}/metrics", "centerwatch_ingest_batches_total", '{result="future_timestamp"}')
    assert agent.stop(signal.SIGTERM) == 0
    test_end = int(time.time() * 1000)
    collector.stop()

    refusals = [(int(seq), int(ts), int(now)) for seq, ts, now in _REFUSED.findall(agent.output())]
    refused = {seq for seq, _ts, _now in refusals}
    runs = all_runs(db)
    stored = [r.seq for r in runs]
    left, last_seq, dropped, rejected = spool_state(data_dir)
    # 0 duplicated: each seq stored once, refused once, never both
    assert len(stored) == len(set(stored)) and len(refusals) == len(refused)
    assert not refused & set(stored)
    # 0 lost: every seq the spool ever gave is stored, refused (and counted) or still spooled
    universe = set(range(min(stored), last_seq + 1))
    assert set(stored) | refused | set(left) == universe, sorted(universe - set(stored) - refused - set(left))[:10]
    assert dropped == 0
    # only the parts stamped ~2 h ahead were refused, and each refusal was counted everywhere
    assert all(2 * HOUR_MS - 60_000 < ts - now < 2 * HOUR_MS + 60_000 for _seq, ts, now in refusals)
    assert len(refused) >= 10, len(refused)  # ~7 host results in each of the two 1.5 s windows
    assert rejected == len(refused) == rejected_on_agent
    assert reported(db, "centerwatch_agent_spool_rejected_entries_total") == len(refused)
    assert refused_by_collector >= len(refused)  # one refused request per part at least (bisection)
    # stored at the time they carry: now, or 1 h back; nothing from the future
    host = [r for r in runs if r.check == "host"]
    assert all(test_start - HOUR_MS <= r.started_ms <= test_end for r in host)
    back = [r for r in host if r.started_ms < test_start]
    live_back = [r for r in back if r.received_ms - (r.started_ms + HOUR_MS) < 3_000]
    outage_back = [r for r in back if r.received_ms >= outage_end]
    assert len(live_back) >= 4 and len(outage_back) >= 4, (len(live_back), len(outage_back))
    assert all(outage_start - 500 <= r.started_ms + HOUR_MS <= outage_end for r in outage_back)
    # the spool's order is the order of measurement, whatever the clock said
    real = [r.started_ms + (HOUR_MS if r.started_ms < test_start else 0) for r in sorted(host, key=lambda r: r.seq)]
    assert all(b >= a for a, b in itertools.pairwise(real)), "drained out of measurement order"


# --- the spool's filesystem full while the collector is down -----------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB filesystem (tmpfs) for the agent's data directory; needs root to mount."""
    where = tmp_path / "disk"
    where.mkdir()
    why = "mounting a tmpfs needs root" if os.geteuid() != 0 else ""
    if not why:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(where)], capture_output=True, text=True
        )
        why = f"mount failed: {done.stderr.strip()}" if done.returncode else ""
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so not skipping: {why}")
        pytest.skip(why)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_disk_full_spool_stays_bounded_drops_oldest_counts_reports_and_drains_oldest_first(
    tmp_path: Path, procs: Callable[..., Proc], small_disk: Path
) -> None:
    """The agent's data directory is an 8 MiB filesystem, far below ``spool.max_bytes`` (256 MiB).

    While the collector is down the spool grows until the disk is nearly full, then each new
    result replaces the oldest: the agent keeps running, no write fails, the spool stays the same
    size, and every drop is counted on /metrics. Then another program takes the last byte of the
    disk: writes hit ENOSPC, the spool makes room by dropping its oldest, and keeps the database
    sound. After the link returns: every result not dropped is stored exactly once, the dropped
    ones are exactly as many as counted and are the oldest (but for results already sent as fresh
    and the batch in flight when the link came back), their count reaches the collector in the
    agent's report, nothing is dropped once the link is back, and the backlog drains oldest-first
    while fresh results arrive within a few check intervals."""
    db, port, metrics_port = tmp_path / "c.db", free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    agent_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    collector = serve(procs, db, port, tmp_path / "c0.log")
    every = 0.02
    config = agent_config(
        tmp_path / "agent.yaml",
        url,
        token(db),
        small_disk,
        every=every,
        metrics_listen=f"127.0.0.1:{metrics_port}",
        # ~4.6 KB per host result: the oldest one or two and the newest in each batch, so the
        # backlog (~600 results) takes hundreds of batches to drain
        max_batch_bytes=16384,
        fresh_share=0.5,
        report_interval_s=0.5,
    )
    agent = procs([str(BIN / "centerwatch-agent"), "run", "-c", str(config)], tmp_path / "a.log")
    wait_for("first results", lambda: len(host_runs(db)) >= 3)
    collector.stop(signal.SIGKILL)
    outage_start = int(time.time() * 1000)

    def dropped() -> float:
        return scrape(agent_metrics, "centerwatch_agent_spool_dropped_entries_total")

    wait_for("the disk to fill and the spool to drop", dropped, timeout=30, every=0.2)
    # bounded: the spool no longer grows, and the disk keeps its reserve
    sizes, frees = [], []
    for _ in range(10):
        sizes.append(scrape(agent_metrics, "centerwatch_agent_spool_bytes"))
        frees.append(shutil.disk_usage(small_disk).free)
        time.sleep(0.1)
    assert max(sizes) <= sizes[0] * 1.05 and dropped() > 0, sizes
    assert min(frees) > 256 * 1024, frees
    # another program fills the disk to the last byte for a second
    with (small_disk / "other-program.bin").open("wb", buffering=0) as filler:
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 512)
        assert shutil.disk_usage(small_disk).free < 4096
        before = dropped()
        time.sleep(1.0)
        assert dropped() > before  # still measuring: the oldest make room for the newest
    (small_disk / "other-program.bin").unlink()
    assert agent.popen.poll() is None

    recovery = int(time.time() * 1000)
    collector = serve(procs, db, port, tmp_path / "c1.log")
    wait_for(
        "the backlog to drain and the drops to be reported",
        lambda: (
            scrape(agent_metrics, "centerwatch_agent_spool_entries") <= 2
            and reported(db, "centerwatch_agent_spool_dropped_entries_total") == dropped()
        ),
        timeout=30,
        every=0.2,
    )
    assert agent.stop(signal.SIGTERM) == 0
    collector.stop()
    assert "could not spool" not in agent.output()  # no result was lost outside the counters

    runs = all_runs(db)
    stored = [r.seq for r in runs]
    left, last_seq, dropped_total, rejected = spool_state(small_disk)
    assert reported(db, "centerwatch_agent_spool_dropped_entries_total") == dropped_total
    conn = sqlite3.connect(small_disk / "spool.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    # exactly once; what is missing is exactly what was counted, one run of the oldest
    assert len(stored) == len(set(stored)) and rejected == 0
    missing = sorted(set(range(min(stored), last_seq + 1)) - set(stored) - set(left))
    assert len(missing) == dropped_total > 0
    link_back = min(r.received_ms for r in runs if r.received_ms >= recovery)
    first_batches = sorted({r.received_ms for r in runs if r.received_ms >= recovery})[:3]
    # the oldest, but for results already sent ahead as fresh before the outage, and the batch
    # being uploaded when the link came back (held from dropping, and stored)
    skipped = [r for r in runs if missing[0] < r.seq < missing[-1]]
    assert all(r.received_ms < outage_start or r.received_ms in first_batches for r in skipped), skipped
    assert all(r.seq > missing[-1] for r in runs if r.started_ms >= link_back)  # none dropped since
    # oldest-first: no batch sends more than its fresh share ahead of older waiting results ...
    ahead = sent_ahead(runs, recovery)
    # the fresh half (8 KiB) holds one host result and a report; a drain from anywhere but the
    # oldest end would send dozens ahead
    assert len(ahead) >= 100 and max(ahead) <= 3, ahead
    # ... and fresh results are not starved while the backlog drains
    backlog_done = max(r.received_ms for r in runs if r.started_ms < link_back)
    fresh = [r for r in runs if r.check == "host" and link_back <= r.started_ms < backlog_done]
    delays = sorted(r.received_ms - r.started_ms - r.duration_s * 1000 for r in fresh)
    drain_ms = backlog_done - link_back
    assert len(fresh) >= 20, (len(fresh), drain_ms)
    # within a few check intervals, while the backlog takes far longer to drain
    assert delays[-1] < 500 and delays[-1] * 5 < drain_ms, (delays[-5:], drain_ms)
