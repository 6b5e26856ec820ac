"""traceroute and arp_discovery for real, in network namespaces this test builds and removes.

Path: ``probe`` — ``r1`` — ``r2`` — ``far``, routers forwarding, 198.18.1-3.0/24. LAN: a bridge in
``lan`` with host namespaces on 198.18.50.0/24. No packet leaves these namespaces; the host's own
interfaces and routes are never touched (veth pairs are created directly inside the namespaces).
Each check runs in a child process inside a namespace (a namespace is per process) and prints its
observations as JSON.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

RUNNER = """
import asyncio, json, sys, time, importlib
import msgspec
from agent.checks.base import CheckContext
module = importlib.import_module(sys.argv[1])
cfg = msgspec.convert(json.loads(sys.argv[2]), module.Config)
t0, c0 = time.perf_counter(), time.process_time()
obs = asyncio.run(module.collect(CheckContext(sys.argv[1], cfg)))
out = {
    "samples": [[s.name, s.labels, s.value] for s in obs.samples],
    "events": [[e.kind, e.labels, e.message, e.severity] for e in obs.events],
    "facts": obs.facts,
    "wall_s": time.perf_counter() - t0,
    "cpu_s": time.process_time() - c0,
}
print(json.dumps(out))
"""


def _require_root() -> None:
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    why = None
    if os.geteuid() != 0:
        why = "needs root to create network namespaces"
    elif missing:
        why = f"needs {', '.join(missing)} (tests/debian-packages.txt)"
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {why}")
        pytest.skip(why)


def sh(*args: str, input: str | None = None) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30, input=input)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@dataclass
class Lab:
    prefix: str = field(default_factory=lambda: f"cwt{secrets.token_hex(2)}")
    namespaces: list[str] = field(default_factory=list)

    def ns(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        """A veth pair born inside its two namespaces: it never exists in the host's."""
        sh("ip", "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
        sh("ip", "-n", ns_a, "link", "set", if_a, "up")
        sh("ip", "-n", ns_b, "link", "set", if_b, "up")

    def run_check(self, ns: str, module: str, config: dict[str, Any], as_user: str | None = None) -> dict[str, Any]:
        drop = (
            ["setpriv", f"--reuid={as_user}", "--regid=nogroup", "--clear-groups", "--inh-caps=-all"] if as_user else []
        )
        done = subprocess.run(
            ["ip", "netns", "exec", ns, *drop, sys.executable, "-c", RUNNER, module, json.dumps(config)],
            capture_output=True, text=True, timeout=40, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def cleanup(self) -> None:
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@pytest.fixture
def lab() -> Iterator[Lab]:
    _require_root()
    lab = Lab()
    try:
        yield lab
    finally:
        lab.cleanup()


def sysctl(ns: str, *settings: str) -> None:
    sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings)


def build_path(lab: Lab) -> dict[str, str]:
    probe, r1, r2, far = (lab.ns(role) for role in ("probe", "r1", "r2", "far"))
    lab.veth(probe, "p0", r1, "r1a")
    lab.veth(r1, "r1b", r2, "r2a")
    lab.veth(r2, "r2b", far, "f0")
    for ns, dev, addr in (
        (probe, "p0", "198.18.1.2/24"),
        (r1, "r1a", "198.18.1.1/24"),
        (r1, "r1b", "198.18.2.1/24"),
        (r2, "r2a", "198.18.2.2/24"),
        (r2, "r2b", "198.18.3.1/24"),
        (far, "f0", "198.18.3.2/24"),
    ):
        sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
    sh("ip", "-n", probe, "route", "add", "default", "via", "198.18.1.1")
    sh("ip", "-n", r1, "route", "add", "198.18.3.0/24", "via", "198.18.2.2")
    sh("ip", "-n", r2, "route", "add", "198.18.1.0/24", "via", "198.18.2.1")
    sh("ip", "-n", far, "route", "add", "default", "via", "198.18.3.1")
    for ns in (r1, r2):
        sysctl(ns, "net.ipv4.ip_forward=1")
    for ns in (r1, r2, far):  # the kernel's ICMP rate limit would pass for loss (FIELD-NOTES)
        sysctl(ns, "net.ipv4.icmp_ratelimit=0")
    return {"probe": probe, "r1": r1, "r2": r2, "far": far}


def samples(out: dict[str, Any], name: str) -> list[tuple[dict[str, str], float]]:
    return [(labels, value) for n, labels, value in out["samples"] if n == name]


def by_hop(out: dict[str, Any], name: str, **match: str) -> dict[int, tuple[str | None, float]]:
    return {
        int(labels["hop"]): (labels.get("address"), value)
        for labels, value in samples(out, name)
        if all(labels.get(k) == v for k, v in match.items())
    }


def test_traceroute_three_hops_then_loss_at_the_middle_router(lab: Lab) -> None:
    ns = build_path(lab)
    cfg = {"targets": [{"name": "far", "address": "198.18.3.2", "uplink": "wan"}], "probe_timeout_s": 1.0}
    out = lab.run_check(ns["probe"], "agent.checks.traceroute", cfg)

    path = ["198.18.1.1", "198.18.2.2", "198.18.3.2"]
    assert by_hop(out, "probe_traceroute_hop_loss_ratio") == {i + 1: (a, 0.0) for i, a in enumerate(path)}
    assert samples(out, "probe_traceroute_reached")[0][1] == 1.0
    assert samples(out, "probe_traceroute_hops")[0][1] == 3
    success = samples(out, "probe_success")
    assert success == [({"probe": "traceroute", "target": "far", "uplink": "wan"}, 1.0)]
    rtt = by_hop(out, "probe_traceroute_hop_rtt_seconds", stat="avg")
    assert all(addr == path[hop - 1] and 0 < value < 0.1 for hop, (addr, value) in rtt.items()), rtt
    assert [hop[:3] for hop in out["facts"]["traceroute"]["far"]] == [
        [1, path[0], 0.0],
        [2, path[1], 0.0],
        [3, path[2], 0.0],
    ]
    (event,) = [e for e in out["events"] if e[0] == "path.trace"]
    assert event[2].startswith("1 198.18.1.1 0% ") and "| 3 198.18.3.2 0% " in event[2]

    # r2 drops about half of the time-exceeded messages it sends: hop 2 shows loss, hop 3 does not
    rules = (
        f"table inet {lab.prefix} {{\n chain out {{\n type filter hook output priority 0; policy accept;\n"
        " icmp type time-exceeded numgen random mod 100 < 50 counter drop\n }\n}\n"
    )
    sh("ip", "netns", "exec", ns["r2"], "nft", "-f", "-", input=rules)
    out = lab.run_check(ns["probe"], "agent.checks.traceroute", {**cfg, "probes_per_hop": 20})
    loss = by_hop(out, "probe_traceroute_hop_loss_ratio")
    assert loss[1] == ("198.18.1.1", 0.0)
    assert loss[2][0] == "198.18.2.2" and 0.0 < loss[2][1] < 1.0, loss
    assert loss[3] == ("198.18.3.2", 0.0)
    assert samples(out, "probe_traceroute_reached")[0][1] == 1.0
    counter = sh("ip", "netns", "exec", ns["r2"], "nft", "list", "table", "inet", lab.prefix)
    dropped = int(counter.split("counter packets ")[1].split()[0])
    assert round(loss[2][1] * 20) == dropped  # every missing answer is one the router dropped


def test_arp_sweep_finds_known_unknown_and_missing_devices(lab: Lab) -> None:
    lan = lab.ns("lan")
    sh("ip", "-n", lan, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", lan, "link", "set", "br0", "up")
    hosts = {}
    for i in range(1, 5):
        host = lab.ns(f"h{i}")
        lab.veth(host, "eth0", lan, f"port{i}")
        sh("ip", "-n", lan, "link", "set", f"port{i}", "master", "br0")
        sh("ip", "-n", host, "addr", "add", f"198.18.50.{i}/24", "dev", "eth0")
        hosts[f"h{i}"] = host
    mac_h2 = json.loads(sh("ip", "-j", "-n", hosts["h2"], "link", "show", "eth0"))[0]["address"]
    mac_h4 = json.loads(sh("ip", "-j", "-n", hosts["h4"], "link", "show", "eth0"))[0]["address"]
    cfg = {
        "subnets": [{"cidr": "198.18.50.0/24", "interface": "eth0"}],
        "known": [
            {"name": "probe-pc", "address": "198.18.50.1"},  # the sweeping host itself
            {"name": "printer", "mac": mac_h2.upper().replace(":", "-")},  # normalized by the check
            {"name": "switch", "address": "198.18.50.3"},
            {"name": "ghost", "address": "198.18.50.99", "mac": "02:00:00:00:00:99"},
        ],
        "sweep_timeout_s": 1.0,
    }
    out = lab.run_check(hosts["h1"], "agent.checks.arp_discovery", cfg)

    up = {labels["device"]: value for labels, value in samples(out, "lan_device_up")}
    assert up == {"probe-pc": 1.0, "printer": 1.0, "switch": 1.0, "ghost": 0.0}
    assert samples(out, "lan_devices_found") == [({"subnet": "198.18.50.0/24"}, 4.0)]
    assert samples(out, "lan_unknown_devices") == [({"subnet": "198.18.50.0/24"}, 1.0)]
    unknown = [e for e in out["events"] if e[0] == "lan.device_unknown"]
    assert [(e[1], e[3]) for e in unknown] == [({"mac": mac_h4, "address": "198.18.50.4"}, "warning")]
    missing = [e for e in out["events"] if e[0] == "lan.device_missing"]
    assert [(e[1], e[3]) for e in missing] == [({"device": "ghost"}, "warning")]
    assert [(d["address"], d["known_as"]) for d in out["facts"]["lan"]] == [
        ("198.18.50.1", "probe-pc"),
        ("198.18.50.2", "printer"),
        ("198.18.50.3", "switch"),
        ("198.18.50.4", None),
    ]
    assert out["facts"]["lan"][1]["mac"] == mac_h2


def test_without_raw_socket_rights_both_checks_report_permission(lab: Lab) -> None:
    ns = lab.ns("probe")
    sh("ip", "-n", ns, "addr", "add", "198.18.1.2/24", "dev", "lo")
    checks = {
        "agent.checks.traceroute": {"targets": [{"name": "self", "address": "198.18.1.2"}]},
        "agent.checks.arp_discovery": {"subnets": [{"cidr": "198.18.1.0/30", "interface": "lo"}]},
    }
    for module, cfg in checks.items():
        out = lab.run_check(ns, module, cfg, as_user="nobody")
        assert [(n, labels.get("reason"), v) for n, labels, v in out["samples"]] == [
            ("probe_success", None, 0.0),
            ("probe_failure_info", "permission", 1.0),
        ], module
        assert [(e[0], e[3]) for e in out["events"]] == [("probe.failed", "warning")]
