"""ICMP timing fidelity: the agent's per-probe RTT against the wire, beside fping, on a veth pair.

Builds two network namespaces joined by a veth pair (198.18.99.0/30, the benchmark range; no
other address is touched), captures every packet with tcpdump (nanosecond stamps, immediate
mode), and for each scenario runs the agent's ICMP round and then fping with the same count and
spacing from the first namespace:

* idle;
* loaded: two CPU-bound processes in the probing namespace for the whole run;
* 10 % loss injected with nftables (``numgen random mod 100 < 10 drop`` on echo requests in the
  far namespace), where the lost count must equal the nft drop counter and the round must take
  the same time as without loss.

Per probe, error = reported RTT - wire RTT (request leaving → reply arriving at the capture
point). Needs root, ip, nft, tcpdump and fping (``make test`` installs them as root).

    python bench/icmp_fidelity.py [--count 200] [--spacing-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

A_ADDR, B_ADDR = "198.18.99.1", "198.18.99.2"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{result.stderr}")
    return result


class Pair:
    def __init__(self) -> None:
        tag = secrets.token_hex(2)
        self.a, self.b = f"cwfA{tag}", f"cwfB{tag}"
        self.ia, self.ib = f"cwfa{tag}", f"cwfb{tag}"

    def __enter__(self) -> Pair:
        sh("ip", "netns", "add", self.a)
        sh("ip", "netns", "add", self.b)
        sh("ip", "link", "add", self.ia, "type", "veth", "peer", "name", self.ib)
        sh("ip", "link", "set", self.ia, "netns", self.a)
        sh("ip", "link", "set", self.ib, "netns", self.b)
        for ns, dev, addr in ((self.a, self.ia, A_ADDR), (self.b, self.ib, B_ADDR)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
        return self

    def __exit__(self, *_: object) -> None:
        for ns in (self.a, self.b):
            sh("ip", "netns", "del", ns, check=False)

    def loss(self, percent: int) -> None:
        script = (
            "table inet cwf {\n chain input {\n  type filter hook input priority 0;\n"
            f"  icmp type echo-request numgen random mod 100 < {percent} counter drop\n }}\n}}\n"
        )
        subprocess.run(["ip", "netns", "exec", self.b, "nft", "-f", "-"], input=script, text=True, check=True)

    def clear_loss(self) -> None:
        sh("ip", "netns", "exec", self.b, "nft", "delete", "table", "inet", "cwf", check=False)

    def drops(self) -> int:
        out = sh("ip", "netns", "exec", self.b, "nft", "-j", "list", "table", "inet", "cwf").stdout
        for item in json.loads(out)["nftables"]:
            rule = item.get("rule")
            if rule:
                for expr in rule["expr"]:
                    if "counter" in expr:
                        return int(expr["counter"]["packets"])
        return 0


class Capture:
    def __init__(self, pair: Pair, path: Path) -> None:
        self.pair, self.path = pair, path

    def __enter__(self) -> Capture:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.pair.a, "tcpdump", "-i", self.pair.ia, "-n", "--immediate-mode",
             "--time-stamp-precision=nano", "-w", str(self.path), "icmp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # let tcpdump open the interface
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.2)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)

    def wire_rtts(self) -> list[tuple[int, int, float | None]]:
        """(id, seq, rtt s) per echo request in send order; None when no reply was captured."""
        text = sh("tcpdump", "-r", str(self.path), "-n", "-tt", "--time-stamp-precision=nano").stdout
        requests: dict[tuple[int, int], float] = {}
        order: list[tuple[int, int]] = []
        replies: dict[tuple[int, int], float] = {}
        pattern = re.compile(r"^(\d+\.\d+) .*ICMP echo (request|reply), id (\d+), seq (\d+)")
        for line in text.splitlines():
            m = pattern.match(line)
            if not m:
                continue
            key = (int(m.group(3)), int(m.group(4)))
            if m.group(2) == "request":
                requests[key] = float(m.group(1))
                order.append(key)
            else:
                replies.setdefault(key, float(m.group(1)))
        return [(k[0], k[1], replies[k] - requests[k] if k in replies else None) for k in order]


def inner(count: int, spacing_ms: float) -> None:
    """Runs inside the probing namespace: one agent round, printed as JSON."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from agent.checks.icmp import Config, ping_round

    cfg = Config(count=count, spacing_s=spacing_ms / 1000, reply_timeout_s=1.0)
    t0 = time.monotonic()
    result = asyncio.run(ping_round(B_ADDR, cfg))
    elapsed = time.monotonic() - t0
    report = {
        "per_seq": result.per_seq, "elapsed": elapsed, "span": result.send_span_s, "kernel": result.kernel_timed,
        "received": result.received, "sent": result.sent, "raw": result.privileged,
    }  # fmt: skip
    print(json.dumps(report))


