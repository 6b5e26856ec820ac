"""Counter readings into rates: pure functions, no clock and no state of their own.

* A first reading has no rate (``None``), never zero.
* A counter that went down either wrapped or was reset. A 64-bit counter wraps at 2**64: at
  100 Gbit/s that takes 47 years, so a drop is taken for a wrap only when the wrapped delta is
  plausible at the interface speed (``max_rate``); otherwise, or without a speed, it is a reset
  and there is no rate this round. A 32-bit counter (ifInErrors …) without a bound is taken to
  have wrapped when the wrapped delta is under half its range.
* A device whose sysUpTime went back restarted: every counter may have been reset, so no rate is
  computed that round (``restarted``). sysUpTime itself wraps after 497 days; a drop that matches
  the elapsed time across the wrap is a wrap, not a restart.
"""

from __future__ import annotations

TICKS_MODULUS = 1 << 32  # sysUpTime is TimeTicks: hundredths of a second, 32 bits
#: a rate may exceed the line rate by this factor before a wrap is judged implausible (the two
#: readings are timed by the poller, not by the device)
RATE_SLACK = 1.2


def counter_delta(previous: int, current: int, *, bits: int = 64, max_delta: float | None = None) -> int | None:
    """``current - previous`` for a counter of ``bits`` width, or ``None`` when it was reset."""
    modulus = 1 << bits
    if not (0 <= previous < modulus and 0 <= current < modulus):
        return None
    if current >= previous:
        return current - previous
    wrapped = current + modulus - previous
    if max_delta is None:
        return wrapped if bits <= 32 and wrapped <= modulus // 2 else None
    return wrapped if wrapped <= max_delta else None


def counter_rate(
    previous: int | None,
    current: int,
    elapsed_s: float,
    *,
    bits: int = 64,
    scale: float = 1.0,
    max_rate: float | None = None,
) -> float | None:
    """Per-second rate of ``current - previous`` times ``scale`` (8 for octets → bits).

    ``max_rate`` (in the scaled unit, e.g. the interface's bits/s) bounds what a wrap may imply.
    ``None`` when there is no previous reading, no time passed, or the counter was reset.
    """
    if previous is None or elapsed_s <= 0:
        return None
    max_delta = None
    if max_rate is not None and max_rate > 0:
        max_delta = max_rate * RATE_SLACK * elapsed_s / scale
    delta = counter_delta(previous, current, bits=bits, max_delta=max_delta)
    if delta is None:
        return None
    return delta * scale / elapsed_s


def restarted(previous_ticks: int | None, current_ticks: int, elapsed_s: float) -> bool:
    """True when sysUpTime went back: the agent (and, for most devices, the device) restarted."""
    if previous_ticks is None or current_ticks >= previous_ticks:
        return False
    across_wrap_s = (current_ticks + TICKS_MODULUS - previous_ticks) / 100
    return abs(across_wrap_s - elapsed_s) > max(5.0, 0.1 * elapsed_s)


def utilization(bits_per_second: float | None, speed_bits_per_second: float | None) -> float | None:
    """Share of the link used: bits/s ÷ link speed (ifHighSpeed × 1e6). ``None`` without a speed."""
    if bits_per_second is None or not speed_bits_per_second or speed_bits_per_second <= 0:
        return None
    return bits_per_second / speed_bits_per_second
