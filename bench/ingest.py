"""Collector ingest throughput: N simulated agents on loopback, 120-sample batches.

Starts a real collector (uvicorn, subprocess) on a fresh SQLite file, enrolls N agents, then a
load-generator process drives them with a minimal asyncio HTTP/1.1 client (keep-alive, ~0.06 ms
CPU per request, so the generator is not what limits the figure). Prints batches/s, samples/s,
server CPU µs per sample, latency percentiles, and checks the stored count.

    python bench/ingest.py [--agents 50] [--seconds 20] [--workers 1] [--gzip-level 1]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import multiprocessing as mp
import os
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
SAMPLES_PER_BATCH = 120
TS_MARK = b"1700000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process and its children (uvicorn workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(k) for k in kids]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def sample_block(agent_index: int) -> bytes:
    """120 samples shaped like a host collection: a few names, several label sets, one ts."""
    samples = []
    for i in range(SAMPLES_PER_BATCH):
        name = (
            "host_cpu_usage_ratio",
            "host_network_receive_bytes_total",
            "host_filesystem_free_bytes",
            "host_disk_read_bytes_total",
        )[i % 4]
        labels = (
            {"cpu": str(i)}
            if i % 4 == 0
            else {"nic": f"eth{i}"}
            if i % 4 == 1
            else {"mountpoint": f"/m{i}"}
            if i % 4 == 2
            else {"disk": f"sd{i}"}
        )
        samples.append([name, labels, float(agent_index * 1000 + i), int(TS_MARK)])
    return json.dumps(samples, separators=(",", ":")).encode()


async def drive(
    port: int,
    agents: list[tuple[str, str]],
    seconds: float,
    level: int,
    interval: float,
    out: mp.Queue,  # type: ignore[type-arg]
) -> None:
    latencies: list[float] = []
    errors = 0
    batches = 0
    deadline = time.monotonic() + seconds
    base_seq = time.time_ns() // 1000

    async def one(index: int, agent_id: str, token: str) -> None:
        nonlocal errors, batches
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        block = sample_block(index)
        seq = base_seq
        ts = int(time.time() * 1000) - 3_600_000
        next_at = time.monotonic() + interval * index / max(len(agents), 1)
        while time.monotonic() < deadline:
            if interval:  # paced: one batch per agent every `interval` seconds (offered load)
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            seq += 1
            ts += 1000
            body = (
                b'{"v":1,"agent_id":"%s","sent_ms":%d,"parts":[{"seq":%d,"check":"host","started_ms":%d,'
                b'"duration_s":0.001,"ok":true,"samples":%s}]}'
                % (agent_id.encode(), ts, seq, ts, block.replace(TS_MARK, str(ts).encode()))
            )
            extra = b""
            if level:
                body = gzip.compress(body, compresslevel=level)
                extra = b"Content-Encoding: gzip\r\n"
            req = (
                b"POST /api/v1/ingest HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n"
                b"Content-Type: application/json\r\n%sContent-Length: %d\r\n\r\n" % (token.encode(), extra, len(body))
            ) + body
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            else:
                batches += 1
        writer.close()

    await asyncio.gather(*(one(i, a, t) for i, (a, t) in enumerate(agents)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put((batches, errors, latencies, usage.ru_utime + usage.ru_stime))


def generator(
    port: int,
    agents: list[tuple[str, str]],
    seconds: float,
    level: int,
    interval: float,
    out: mp.Queue,  # type: ignore[type-arg]
) -> None:
    asyncio.run(drive(port, agents, seconds, level, interval, out))


def enroll(url: str, db: Path, n: int) -> list[tuple[str, str]]:
    token = subprocess.run(
        [str(BIN / "centerwatch-collector"), "token", "create", "--db", str(db), "--center", "bench"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    agents = []
    for i in range(n):
        body = json.dumps({"v": 1, "token": token, "hostname": f"pc{i:03d}", "agent_version": "bench"}).encode()
        req = urllib.request.Request(url + "/api/v1/enroll", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            answer = json.loads(r.read())
        agents.append((answer["agent_id"], answer["agent_token"]))
    return agents


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--gzip-level", type=int, default=1)
    ap.add_argument("--generators", type=int, default=1)
    ap.add_argument("--profile", help="write py-spy raw stacks of the collector to this file")
    ap.add_argument("--rate", type=float, default=0.0, help="offered samples/s (0 = as fast as it goes)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                str(BIN / "centerwatch-collector"),
                "serve",
                "--db",
                str(db),
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(url + "/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            agents = enroll(url, db, args.agents)
            out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
            groups = [agents[i :: args.generators] for i in range(args.generators)]
            spy = None
            if args.profile:
                spy = subprocess.Popen(
                    [
                        str(BIN / "py-spy"),
                        "record",
                        "-o",
                        args.profile,
                        "-p",
                        str(server.pid),
                        "-d",
                        str(int(args.seconds)),
                        "-r",
                        "200",
                        "--nonblocking",
                        "--format",
                        "raw",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
            interval = args.agents * SAMPLES_PER_BATCH / args.rate if args.rate else 0.0
            procs = [
                mp.Process(target=generator, args=(port, g, args.seconds, args.gzip_level, interval, out))
                for g in groups
            ]
            for p in procs:
                p.start()
            results = [out.get(timeout=args.seconds + 60) for _ in procs]
            wall = time.perf_counter() - t0
            cpu = cpu_seconds(server.pid) - cpu0
            for p in procs:
                p.join()
            if spy is not None:
                spy.wait(timeout=60)
        finally:
            server.terminate()
            server.wait(timeout=20)
        batches = sum(r[0] for r in results)
        errors = sum(r[1] for r in results)
        lat = sorted(x for r in results for x in r[2])
        stored = sqlite3.connect(db).execute("SELECT coalesce(sum(n), 0) FROM runs").fetchone()[0]
        samples = batches * SAMPLES_PER_BATCH
        q = statistics.quantiles(lat, n=100)
        print(
            f"collector ingest: {args.agents} agents, {args.workers} worker(s), gzip level {args.gzip_level}, "
            f"{wall:.1f} s"
        )
        print(f"  batches/s      {batches / wall:10.0f}   (errors {errors})")
        print(f"  samples/s      {samples / wall:10.0f}   (stored {stored}, expected {samples})")
        print(f"  server CPU     {cpu / max(samples, 1) * 1e6:10.2f} µs/sample  ({cpu / wall:.2f} cores)")
        print(f"  load generator {sum(r[3] for r in results) / wall:10.2f} cores")
        print(f"  latency        p50 {q[49] * 1000:.1f} ms  p95 {q[94] * 1000:.1f} ms  p99 {q[98] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
