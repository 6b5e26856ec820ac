"""Runs each check on its interval with jitter and a deadline; a failure or a hang is a result.

The scheduler, not the check, owns timing and success: it stamps each run's start and duration,
turns an exception or a missed deadline into ``ok=False`` with the cause, and hands every run to
the sink (the spool). A slow check delays only itself; runs that would overlap are skipped and
counted, never queued.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import msgspec

from agent.checks.base import CheckContext, CollectorLink, Observations
from agent.clock import wall_ms
from agent.config import CheckSpec
from centerwatch.wire import Event, Sample

log = logging.getLogger("centerwatch.agent.scheduler")


class PartBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """A ``Part`` without its ``seq``: what the spool stores (the seq is the spool's rowid)."""

    check: str
    started_ms: int
    duration_s: float
    ok: bool
    error: str | None = None
    samples: list[Sample] = []
    facts: dict[str, Any] | None = None
    subject: str = "host"
    events: list[Event] = []


@dataclass
class RunResult:
    check: str
    body: PartBody
    observations: Observations | None


@dataclass
class CheckStats:
    runs: int = 0
    failures: int = 0
    skipped: int = 0
    last_duration_s: float = 0.0
    last_ok: bool = True
    last_error: str | None = None


Sink = Callable[[RunResult], None]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def run_once(
    spec: CheckSpec, module: ModuleType, clock_ms: Callable[[], int] = wall_ms, collector: CollectorLink | None = None
) -> RunResult:
    """One run of one check under its deadline. Never raises (except cancellation)."""
    ctx: CheckContext[Any] = CheckContext(spec.name, spec.config, clock_ms, collector)
    started_ms = clock_ms()
    t0 = time.perf_counter()
    obs: Observations | None = None
    error: str | None = None
    deadline = asyncio.timeout(spec.schedule.timeout_s)
    try:
        async with deadline:
            obs = await module.collect(ctx)
    except TimeoutError as exc:
        # the scheduler's deadline, or a TimeoutError the check let out (its own socket timeout)
        error = f"timeout after {spec.schedule.timeout_s:g} s" if deadline.expired() else _describe(exc)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing check is data, never the end of the agent
        error = _describe(exc)
        log.warning("check %s failed: %s", spec.name, error)
    duration = time.perf_counter() - t0
    if obs is None:
        body = PartBody(spec.name, started_ms, duration, False, error)
    else:
        body = PartBody(spec.name, started_ms, duration, True, None, obs.samples, obs.facts, obs.subject, obs.events)
    return RunResult(spec.name, body, obs)


@dataclass
class Scheduler:
    specs: list[CheckSpec]
    modules: dict[str, ModuleType]
    sink: Sink
    clock_ms: Callable[[], int] = wall_ms
    rng: random.Random = field(default_factory=random.Random)
    stats: dict[str, CheckStats] = field(default_factory=dict)
    collector: CollectorLink | None = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for spec in self.specs:
                group.create_task(self._loop(spec), name=f"check:{spec.name}")

    async def _loop(self, spec: CheckSpec) -> None:
        stats = self.stats.setdefault(spec.name, CheckStats())
        interval = spec.schedule.interval_s
        # Spread the first runs so a fleet restarted together does not report in lockstep.
        await asyncio.sleep(self.rng.uniform(0, min(interval, 5.0) * 0.2))
        next_at = time.monotonic()
        while True:
            result = await run_once(spec, self.modules[spec.name], self.clock_ms, self.collector)
            stats.runs += 1
            stats.last_duration_s = result.body.duration_s
            stats.last_ok = result.body.ok
            stats.last_error = result.body.error
            if not result.body.ok:
                stats.failures += 1
            try:
                self.sink(result)
            except Exception:
                log.exception("could not spool the result of check %s", spec.name)
            next_at += interval
            now = time.monotonic()
            if next_at < now:  # the run overran: skip the missed slots rather than bunching up
                missed = int((now - next_at) // interval) + 1
                stats.skipped += missed
                next_at += missed * interval
            await asyncio.sleep(next_at - now + self.rng.uniform(0, min(0.1 * interval, 1.0)))
