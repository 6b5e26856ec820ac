"""SNMP cost: walk throughput of our pysnmp client against net-snmp's snmpbulkwalk, and the RSS pysnmp adds.

Starts a private ``snmpd`` on 127.0.0.1 (v2c), then:

1. ``snmpbulkwalk -v2c -c public -Cr25 127.0.0.1:PORT <root>`` N times (a process each: exec and
   startup included, as an operator would run it) and ``PysnmpClient.walk(<root>, 25)`` N times in
   one process after a warm-up; medians, OIDs/s, and our CPU per OID. Roots: IF-MIB (1.3.6.1.2.1.2)
   and the whole mib-2 (1.3.6.1.2.1).
2. One steady-state poll of the snmp check (generic profile) against the same snmpd: wall and CPU.
3. In a fresh interpreter: RSS after ``import agent.checks.snmp`` (pysnmp not loaded), after the
   client's lazy pysnmp import, after the first SnmpEngine and request.

    python bench/snmp_walk.py [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RSS_PROBE = """
import asyncio, os, sys
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
import agent.checks.snmp
a = rss()
from agent.snmp import client
client._pysnmp()
b = rss()
async def main():
    async with client.PysnmpSession() as s:
        c = await s.client(client.Target("127.0.0.1", int(sys.argv[1])), client.V2c(client.Secret("public")))
        await c.walk("1.3.6.1.2.1.2", 25)
asyncio.run(main())
c = rss()
print(f"{a:.1f} {b:.1f} {c:.1f} {'pysnmp' in str(sys.modules.keys())}")
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_snmpd(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_udp_port()
    conf = folder / "snmpd.conf"
    conf.write_text(f"agentAddress udp:127.0.0.1:{port}\nrocommunity public 127.0.0.1\n", encoding="utf-8")
    log = folder / "snmpd.log"
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(folder / "persist"), "MIBS": ""}
    binary = shutil.which("snmpd") or "/usr/sbin/snmpd"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [binary, "-f", "-Lo", "-C", "-c", str(conf)], stdout=fh, stderr=subprocess.STDOUT, env=env
        )
    for _ in range(150):
        if "NET-SNMP version" in log.read_text(errors="replace"):
            return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"snmpd did not start: {log.read_text(errors='replace')}")


def net_snmp(port: int, root: str, runs: int) -> tuple[int, float]:
    env = {**os.environ, "MIBS": ""}
    args = ["snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Cr25", f"127.0.0.1:{port}", root]
    times, count = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout
        times.append(time.perf_counter() - t)
        count = sum(1 for line in out.splitlines() if line.startswith("."))
    return count, statistics.median(times)


async def ours(port: int, root: str, runs: int) -> tuple[int, float, float]:
    from agent.snmp.client import PysnmpSession, Secret, Target, V2c

    async with PysnmpSession() as session:
        client = await session.client(Target("127.0.0.1", port), V2c(Secret("public")))
        await client.walk(root, 25)  # warm-up: engine, MIB view, sockets
        times, cpu, count = [], 0.0, 0
        for _ in range(runs):
            t, c = time.perf_counter(), time.process_time()
            count = len(await client.walk(root, 25))
            times.append(time.perf_counter() - t)
            cpu += time.process_time() - c
    return count, statistics.median(times), cpu / runs / max(count, 1)


async def check_poll(port: int, runs: int) -> tuple[float, float, int]:
    import msgspec

    from agent.checks import snmp
    from agent.checks.base import CheckContext

    cfg = msgspec.convert(
        {"devices": [{"name": "local", "address": "127.0.0.1", "port": port, "community": "public"}]}, snmp.Config
    )
    state = snmp.Runtime()
    ctx: CheckContext[snmp.Config] = CheckContext("snmp", cfg)
    walls, cpus, n = [], [], 0
    try:
        for i in range(runs + 2):
            t, c = time.perf_counter(), time.process_time()
            obs = await snmp.collect_with(ctx, state.pysnmp_client, state)
            if i >= 2:  # after the first (engine) and second (walk sizes known) runs
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
                n = len(obs.samples)
    finally:
        if state.session is not None:
            state.session.close()
    return statistics.median(walls), statistics.median(cpus), n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_snmpd(Path(tmp))
        try:
            for root in ("1.3.6.1.2.1.2", "1.3.6.1.2.1"):
                n1, t1 = net_snmp(port, root, args.runs)
                n2, t2, cpu = asyncio.run(ours(port, root, args.runs))
                print(
                    f"walk {root}: snmpbulkwalk -Cr25 {n1} OIDs in {t1 * 1e3:.1f} ms = {n1 / t1:,.0f} OIDs/s "
                    f"(process start included) | PysnmpClient.walk(25) {n2} OIDs in {t2 * 1e3:.1f} ms = "
                    f"{n2 / t2:,.0f} OIDs/s, {cpu * 1e6:.0f} µs CPU/OID"
                )
            wall, cpu, n = asyncio.run(check_poll(port, args.runs))
            print(
                f"snmp check, one device (generic profile, {n} samples): "
                f"{wall * 1e3:.1f} ms wall, {cpu * 1e3:.1f} ms CPU"
            )
            out = subprocess.run(
                [sys.executable, "-c", RSS_PROBE, str(port)], check=True, capture_output=True, text=True, cwd=ROOT
            )
            base, imported, polled, _ = out.stdout.split()
            added_import = float(imported) - float(base)
            added_engine = float(polled) - float(imported)
            print(
                f"RSS: import agent.checks.snmp {base} MiB (pysnmp not loaded); + pysnmp import "
                f"{added_import:+.1f} MiB; + engine and first walk {added_engine:+.1f} MiB"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
