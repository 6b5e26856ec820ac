"""Agent cost: CPU per host collection (with encoding) and the steady RSS of a real agent process.

1. In process: ``collect_with(PsutilSource(), …)`` plus msgspec encoding of the spooled result,
   N runs after warm-up; CPU time from ``time.process_time``.
2. A real ``centerwatch-agent run`` against a real collector on loopback, host check every
   second: RSS sampled from /proc once a second, process CPU per check run (everything included:
   scheduling, spool, upload, /metrics thread).

    python bench/agent_cost.py [--runs 500] [--seconds 40]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def in_process(runs: int) -> None:
    import msgspec

    from agent.checks import host
    from agent.checks.base import CheckContext
    from agent.scheduler import PartBody

    encoder = msgspec.json.Encoder()
    source = host.LinuxSource() if sys.platform.startswith("linux") else host.PsutilSource()
    ctx = CheckContext("host", host.Config())
    for _ in range(20):
        host.collect_with(source, ctx, facts=False)
    for facts, pause in ((False, 0.0), (False, 0.1), (True, 0.1)):
        costs = []
        size = 0
        obs = None
        for _ in range(runs if pause == 0 else runs // 5):
            time.sleep(pause)
            t0 = time.process_time()
            obs = host.collect_with(source, ctx, facts=facts)
            body = encoder.encode(
                PartBody("host", obs.ts_ms, 0.001, True, None, obs.samples, obs.facts, obs.subject, obs.events)
            )
            costs.append(time.process_time() - t0)
            size = len(body)
        assert obs is not None
        label = ("with facts (first run, then hourly)" if facts else "every run") + (
            ", back to back (warm caches)" if pause == 0 else f", paced {pause:g} s apart (cold)"
        )
        print(
            f"  host collection + encoding, {label:60s} median {statistics.median(costs) * 1e3:.3f} ms CPU,"
            f" mean {statistics.mean(costs) * 1e3:.3f} ms, {len(obs.samples)} samples, {size} bytes"
        )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agent_venv() -> Path:
    """The agent installed alone (``pip install .``, no collector or test extras), as on a center PC.

    In the development venv, httpx finds click (pulled in by uvicorn) and imports its CLI with
    rich and pygments: ~1.5 MiB an agent never has in the field."""
    venv = Path(tempfile.gettempdir()) / "centerwatch-agent-bench-venv"
    python = venv / "bin" / "python"
    stamp = venv / "installed-from"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not stamp.exists() or stamp.read_text() != str(ROOT):
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", str(ROOT)], check=True)
        stamp.write_text(str(ROOT))
    return venv / "bin"


class _Dns(threading.Thread):
    """A loopback DNS responder answering every A query with 127.0.0.1, for the probe load."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def run(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            end = 12
            while query[end]:
                end += query[end] + 1
            question = query[12 : end + 5]
            answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01"
            self.sock.sendto(query[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question + answer, peer)


def real_agent(seconds: float, probes: bool) -> None:
    import socket

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "c.db"
        cport = port()
        url = f"http://127.0.0.1:{cport}"
        collector = subprocess.Popen(
            [str(BIN / "centerwatch-collector"), "serve", "--db", str(db), "--port", str(cport)],
            stdout=subprocess.DEVNULL,
        )
        agent = None
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(url + "/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            token = subprocess.run(
                [str(BIN / "centerwatch-collector"), "token", "create", "--db", str(db), "--center", "bench"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            config = Path(tmp) / "agent.yaml"
            checks = "checks:\n  host: {interval_s: 1}\n"
            if probes:
                dns = _Dns()
                dns.start()
                checks += (
                    "  network:\n    interval_s: 5\n"
                    "    gateway: {name: gw, address: 127.0.0.1}\n"
                    "    icmp: {count: 20, spacing_s: 0.05, targets: [{name: portal, address: '::1'}]}\n"
                    f"    dns: {{queries: [{{name: dichvucong.lab, resolver: '127.0.0.1:{dns.port}'}}]}}\n"
                    f"    http: {{targets: [{{url: '{url}/healthz', name: collector, uplink: wan}}]}}\n"
                    f"    tcp: {{targets: [{{host: 127.0.0.1, port: {cport}, name: collector-tcp, uplink: wan}}]}}\n"
                )
            config.write_text(
                f"collector_url: {url}\nenrollment_token: {token}\ndata_dir: {tmp}/agent\n"
                f"metrics_listen: 127.0.0.1:{port()}\nupload: {{interval_s: 5}}\n" + checks
            )
            agent = subprocess.Popen(
                [str(agent_venv() / "centerwatch-agent"), "run", "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(10)  # start-up, enrollment, first uploads
            cpu0, t0 = cpu_s(agent.pid), time.monotonic()
            rss = []
            while time.monotonic() - t0 < seconds:
                rss.append(rss_kib(agent.pid))
                time.sleep(1)
            cpu = cpu_s(agent.pid) - cpu0
            wall = time.monotonic() - t0
            runs = wall / 1.0
            with urllib.request.urlopen(url + "/api/v1/agents") as r:
                state = json.loads(r.read())[0]["state"]
        finally:
            for proc in (agent, collector):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=20)
    what = "host check every 1 s + network round every 5 s (ICMP, DNS, HTTP, TCP)" if probes else "host check every 1 s"
    print(
        f"  real agent (own venv), {what}, {wall:.0f} s: RSS median {statistics.median(rss) / 1024:.1f} MiB,"
        f" max {max(rss) / 1024:.1f} MiB; process CPU {cpu / runs * 1e3:.2f} ms per run"
        f" ({cpu / wall * 100:.2f} % of a core); state at the collector: {state}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=40.0)
    args = ap.parse_args()
    print("agent cost")
    in_process(args.runs)
    real_agent(args.seconds, probes=False)
    real_agent(args.seconds, probes=True)


if __name__ == "__main__":
    main()
