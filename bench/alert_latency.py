"""Fault-to-notification latency in the namespace lab: a link cut → the webhook receiving the alert.

The pipeline of ``tests/lab/alertlab.py`` (collector in ``gov`` with a webhook receiver on its
loopback, the probe agent in ``center``, a host agent in ``pc2``; agents every 2 s, evaluation
every 1 s, ``group_wait_s: 0``). Each repetition waits a random fraction of an agent interval,
so cuts land anywhere in the agents' schedule, then:

* **uplink_down**: cut the internet uplink. Breakdown: *detection* (cut → end of the probe
  agent's first round reporting the uplink down), *upload* (→ the run stored by the collector),
  *evaluation* (→ the alert firing), *dispatch* (→ the webhook's receipt).
* **center_unreachable**: cut both uplinks. Breakdown: *last report* (cut → the last upload the
  collector got from the center, negative when it came before the cut), *silence* (→ the alert
  firing: the silence period, ``silent_after_intervals`` × the agent interval, plus up to one
  evaluation period), *dispatch* (→ receipt).

Prints median and max per figure; asserts nothing. Needs root (network namespaces).

    python bench/alert_latency.py [--reps 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.lab.alertlab import PC_HOST, PROBE_HOST, AlertLab, Timing, wait_until
from tests.lab.netlab import Lab

LOSSY_RULE = """
rules:
  - name: uplink_lossy  # a 10 s window (shipped: 300 s), so each repetition starts clean within seconds
    severity: warning
    expr: {metric: probe_icmp_loss_ratio, reduce: avg, window_s: 10, by: [center, uplink], agg: max,
           op: ">", threshold: 0.05, clear: 0.02}
    for_s: 3
    parents: [{rule: uplink_down, equal: [center, uplink]}]
    summary: "@rules.uplink_lossy.summary"
    description: "@rules.uplink_lossy.description"
"""


def firing_ms(p: AlertLab, rule: str, since_ms: int, **labels: str) -> int:
    def found() -> int | None:
        for a in p.alerts("all"):
            if a["rule"] == rule and (a["firing_ms"] or 0) >= since_ms and labels.items() <= a["labels"].items():
                return int(a["firing_ms"])
        return None

    return wait_until(f"{rule} in the alerts API", found, timeout=20, every=0.2)


def first_hook(p: AlertLab, since: float, rule: str) -> float:
    def found() -> float | None:
        for h in p.hooks(since):
            if any(a["labels"]["alertname"] == rule for a in h.firing()):
                return h.t
        return None

    return wait_until(f"the {rule} notification", found, timeout=30, every=0.05)


def uplink_down(p: AlertLab, lab: Lab) -> dict[str, float]:
    cut = time.time()
    lab.link_down("isp")
    receipt = first_hook(p, cut, "uplink_down")
    cut_ms = int(cut * 1000)
    fired = firing_ms(p, "uplink_down", cut_ms - 1000, uplink="internet")
    span = int(3 * p.timing.agent_interval_s * 1000)
    points = p.points("center_network_state", {"uplink": "internet"}, cut_ms - span, fired)
    # the round that saw the cut: the first one down after the last one up before the cut (the
    # rounds just before may be a previous outage's, spooled and filed only seconds ago)
    last_up = max(ts for ts, value in points if value < 2 and ts < cut_ms)
    down_ts = next(ts for ts, value in points if value >= 2 and ts > last_up)
    start, duration, received = min(p.runs(PROBE_HOST, "network", down_ts - span), key=lambda r: abs(r[0] - down_ts))
    round_end = start + duration * 1000
    lab.link_up("isp")
    return {
        "total": receipt - cut,
        "detection": round_end / 1000 - cut,
        "upload": (received - round_end) / 1000,
        "evaluation": (fired - received) / 1000,
        "dispatch": receipt - fired / 1000,
    }


def center_unreachable(p: AlertLab, lab: Lab) -> dict[str, float]:
    cut = time.time()
    lab.link_down("isp")
    lab.link_down("wan")
    receipt = first_hook(p, cut, "center_unreachable")
    agents = p.agents()
    last = max(agents[h]["last_seen_ms"] for h in (PROBE_HOST, PC_HOST)) / 1000
    fired = firing_ms(p, "center_unreachable", int(cut * 1000)) / 1000
    lab.link_up("isp")
    lab.link_up("wan")
    return {
        "total": receipt - cut,
        "last report": last - cut,
        "silence": fired - last,
        "dispatch": receipt - fired,
        "since last report": receipt - last,
    }


def report(name: str, rows: list[dict[str, float]]) -> None:
    print(f"\n{name}: {len(rows)} repetitions (seconds)")
    print(f"  {'':<18}{'median':>8}{'max':>8}{'min':>8}   each")
    for key in rows[0]:
        values = [r[key] for r in rows]
        each = " ".join(f"{v:.2f}" for v in values)
        print(f"  {key:<18}{statistics.median(values):>8.2f}{max(values):>8.2f}{min(values):>8.2f}   {each}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    timing = Timing()
    rng = random.Random()
    results: dict[str, list[dict[str, float]]] = {"uplink_down": [], "center_unreachable": []}
    print(
        f"agents every {timing.agent_interval_s:g} s, evaluation every {timing.eval_interval_s:g} s, silent after "
        f"{timing.silent_after_intervals:g} intervals, group_wait {timing.group_wait_s:g} s; probe timeouts: ICMP "
        f"{timing.icmp_reply_timeout_s:g} s, DNS {timing.dns_attempt_timeout_s:g} s × 2, HTTP "
        f"{timing.http_probe_timeout_s:g} s"
    )
    with Lab() as lab:
        p = AlertLab(lab, Path(tempfile.mkdtemp(prefix="cw-alert-latency-")), timing, {"lab.yaml": LOSSY_RULE})
        try:
            p.start()
            scenarios: list[tuple[str, Any]] = [
                ("uplink_down", uplink_down),
                ("center_unreachable", center_unreachable),
            ]
            for rep in range(args.reps):
                for name, scenario in scenarios:
                    p.wait_healthy(timeout=90)
                    time.sleep(rng.uniform(0, timing.agent_interval_s))
                    row = scenario(p, lab)
                    results[name].append(row)
                    print(f"  rep {rep + 1} {name}: {row['total']:.2f} s", flush=True)
        finally:
            p.stop()
    for name, rows in results.items():
        if rows:
            report(name, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
