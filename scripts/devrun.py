"""`make run`: a collector on embedded SQLite and a local agent reporting this machine.

Everything lives in ./.run (database, agent config, spool, identity). Ctrl-C stops both cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the collector exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:  # noqa: S310 - loopback URL
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"the collector did not answer at {url} within {timeout:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--center", default="hai-chau")
    ap.add_argument("--dir", type=Path, default=ROOT / ".run")
    args = ap.parse_args()
    run = args.dir
    run.mkdir(exist_ok=True)
    port = free_port(args.port)
    url = f"http://127.0.0.1:{port}"
    db = run / "collector.db"
    collector = subprocess.Popen(
        [
            str(BIN / "centerwatch-collector"),
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--inventory",
            str(ROOT / "inventory"),
        ],
    )
    agent: subprocess.Popen[bytes] | None = None
    try:
        wait_healthy(url, collector)
        agent_dir = run / "agent"
        token = ""
        if (
            not (agent_dir / "identity.json").exists()
            or f'"collector_url":"{url}"' not in (agent_dir / "identity.json").read_text()
        ):
            token = subprocess.run(
                [
                    str(BIN / "centerwatch-collector"),
                    "token",
                    "create",
                    "--db",
                    str(db),
                    "--center",
                    args.center,
                    "--max-uses",
                    "1",
                    "--ttl",
                    "1",
                    "--note",
                    "make run",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        config = run / "agent.yaml"
        config.write_text(
            "# Written by `make run`. The enrollment token below is single-use and local to .run/.\n"
            f"collector_url: {url}\n"
            f"enrollment_token: {token or 'cwe_ALREADY-ENROLLED'}\n"
            f"data_dir: {agent_dir}\n"
            f"metrics_listen: 127.0.0.1:{free_port(9464)}\n"
            "checks:\n  host: {interval_s: 15}\n",
            encoding="utf-8",
        )
        agent = subprocess.Popen([str(BIN / "centerwatch-agent"), "run", "-c", str(config)])
        print(f"\n  CenterWatch dashboard: {url}/   (alerts {url}/alerts, API docs {url}/docs)", flush=True)
        print("  Press Ctrl-C to stop the collector and the agent.\n", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        while collector.poll() is None and agent.poll() is None:
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (agent, collector):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (agent, collector):
            if proc is not None:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        print("stopped.", flush=True)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
