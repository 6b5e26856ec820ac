"""The alert engine over a real SQLite store: lifecycle, hysteresis, center-aware correlation,
mutes, restarts and what reaches the dispatcher. Time is passed explicitly: no sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from centerwatch.wire import Batch, Part, Sample
from collector.alerting.engine import Engine, EngineSettings
from collector.alerting.model import AlertView, NotificationGroup
from collector.alerting.mute import MaintenanceWindow, Matcher, Silence
from collector.alerting.rules import RuleSet, build_rules, load_rules
from collector.alerting.state import AlertRow, AlertState
from collector.auth import hash_token
from collector.errors import StoreError
from collector.inventory import Inventory, load_inventory
from collector.store.base import AgentRecord
from collector.store.sqlite import SqliteStore

T0 = 1_780_000_000_000  # a Monday, 2026-05-28 21:46 UTC: no maintenance window of the tests is open
INTERVAL_S = 10.0
SETTINGS = EngineSettings(agent_interval_s=INTERVAL_S, silent_after_intervals=2.5, eval_interval_s=1)


class FakeDispatcher:
    def __init__(self) -> None:
        self.calls: list[list[AlertView]] = []

    def submit(self, views: Any) -> None:
        self.calls.append(list(views))

    @property
    def last(self) -> list[AlertView]:
        return self.calls[-1] if self.calls else []


class Lab:
    """A store with enrolled agents, an engine, and a clock the test moves."""

    def __init__(self, tmp: Path, rules: RuleSet, inventory: Inventory | None = None) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.store = SqliteStore(tmp / "c.db")
        self.state = AlertState(tmp / "c.alerts.db")
        self.rules = rules
        self.inventory = inventory
        self.now = T0
        self.agents: dict[tuple[str, str], AgentRecord] = {}
        self.seq: dict[str, int] = {}
        self.dispatcher = FakeDispatcher()
        self.engine = self.new_engine()

    def new_engine(self) -> Engine:
        engine = Engine(
            self.rules,
            self.store,
            self.state,
            SETTINGS,
            inventory=self.inventory,
            registry=CollectorRegistry(),
            center_names=lambda: {"hoa-khanh": "Hòa Khánh"},
        )
        engine.dispatcher = self.dispatcher  # type: ignore[assignment]
        return engine

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def enroll(self, center: str, host: str) -> AgentRecord:
        token = f"enroll-{center}-{host}"
        self.run(self.store.create_enroll_token(hash_token(token), center, self.now, None, None, "t"))
        rec = AgentRecord(f"{center}-{host}"[:64], center, host, "t", host, self.now, None, False)
        got = self.run(self.store.enroll(hash_token(token), rec, hash_token("a-" + token), self.now))
        assert got is not None
        self.agents[(center, host)] = got
        return got

    def report(
        self, center: str, host: str, *samples: tuple[str, dict[str, str], float], ts: int | None = None
    ) -> None:
        agent = self.agents[(center, host)]
        seq = self.seq.get(agent.id, 0) + 1
        self.seq[agent.id] = seq
        at = self.now if ts is None else ts
        part = Part(seq, "t", at, 0.0, True, samples=[Sample(n, lab, v, at) for n, lab, v in samples])
        self.run(self.store.ingest(agent, Batch(1, agent.id, at, [part]), self.now))

    def tick(self, seconds: float = 0) -> None:
        self.now += int(seconds * 1000)
        self.run(self.engine.round(self.now))

    def firing(self, rule: str | None = None, *, muted: str | None = None) -> list[AlertRow]:
        rows = [a for a in self.engine.open_alerts() if a.state == "firing"]
        if rule is not None:
            rows = [a for a in rows if a.rule == rule]
        if muted is not None:
            rows = [a for a in rows if a.muted == muted]
        return rows

    def close(self) -> None:
        self.run(self.store.close())
        self.state.close()
        self.loop.close()


RULES = """
rules:
  - name: center_unreachable
    kind: center_unreachable
    severity: critical
    summary: "{center_name}: {agents} agents silent ({cause})"
  - name: agent_silent
    kind: agent_silent
    for_s: 15
    summary: "{host} silent"
  - name: cpu_hot
    expr: {metric: cpu, op: ">", threshold: 0.9, clear: 0.8}
    for_s: 20
    summary: {vi: "CPU {host} {value_pct}%", en: "CPU of {host} at {value_pct}%"}
  - name: uplink_down
    severity: critical
    expr: {metric: center_network_state, by: [center, uplink], op: ">=", threshold: 2}
    summary: "{uplink} down at {center_name}"
  - name: dns_failure
    expr: {metric: probe_success, match: {probe: dns}, by: [center, uplink, target], op: "==", threshold: 0}
    parents: [{rule: uplink_down, equal: [center, uplink]}]
    summary: "dns {target}"
  - name: device_unreachable
    expr: {metric: snmp_up, op: "==", threshold: 0}
    suppresses_below: true
    summary: "{device} unreachable"
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path, build_rules([(RULES, "test.yaml")]))
    yield lab
    lab.close()


