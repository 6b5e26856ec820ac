"""The network verdict places each fault in its segment, outward from the PC."""

from __future__ import annotations

import pytest

from agent.verdict import Ping, UplinkEvidence, judge

GOOD_GW = Ping(20, 20, 0.0005)
GOOD_UP = UplinkEvidence(pings=[Ping(20, 20, 0.03)], dns_ok=[True], services_ok=[True, True])


@pytest.mark.parametrize(
    ("gateway", "uplink", "state", "segment"),
    [
        (GOOD_GW, GOOD_UP, "healthy", "none"),
        (Ping(20, 0), GOOD_UP, "down", "lan"),
        (Ping(20, 15, 0.001), GOOD_UP, "degraded", "gateway"),
        (Ping(20, 20, 0.05), GOOD_UP, "degraded", "gateway"),
        (GOOD_GW, UplinkEvidence(pings=[Ping(20, 0)], dns_ok=[False], services_ok=[False]), "down", "uplink"),
        (GOOD_GW, UplinkEvidence(pings=[Ping(20, 17, 0.03)], dns_ok=[True], services_ok=[True]), "degraded", "uplink"),
        (GOOD_GW, UplinkEvidence(pings=[Ping(20, 20, 0.4)], dns_ok=[True]), "degraded", "uplink"),
        (GOOD_GW, UplinkEvidence(pings=[Ping(20, 20, 0.03)], dns_ok=[False], services_ok=[False]), "down", "dns"),
        (GOOD_GW, UplinkEvidence(pings=[Ping(20, 20, 0.03)], dns_ok=[True, False]), "degraded", "dns"),
        (
            GOOD_GW,
            UplinkEvidence(pings=[Ping(20, 20, 0.03)], dns_ok=[True], services_ok=[True, False]),
            "degraded",
            "service",
        ),
        (GOOD_GW, UplinkEvidence(pings=[Ping(20, 20, 0.03)], dns_ok=[True], services_ok=[False]), "down", "service"),
        # ICMP filtered upstream but HTTP answers: degraded, not an outage
        (GOOD_GW, UplinkEvidence(pings=[Ping(20, 0)], services_ok=[True]), "degraded", "uplink"),
        # no LAN round configured: judged from the uplink alone
        (None, GOOD_UP, "healthy", "none"),
    ],
)
def test_fault_placement(gateway: Ping | None, uplink: UplinkEvidence, state: str, segment: str) -> None:
    verdict = judge(gateway, uplink)
    assert (verdict.state, verdict.segment) == (state, segment), verdict.reason
    assert bool(verdict.reason) == (state != "healthy")
