"""The alerting pipeline in the namespace lab, end to end, with real processes.

* ``gov`` (the city data center, behind the government WAN): the collector, evaluating alerts
  every ``eval_interval_s`` and notifying a webhook receiver (``tests.lab.webhookd``) on gov's own
  loopback;
* ``center``: the center's probe agent (the ``network`` check: router, portal over the internet
  uplink, dichvucong over the WAN, their DNS and HTTP), enrolled as host ``center-probe``;
* ``pc2``: a PC's agent (the ``host`` check), enrolled as host ``pc2``.

Both agents report every ``agent_interval_s`` and upload every 0.5 s. Used by
``tests/integration/test_lab_alerts.py`` and ``bench/alert_latency.py``. Every wait is bounded.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.lab.netlab import ADDRESSES, Lab

T = TypeVar("T")
BIN = Path(sys.executable).parent
CENTER = "hoa-khanh"
GOV = ADDRESSES["dichvucong"][0]
COLLECTOR_URL = f"http://{GOV}:8080"
HOOK_PORT = 9099
PROBE_HOST = "center-probe"
PC_HOST = "pc2"

_GET = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"


@dataclass(frozen=True)
class Timing:
    agent_interval_s: float = 2.0
    eval_interval_s: float = 1.0
    silent_after_intervals: float = 2.5
    group_wait_s: float = 0.0
    group_interval_s: float = 1.0
    #: the probe agent's per-probe timeouts: a round against a dead link must end within the interval
    icmp_reply_timeout_s: float = 0.8
    dns_attempt_timeout_s: float = 0.5
    http_probe_timeout_s: float = 1.5


@dataclass(frozen=True)
class Hook:
    """One POST the webhook receiver got."""

    t: float  # unix seconds at receipt
    body: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.body["status"])

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return list(self.body["alerts"])

    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["status"] == "firing"]

    def resolved(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["status"] == "resolved"]


def alert_key(alert: dict[str, Any]) -> str:
    """``uplink_down{uplink=internet}``: rule and the labels that tell its instances apart."""
    labels = alert["labels"]
    extra = ",".join(f"{k}={labels[k]}" for k in sorted(labels) if k not in ("alertname", "center", "severity"))
    return f"{labels['alertname']}{{{extra}}}" if extra else str(labels["alertname"])


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.1) -> T:
    """Poll ``probe`` until it returns a truthy value; bounded, fails naming ``what``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def probe_agent_yaml(data_dir: Path, token: str, timing: Timing) -> str:
    gw, portal, gov = ADDRESSES["gw"][0], ADDRESSES["portal"][0], GOV
    interval = timing.agent_interval_s
    return f"""
collector_url: {COLLECTOR_URL}
enrollment_token: {token}
data_dir: {data_dir}
metrics_listen: ''
upload: {{interval_s: 0.5, backoff_min_s: 0.2, backoff_max_s: 1, timeout_s: 5}}
checks:
  network:
    interval_s: {interval}
    timeout_s: {interval * 2}
    gateway: {{name: router, address: {gw}}}
    icmp:
      count: 10
      spacing_s: 0.02
      reply_timeout_s: {timing.icmp_reply_timeout_s}
      targets:
        - {{name: portal, address: {portal}, uplink: internet}}
        - {{name: dichvucong, address: {gov}, uplink: wan}}
    dns:
      attempt_timeout_s: {timing.dns_attempt_timeout_s}
      queries:
        - {{name: portal.lab, resolver: "{ADDRESSES["inet-dns"][0]}", uplink: internet}}
        - {{name: dichvucong.lab, resolver: "{ADDRESSES["gov-dns"][0]}", uplink: wan}}
    http:
      probe_timeout_s: {timing.http_probe_timeout_s}
      targets:
        - {{url: "http://portal.lab/", name: portal, uplink: internet, expect_text: "Cổng Dịch vụ công"}}
        - {{url: "http://{gov}/", name: dichvucong, uplink: wan}}
"""


def host_agent_yaml(data_dir: Path, token: str, timing: Timing) -> str:
    return f"""
collector_url: {COLLECTOR_URL}
enrollment_token: {token}
data_dir: {data_dir}
metrics_listen: ''
upload: {{interval_s: 0.5, backoff_min_s: 0.2, backoff_max_s: 1, timeout_s: 5}}
checks:
  host: {{interval_s: {timing.agent_interval_s}, timeout_s: {timing.agent_interval_s * 2}}}
"""


def receivers_yaml(timing: Timing) -> str:
    return f"""
route:
  group_by: [center, alertname]
  group_wait_s: {timing.group_wait_s}
  group_interval_s: {timing.group_interval_s}
  repeat_interval_s: 86400
  lang: en
  retry: {{attempts: 3, initial_backoff_s: 0.2, max_backoff_s: 1}}
receivers:
  - name: lab-hook
    type: webhook
    url: http://127.0.0.1:{HOOK_PORT}/hook
    timeout_s: 5
"""


