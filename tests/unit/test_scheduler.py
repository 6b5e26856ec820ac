"""The scheduler owns deadlines and success: a failure or a hang is a result, never the end of the loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import msgspec

from agent.checks.base import CheckContext, CollectorLink, Observations
from agent.config import CheckSchedule, CheckSpec
from agent.scheduler import PartBody, RunResult, Scheduler, run_once
from centerwatch.wire import Event, Sample

Collect = Callable[[CheckContext[Any]], Awaitable[Observations]]


async def run_until(scheduler: Scheduler, done: Callable[[], bool], limit_s: float = 1.0) -> None:
    """Run the scheduler until ``done()`` holds (polled every 10 ms, bounded), then cancel it."""
    task = asyncio.create_task(scheduler.run())
    try:
        for _ in range(int(limit_s / 0.01)):
            if done():
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"condition not met within {limit_s} s")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class NoConfig(msgspec.Struct, frozen=True):
    pass


def spec(name: str, interval_s: float = 15.0, timeout_s: float = 1.0) -> CheckSpec:
    return CheckSpec(name, CheckSchedule(interval_s=interval_s, timeout_s=timeout_s), NoConfig())


def fake_module(collect: Collect) -> ModuleType:
    return cast(ModuleType, SimpleNamespace(collect=collect))


def clock() -> int:
    return 1_700_000_000_000


async def healthy(ctx: CheckContext[Any]) -> Observations:
    obs = Observations(ts_ms=ctx.clock_ms())
    obs.add("host_cpu_usage_ratio", 0.25, cpu="total")
    obs.event("check.partial", "sensors failed", "warning", section="sensors")
    obs.facts = {"hostname": "pc01"}
    return obs


async def boom(ctx: CheckContext[Any]) -> Observations:
    raise ValueError("boom")


async def hang(ctx: CheckContext[Any]) -> Observations:
    await asyncio.sleep(10)
    raise AssertionError("not reached")


# -- run_once ----------------------------------------------------------------------------------------


async def test_ok_result_carries_samples_facts_and_events() -> None:
    result = await run_once(spec("host"), fake_module(healthy), clock)
    assert isinstance(result, RunResult)
    assert result.check == "host"
    body = result.body
    assert (body.check, body.started_ms, body.ok, body.error, body.subject) == ("host", clock(), True, None, "host")
    assert body.samples == [Sample("host_cpu_usage_ratio", {"cpu": "total"}, 0.25, clock())]
    assert body.events == [Event("check.partial", clock(), {"section": "sensors"}, "sensors failed", "warning")]
    assert body.facts == {"hostname": "pc01"}
    assert 0 <= body.duration_s < 0.5
    assert result.observations is not None
    assert result.observations.samples == body.samples


async def test_subject_of_a_polled_device_is_kept() -> None:
    async def device(ctx: CheckContext[Any]) -> Observations:
        return Observations(ts_ms=1, subject="an-hai-sw01")

    result = await run_once(spec("snmp"), fake_module(device), clock)
    assert result.body.subject == "an-hai-sw01"


async def test_exception_becomes_a_failed_result_with_its_cause() -> None:
    result = await run_once(spec("dns"), fake_module(boom), clock)
    assert result.body == PartBody("dns", clock(), result.body.duration_s, False, "ValueError: boom")
    assert result.body.samples == []
    assert result.body.facts is None
    assert result.observations is None


async def test_exception_without_message_is_named_by_its_type() -> None:
    async def bare(ctx: CheckContext[Any]) -> Observations:
        raise KeyError

    result = await run_once(spec("tcp"), fake_module(bare), clock)
    assert (result.body.ok, result.body.error) == (False, "KeyError")


async def test_hang_beyond_timeout_becomes_a_failed_result_quickly() -> None:
    t0 = time.perf_counter()
    result = await run_once(spec("http", timeout_s=0.05), fake_module(hang), clock)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5
    assert (result.body.ok, result.body.error) == (False, "timeout after 0.05 s")
    assert 0.04 <= result.body.duration_s < 0.5
    assert result.observations is None


async def test_check_gets_its_name_config_clock_and_collector() -> None:
    seen: list[CheckContext[Any]] = []
    link = CollectorLink("http://collector.test", "tok")

    async def record(ctx: CheckContext[Any]) -> Observations:
        seen.append(ctx)
        return Observations(ts_ms=ctx.clock_ms())

    the_spec = spec("host")
    await run_once(the_spec, fake_module(record), clock, link)
    [ctx] = seen
    assert (ctx.name, ctx.config, ctx.clock_ms, ctx.collector) == ("host", the_spec.config, clock, link)


async def test_part_body_round_trips_through_json() -> None:
    result = await run_once(spec("host"), fake_module(healthy), clock)
    raw = msgspec.json.encode(result.body)
    assert msgspec.json.decode(raw, type=PartBody) == result.body
    failed = await run_once(spec("host"), fake_module(boom), clock)
    assert b"samples" not in msgspec.json.encode(failed.body)  # defaults omitted: smaller spool entries


# -- the loop ----------------------------------------------------------------------------------------


async def test_scheduler_keeps_running_healthy_checks_beside_failing_and_hanging_ones() -> None:
    results: list[RunResult] = []
    specs = [
        spec("raiser", interval_s=0.05, timeout_s=0.05),
        spec("hanger", interval_s=0.05, timeout_s=0.05),
        spec("healthy", interval_s=0.05, timeout_s=0.05),
    ]
    modules = {"raiser": fake_module(boom), "hanger": fake_module(hang), "healthy": fake_module(healthy)}
    scheduler = Scheduler(specs, modules, results.append, clock_ms=clock)
    t0 = time.perf_counter()
    await run_until(scheduler, lambda: sum(r.check == "healthy" for r in results) >= 4)
    assert time.perf_counter() - t0 < 0.6  # the hang and the failures did not hold the healthy check back
    by_check: dict[str, list[PartBody]] = {}
    for r in results:
        by_check.setdefault(r.check, []).append(r.body)
    assert len(by_check["healthy"]) >= 3
    assert all(b.ok and b.samples for b in by_check["healthy"])
    assert by_check["raiser"]
    assert all(b.error == "ValueError: boom" for b in by_check["raiser"])
    assert by_check["hanger"]
    assert all(b.error == "timeout after 0.05 s" for b in by_check["hanger"])
    assert scheduler.stats["healthy"].failures == 0
    assert scheduler.stats["healthy"].runs == len(by_check["healthy"])
    assert scheduler.stats["raiser"].failures == scheduler.stats["raiser"].runs > 0
    assert scheduler.stats["raiser"].last_error == "ValueError: boom"
    assert scheduler.stats["hanger"].last_ok is False


async def test_a_failing_sink_does_not_stop_the_loop() -> None:
    calls = 0

    def sink(result: RunResult) -> None:
        nonlocal calls
        calls += 1
        raise OSError("disk full")

    scheduler = Scheduler([spec("healthy", interval_s=0.03)], {"healthy": fake_module(healthy)}, sink)
    await run_until(scheduler, lambda: calls >= 3)
    assert calls >= 3
    assert scheduler.stats["healthy"].runs == calls


async def test_overrunning_check_skips_missed_slots_instead_of_bunching() -> None:
    async def slow(ctx: CheckContext[Any]) -> Observations:
        await asyncio.sleep(0.07)
        return Observations(ts_ms=1)

    results: list[RunResult] = []
    scheduler = Scheduler([spec("slow", interval_s=0.02, timeout_s=1.0)], {"slow": fake_module(slow)}, results.append)
    t0 = time.perf_counter()
    await run_until(scheduler, lambda: len(results) >= 3)
    elapsed = time.perf_counter() - t0
    assert elapsed >= 0.2  # one run at a time, never one per 0.02 s slot
    assert len(results) == 3
    assert scheduler.stats["slow"].skipped >= 4
    assert all(r.body.ok for r in results)
