"""Issue 3 in the lab: a real agent in the center namespace measures real faults, and its verdict
places each one in the right segment.

The collector runs in the ``gov`` namespace (the city data center, reached over the government
WAN), the agent in ``center``. Faults: loss (nftables), delay (a user-space delaying echo
responder: this kernel has no netem), an uplink cut (link down), a DNS failure. All traffic stays
inside the lab's own namespaces.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store.sqlite import SqliteStore
from tests.conftest import BIN, wait_for
from tests.lab.netlab import ADDRESSES, Lab

pytest_plugins = ["tests.lab.fixtures"]
pytestmark = pytest.mark.integration

GATEWAY = ADDRESSES["gw"][0]
PORTAL = ADDRESSES["portal"][0]
GOV = ADDRESSES["dichvucong"][0]
COLLECTOR = f"http://{GOV}:8080"

ROUND = """
import asyncio, json, sys
from agent.checks.icmp import Config, ping_round
r = asyncio.run(ping_round(sys.argv[1], Config(count=int(sys.argv[2]), spacing_s=0.01, reply_timeout_s=0.5)))
print(json.dumps({"sent": r.sent, "received": r.received, "late": r.late, "span": r.send_span_s}))
"""

ARP = """
import asyncio, json, sys
from agent.checks import arp_discovery as a
from agent.checks.base import CheckContext
cfg = a.Config(subnets=(a.Subnet(cidr="198.18.0.0/24", interface="eth0"),), known=(
    a.Known(name="router", address="198.18.0.1"), a.Known(name="pc2", address="198.18.0.11"),
    a.Known(name="center", address="198.18.0.10"), a.Known(name="old-printer", address="198.18.0.99")),
    sweep_timeout_s=1.0)
obs = asyncio.run(a.collect(CheckContext("arp_discovery", cfg)))
print(json.dumps({"samples": [[s.name, s.labels, s.value] for s in obs.samples],
                  "events": [[e.kind, e.labels] for e in obs.events]}))
"""


THROUGHPUT = """
import asyncio, json, sys
from agent.checks import throughput as t
from agent.checks.base import CheckContext, CollectorLink
cfg = t.Config(download_bytes=2_000_000, upload_bytes=1_000_000, ignore_window=True, contracted_download_mbps=8,
               contracted_upload_mbps=8)
obs = asyncio.run(t.collect(CheckContext("throughput", cfg, collector=CollectorLink(sys.argv[1], sys.argv[2]))))
print(json.dumps({f"{s.name}/{s.labels.get('direction', '')}": s.value for s in obs.samples}))
"""


def agent_yaml(data_dir: Path, token: str) -> str:
    return f"""
collector_url: {COLLECTOR}
enrollment_token: {token}
data_dir: {data_dir}
metrics_listen: ''
upload: {{interval_s: 0.5, backoff_min_s: 0.2, backoff_max_s: 1}}
checks:
  network:
    interval_s: 2
    timeout_s: 12
    gateway: {{name: router, address: {GATEWAY}}}
    icmp:
      count: 10
      spacing_s: 0.02
      reply_timeout_s: 0.8
      targets:
        - {{name: portal, address: {PORTAL}, uplink: internet}}
        - {{name: dichvucong, address: {GOV}, uplink: wan}}
    dns:
      attempt_timeout_s: 1
      queries:
        - {{name: portal.lab, resolver: "{ADDRESSES["inet-dns"][0]}", uplink: internet}}
        - {{name: dichvucong.lab, resolver: "{ADDRESSES["gov-dns"][0]}", uplink: wan}}
    http:
      probe_timeout_s: 3
      targets:
        - {{url: "http://portal.lab/", name: portal, uplink: internet, expect_text: "Cổng Dịch vụ công"}}
        - {{url: "http://{GOV}/", name: dichvucong, uplink: wan}}