def three_pcs(lab: Lab) -> None:
    for host in ("pc1", "pc2", "probe"):
        lab.enroll("hoa-khanh", host)
    lab.enroll("tra-doc", "pc1")


def all_report(lab: Lab, cpu: float = 0.2) -> None:
    for center, host in lab.agents:
        lab.report(center, host, ("cpu", {}, cpu))


def test_pending_then_firing_after_for_then_resolved_with_hysteresis(lab: Lab) -> None:
    three_pcs(lab)
    lab.report("hoa-khanh", "pc1", ("cpu", {}, 0.95))
    lab.tick()
    assert [a.state for a in lab.engine.open_alerts()] == ["pending"]
    assert lab.state.alerts() == []  # pending lives in memory only
    for _ in range(2):
        lab.tick(10)
        lab.report("hoa-khanh", "pc1", ("cpu", {}, 0.95))
    lab.tick()
    (alert,) = lab.firing("cpu_hot")
    assert alert.labels == {"center": "hoa-khanh", "host": "pc1"}
    assert alert.texts["en"]["summary"] == "CPU of pc1 at 95%" and alert.texts["vi"]["summary"] == "CPU pc1 95%"
    assert [v.rule for v in lab.dispatcher.last] == ["cpu_hot"]
    # between clear (0.8) and threshold (0.9): still firing
    lab.tick(5)
    lab.report("hoa-khanh", "pc1", ("cpu", {}, 0.85))
    lab.tick()
    assert lab.firing("cpu_hot")
    lab.tick(5)
    lab.report("hoa-khanh", "pc1", ("cpu", {}, 0.5))
    lab.tick()
    assert not lab.firing("cpu_hot")
    (stored,) = lab.state.alerts()
    assert stored.state == "resolved" and stored.resolved_ms == lab.now
    assert [what for _, what, _, _ in lab.state.log(stored.id or 0)] == ["firing", "resolved"]


def test_a_blip_shorter_than_for_never_fires(lab: Lab) -> None:
    three_pcs(lab)
    lab.report("hoa-khanh", "pc1", ("cpu", {}, 0.95))
    lab.tick()
    lab.tick(5)
    lab.report("hoa-khanh", "pc1", ("cpu", {}, 0.1))
    lab.tick()
    assert lab.engine.open_alerts() == [] and lab.state.alerts() == []


def test_one_silent_host_is_agent_silent_not_center_unreachable(lab: Lab) -> None:
    three_pcs(lab)
    all_report(lab)
    lab.tick()
    for _ in range(6):  # pc2 stops; the others keep reporting
        lab.now += 10_000
        for c, h in lab.agents:
            if h != "pc2":
                lab.report(c, h, ("cpu", {}, 0.2))
        lab.tick()
    (silent,) = lab.firing("agent_silent")
    assert silent.labels == {"center": "hoa-khanh", "host": "pc2"} and silent.muted == ""
    assert not lab.firing("center_unreachable")
    lab.report("hoa-khanh", "pc2", ("cpu", {}, 0.2))
    lab.tick(1)
    assert not lab.firing("agent_silent")