@dataclass
class AlertLab:
    """The collector, the webhook receiver and both agents, started in ``lab`` under ``workdir``."""

    lab: Lab
    workdir: Path
    timing: Timing = field(default_factory=Timing)
    #: site rules (``--rules``): file name → YAML text
    site_rules: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.workdir / "collector.db"

    @property
    def hooks_file(self) -> Path:
        return self.workdir / "hooks.jsonl"

    # --- life ----------------------------------------------------------------------------------
    def start(self) -> AlertLab:
        w, timing, lab = self.workdir, self.timing, self.lab
        w.mkdir(parents=True, exist_ok=True)
        ready = w / "webhookd.ready"
        self.procs["webhookd"] = lab.popen(
            "gov", sys.executable, "-m", "tests.lab.webhookd", "--listen", "127.0.0.1", "--port", str(HOOK_PORT),
            "--out", str(self.hooks_file), "--ready-file", str(ready), log="webhookd.log",
        )  # fmt: skip
        receivers = w / "alerting.yaml"
        receivers.write_text(receivers_yaml(timing))
        cmd = [
            str(BIN / "centerwatch-collector"), "serve", "--db", str(self.db), "--host", GOV, "--port", "8080",
            "--agent-interval", str(timing.agent_interval_s), "--eval-interval", str(timing.eval_interval_s),
            "--silent-after", str(timing.silent_after_intervals), "--alerting", str(receivers), "--lang", "en",
        ]  # fmt: skip
        if self.site_rules:
            rules = w / "rules"
            rules.mkdir(exist_ok=True)
            for name, text in self.site_rules.items():
                (rules / name).write_text(text)
            cmd += ["--rules", str(rules)]
        collector = self.procs["collector"] = lab.popen("gov", *cmd, log="collector.log")
        wait_until("the webhook receiver in gov", lambda: ready.exists(), timeout=15)

        def collector_up() -> bool:
            if collector.poll() is not None:
                raise AssertionError(f"the collector exited: {lab.log('collector.log')[-3000:]}")
            return self._healthy()

        wait_until("the collector in gov", collector_up, timeout=30, every=0.2)
        token = subprocess.run(
            [str(BIN / "centerwatch-collector"), "token", "create", "--db", str(self.db), "--center", CENTER],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        for ns, host, make in (("center", PROBE_HOST, probe_agent_yaml), ("pc2", PC_HOST, host_agent_yaml)):
            config = w / f"agent-{host}.yaml"
            config.write_text(make(w / f"agent-{host}", token, timing))
            # two agents on one machine share its hostname: each enrolls under its own name first
            lab.exec(ns, str(BIN / "centerwatch-agent"), "enroll", "-c", str(config), "--hostname", host, timeout=30)
            agent = lab.popen(ns, str(BIN / "centerwatch-agent"), "run", "-c", str(config), log=f"{host}.log")
            self.procs[host] = agent
        return self

    def stop(self) -> None:
        for name in (PROBE_HOST, PC_HOST, "collector", "webhookd"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def _healthy(self) -> bool:
        try:
            return bool(self.api("/healthz"))
        except (AssertionError, ValueError):
            return False

    # --- reading -------------------------------------------------------------------------------
    def api(self, path: str) -> Any:
        """GET the collector's API from inside gov (the test's own namespace has no route there)."""
        out = self.lab.exec("gov", sys.executable, "-c", _GET, COLLECTOR_URL + path, check=False, timeout=20)
        if out.returncode != 0:
            raise AssertionError(f"GET {path} failed: {out.stderr.strip()[-500:]}")
        return json.loads(out.stdout)

    def alerts(self, state: str = "all") -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.api(f"/api/v1/alerts?state={state}&limit=1000")
        return rows

    def agents(self) -> dict[str, dict[str, Any]]:
        return {a["host"]: a for a in self.api("/api/v1/agents")}

    def hooks(self, since: float = 0.0) -> list[Hook]:
        """Notifications received at or after unix time ``since``, oldest first."""
        if not self.hooks_file.exists():
            return []
        out = []
        for line in self.hooks_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                if record["t"] >= since:
                    out.append(Hook(record["t"], record["body"]))
        return out

    def runs(self, host: str, check: str, since_ms: int = 0) -> list[tuple[int, float, int]]:
        """(started_ms, duration_s, received_ms) of an agent's stored runs of ``check``, oldest first."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute(
                "SELECT r.started_ms, r.duration_s, r.received_ms FROM runs r JOIN streams s ON s.id = r.stream_id"
                " JOIN agents a ON a.id = s.agent_id WHERE a.host = ? AND s.check_name = ? AND r.started_ms >= ?"
                " ORDER BY r.started_ms",
                (host, check, since_ms),
            ).fetchall()
        return [(int(a), float(b), int(c)) for a, b, c in rows]

    def points(self, name: str, labels: dict[str, str], start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """(ts_ms, value) of the center's series ``name`` whose labels include ``labels``, in a window."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute("SELECT id, labels FROM series WHERE name = ? AND center = ?", (name, CENTER)).fetchall()
        wanted = {int(sid) for sid, text in rows if labels.items() <= json.loads(text).items()}
        found = self.api(f"/api/v1/series/range?name={name}&center={CENTER}&start_ms={start_ms}&end_ms={end_ms}")
        return sorted((int(t), float(v)) for s in found if s["series_id"] in wanted for t, v in s["points"])

    def latest(self, name: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.api(f"/api/v1/series/latest?name={name}&center={CENTER}")
        return rows

    def uplink_states(self, since_ms: int = 0) -> dict[str, float]:
        """uplink → center_network_state of the probe agent's newest round started after ``since_ms``."""
        points = self.latest("center_network_state")
        return {p["labels"]["uplink"]: p["value"] for p in points if p["ts_ms"] >= since_ms}

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Both agents heard, both uplinks healthy in a fresh round, and no alert open."""
        since = int(time.time() * 1000)

        def ready() -> bool:
            agents = self.agents()
            heard = all(((agents.get(h) or {}).get("last_seen_ms") or 0) >= since for h in (PROBE_HOST, PC_HOST))
            return heard and self.uplink_states(since) == {"internet": 0.0, "wan": 0.0} and not self.alerts("open")

        wait_until("both agents reporting, both uplinks healthy, no alert open", ready, timeout=timeout, every=0.5)
