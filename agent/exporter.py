"""The agent's own /metrics: the latest value of everything it measured, plus its own health.

A fresh registry per agent (none at import). Served by prometheus-client on 127.0.0.1 unless the
configuration says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.catalog import load_catalog
from agent.scheduler import CheckStats
from agent.spool import SpoolStats
from agent.uploader import UploadStats
from centerwatch.wire import Sample


@dataclass
class AgentState:
    """What the exporter reads; the runtime owns and updates it."""

    latest: dict[str, list[Sample]]
    checks: dict[str, CheckStats]
    spool: Callable[[], SpoolStats]
    upload: UploadStats | None


class AgentCollector(Collector):
    def __init__(self, state: AgentState) -> None:
        self.state = state
        self.catalog = load_catalog()

    def _measured(self) -> Iterable[Metric]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        label_names: dict[str, list[str]] = {}
        for samples in list(self.state.latest.values()):
            for s in samples:
                family = families.get(s.name)
                if family is None:
                    entry = self.catalog.get(s.name)
                    help_text = entry.help if entry else s.name
                    names = sorted(s.labels)
                    label_names[s.name] = names
                    if entry is not None and entry.type == "counter" and s.name.endswith("_total"):
                        family = CounterMetricFamily(s.name[: -len("_total")], help_text, labels=names)
                    else:
                        family = GaugeMetricFamily(s.name, help_text, labels=names)
                    families[s.name] = family
                names = label_names[s.name]
                if sorted(s.labels) != names:
                    continue  # a series with another label set cannot share this family
                family.add_metric([s.labels[n] for n in names], s.value)
        return families.values()

    def _self(self) -> Iterable[Metric]:
        spool = self.state.spool()
        yield GaugeMetricFamily(
            "centerwatch_agent_spool_entries", "Check results waiting to be uploaded", value=spool.entries
        )
        yield GaugeMetricFamily("centerwatch_agent_spool_bytes", "Bytes waiting in the spool", value=spool.bytes)
        yield CounterMetricFamily(
            "centerwatch_agent_spool_dropped_entries",
            "Spooled results dropped to stay within bounds",
            value=spool.dropped_entries,
        )
        yield CounterMetricFamily(
            "centerwatch_agent_spool_rejected_entries",
            "Results the collector refused for their content",
            value=spool.rejected_entries,
        )
        runs = CounterMetricFamily("centerwatch_agent_check_runs", "Check runs", labels=["check"])
        fails = CounterMetricFamily("centerwatch_agent_check_failures", "Failed check runs", labels=["check"])
        skipped = CounterMetricFamily(
            "centerwatch_agent_check_skipped", "Runs skipped after an overrun", labels=["check"]
        )
        duration = GaugeMetricFamily(
            "centerwatch_agent_check_duration_seconds", "Duration of the last run", labels=["check"]
        )
        for name, st in sorted(self.state.checks.items()):
            runs.add_metric([name], st.runs)
            fails.add_metric([name], st.failures)
            skipped.add_metric([name], st.skipped)
            duration.add_metric([name], st.last_duration_s)
        yield from (runs, fails, skipped, duration)
        up = self.state.upload
        if up is not None:
            yield CounterMetricFamily("centerwatch_agent_upload_batches", "Batches acknowledged", value=up.batches_ok)
            yield CounterMetricFamily(
                "centerwatch_agent_upload_failures", "Upload attempts that failed", value=up.batches_failed
            )
            if up.last_success_ms is not None:
                yield GaugeMetricFamily(
                    "centerwatch_agent_last_upload_timestamp_seconds",
                    "Unix time of the last acknowledged upload",
                    value=up.last_success_ms / 1000,
                )

    def collect(self) -> Iterable[Metric]:
        yield from self._measured()
        yield from self._self()


def build_registry(state: AgentState) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(state))
    return registry