def test_a_dark_center_is_one_alert_its_other_alerts_frozen_and_suppressed(lab: Lab) -> None:
    three_pcs(lab)
    all_report(lab)
    for _ in range(4):
        lab.tick(10)
        all_report(lab)
        lab.report("hoa-khanh", "pc1", ("cpu", {}, 0.95))
    lab.tick()
    assert lab.firing("cpu_hot") and not lab.firing("agent_silent")
    # the center goes dark: only tra-doc reports
    for _ in range(4):
        lab.tick(10)
        lab.report("tra-doc", "pc1", ("cpu", {}, 0.2))
    lab.tick()
    (dark,) = lab.firing("center_unreachable")
    assert dark.labels == {"center": "hoa-khanh"} and dark.muted == ""
    assert dark.texts["en"]["summary"].startswith("Hòa Khánh: 3 agents silent (unknown")
    assert not [a for a in lab.firing() if a.rule == "agent_silent" and not a.muted]
    (cpu,) = lab.firing("cpu_hot")  # frozen: its data stopped, it did not resolve
    assert cpu.muted == "suppressed" and cpu.muted_by == "center_unreachable:hoa-khanh"
    assert [v.rule for v in lab.dispatcher.last] == ["center_unreachable"]
    # ten minutes later, still one alert
    for _ in range(60):
        lab.tick(10)
        lab.report("tra-doc", "pc1", ("cpu", {}, 0.2))
    assert [a.rule for a in lab.firing() if not a.muted] == ["center_unreachable"]
    # contact returns, one agent after the other, with their spooled data: no agent_silent on the way
    backlog_ts = lab.now - 300_000
    lab.report("hoa-khanh", "probe", ("cpu", {}, 0.2), ts=backlog_ts)
    lab.tick(1)
    assert not lab.firing("center_unreachable")
    for _ in range(2):
        lab.tick(8)
        assert not lab.firing("agent_silent")
    lab.report("hoa-khanh", "pc1", ("cpu", {}, 0.3), ts=backlog_ts)
    lab.report("hoa-khanh", "pc1", ("cpu", {}, 0.3))
    lab.report("hoa-khanh", "pc2", ("cpu", {}, 0.3))
    lab.tick(1)
    assert lab.firing() == []
    history = {a.rule: a.state for a in lab.state.alerts(state=None)}
    assert history == {"center_unreachable": "resolved", "cpu_hot": "resolved"}


def test_dark_center_cause_from_last_data(lab: Lab) -> None:
    three_pcs(lab)
    all_report(lab)
    lab.report("hoa-khanh", "probe", ("snmp_ups_on_battery", {"device": "ups1"}, 1.0))
    for _ in range(4):
        lab.tick(10)
        lab.report("tra-doc", "pc1", ("cpu", {}, 0.2))
    (dark,) = lab.firing("center_unreachable")
    assert "UPS" in dark.texts["en"]["summary"] or "power" in dark.texts["en"]["summary"]


def test_uplink_down_suppresses_its_dns_failures_not_the_other_uplinks(lab: Lab) -> None:
    three_pcs(lab)
    lab.report(
        "hoa-khanh",
        "probe",
        ("center_network_state", {"uplink": "internet"}, 2.0),
        ("center_network_state", {"uplink": "wan"}, 0.0),
        ("probe_success", {"probe": "dns", "uplink": "internet", "target": "a"}, 0.0),
        ("probe_success", {"probe": "dns", "uplink": "wan", "target": "b"}, 0.0),
    )
    all_report(lab)
    lab.tick()
    assert [a.labels["uplink"] for a in lab.firing("uplink_down")] == ["internet"]
    muted = {a.labels["uplink"]: (a.muted, a.muted_by) for a in lab.firing("dns_failure")}
    assert muted == {"internet": ("suppressed", "uplink_down:hoa-khanh,internet"), "wan": ("", "")}
    assert sorted(v.rule for v in lab.dispatcher.last) == ["dns_failure", "uplink_down"]


def test_silence_and_maintenance_window_keep_the_alert_but_do_not_notify(lab: Lab) -> None:
    three_pcs(lab)
    lab.report("hoa-khanh", "probe", ("center_network_state", {"uplink": "internet"}, 2.0))
    all_report(lab)
    silence_id = lab.state.add_silence(
        Silence(
            0,
            (Matcher("alertname", "uplink_.*", "=~"), Matcher("center", "hoa-khanh")),
            T0,
            T0 + 60_000,
            "an",
            "isp works",
        )
    )
    lab.tick()
    (alert,) = lab.firing("uplink_down")
    assert (alert.muted, alert.muted_by) == ("silenced", f"silence:{silence_id}")
    assert lab.dispatcher.last == []
    lab.state.expire_silence(silence_id, lab.now + 1)
    lab.state.add_window(MaintenanceWindow(0, "hoa-khanh", ("mon", "tue", "wed", "thu", "fri"), "00:00", "00:00"))
    lab.tick(2)
    lab.report("hoa-khanh", "probe", ("center_network_state", {"uplink": "internet"}, 2.0))
    lab.tick()
    assert lab.firing("uplink_down")[0].muted == "maintenance"
    assert lab.dispatcher.last == []
    log = [what for _, what, _, _ in lab.state.log(alert.id or 0)]
    assert log == ["firing", "muted:silenced", "muted:maintenance"]