def run_agent(pair: Pair, count: int, spacing_ms: float) -> dict[str, object]:
    out = sh("ip", "netns", "exec", pair.a, sys.executable, __file__, "--inner", "--count", str(count),
             "--spacing-ms", str(spacing_ms)).stdout  # fmt: skip
    result: dict[str, object] = json.loads(out)
    return result


def run_fping(pair: Pair, count: int, spacing_ms: float) -> list[float | None]:
    t0 = time.monotonic()
    out = sh("ip", "netns", "exec", pair.a, "fping", "-C", str(count), "-p", str(int(spacing_ms)), "-t", "1000", "-q",
             B_ADDR, check=False)  # fmt: skip
    del t0
    values = out.stderr.strip().split(":", 1)[1].split()
    return [None if v == "-" else float(v) / 1000 for v in values]


def errors(reported: list[float | None], wire: list[float | None]) -> list[float]:
    return [r - w for r, w in zip(reported, wire, strict=False) if r is not None and w is not None]


def summary(label: str, errs: list[float]) -> str:
    if not errs:
        return f"  {label:34s} no matched probes"
    absolute = sorted(abs(e) for e in errs)
    p95 = absolute[int(0.95 * (len(absolute) - 1))]
    return (
        f"  {label:34s} median error {statistics.median(errs) * 1e6:+8.1f} µs, median |error|"
        f" {statistics.median(absolute) * 1e6:7.1f} µs, p95 |error| {p95 * 1e6:8.1f} µs"
        f"  (n={len(errs)})"
    )


def scenario(pair: Pair, name: str, count: int, spacing_ms: float, tmp: Path) -> dict[str, object]:
    with Capture(pair, tmp / f"{name}-agent.pcap") as cap:
        agent = run_agent(pair, count, spacing_ms)
    wire = cap.wire_rtts()
    ours = [rtt for _seq, rtt in agent["per_seq"]]  # type: ignore[attr-defined]
    with Capture(pair, tmp / f"{name}-fping.pcap") as cap2:
        fping = run_fping(pair, count, spacing_ms)
    wire2 = cap2.wire_rtts()
    print(f"{name}:")
    print(summary(f"agent ({'raw' if agent['raw'] else 'dgram'} socket, kernel stamps {agent['kernel']})",
                  errors(ours, [w[2] for w in wire])))  # fmt: skip
    print(summary("fping 5.1", errors(fping, [w[2] for w in wire2])))
    return {"agent": agent, "wire": wire, "fping": fping}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--spacing-ms", type=float, default=10.0)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(args.count, args.spacing_ms)
        return
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, nftables, tcpdump)")
    print(f"ICMP fidelity: {args.count} probes at {args.spacing_ms:g} ms spacing, veth pair in namespaces")
    with tempfile.TemporaryDirectory() as tmp_name, Pair() as pair:
        tmp = Path(tmp_name)
        scenario(pair, "idle", args.count, args.spacing_ms, tmp)
        burners = [
            subprocess.Popen(["ip", "netns", "exec", pair.a, sys.executable, "-c", "while True: pass"])
            for _ in range(2)
        ]
        try:
            scenario(pair, "loaded (2 CPU burners)", args.count, args.spacing_ms, tmp)
        finally:
            for b in burners:
                b.kill()
                b.wait()
        base = run_agent(pair, 20, 20)
        pair.loss(10)
        lossy = run_agent(pair, args.count, args.spacing_ms)
        lost = int(lossy["sent"]) - int(lossy["received"])  # type: ignore[call-overload]
        drops = pair.drops()
        lossy20 = run_agent(pair, 20, 20)
        pair.clear_loss()
        print("10 % loss (nftables numgen random on echo requests):")
        print(f"  agent counted lost {lost} of {lossy['sent']}; nft drop counter {drops}"
              f" (the 20-probe round after it adds to the counter: compared before it)")  # fmt: skip
        print(f"  round of 20 at 20 ms, first to last send: {base['span']:.4f} s without loss,"
              f" {lossy20['span']:.4f} s with 10 % loss ({int(lossy20['sent']) - int(lossy20['received'])} lost);"
              f" whole round {base['elapsed']:.3f} s / {lossy20['elapsed']:.3f} s (a loss waits reply_timeout_s = 1 s"
              " after the last send)")  # type: ignore[call-overload]  # fmt: skip


if __name__ == "__main__":
    main()
