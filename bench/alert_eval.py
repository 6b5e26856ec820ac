"""Alert rule evaluation cost: the shipped rules over a simulated city, through the real store.

Prints figures, asserts nothing. For each fleet size (94 centers × 20 devices, the city; 3,300
centers × 15 devices, a whole country's communes) it

1. ingests ``--history-s`` of data into a fresh SQLite store through ``SqliteStore.ingest`` (the
   collector's own path): per center one probe agent (network probes for two uplinks, and the
   center's gear over SNMP every 60 s) and one agent per PC (host metrics every 15 s); a quarter of
   a center's devices are PCs, the rest gear (switch ports, printers, UPS). About 40 % of each
   device's series are metrics no rule reads (they must cost nothing);
2. runs a first round (the head filled from the store: a collector restart);
3. runs ``--rounds`` steady rounds five seconds apart, each after a third of the agents reported
   (15 s interval, 5 s evaluation), timing the round alone: wall, CPU, series kept, alerts.

Faults keep the engine honest: 1 % of PCs run hot, 2 % of gear is unreachable, two centers go dark.

    python bench/alert_eval.py [--sizes 94x20,3300x15] [--rounds 12] [--history-s 900]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry

from centerwatch.wire import Batch, Part, Sample
from collector.alerting.engine import Engine, EngineSettings
from collector.alerting.rules import load_rules
from collector.alerting.state import AlertState
from collector.auth import hash_token
from collector.store.base import AgentRecord
from collector.store.sqlite import SqliteStore

HOST_S = 15
PROFILE = False
GEAR_S = 60


def pc_samples(rng: random.Random, hot: bool, ts: int) -> list[Sample]:
    cpu = 0.97 if hot else rng.uniform(0.05, 0.5)
    out = [
        Sample("host_cpu_usage_ratio", {"cpu": "total"}, cpu, ts),
        Sample("host_memory_used_ratio", {}, rng.uniform(0.3, 0.7), ts),
        Sample("host_filesystem_used_ratio", {"mountpoint": "C:\\", "fstype": "NTFS", "device": "C:"}, 0.5, ts),
        Sample("host_filesystem_used_ratio", {"mountpoint": "D:\\", "fstype": "NTFS", "device": "D:"}, 0.4, ts),
        Sample("host_network_receive_errors_total", {"nic": "eth0"}, 0.0, ts),
        Sample("host_network_speed_bits_per_second", {"nic": "eth0"}, 1e9, ts),
        Sample("host_network_full_duplex", {"nic": "eth0"}, 1.0, ts),
    ]
    for i in range(5):  # read by no rule
        out.append(Sample("host_cpu_usage_ratio", {"cpu": str(i)}, cpu, ts))
    for name in ("host_load1", "host_uptime_seconds", "host_processes", "host_network_receive_bytes_total"):
        out.append(Sample(name, {}, rng.random(), ts))
    return out


def gear_samples(kind: int, name: str, down: bool, ts: int) -> list[Sample]:
    d = {"device": name}
    out = [Sample("snmp_up", d, 0.0 if down else 1.0, ts)]
    if down:
        return out
    out.append(Sample("snmp_uptime_seconds", d, 86_400.0, ts))
    out.append(Sample("snmp_poll_duration_seconds", d, 0.05, ts))
    if kind == 0:  # a switch: 8 ports
        for p in range(8):
            port = {**d, "ifname": f"Gi0/{p}"}
            out.append(Sample("snmp_interface_oper_up", port, 1.0, ts))
            for direction in ("in", "out"):
                out.append(Sample("snmp_interface_errors_per_second", {**port, "direction": direction}, 0.0, ts))
                out.append(Sample("snmp_interface_in_bits_per_second", {**port, "direction": direction}, 1e6, ts))
    elif kind == 1:  # a printer
        out.append(Sample("snmp_printer_supply_level_ratio", {**d, "supply": "black", "supply_type": "toner"}, 0.6, ts))
        for cond in ("jammed", "door_open", "no_toner", "no_paper", "low_paper", "offline"):
            out.append(Sample("snmp_printer_error", {**d, "condition": cond}, 0.0, ts))
        out.append(Sample("snmp_printer_pages_total", d, 12345.0, ts))
    else:  # a UPS
        ups = (
            ("snmp_ups_on_battery", 0.0),
            ("snmp_ups_battery_low", 0.0),
            ("snmp_ups_runtime_seconds", 1800.0),
            ("snmp_ups_load_ratio", 0.4),
            ("snmp_ups_input_voltage_volts", 220.0),
        )
        for name_, v in ups:
            out.append(Sample(name_, d, v, ts))
    return out


def probe_samples(ts: int) -> list[Sample]:
    out = []
    for uplink, target in (("internet", "portal"), ("wan", "dichvucong")):
        out += [
            Sample("center_network_state", {"uplink": uplink}, 0.0, ts),
            Sample("probe_icmp_loss_ratio", {"uplink": uplink, "target": target}, 0.0, ts),
            Sample("probe_icmp_rtt_seconds", {"uplink": uplink, "target": target, "stat": "median"}, 0.02, ts),
            Sample("probe_icmp_rtt_seconds", {"uplink": uplink, "target": target, "stat": "max"}, 0.03, ts),
            Sample("probe_success", {"uplink": uplink, "target": target, "probe": "dns"}, 1.0, ts),
            Sample("probe_success", {"uplink": uplink, "target": target, "probe": "http"}, 1.0, ts),
            Sample("probe_ssl_earliest_cert_expiry_days", {"uplink": uplink, "target": target}, 80.0, ts),
        ]
    out.append(Sample("lan_unknown_devices", {}, 0.0, ts))
    return out


class City:
    def __init__(self, store: SqliteStore, centers: int, devices: int, seed: int = 7) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.centers = [f"c{i:04d}" for i in range(centers)]
        self.pcs_per_center = max(1, devices // 4)
        self.gear_per_center = devices - self.pcs_per_center
        self.agents: list[tuple[AgentRecord, str]] = []  # (record, "probe" | "pc")
        self.hot: set[str] = set()
        self.down: set[tuple[str, str]] = set()
        self.dark = set(self.centers[:2])
        self.seq: dict[str, int] = {}
        self.samples = 0

    async def enroll(self, now: int) -> None:
        for c in self.centers:
            await self.store.create_enroll_token(hash_token(f"e-{c}"), c, now, None, None, "bench")
            for h in ["probe", *(f"pc{j}" for j in range(self.pcs_per_center))]:
                rec = AgentRecord(f"{c}-{h}", c, h, "bench", h, now, None, False)
                got = await self.store.enroll(hash_token(f"e-{c}"), rec, hash_token(f"a-{c}-{h}"), now)
                assert got is not None
                self.agents.append((got, "probe" if h == "probe" else "pc"))
                if h != "probe" and self.rng.random() < 0.01:
                    self.hot.add(got.id)
            for g in range(self.gear_per_center):
                if self.rng.random() < 0.02:
                    self.down.add((c, f"{c}-g{g}"))

    async def report(self, agent: AgentRecord, kind: str, ts: int, gear_too: bool) -> None:
        if agent.center in self.dark and ts > self.dark_from:
            return
        if kind == "pc":
            samples = pc_samples(self.rng, agent.id in self.hot, ts)
        else:
            samples = probe_samples(ts)
            if gear_too:
                for g in range(self.gear_per_center):
                    name = f"{agent.center}-g{g}"
                    samples += gear_samples(g % 3, name, (agent.center, name) in self.down, ts)
        seq = self.seq.get(agent.id, 0) + 1
        self.seq[agent.id] = seq
        part = Part(seq, "bench", ts, 0.01, True, samples=samples)
        await self.store.ingest(agent, Batch(1, agent.id, ts, [part]), ts)
        self.samples += len(samples)

    async def tick(self, ts: int, phase: int) -> None:
        """Agents whose turn it is at ``ts`` (every HOST_S, spread over thirds) report."""
        for i, (agent, kind) in enumerate(self.agents):
            if i % 3 == phase:
                await self.report(agent, kind, ts, gear_too=(ts // 1000 + i) % (GEAR_S // HOST_S * 3) < 3)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run_size(centers: int, devices: int, rounds: int, history_s: int) -> None:
    print(f"\n== {centers} centers × {devices} devices ==")
    with tempfile.TemporaryDirectory(prefix="cw-alert-bench-") as tmp:
        store = SqliteStore(Path(tmp) / "c.db")
        state = AlertState(Path(tmp) / "c.alerts.db")
        city = City(store, centers, devices)
        now = int(time.time() * 1000) - (history_s + 60) * 1000
        await city.enroll(now)
        city.dark_from = now + (history_s - 120) * 1000  # two centers go dark two minutes before the end
        started = time.perf_counter()
        step = HOST_S * 1000 // 3
        t = now
        phase = 0
        while t < now + history_s * 1000:
            await city.tick(t, phase)
            phase = (phase + 1) % 3
            t += step
        fill = time.perf_counter() - started
        print(
            f"  {len(city.agents):,} agents, history {history_s} s: {city.samples:,} samples ingested in {fill:.1f} s"
            f" ({city.samples / fill:,.0f}/s)"
        )
        settings = EngineSettings(agent_interval_s=HOST_S, eval_interval_s=5)
        engine = Engine(load_rules(), store, state, settings, registry=CollectorRegistry())
        gc.collect()
        rss0 = rss_mib()
        c0, w0 = time.process_time(), time.perf_counter()
        first = await engine.round(t)
        c1, w1 = time.process_time(), time.perf_counter()
        head = engine.head
        print(
            f"  first round (restart: head filled from the store): {w1 - w0:.2f} s wall, {c1 - c0:.2f} s CPU;"
            f" {first.runs:,} runs read; {len(head.series):,} series kept, {len(head.ignored):,} ignored;"
            f" {head.points():,} points; head RSS +{rss_mib() - rss0:.0f} MiB"
        )
        walls: list[float] = []
        cpus: list[float] = []
        last = first
        lag = [0.0]
        running = True

        async def monitor() -> None:  # how long the event loop (which also serves ingest) is held
            while running:
                t0 = time.perf_counter()
                await asyncio.sleep(0)
                lag[0] = max(lag[0], time.perf_counter() - t0)

        for _ in range(rounds):
            await city.tick(t, phase)
            phase = (phase + 1) % 3
            t += step
            c0, w0 = time.process_time(), time.perf_counter()
            if PROFILE:
                import cProfile
                import pstats

                prof = cProfile.Profile()
                prof.enable()
            running = True
            watcher = asyncio.create_task(monitor())
            last = await engine.round(t)
            running = False
            await watcher
            if PROFILE:
                prof.disable()
                pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
            cpus.append(time.process_time() - c0)
            walls.append(time.perf_counter() - w0)
        print(
            f"  steady round ({rounds} rounds, a third of the agents reported before each): wall median"
            f" {statistics.median(walls) * 1000:.0f} ms, max {max(walls) * 1000:.0f} ms; CPU median"
            f" {statistics.median(cpus) * 1000:.0f} ms; the event loop held at most {lag[0] * 1000:.0f} ms at a time"
        )
        open_rows = engine.open_alerts()
        by_rule: dict[str, int] = {}
        for a in open_rows:
            if a.state == "firing" and not a.muted:
                by_rule[a.rule] = by_rule.get(a.rule, 0) + 1
        print(
            f"  alerts: {last.firing} firing ({last.muted} muted), {last.pending} pending; notified by rule: {by_rule}"
        )
        state.close()
        await store.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="94x20,3300x15")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--history-s", type=int, default=900)
    args = p.parse_args()
    print(f"python {sys.version.split()[0]}; peak RSS figures are this process's")
    for size in args.sizes.split(","):
        centers, devices = (int(x) for x in size.split("x"))
        asyncio.run(run_size(centers, devices, args.rounds, args.history_s))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