def test_resolution_is_sent_only_for_a_notified_alert(lab: Lab) -> None:
    three_pcs(lab)
    lab.report("hoa-khanh", "probe", ("center_network_state", {"uplink": "internet"}, 2.0))
    all_report(lab)
    lab.tick()
    (alert,) = lab.firing("uplink_down")
    view = lab.dispatcher.last[0]
    lab.engine.on_delivered("ops", NotificationGroup("k", {}, (view,)))
    lab.tick(1)
    assert lab.state.alert(alert.id or 0).notified  # type: ignore[union-attr]
    lab.report("hoa-khanh", "probe", ("center_network_state", {"uplink": "internet"}, 0.0))
    lab.tick(1)
    (resolved,) = lab.dispatcher.last
    assert resolved.status == "resolved" and resolved.fingerprint == view.fingerprint
    assert resolved.ends_at_ms == lab.now


def test_acknowledgement_survives_evaluation_and_restart(lab: Lab) -> None:
    three_pcs(lab)
    lab.report("hoa-khanh", "probe", ("center_network_state", {"uplink": "internet"}, 2.0))
    all_report(lab)
    lab.tick()
    (alert,) = lab.firing("uplink_down")
    lab.state.acknowledge(alert.id or 0, "an", "called VNPT", lab.now)
    lab.tick(1)
    lab.report("hoa-khanh", "probe", ("center_network_state", {"uplink": "internet"}, 2.0))
    lab.engine = lab.new_engine()
    lab.tick(1)
    stored = lab.state.alert(alert.id or 0)
    assert stored is not None and stored.state == "firing" and stored.ack_by == "an"
    assert stored.ack_comment == "called VNPT"
    assert len(lab.state.alerts()) == 1  # the restarted engine took the open alert over: no duplicate


def test_a_restarted_engine_neither_resolves_a_dark_center_nor_raises_new_silences(lab: Lab) -> None:
    three_pcs(lab)
    all_report(lab)
    for _ in range(4):
        lab.tick(10)
        lab.report("tra-doc", "pc1", ("cpu", {}, 0.2))
    assert lab.firing("center_unreachable")
    # the collector was down for an hour; it starts again
    lab.now += 3_600_000
    lab.engine = lab.new_engine()
    lab.tick()
    assert [a.rule for a in lab.firing()] == ["center_unreachable"]  # tra-doc not declared dark yet
    lab.report("tra-doc", "pc1", ("cpu", {}, 0.2))
    for _ in range(4):
        lab.tick(10)
        lab.report("tra-doc", "pc1", ("cpu", {}, 0.2))
    assert [a.rule for a in lab.firing()] == ["center_unreachable"]
    assert len(lab.state.alerts()) == 1


def test_inventory_ancestor_failure_suppresses_the_devices_below(tmp_path: Path) -> None:
    inventory = load_inventory(Path("inventory"))
    lab = Lab(tmp_path, build_rules([(RULES, "test.yaml")]), inventory)
    try:
        lab.enroll("hai-chau", "hai-chau-probe1")
        lab.report(
            "hai-chau",
            "hai-chau-probe1",
            ("snmp_up", {"device": "hai-chau-sw1"}, 0.0),
            ("snmp_up", {"device": "hai-chau-rt1"}, 1.0),
        )
        lab.tick()
        (sw,) = lab.firing("device_unreachable")
        assert sw.muted == ""
        below = [
            d.name
            for d in inventory.centers["hai-chau"].devices
            if d.parent == "hai-chau-sw1" and d.name != "hai-chau-probe1"
        ]
        assert below, "the sample inventory has devices behind the switch"
        lab.report("hai-chau", "hai-chau-probe1", *[("snmp_up", {"device": d}, 0.0) for d in below])
        lab.report("hai-chau", "hai-chau-probe1", ("snmp_up", {"device": "hai-chau-sw1"}, 0.0))
        lab.tick(1)
        muted = {a.labels["device"]: a.muted_by for a in lab.firing("device_unreachable")}
        assert muted.pop("hai-chau-sw1") == ""
        assert set(muted.values()) == {"device_unreachable:hai-chau-sw1"}
    finally:
        lab.close()


