"""traceroute: probes → hops → samples, the rounds, and failures, with a fake prober (no network)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import msgspec
import pytest

from agent.catalog import load_catalog
from agent.checks import traceroute as tr
from agent.checks.base import CheckContext, Observations
from agent.config import check_specs, parse_config
from agent.errors import ConfigError

TE, ECHO = "time_exceeded", "echo_reply"


def probe(ttl: int, sent: int, *replies: tuple[str, float, tr.ReplyKind]) -> tr.HopProbe:
    return tr.HopProbe(ttl, sent, tuple(tr.Reply(a, rtt, kind) for a, rtt, kind in replies))


def test_hop_stats_loss_rtt_and_responders() -> None:
    hop = tr.hop_of(probe(2, 3, ("198.18.2.1", 0.003, TE), ("198.18.2.1", 0.001, TE)))
    assert (hop.sent, hop.received, hop.addresses, hop.terminal) == (3, 2, ("198.18.2.1",), False)
    assert hop.loss_ratio == pytest.approx(1 / 3)
    assert hop.rtt == tr.RttStats(0.001, 0.002, 0.003)


def test_ecmp_hop_lists_the_main_responder_first_with_rtt_per_address() -> None:
    hop = tr.hop_of(probe(4, 3, ("198.18.4.9", 0.010, TE), ("198.18.4.1", 0.002, TE), ("198.18.4.1", 0.004, TE)))
    assert hop.addresses == ("198.18.4.1", "198.18.4.9") and hop.address == "198.18.4.1"
    assert hop.rtt_by_address["198.18.4.1"] == tr.RttStats(0.002, 0.003, 0.004)
    assert hop.rtt_by_address["198.18.4.9"] == tr.RttStats(0.010, 0.010, 0.010)


def test_trace_stops_at_the_destination_and_sorts_by_ttl() -> None:
    probes = [
        probe(3, 3, *[("198.18.3.2", 0.003, ECHO)] * 3),
        probe(1, 3, *[("198.18.1.1", 0.001, TE)] * 3),
        probe(4, 3, *[("198.18.3.2", 0.003, ECHO)] * 3),  # beyond the destination: dropped
        probe(2, 3),
    ]
    trace = tr.build_trace(probes)
    assert [h.ttl for h in trace.hops] == [1, 2, 3]
    assert trace.reached and trace.distance == 3
    assert trace.hops[1].loss_ratio == 1.0 and trace.hops[1].address is None


def test_unreachable_ends_the_path_without_reaching() -> None:
    trace = tr.build_trace([probe(1, 3, ("198.18.1.1", 0.001, TE)), probe(2, 3, ("198.18.2.1", 0.002, "unreachable"))])
    assert [h.ttl for h in trace.hops] == [1, 2] and not trace.reached and trace.distance is None


def test_silent_tail_is_cut_to_one_hop() -> None:
    probes = [probe(1, 3, ("198.18.1.1", 0.001, TE))] + [probe(ttl, 3) for ttl in range(2, 21)]
    trace = tr.build_trace(probes)
    assert [h.ttl for h in trace.hops] == [1, 2] and not trace.reached
    assert tr.build_trace([probe(t, 3) for t in (1, 2, 3)]).hops[0].ttl == 1  # all silent: one hop kept


@pytest.mark.parametrize(
    ("icmp_type", "code", "kind"),
    [(11, 0, TE), (0, 0, ECHO), (3, 3, "port_unreachable"), (3, 1, "unreachable"), (5, 0, "other")],
)
def test_classify(icmp_type: int, code: int, kind: str) -> None:
    assert tr.classify(icmp_type, code) == kind


TARGET = tr.Target(name="portal", address="198.18.3.2", uplink="wan")
PATH = [
    probe(1, 3, *[("198.18.1.1", 0.0004, TE)] * 3),
    probe(2, 3, ("198.18.2.2", 0.0010, TE), ("198.18.2.2", 0.0014, TE)),
    probe(3, 3, *[("198.18.3.2", 0.0020, ECHO)] * 3),
]


def test_report_samples_event_and_facts() -> None:
    obs = Observations(ts_ms=1)
    tr.report(obs, TARGET, tr.build_trace(PATH))
    assert {s.name for s in obs.samples} <= set(load_catalog())
    loss = {s.labels["hop"]: (s.labels["address"], s.value) for s in obs.samples if s.name.endswith("loss_ratio")}
    assert loss == {"1": ("198.18.1.1", 0.0), "2": ("198.18.2.2", pytest.approx(1 / 3)), "3": ("198.18.3.2", 0.0)}
    rtt = [s for s in obs.samples if s.name == "probe_traceroute_hop_rtt_seconds" and s.labels["hop"] == "2"]
    assert {s.labels["stat"]: s.value for s in rtt} == {"min": 0.0010, "avg": pytest.approx(0.0012), "max": 0.0014}
    assert rtt[0].labels == {"target": "portal", "uplink": "wan", "hop": "2", "address": "198.18.2.2", "stat": "min"}
    flat = {s.name: s for s in obs.samples}
    assert flat["probe_traceroute_hops"].value == 3 and flat["probe_traceroute_reached"].value == 1
    assert flat["probe_success"].labels == {"probe": "traceroute", "target": "portal", "uplink": "wan"}
    (event,) = obs.events
    assert event.kind == "path.trace" and event.severity == "info"
    assert event.message == "1 198.18.1.1 0% 0.4ms | 2 198.18.2.2 33% 1.2ms | 3 198.18.3.2 0% 2.0ms"
    assert obs.subject == "host"
    assert obs.facts == {
        "traceroute": {
            "portal": [
                [1, "198.18.1.1", 0.0, pytest.approx(0.0004)],
                [2, "198.18.2.2", pytest.approx(1 / 3), pytest.approx(0.0012)],
                [3, "198.18.3.2", 0.0, pytest.approx(0.002)],
            ]
        }
    }


def test_report_unreached_with_a_silent_hop() -> None:
    obs = Observations(ts_ms=1)
    tr.report(obs, TARGET, tr.build_trace([PATH[0], probe(2, 3), probe(3, 3)]))
    silent = [s for s in obs.samples if s.name.endswith("loss_ratio") and s.labels["hop"] == "2"]
    assert [(s.labels.get("address"), s.value) for s in silent] == [(None, 1.0)]
    names = {s.name: s.value for s in obs.samples}
    assert "probe_traceroute_hops" not in names and names["probe_traceroute_reached"] == 0.0
    assert [s.labels["reason"] for s in obs.samples if s.name == "probe_failure_info"] == ["unreached"]
    assert obs.events[0].message == "1 198.18.1.1 0% 0.4ms | 2 * 100%" and obs.events[0].severity == "warning"
    assert obs.facts == {
        "traceroute": {"portal": [[1, "198.18.1.1", 0.0, pytest.approx(0.0004)], [2, None, 1.0, None]]}
    }


class FakePath:
    """A prober answering from a fixed path of ``hops`` routers; the last address is the destination."""

    def __init__(self, hops: list[str]) -> None:
        self.hops = hops
        self.calls: list[list[int]] = []

    def __call__(self, address: str, ttls: Sequence[int], cfg: tr.Config) -> list[tr.HopProbe]:
        self.calls.append(list(ttls))
        out = []
        for ttl in ttls:
            at = self.hops[min(ttl, len(self.hops)) - 1]
            kind: tr.ReplyKind = ECHO if ttl >= len(self.hops) else TE
            out.append(probe(ttl, cfg.probes_per_hop, *[(at, 0.001 * ttl, kind)] * cfg.probes_per_hop))
        return out


async def test_collect_probes_rounds_until_the_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePath([f"198.18.{i}.1" for i in range(1, 7)] + ["198.18.9.9"])  # 7 hops
    monkeypatch.setattr(tr, "probe", fake)
    cfg = tr.Config(targets=(TARGET,), hops_at_once=3, max_hops=20)
    obs = await tr.collect(CheckContext("traceroute", cfg))
    assert fake.calls == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]  # stops after the round that got the destination
    assert {s.name: s.value for s in obs.samples}["probe_traceroute_hops"] == 7
    assert len(obs.facts["traceroute"]["portal"]) == 7  # type: ignore[index]


async def test_collect_stops_at_max_hops(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePath([f"198.18.{i}.1" for i in range(1, 31)])
    monkeypatch.setattr(tr, "probe", fake)
    obs = await tr.collect(CheckContext("traceroute", tr.Config(targets=(TARGET,), max_hops=7, hops_at_once=5)))
    assert fake.calls == [[1, 2, 3, 4, 5], [6, 7]]
    assert {s.name: s.value for s in obs.samples}["probe_traceroute_reached"] == 0.0


async def test_without_raw_socket_rights_a_permission_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(address: str, ttls: Sequence[int], cfg: tr.Config) -> list[tr.HopProbe]:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(tr, "probe", denied)
    obs = await tr.collect(CheckContext("traceroute", tr.Config(targets=(TARGET,))))
    got = {(s.name, s.labels.get("reason")): s.value for s in obs.samples}
    assert got == {("probe_success", None): 0.0, ("probe_failure_info", "permission"): 1.0}
    assert obs.events[0].kind == "probe.failed" and "CAP_NET_RAW" in obs.events[0].message


async def test_one_failing_target_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePath(["198.18.1.1", "198.18.3.2"])

    async def resolve(address: str) -> str:
        if address == "nowhere.invalid":
            raise tr.ProbeFailed("resolve_failed", "cannot resolve 'nowhere.invalid'")
        return address

    monkeypatch.setattr(tr, "probe", fake)
    monkeypatch.setattr(tr, "resolve_ipv4", resolve)
    cfg = tr.Config(targets=(tr.Target(name="bad", address="nowhere.invalid"), TARGET))
    obs = await tr.collect(CheckContext("traceroute", cfg))
    success = {s.labels["target"]: s.value for s in obs.samples if s.name == "probe_success"}
    assert success == {"bad": 0.0, "portal": 1.0}
    failure = [s.labels["reason"] for s in obs.samples if s.name == "probe_failure_info"]
    assert failure == ["resolve_failed"]


async def test_a_programming_error_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(address: str, ttls: Sequence[int], cfg: tr.Config) -> list[tr.HopProbe]:
        raise KeyError("bug")

    monkeypatch.setattr(tr, "probe", broken)
    with pytest.raises(KeyError):
        await tr.collect(CheckContext("traceroute", tr.Config(targets=(TARGET,))))


def test_config_keeps_timeout_s_for_the_scheduler() -> None:
    raw = {"timeout_s": 20, "probe_timeout_s": 1.5, "targets": [{"name": "a", "address": "198.18.0.1"}]}
    cfg = parse_config({"collector_url": "http://127.0.0.1:1", "data_dir": "/d", "checks": {"traceroute": raw}}, "f")
    (spec,) = check_specs(cfg, "f")
    assert spec.schedule.timeout_s == 20
    assert isinstance(spec.config, tr.Config) and spec.config.probe_timeout_s == 1.5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"targets": [{"name": "a", "address": "2001:db8::1"}]}, "only IPv4 is traced"),
        ({"targets": [{"name": "a", "address": "198.18.0.1"}, {"name": "a", "address": "x"}]}, "named 'a'"),
        ({"max_hops": 0}, "Expected `int` >= 1"),
    ],
)
def test_invalid_configs(raw: dict[str, object], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(raw, tr.Config)
    cfg = parse_config({"collector_url": "http://127.0.0.1:1", "data_dir": "/d", "checks": {"traceroute": raw}}, "f")
    with pytest.raises(ConfigError):
        check_specs(cfg, "f")


def test_importing_the_checks_does_not_import_scapy() -> None:
    code = (
        "import sys, agent.checks.traceroute, agent.checks.arp_discovery\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scapy'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"
