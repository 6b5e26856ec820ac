"""The collector's own /metrics: ingest health plus per-agent and per-center reachability.

One registry per app (none at import), so tests and several apps in one process never collide.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.fleet import CenterStatus, agent_state
from collector.store.base import AgentRecord


@dataclass
class FleetSnapshot:
    now_ms: int = 0
    agents: list[AgentRecord] = field(default_factory=list)
    centers: list[CenterStatus] = field(default_factory=list)
    interval_s: float = 15.0
    silent_after: float = 3.0


class FleetCollector(Collector):
    """Exposes whatever snapshot the /metrics route refreshed just before rendering."""

    def __init__(self) -> None:
        self.snapshot = FleetSnapshot()

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        up = GaugeMetricFamily(
            "centerwatch_agent_up",
            "1 if the agent reported within its silence limit",
            labels=["center", "host", "agent"],
        )
        seen = GaugeMetricFamily(
            "centerwatch_agent_last_seen_timestamp_seconds",
            "Unix time of the agent's last accepted upload",
            labels=["center", "host", "agent"],
        )
        for agent in snap.agents:
            if agent.revoked:
                continue
            state = agent_state(agent, snap.now_ms, snap.interval_s, snap.silent_after)
            labels = [agent.center, agent.host, agent.id]
            up.add_metric(labels, 1.0 if state == "up" else 0.0)
            if agent.last_seen_ms is not None:
                seen.add_metric(labels, agent.last_seen_ms / 1000)
        center_agents = GaugeMetricFamily("centerwatch_center_agents", "Enrolled agents per center", labels=["center"])
        center_up = GaugeMetricFamily(
            "centerwatch_center_agents_up", "Agents per center that reported recently", labels=["center"]
        )
        for center in snap.centers:
            center_agents.add_metric([center.slug], center.agents)
            center_up.add_metric([center.slug], center.up)
        return [up, seen, center_agents, center_up]


class CollectorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.batches = Counter(
            "centerwatch_ingest_batches_total",
            "Uploaded batches by outcome (ok or the refusal code)",
            ["result"],
            registry=self.registry,
        )
        self.parts = Counter(
            "centerwatch_ingest_parts_total",
            "Check results received, stored or recognised as already stored",
            ["result"],
            registry=self.registry,
        )
        self.samples = Counter("centerwatch_ingest_samples_total", "Samples stored", registry=self.registry)
        # Children bound once: labels() per request is a dict lookup under a lock.
        self.batches_ok = self.batches.labels(result="ok")
        self.parts_stored = self.parts.labels(result="stored")
        self.parts_duplicate = self.parts.labels(result="duplicate")
        self.duration = Histogram(
            "centerwatch_ingest_duration_seconds",
            "Time to decode, check and commit one batch",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.enrollments = Counter(
            "centerwatch_enrollments_total", "Enrollment attempts by outcome", ["result"], registry=self.registry
        )
        self.fleet = FleetCollector()
        self.registry.register(self.fleet)