def test_shipped_rules_load_and_every_text_exists_in_both_languages() -> None:
    rules = load_rules()
    names = {r.name for r in rules.rules}
    for expected in (
        "center_unreachable",
        "agent_silent",
        "uplink_down",
        "uplink_lossy",
        "uplink_slow",
        "dns_failure",
        "portal_failure",
        "disk_nearly_full",
        "memory_saturated",
        "cpu_saturated",
        "nic_errors",
        "link_below_capacity",
        "port_flapping",
        "device_rebooted",
        "printer_toner_low",
        "printer_jam",
        "ups_on_battery",
        "ups_battery_low",
        "ups_runtime_short",
        "unknown_device",
        "tls_expiring",
    ):
        assert expected in names
    for r in rules.rules:
        for lang in ("vi", "en"):
            assert r.texts[lang]["summary"] and r.texts[lang]["description"], (r.name, lang)


LOSSY = """
  - name: uplink_lossy
    expr:
      metric: probe_icmp_loss_ratio
      reduce: avg
      window_s: 60
      by: [center, uplink]
      op: ">"
      threshold: 0.05
      clear: 0.02
    parents: [{rule: uplink_down, equal: [center, uplink]}]
    summary: "{uplink} lossy"
"""


def probe_round(lab: Lab, state: float, loss: float, ts: int | None = None) -> None:
    lab.report(
        "hoa-khanh",
        "probe",
        ("center_network_state", {"uplink": "internet"}, state),
        ("probe_icmp_loss_ratio", {"uplink": "internet", "target": "portal"}, loss),
        ts=ts,
    )


def notified(lab: Lab, rule: str) -> list[AlertView]:
    return [v for call in lab.dispatcher.calls for v in call if v.rule == rule and v.status == "firing"]


def test_a_windowed_child_is_held_over_while_its_window_still_holds_the_parents_outage(tmp_path: Path) -> None:
    # The average loss of the last minute still counts the outage's 100 % after the uplink is back:
    # that is the outage IT already heard of, not a lossy link. Found in the lab (test_lab_alerts).
    lab = Lab(tmp_path, build_rules([(RULES + LOSSY, "test.yaml")]))
    try:
        three_pcs(lab)
        for state, loss in ((0.0, 0.0), (2.0, 1.0), (2.0, 1.0), (2.0, 1.0)):
            probe_round(lab, state, loss)
            all_report(lab)
            lab.tick(10)
        (lossy,) = lab.firing("uplink_lossy")
        assert lossy.muted_by == "uplink_down:hoa-khanh,internet"
        probe_round(lab, 0.0, 0.0)  # the uplink is back
        all_report(lab)
        lab.tick(10)
        assert not lab.firing("uplink_down")
        (lossy,) = lab.firing("uplink_lossy")  # avg of the last minute: 3 × 100 %, 2 × 0 %
        assert (lossy.muted, lossy.muted_by) == ("suppressed", "uplink_down:hoa-khanh,internet")
        for _ in range(6):
            probe_round(lab, 0.0, 0.0)
            all_report(lab)
            lab.tick(10)
        assert not lab.firing("uplink_lossy")
        assert notified(lab, "uplink_lossy") == []
        # past the window, a lossy link is its own news
        for _ in range(2):
            probe_round(lab, 1.0, 0.3)
            all_report(lab)
            lab.tick(10)
        (lossy,) = lab.firing("uplink_lossy")
        assert lossy.muted == "" and notified(lab, "uplink_lossy")
    finally:
        lab.close()


