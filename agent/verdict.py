"""Where a center's network breaks: a pure verdict over one round of probe results.

Walks the path outward, the way IT staff would: can this PC reach its own router (LAN)? Is the
router answering cleanly (gateway)? Do targets beyond the router answer (uplink, per uplink:
internet and government WAN separately)? Does name resolution work (DNS)? Do the services
answer correctly (service)? The first segment that fails is the place; a later failure is a
consequence and is not blamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

State = Literal["healthy", "degraded", "down"]
Segment = Literal["none", "lan", "gateway", "uplink", "dns", "service"]

#: numeric encoding for the ``center_network_state`` gauge
STATE_VALUE: dict[State, float] = {"healthy": 0.0, "degraded": 1.0, "down": 2.0}


@dataclass(frozen=True)
class Ping:
    """One ICMP round's outcome, as the verdict needs it."""

    sent: int
    received: int
    p95_s: float | None = None

    @property
    def loss(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0


@dataclass(frozen=True)
class UplinkEvidence:
    pings: Sequence[Ping] = ()  # targets reached through this uplink (ISP hop, portal, …)
    dns_ok: Sequence[bool] = ()  # one per DNS query through this uplink
    services_ok: Sequence[bool] = ()  # one per HTTP/TCP probe through this uplink


@dataclass(frozen=True)
class Thresholds:
    loss_degraded: float = 0.02
    gateway_p95_degraded_s: float = 0.010
    uplink_p95_degraded_s: float = 0.150


@dataclass(frozen=True)
class Verdict:
    state: State
    segment: Segment
    reason: str


HEALTHY = Verdict("healthy", "none", "")


def _ping_summary(pings: Sequence[Ping]) -> tuple[int, int, float | None]:
    sent = sum(p.sent for p in pings)
    received = sum(p.received for p in pings)
    p95s = [p.p95_s for p in pings if p.p95_s is not None]
    return sent, received, (max(p95s) if p95s else None)


def judge(gateway: Ping | None, uplink: UplinkEvidence, limits: Thresholds = Thresholds()) -> Verdict:
    """The verdict for one uplink; ``gateway`` is the LAN round to the center's router."""
    if gateway is not None and gateway.sent:
        if gateway.received == 0:
            return Verdict("down", "lan", f"the router did not answer {gateway.sent} pings")
        if gateway.loss > limits.loss_degraded:
            return Verdict("degraded", "gateway", f"{gateway.loss:.0%} loss to the router")
        if gateway.p95_s is not None and gateway.p95_s > limits.gateway_p95_degraded_s:
            return Verdict("degraded", "gateway", f"router p95 RTT {gateway.p95_s * 1000:.1f} ms")
    sent, received, p95 = _ping_summary(uplink.pings)
    dns_failed = sum(1 for ok in uplink.dns_ok if not ok)
    services_failed = sum(1 for ok in uplink.services_ok if not ok)
    if sent and received == 0:
        if uplink.services_ok and services_failed < len(uplink.services_ok):
            # ICMP filtered somewhere, yet services answer: not an outage
            return Verdict("degraded", "uplink", "no ICMP reply beyond the router, services answer")
        return Verdict("down", "uplink", f"no reply from {len(uplink.pings)} target(s) beyond the router")
    if sent:
        loss = 1.0 - received / sent
        if loss > limits.loss_degraded:
            return Verdict("degraded", "uplink", f"{loss:.0%} loss beyond the router")
        if p95 is not None and p95 > limits.uplink_p95_degraded_s:
            return Verdict("degraded", "uplink", f"p95 RTT {p95 * 1000:.0f} ms beyond the router")
    if uplink.dns_ok and dns_failed:
        if dns_failed == len(uplink.dns_ok):
            # without names, every service is unreachable for the citizens' procedures
            return Verdict("down", "dns", f"all {dns_failed} DNS queries failed")
        return Verdict("degraded", "dns", f"{dns_failed} of {len(uplink.dns_ok)} DNS queries failed")
    if uplink.services_ok and services_failed:
        state: State = "down" if services_failed == len(uplink.services_ok) else "degraded"
        return Verdict(state, "service", f"{services_failed} of {len(uplink.services_ok)} services failed")
    return HEALTHY
