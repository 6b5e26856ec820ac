"""A center's network round: every path probe at once, and a verdict on where it breaks.

The probe agent of a center runs this instead of the single probes: a LAN round to the center's
router, ICMP rounds to targets behind each uplink (internet, government WAN), DNS queries, HTTP
and TCP checks of the services the center depends on. Their samples go out as they are; from them
``agent.verdict.judge`` places a fault per uplink (LAN, gateway, uplink, DNS, service), reported
as ``center_network_state{uplink}`` (0 healthy, 1 degraded, 2 down) and
``center_network_fault_info{uplink,segment}``, plus an event when an uplink is not healthy.

Composition goes through the probes' public contract only (their ``Config`` and ``collect``, and
the metrics they emit), so each probe stays one file with one job.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import msgspec

from agent.checks import dns, http, icmp, tcp
from agent.checks.base import CheckContext, Observations
from agent.verdict import STATE_VALUE, Ping, Thresholds, UplinkEvidence, judge


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    loss_degraded: float = 0.02
    gateway_p95_degraded_s: float = 0.010
    uplink_p95_degraded_s: float = 0.150


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: the center's router, pinged over the LAN (no gateway: the verdict starts at the uplinks)
    gateway: icmp.Target | None = None
    icmp: icmp.Config = icmp.Config()
    dns: dns.Config = dns.Config()
    http: http.Config = http.Config()
    tcp: tcp.Config = tcp.Config()
    limits: Limits = Limits()


def _sub(ctx: CheckContext[Any], name: str, config: msgspec.Struct) -> CheckContext[Any]:
    return CheckContext(f"{ctx.name}.{name}", config, ctx.clock_ms, ctx.collector)


async def collect(ctx: CheckContext[Config]) -> Observations:
    cfg = ctx.config
    obs = Observations(ts_ms=ctx.clock_ms())
    icmp_cfg = cfg.icmp
    if cfg.gateway is not None:
        gateway = msgspec.structs.replace(cfg.gateway, uplink="lan")
        icmp_cfg = msgspec.structs.replace(icmp_cfg, targets=(gateway, *icmp_cfg.targets))
    parts = await asyncio.gather(
        icmp.collect(_sub(ctx, "icmp", icmp_cfg)),
        dns.collect(_sub(ctx, "dns", cfg.dns)),
        http.collect(_sub(ctx, "http", cfg.http)),
        tcp.collect(_sub(ctx, "tcp", cfg.tcp)),
    )
    for part in parts:
        obs.samples.extend(part.samples)
        obs.events.extend(part.events)
    gateway_name = cfg.gateway.name if cfg.gateway is not None else None
    for uplink, verdict in verdicts(obs, gateway_name, cfg.limits).items():
        obs.add("center_network_state", STATE_VALUE[verdict.state], uplink=uplink)
        if verdict.state != "healthy":
            obs.add("center_network_fault_info", 1.0, uplink=uplink, segment=verdict.segment)
            severity = "critical" if verdict.state == "down" else "warning"
            obs.event(f"network.{verdict.state}", verdict.reason, severity, uplink=uplink, segment=verdict.segment)
    return obs


def verdicts(obs: Observations, gateway: str | None, limits: Limits) -> dict[str, Any]:
    """Per uplink, the verdict from this round's samples."""
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    p95: dict[str, float] = {}
    pings_by_uplink: dict[str, list[str]] = defaultdict(list)
    dns_ok: dict[str, list[bool]] = defaultdict(list)
    services_ok: dict[str, list[bool]] = defaultdict(list)
    gateway_ping: Ping | None = None
    unstarted: list[tuple[str, str]] = []
    for s in obs.samples:
        target, uplink = s.labels.get("target", ""), s.labels.get("uplink", "")
        if s.name == "probe_icmp_sent_packets":
            sent[target] = s.value
            pings_by_uplink[uplink].append(target)
        elif s.name == "probe_icmp_received_packets":
            received[target] = s.value
        elif s.name == "probe_icmp_rtt_seconds" and s.labels.get("stat") == "p95":
            p95[target] = s.value
        elif s.name == "probe_success" and s.labels.get("probe") == "icmp" and s.value == 0:
            unstarted.append((target, uplink))
        elif s.name == "probe_success" and s.labels.get("probe") == "dns":
            dns_ok[uplink].append(s.value == 1.0)
        elif s.name == "probe_success" and s.labels.get("probe") in ("http", "tcp"):
            services_ok[uplink].append(s.value == 1.0)

    for target, uplink in unstarted:
        if target not in sent:  # the round never started (resolution, socket): all lost
            sent[target], received[target] = 1.0, 0.0
            pings_by_uplink[uplink].append(target)

    def ping(target: str) -> Ping:
        return Ping(int(sent.get(target, 0)), int(received.get(target, 0)), p95.get(target))

    if gateway is not None and gateway in sent:
        gateway_ping = ping(gateway)
    thresholds = Thresholds(limits.loss_degraded, limits.gateway_p95_degraded_s, limits.uplink_p95_degraded_s)
    uplinks = (set(pings_by_uplink) | set(dns_ok) | set(services_ok)) - {"lan"}
    return {
        uplink: judge(
            gateway_ping,
            UplinkEvidence(
                pings=[ping(t) for t in pings_by_uplink.get(uplink, [])],
                dns_ok=dns_ok.get(uplink, []),
                services_ok=services_ok.get(uplink, []),
            ),
            thresholds,
        )
        for uplink in sorted(uplinks)
    }
