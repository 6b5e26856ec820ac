"""SNMP polling cost: our v2c client (``ber.py`` + ``udp.py``) against pysnmp and net-snmp's snmpbulkwalk.

Prints figures, asserts nothing. CPU is what counts on the probe agent's small box, so every rate is
"per core": OIDs divided by the CPU seconds the poller itself used (``time.process_time`` for this
process; ``getrusage(RUSAGE_CHILDREN)`` for snmpbulkwalk, a process per walk, its start included).
The agents (snmpd, snmpsim) run on the same two cores; their CPU is reported beside ours.

1. A local ``snmpd`` (v2c): the whole mib-2 walked with max-repetitions 25, three ways.
2. A 48-port Cisco Catalyst 2960-X (``bench/data/switch48.py``, generated into a temp dir) served
   by ``snmpsim-command-responder``: the full IF-MIB walked (ifTable 1.3.6.1.2.1.2 and ifXTable
   1.3.6.1.2.1.31) three ways, then the real check (``agent.checks.snmp.collect_with``, the
   cisco-catalyst profile matched by sysObjectID): CPU per steady-state poll, both client paths.
3. N such switches (communities sw001..swN, one snmpsim) polled concurrently by the check:
   wall and CPU per round, CPU per device poll, OIDs/s per core, the garbage collector's share;
   snmpsim's own CPU beside it, and any UDP datagram the kernel dropped.
4. RSS in a fresh interpreter: after ``import agent.checks.snmp``, after a v2c walk (pysnmp must
   stay unloaded), after a pysnmp walk.

    python bench/snmp_walk.py [--runs 10] [--devices 100] [--concurrency 64] [--rounds 2]
                              [--fleet-pysnmp] [--no-fleet]

snmpsim is started by ``tests/snmpsim.py`` (``$SNMPSIM_COMMAND_RESPONDER``, else beside this Python,
else on PATH); without it parts 2 and 3 are skipped with a note. snmpsim is pysnmp-based and much
slower than the agents it stands for: in part 3 it saturates a core and sets the wall time, so
the figure that matters there is the agent's own CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "data"))

import switch48  # type: ignore[import-not-found]  # noqa: E402 - found through the path set above

IF_MIB = ("1.3.6.1.2.1.2", "1.3.6.1.2.1.31")
MIB_2 = ("1.3.6.1.2.1",)
REPS = 25

RSS_PROBE = """
import asyncio, os, sys
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
import agent.checks.snmp
from agent.snmp import client
a = rss()
async def walk(path):
    async with client.PysnmpSession(v2c=path) as s:
        c = await s.client(client.Target("127.0.0.1", int(sys.argv[1])), client.V2c(client.Secret("public")))
        await c.walk("1.3.6.1.2.1.2", 25)