"""


def in_ns(lab: Lab, ns: str, script: str, *args: str) -> dict[str, object]:
    out = lab.exec(ns, sys.executable, "-c", script, *args, timeout=60)
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.fixture
def running(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    """A collector in ``gov`` and an agent in ``center``; yields the collector's database."""
    db = tmp_path / "c.db"
    collector = lab.popen(
        "gov", str(BIN / "centerwatch-collector"), "serve", "--db", str(db), "--host", GOV, "--port", "8080",
        "--agent-interval", "2", log="collector.log",
    )  # fmt: skip
    wait_for("the collector in gov", lambda: db.exists() and collector.poll() is None, timeout=20)
    time.sleep(1.0)
    token = subprocess.run(
        [str(BIN / "centerwatch-collector"), "token", "create", "--db", str(db), "--center", "hoa-khanh"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(tmp_path / "agent", token))
    agent = lab.popen("center", str(BIN / "centerwatch-agent"), "run", "-c", str(config), log="agent.log")
    try:
        yield db
    finally:
        for proc in (agent, collector):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def verdicts(db: Path, since_ms: int) -> dict[str, tuple[float, str | None]]:
    """uplink → (state, segment) from the newest network round that started after ``since_ms``."""
    store = SqliteStore(db)
    try:
        states = asyncio.run(store.latest("center_network_state"))
        faults = asyncio.run(store.latest("center_network_fault_info"))
    finally:
        asyncio.run(store.close())
    out: dict[str, tuple[float, str | None]] = {}
    for point in states:
        if point.ts_ms < since_ms:
            continue
        uplink = point.labels["uplink"]
        segment = next(
            (f.labels["segment"] for f in faults if f.labels["uplink"] == uplink and f.ts_ms == point.ts_ms), None
        )
        out[uplink] = (point.value, segment)
    return out


def expect(db: Path, wanted: dict[str, tuple[float, str | None]], what: str, timeout: float = 30.0) -> None:
    since = int(time.time() * 1000)
    wait_for(what, lambda: verdicts(db, since) == wanted or None, timeout=timeout, every=0.5)


def test_loss_count_equals_the_nft_drop_counter_and_the_schedule_holds(lab: Lab) -> None:
    clean = in_ns(lab, "center", ROUND, PORTAL, "20")
    lab.set_loss("isp", 20)
    lossy = in_ns(lab, "center", ROUND, PORTAL, "300")
    dropped = lab.drop_count("isp")
    assert lossy["sent"] == 300
    assert int(lossy["sent"]) - int(lossy["received"]) - int(lossy["late"]) == dropped > 0  # type: ignore[call-overload]
    lossy20 = in_ns(lab, "center", ROUND, PORTAL, "20")
    assert abs(float(lossy20["span"]) - float(clean["span"])) < 0.01  # type: ignore[arg-type]


def test_the_verdict_places_each_fault(lab: Lab, running: Path) -> None:
    db = running
    healthy = {"internet": (0.0, None), "wan": (0.0, None)}
    expect(db, healthy, "a healthy first round on both uplinks", timeout=45)

    lab.set_loss("isp", 30)
    expect(db, {"internet": (1.0, "uplink"), "wan": (0.0, None)}, "30 % loss on the internet uplink")
    lab.clear_loss("isp")
    expect(db, healthy, "recovery after loss")

    lab.exec("inet", "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
    delayd = lab.popen("inet", sys.executable, "-m", "tests.lab.delayd", "--delay-ms", "200", "--seconds", "120",
                       log="delayd.log")  # fmt: skip
    try:
        expect(db, {"internet": (1.0, "uplink"), "wan": (0.0, None)}, "200 ms delay beyond the router")
        store = SqliteStore(db)
        try:
            medians = asyncio.run(store.latest("probe_icmp_rtt_seconds", {"target": "portal", "stat": "median"}))
        finally:
            asyncio.run(store.close())
        assert 0.195 <= medians[0].value <= 0.260, medians
    finally:
        delayd.terminate()
        delayd.wait(timeout=10)
        lab.exec("inet", "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=0")
    expect(db, healthy, "recovery after delay")

    lab.link_down("isp")
    expect(db, {"internet": (2.0, "uplink"), "wan": (0.0, None)}, "the internet uplink cut; WAN still reports")
    lab.link_up("isp")
    expect(db, healthy, "recovery after the outage")

    lab.break_dns("servfail", server="inet")
    expect(db, {"internet": (2.0, "dns"), "wan": (0.0, None)}, "the internet DNS answering SERVFAIL")
    lab.fix_dns()
    expect(db, healthy, "recovery after the DNS failure")


def test_lan_discovery_finds_the_lab_hosts_and_flags_the_unlisted_one(lab: Lab) -> None:
    result = in_ns(lab, "center", ARP)
    samples = result["samples"]
    up = {s[1]["device"]: s[2] for s in samples if s[0] == "lan_device_up"}  # type: ignore[index, union-attr]
    assert up == {"router": 1.0, "pc2": 1.0, "center": 1.0, "old-printer": 0.0}
    events = result["events"]
    unknown = [e[1]["address"] for e in events if e[0] == "lan.device_unknown"]  # type: ignore[index, union-attr]
    missing = [e[1]["device"] for e in events if e[0] == "lan.device_missing"]  # type: ignore[index, union-attr]
    assert unknown == [ADDRESSES["printer"][0]]
    assert missing == ["old-printer"]


def test_throughput_matches_the_shaped_wan_and_its_contract(lab: Lab, running: Path, tmp_path: Path) -> None:
    identity = tmp_path / "agent" / "identity.json"
    wait_for("the agent's enrollment", lambda: identity.exists(), timeout=30)
    token = json.loads(identity.read_text())["agent_token"]
    lab.set_rate("wan", 8000)  # tbf: 8 Mb/s both ways through the government WAN hop
    result = in_ns(lab, "center", THROUGHPUT, COLLECTOR, token)
    down = float(result["probe_throughput_bits_per_second/download"])  # type: ignore[arg-type]
    up = float(result["probe_throughput_bits_per_second/upload"])  # type: ignore[arg-type]
    assert 5.5e6 <= down <= 8.8e6, down
    assert 5.5e6 <= up <= 8.8e6, up
    ratio = float(result["probe_throughput_contract_ratio/download"])  # type: ignore[arg-type]
    assert ratio == pytest.approx(down / 8e6)
