"""The one signature every check has, and the observations it returns.

A check is a module in ``agent/checks/`` with:

* ``Config`` – a frozen ``msgspec.Struct`` (``forbid_unknown_fields=True``) of its settings, every
  field with a default, so ``checks: {name: {}}`` enables it with defaults;
* ``async def collect(ctx: CheckContext[Config]) -> Observations``.

A check measures and returns; it never talks to the collector and never writes files. The
scheduler owns the deadline, the timing and success: a check that raises is reported as a failed
run with its error, and the other checks go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from agent.clock import wall_ms
from centerwatch.wire import Event, Sample

C = TypeVar("C", bound=msgspec.Struct)


@dataclass(frozen=True)
class CollectorLink:
    """The collector as a measurement peer (throughput tests), never as a place to report to."""

    url: str
    token: str


@dataclass(frozen=True)
class CheckContext(Generic[C]):
    """What a check gets: its config and the clock. OS edges are passed to checks in their config
    or as module-level adapters behind a Protocol, so tests can hand in fakes."""

    name: str
    config: C
    clock_ms: Callable[[], int] = wall_ms
    collector: CollectorLink | None = None


@dataclass
class Observations:
    """Samples, facts and events of one check run."""

    ts_ms: int
    samples: list[Sample] = field(default_factory=list)
    facts: dict[str, Any] | None = None
    events: list[Event] = field(default_factory=list)
    subject: str = "host"

    def add(self, name: str, value: float, **labels: str) -> None:
        self.samples.append(Sample(name, labels, float(value), self.ts_ms))

    def event(self, kind: str, message: str = "", severity: str = "info", **labels: str) -> None:
        self.events.append(Event(kind, self.ts_ms, labels, message, severity))

    def probe_outcome(
        self,
        probe: str,
        target: str,
        uplink: str,
        *,
        reason: str | None,
        message: str = "",
        duration_s: float | None = None,
    ) -> None:
        """What every prober reports per target (blackbox_exporter's ``probe_success`` and
        ``probe_duration_seconds``), and on failure ``probe_failure_info{reason}`` with a
        ``probe.failed`` warning event carrying the cause."""
        labels = {"probe": probe, "target": target, "uplink": uplink}
        self.add("probe_success", 0.0 if reason else 1.0, **labels)
        if duration_s is not None:
            self.add("probe_duration_seconds", duration_s, **labels)
        if reason:
            self.add("probe_failure_info", 1.0, reason=reason, **labels)
            self.event("probe.failed", message[:1000], "warning", **labels)