asyncio.run(walk("ber"))
b = rss()
loaded = any(m.startswith("pysnmp") for m in sys.modules)
asyncio.run(walk("pysnmp"))
c = rss()
print(f"{a:.1f} {b:.1f} {c:.1f} {loaded}")
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_log(proc: subprocess.Popen[bytes], log: Path, marker: str, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if marker in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{what} did not start: {log.read_text(errors='replace')[-3000:]}")


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
    wait_for_log(proc, log, "NET-SNMP version", "snmpd", 15)
    return proc, port


def start_switches(folder: Path, devices: int) -> Any:
    """snmpsim (``tests/snmpsim.py``) serving ``devices`` generated switches as communities sw001, …"""
    from tests.snmpsim import free_udp_port as free_port
    from tests.snmpsim import start_snmpsim

    data = folder / "data"
    data.mkdir()
    for i in range(1, devices + 1):
        switch48.write(data / f"sw{i:03d}.snmprec", seed=i)
    return start_snmpsim(data, [("127.0.0.1", free_port())], folder, timeout_s=300, log_level="error")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- walks ------------------------------------------------------------------------------------------


def net_snmp_walks(port: int, community: str, roots: Sequence[str], runs: int) -> tuple[int, float, float]:
    """snmpbulkwalk -Cr25 of each root, ``runs`` times: (OIDs, CPU s per full walk, wall s per full walk)."""
    env = {**os.environ, "MIBS": ""}
    count, cpu, wall = 0, 0.0, 0.0
    for _ in range(runs):
        count = 0
        for root in roots:
            args = ["snmpbulkwalk", "-v2c", "-c", community, "-On", f"-Cr{REPS}", f"127.0.0.1:{port}", root]
            c, t = children_cpu_s(), time.perf_counter()
            out = subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout
            wall += time.perf_counter() - t
            cpu += children_cpu_s() - c
            count += sum(1 for line in out.splitlines() if line.startswith("."))
    return count, cpu / runs, wall / runs


async def our_walks(port: int, community: str, roots: Sequence[str], runs: int, path: str) -> tuple[int, float, float]:
    """Our client's walks of each root, ``runs`` times after a warm-up: (OIDs, CPU s, wall s) per full walk."""
    from agent.snmp.client import PysnmpSession, Secret, Target, V2c

    async with PysnmpSession(v2c=path) as session:  # type: ignore[arg-type]
        client = await session.client(Target("127.0.0.1", port, timeout_s=10.0), V2c(Secret(community)))
        for root in roots:
            await client.walk(root, REPS)  # warm-up: engine, MIB view, sockets
        count = 0
        c, t = time.process_time(), time.perf_counter()
        for _ in range(runs):
            count = 0
            for root in roots:
                count += len(await client.walk(root, REPS))
        return count, (time.process_time() - c) / runs, (time.perf_counter() - t) / runs


def report_walks(label: str, port: int, community: str, roots: Sequence[str], runs: int) -> None:
    print(f"\n{label}: walk of {' + '.join(roots)}, max-repetitions {REPS}")
    floor = asyncio.run(round_trip_floor(port, community))
    print(
        f"  (a bare asyncio UDP round trip to this agent: {floor * 1e6:.0f} µs CPU, "
        f"{floor / REPS * 1e6:.1f} µs per OID at {REPS} a request)"
    )
    n, cpu, wall = net_snmp_walks(port, community, roots, runs)
    print(
        f"  snmpbulkwalk          {n:6d} OIDs  {cpu * 1e3:8.1f} ms CPU  {wall * 1e3:8.1f} ms wall  "
        f"{n / cpu:9,.0f} OIDs/s per core (a process per walk, its start included)"
    )
    for path, scale in (("ber", 1), ("pysnmp", 5)):
        n, cpu, wall = asyncio.run(our_walks(port, community, roots, max(2, runs // scale), path))
        print(
            f"  ours, v2c={path:6s}     {n:6d} OIDs  {cpu * 1e3:8.1f} ms CPU  {wall * 1e3:8.1f} ms wall  "
            f"{n / cpu:9,.0f} OIDs/s per core, {cpu / n * 1e6:6.1f} µs CPU/OID"
        )


# --- the check --------------------------------------------------------------------------------------


class Counting:
    """Wraps a client and counts the OIDs it returned."""

    def __init__(self, inner: Any, tally: list[int]) -> None:
        self.inner = inner
        self.tally = tally

    async def get(self, oids: Sequence[str]) -> Any:
        got = await self.inner.get(oids)
        self.tally[0] += len(got)
        return got

    async def walk(self, root: str, max_repetitions: int = 25) -> Any:
        rows = await self.inner.walk(root, max_repetitions)
        self.tally[0] += len(rows)
        return rows


def check_config(port: int, communities: Sequence[str], concurrency: int, max_repetitions: int = 25) -> Any:
    import msgspec

    from agent.checks import snmp

    devices = [{"name": c, "address": "127.0.0.1", "port": port, "community": c} for c in communities]
    return msgspec.convert(
        {
            "devices": devices,
            "concurrency": concurrency,
            "max_repetitions": max_repetitions,
            "request_timeout_s": 10.0,
            "retries": 1,
            "poll_budget_s": 600.0,
        },
        snmp.Config,
    )


async def check_rounds(
    port: int,
    communities: Sequence[str],
    concurrency: int,
    rounds: int,
    path: str,
    sim_pid: int | None,
    max_repetitions: int = 25,
    gc_clock: GcClock | None = None,
) -> list[dict[str, float]]:
    """Runs the check ``rounds + 2`` times (the first two: session set-up, then walk sizes learnt)."""
    from agent.checks import snmp
    from agent.checks.base import CheckContext
    from agent.snmp.client import PysnmpSession

    cfg = check_config(port, communities, concurrency, max_repetitions)
    state = snmp.Runtime()
    state.session = PysnmpSession(v2c=path)  # type: ignore[arg-type]
    tally = [0]

    async def connect(device: Any, config: Any) -> Any:
        return Counting(await state.pysnmp_client(device, config), tally)

    ctx: CheckContext[Any] = CheckContext("snmp", cfg)
    out: list[dict[str, float]] = []
    try:
        for i in range(rounds + 2):
            tally[0] = 0
            sim = proc_cpu_s(sim_pid) if sim_pid else 0.0
            in_gc = gc_clock.cpu_s if gc_clock else 0.0
            c, t = time.process_time(), time.perf_counter()
            obs = await snmp.collect_with(ctx, connect, state)
            cpu, wall = time.process_time() - c, time.perf_counter() - t
            up = sum(1 for s in obs.samples if s.name == "snmp_up" and s.value == 1.0)
            if i >= 2:
                out.append(
                    {
                        "cpu": cpu,
                        "wall": wall,
                        "oids": tally[0],
                        "up": up,
                        "samples": len(obs.samples),
                        "sim_cpu": (proc_cpu_s(sim_pid) - sim) if sim_pid else 0.0,
                        "gc_cpu": (gc_clock.cpu_s - in_gc) if gc_clock else 0.0,
                    }
                )
    finally:
        if state.session is not None:
            state.session.close()
    return out


def report_poll(port: int, community: str, runs: int) -> None:
    print("\nthe snmp check, one 48-port switch (cisco-catalyst profile), steady state")
    for path, n, reps in (("ber", runs, 25), ("ber", runs, 60), ("pysnmp", max(3, runs // 3), 25)):
        res = asyncio.run(check_rounds(port, [community], 1, n, path, None, reps))
        cpu = statistics.median(r["cpu"] for r in res)
        wall = statistics.median(r["wall"] for r in res)
        oids = res[-1]["oids"]
        print(
            f"  v2c={path:6s} max_repetitions {reps:3d}: {cpu * 1e3:6.1f} ms CPU per poll ({oids:.0f} OIDs, "
            f"{res[-1]['samples']:.0f} samples, {oids / cpu:7,.0f} OIDs/s per core), {wall * 1e3:6.1f} ms wall"
        )


async def round_trip_floor(port: int, community: str, count: int = 100) -> float:
    """CPU per bare asyncio UDP round trip to the agent (a GETBULK, nothing decoded): the floor under
    every request, whoever makes it (in a VM, waking a sleeping process is most of it)."""
    from agent.snmp import ber

    class Echo(asyncio.DatagramProtocol):
        future: asyncio.Future[bytes] | None = None

        def datagram_received(self, data: bytes, addr: Any) -> None:
            if self.future is not None and not self.future.done():
                self.future.set_result(data)

    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Echo, remote_addr=("127.0.0.1", port))
    oid = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
    messages = [
        ber.encode_request(ber.VERSION_2C, community.encode(), ber.GET_BULK_REQUEST, i + 1, [oid], 0, REPS)
        for i in range(count)
    ]
    try:
        c = time.process_time()
        for message in messages:
            proto.future = loop.create_future()
            transport.sendto(message)
            await asyncio.wait_for(proto.future, 10)
        return (time.process_time() - c) / count
    finally:
        transport.close()


def udp_receive_drops() -> int:
    """Datagrams the kernel dropped for a full socket receive buffer, host-wide (Linux)."""
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    except OSError:
        return 0
    return int(dict(zip(lines[0][1:], lines[1][1:], strict=True)).get("RcvbufErrors", 0))


class GcClock:
    """CPU seconds spent in the garbage collector while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            self.cpu_s += time.process_time() - self._start


def report_fleet(port: int, devices: int, concurrency: int, rounds: int, path: str, sim_pid: int) -> None:
    communities = [f"sw{i:03d}" for i in range(1, devices + 1)]
    print(f"\nthe snmp check, {devices} simulated 48-port switches, concurrency {concurrency}, v2c={path}")
    gc_clock, drops = GcClock(), udp_receive_drops()
    gc.callbacks.append(gc_clock)
    try:
        res = asyncio.run(check_rounds(port, communities, concurrency, rounds, path, sim_pid, gc_clock=gc_clock))
    finally:
        gc.callbacks.remove(gc_clock)
    for i, r in enumerate(res, 1):
        print(
            f"  round {i}: {r['up']:.0f}/{devices} up, {r['oids']:.0f} OIDs in {r['wall']:6.1f} s wall; "
            f"agent {r['cpu']:6.2f} s CPU = {r['cpu'] / devices * 1e3:6.1f} ms per device poll, "
            f"{r['oids'] / r['cpu']:8,.0f} OIDs/s per core; snmpsim {r['sim_cpu']:6.1f} s CPU "
            f"({r['oids'] / max(r['sim_cpu'], 1e-9):6,.0f} OIDs/s); garbage collection {r['gc_cpu']:5.2f} s CPU"
        )
    print(f"  UDP datagrams dropped for a full receive buffer (host-wide): {udp_receive_drops() - drops}")


def report_rss(port: int) -> None:
    out = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(port)], check=True, capture_output=True, text=True, cwd=ROOT
    )
    base, v2c, pysnmp, loaded = out.stdout.split()
    print(
        f"\nRSS: import agent.checks.snmp {base} MiB; after a v2c walk {float(v2c) - float(base):+.1f} MiB "
        f"(pysnmp loaded: {loaded}); after a pysnmp walk {float(pysnmp) - float(v2c):+.1f} MiB more"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64, help="the check's concurrency (at most 64)")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds of the fleet poll")
    parser.add_argument("--fleet-pysnmp", action="store_true", help="also poll the fleet through pysnmp")
    parser.add_argument("--no-fleet", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; CPU figures are this process's own")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "snmpd").mkdir()
        proc, port = start_snmpd(folder / "snmpd")
        try:
            report_walks("snmpd on 127.0.0.1 (this host's interfaces)", port, "public", MIB_2, args.runs)
            report_rss(port)
        finally:
            stop(proc)
        from tests.snmpsim import find_snmpsim

        if find_snmpsim() is None:
            print("\nsnmpsim-command-responder not found: the 48-port switch and fleet parts are skipped")
            return
        (folder / "snmpsim").mkdir()
        devices = 1 if args.no_fleet else args.devices
        sim = start_switches(folder / "snmpsim", devices)
        sim_port = sim.endpoints[0][1]
        try:
            report_walks("snmpsim, 48-port switch sw001", sim_port, "sw001", IF_MIB, args.runs)
            report_poll(sim_port, "sw001", args.runs)
            if not args.no_fleet:
                report_fleet(sim_port, devices, args.concurrency, args.rounds, "ber", sim.pid)
                if args.fleet_pysnmp:
                    report_fleet(sim_port, devices, args.concurrency, args.rounds, "pysnmp", sim.pid)
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
