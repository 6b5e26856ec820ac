"""Counter readings into rates: first reading, 64/32-bit wraps judged against the link speed,
resets, and restarts seen through sysUpTime."""

from __future__ import annotations

import pytest

from agent.snmp.rates import TICKS_MODULUS, counter_delta, counter_rate, restarted, utilization

M64 = 1 << 64
M32 = 1 << 32


def test_first_reading_has_no_rate() -> None:
    assert counter_rate(None, 1_000, 10.0) is None


def test_plain_rate_scaled_to_bits() -> None:
    assert counter_rate(1_000, 126_000, 10.0, scale=8) == pytest.approx(100_000.0)


def test_no_time_no_rate() -> None:
    assert counter_rate(1, 2, 0.0) is None
    assert counter_rate(1, 2, -1.0) is None


def test_counter64_wrap_is_taken_when_plausible_at_the_link_speed() -> None:
    # 1 Gbit/s link, 10 s: 1.25e9 octets possible; the counter wrapped 1e9 octets after its end
    previous = M64 - 250_000_000
    current = 750_000_000
    rate = counter_rate(previous, current, 10.0, scale=8, max_rate=1e9)
    assert rate == pytest.approx(8e8)  # 1e9 octets × 8 / 10 s


def test_counter64_drop_beyond_the_link_speed_is_a_reset_not_a_wrap() -> None:
    # a 100 Mbit/s link cannot have moved 2**64 - 5e9 + 1e3 octets in 10 s: counters were cleared
    assert counter_rate(5_000_000_000, 1_000, 10.0, scale=8, max_rate=1e8) is None


def test_counter64_drop_without_a_speed_is_a_reset() -> None:
    assert counter_rate(M64 - 10, 5, 10.0, scale=8) is None
    assert counter_delta(M64 - 10, 5, bits=64) is None


def test_counter64_wrap_just_inside_the_slack() -> None:
    # exactly the line rate × 1.2 slack over 1 s is still plausible; a little more is not
    bound_octets = int(1e9 * 1.2 / 8)
    assert counter_rate(M64 - bound_octets, 0, 1.0, scale=8, max_rate=1e9) == pytest.approx(1.2e9)
    assert counter_rate(M64 - bound_octets - 1000, 0, 1.0, scale=8, max_rate=1e9) is None


def test_counter32_wrap_without_a_bound_under_half_its_range() -> None:
    assert counter_delta(M32 - 100, 50, bits=32) == 150
    assert counter_rate(M32 - 100, 50, 10.0, bits=32) == pytest.approx(15.0)
    # a drop from 1000 to 0 would be a 4-billion-error wrap: it is a reset (clear counters)
    assert counter_delta(1_000, 0, bits=32) is None


def test_readings_outside_the_counter_width_are_refused() -> None:
    assert counter_delta(M32 + 1, 5, bits=32) is None
    assert counter_delta(-1, 5) is None
    assert counter_delta(0, M64) is None


def test_unchanged_counter_is_zero() -> None:
    assert counter_rate(42, 42, 5.0) == 0.0


def test_restart_when_uptime_goes_back() -> None:
    assert restarted(500_000, 1_200, 60.0) is True
    assert restarted(None, 1_200, 60.0) is False
    assert restarted(1_000, 7_000, 60.0) is False


def test_uptime_wrap_after_497_days_is_not_a_restart() -> None:
    previous = TICKS_MODULUS - 3_000  # 30 s before the wrap
    assert restarted(previous, 3_000, 60.0) is False  # 60 s later, just after it
    assert restarted(previous, 3_000, 600.0) is True  # does not match the elapsed time


def test_utilization() -> None:
    assert utilization(250e6, 1e9) == pytest.approx(0.25)
    assert utilization(1.0, 0.0) is None
    assert utilization(None, 1e9) is None
    assert utilization(5.0, None) is None
