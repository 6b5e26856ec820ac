"""ICMP rounds: statistics, packet building, and real rounds on loopback."""

from __future__ import annotations

import asyncio
import math
import socket
import time

import pytest

from agent.catalog import load_catalog
from agent.checks import icmp
from agent.checks.base import CheckContext, Observations


def test_round_stats_known_values() -> None:
    result = icmp.RoundResult(sent=5, rtts=[0.010, 0.012, 0.011, 0.030])
    s = icmp.round_stats(result)
    assert (s.sent, s.received) == (5, 4)
    assert s.loss_ratio == pytest.approx(0.2)
    assert (s.min, s.max) == (0.010, 0.030)
    assert s.median == pytest.approx(0.0115)
    assert s.mean == pytest.approx(0.01575)
    assert s.p95 == 0.030  # nearest rank: ceil(0.95 * 4) = 4th
    assert s.jitter == pytest.approx((0.002 + 0.001 + 0.019) / 3)
    assert s.stddev == pytest.approx(math.sqrt(sum((x - 0.01575) ** 2 for x in result.rtts) / 4))


def test_round_stats_all_lost() -> None:
    s = icmp.round_stats(icmp.RoundResult(sent=20, rtts=[]))
    assert s.loss_ratio == 1.0 and s.median is None and s.received == 0


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, checksum is its complement
    assert icmp.checksum(bytes.fromhex("0001f203f4f5f6f7")) == (~0xDDF2 & 0xFFFF)
    packet = bytes.fromhex("0800") + b"\0\0" + bytes.fromhex("12340001") + b"abc"
    assert icmp.checksum(packet[:2] + icmp.checksum(packet).to_bytes(2, "big") + packet[4:]) == 0


def _report(result: icmp.RoundResult) -> Observations:
    obs = Observations(ts_ms=1)
    icmp.report(obs, icmp.Target(name="portal", address="192.0.2.1", uplink="wan"), result)
    return obs


def test_report_emits_catalogued_metrics_with_labels() -> None:
    obs = _report(icmp.RoundResult(sent=20, rtts=[0.01] * 18, duplicates=1, late=1, kernel_timed=18))
    catalog = load_catalog()
    assert {s.name for s in obs.samples} <= set(catalog)
    by = {(s.name, s.labels.get("stat")): s for s in obs.samples}
    assert by[("probe_icmp_loss_ratio", None)].value == pytest.approx(0.1)
    assert by[("probe_icmp_rtt_seconds", "median")].labels == {"target": "portal", "uplink": "wan", "stat": "median"}
    assert by[("probe_success", None)].labels["probe"] == "icmp"
    assert by[("probe_icmp_kernel_timed_ratio", None)].value == 1.0


def test_report_total_loss_is_a_failure_with_its_cause() -> None:
    obs = _report(icmp.RoundResult(sent=20, rtts=[]))
    assert {s.name: s.value for s in obs.samples}["probe_success"] == 0.0
    assert obs.events[0].kind == "probe.failed" and "no reply to 20" in obs.events[0].message
    failure = next(s for s in obs.samples if s.name == "probe_failure_info")
    assert failure.labels["reason"] == "timeout"


def test_report_resolution_failure() -> None:
    obs = _report(icmp.RoundResult(sent=0, rtts=[], error="resolve_failed: no such host"))
    assert [s.labels["reason"] for s in obs.samples if s.name == "probe_failure_info"] == ["resolve_failed"]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
async def test_round_on_loopback_is_complete_and_kernel_timed(address: str) -> None:
    if address == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    cfg = icmp.Config(count=20, spacing_s=0.005, reply_timeout_s=0.5)
    result = await icmp.ping_round(address, cfg)
    assert result.error is None, result.error
    assert (result.sent, result.received, result.duplicates, result.late) == (20, 20, 0, 0)
    # the first packet after enabling SO_TIMESTAMPING may carry no TX stamp (FIELD-NOTES)
    assert result.kernel_timed >= 18
    assert all(0 < rtt < 0.05 for rtt in result.rtts)


async def test_sends_keep_their_schedule() -> None:
    """20 sends at 20 ms spacing take ~380 ms whatever happens to the replies."""
    cfg = icmp.Config(count=20, spacing_s=0.02, reply_timeout_s=0.2)
    t0 = time.monotonic()
    result = await icmp.ping_round("127.0.0.1", cfg)
    elapsed = time.monotonic() - t0
    assert result.sent == 20
    assert 0.38 <= elapsed < 0.38 + 0.2 + 0.15  # schedule + timeout after the last send + slack


async def test_collect_probes_targets_concurrently_and_reports_each() -> None:
    cfg = icmp.Config(
        targets=(icmp.Target(name="lo4", address="127.0.0.1"), icmp.Target(name="lo6", address="::1", uplink="lan")),
        count=5,
        spacing_s=0.01,
        reply_timeout_s=0.3,
    )
    obs = await asyncio.wait_for(icmp.collect(CheckContext("icmp", cfg)), 2.0)
    success = {s.labels["target"]: s.value for s in obs.samples if s.name == "probe_success"}
    assert success == {"lo4": 1.0, "lo6": 1.0}