def test_a_dark_centers_backfilled_outage_raises_no_windowed_alert_after_it_returns(tmp_path: Path) -> None:
    lab = Lab(tmp_path, build_rules([(RULES + LOSSY, "test.yaml")]))
    try:
        three_pcs(lab)
        probe_round(lab, 0.0, 0.0)
        all_report(lab)
        outage: list[int] = []
        for _ in range(4):
            lab.tick(10)
            outage.append(lab.now)
            lab.report("tra-doc", "pc1", ("cpu", {}, 0.2))
        lab.tick(1)
        assert [a.rule for a in lab.firing() if not a.muted] == ["center_unreachable"]
        # back: the probe's spooled rounds (uplinks dead, all pings lost) arrive with a fresh one
        for ts in outage:
            probe_round(lab, 2.0, 1.0, ts=ts)
        probe_round(lab, 0.0, 0.0)
        all_report(lab)
        lab.tick(1)
        assert not lab.firing("center_unreachable") and not lab.firing("uplink_down")
        (lossy,) = lab.firing("uplink_lossy")
        assert (lossy.muted, lossy.muted_by) == ("suppressed", "center_unreachable:hoa-khanh")
        for _ in range(8):
            lab.tick(10)
            probe_round(lab, 0.0, 0.0)
            all_report(lab)
        assert not lab.firing("uplink_lossy")
        assert notified(lab, "uplink_lossy") == []
    finally:
        lab.close()


def test_a_dark_centers_spooled_rounds_filed_before_its_fresh_ones_notify_nothing(lab: Lab) -> None:
    # Found in the lab: the probe's rounds from the outage (both uplinks down) were filed a round
    # before its fresh one, and uplink_down{wan} fired, notified, then resolved a second later.
    three_pcs(lab)
    all_report(lab)
    lab.report("hoa-khanh", "probe", ("center_network_state", {"uplink": "wan"}, 0.0))
    outage: list[int] = []
    for _ in range(4):
        lab.tick(10)
        outage.append(lab.now)
        lab.report("tra-doc", "pc1", ("cpu", {}, 0.2))
    lab.tick(1)
    assert [a.rule for a in lab.firing()] == ["center_unreachable"]
    for ts in outage:  # the backlog arrives; the first round since the links came back is still running
        lab.report("hoa-khanh", "probe", ("center_network_state", {"uplink": "wan"}, 2.0), ts=ts)
    all_report(lab)
    lab.tick(1)
    assert not lab.firing("center_unreachable")
    (down,) = lab.firing("uplink_down")
    assert (down.muted, down.muted_by) == ("suppressed", "center_unreachable:hoa-khanh")
    lab.report("hoa-khanh", "probe", ("center_network_state", {"uplink": "wan"}, 0.0))
    lab.tick(2)
    assert lab.firing() == []
    assert notified(lab, "uplink_down") == []


def test_one_evaluator_per_database_the_lock_passes_on(tmp_path: Path) -> None:
    from collector.alerting.engine import _LeaderLock

    first, second = _LeaderLock(tmp_path / "a.lock"), _LeaderLock(tmp_path / "a.lock")
    assert first.acquire() and first.acquire()  # held: stays held
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_a_restart_during_a_long_outage_keeps_the_dark_centers_alerts_frozen(lab: Lab) -> None:
    three_pcs(lab)
    all_report(lab)
    for _ in range(4):
        lab.tick(10)
        all_report(lab)
        lab.report("hoa-khanh", "pc1", ("cpu", {}, 0.95))
    lab.tick()
    assert lab.firing("cpu_hot")
    for _ in range(40):  # dark for 400 s: the cpu series is stale by now
        lab.tick(10)
        lab.report("tra-doc", "pc1", ("cpu", {}, 0.2))
    assert lab.firing("center_unreachable") and lab.firing("cpu_hot")
    lab.engine = lab.new_engine()
    lab.tick(1)
    lab.tick(10)
    assert {a.rule: a.state for a in lab.state.alerts(state="open")} == {
        "center_unreachable": "firing",
        "cpu_hot": "firing",
    }


def test_a_failed_save_inserts_the_alert_again_next_time(tmp_path: Path) -> None:
    state = AlertState(tmp_path / "a.db")
    row = AlertRow("f", "r", "c", "warning", {"center": "c"}, "firing", 1.0, 1)
    with pytest.raises(StoreError):
        state.save([row], [(row, object(), "firing", "", "")])  # type: ignore[list-item]
    assert row.id is None and row.dirty
    state.save([row], [(row, 1, "firing", "", "")])
    (stored,) = state.alerts(state="open")
    assert stored.id == row.id and state.log(row.id or 0) == [(1, "firing", "", "")]
    state.close()
