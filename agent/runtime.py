"""Wires one running agent: checks → scheduler → spool → uploader, and the /metrics server."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import httpx
import msgspec
from prometheus_client import start_http_server

from agent.checks.base import CollectorLink
from agent.clock import clock_from_env
from agent.config import AgentConfig, CheckSpec, check_specs
from agent.errors import ConfigError, SpoolError
from agent.exporter import AgentState, build_registry
from agent.identity import Identity, IdentityFile, enroll
from agent.scheduler import PartBody, RunResult, Scheduler
from agent.spool import Spool
from agent.uploader import Uploader
from centerwatch.wire import Sample

log = logging.getLogger("centerwatch.agent")

_ENCODER = msgspec.json.Encoder()


def load_modules(specs: list[CheckSpec]) -> dict[str, ModuleType]:
    from agent.config import CHECK_MODULES

    return {spec.name: importlib.import_module(CHECK_MODULES[spec.name]) for spec in specs}


def parse_listen(value: str, source: str) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(source, "metrics_listen", f"expected HOST:PORT (e.g. 127.0.0.1:9464), got {value!r}")
    return host.strip("[]"), int(port)


def spool_report(spool: Spool, now_ms: int) -> PartBody:
    """The agent's own part: what waits in its spool and what it had to give up (``check: agent``).

    The drop and refusal counters are cumulative, so a report that is itself dropped or refused
    loses nothing: the next one carries the whole count."""
    st = spool.stats()
    values = {
        "centerwatch_agent_spool_entries": st.entries,
        "centerwatch_agent_spool_bytes": st.bytes,
        "centerwatch_agent_spool_dropped_entries_total": st.dropped_entries,
        "centerwatch_agent_spool_rejected_entries_total": st.rejected_entries,
    }
    samples = [Sample(name, {}, float(value), now_ms) for name, value in values.items()]
    return PartBody("agent", now_ms, 0.0, True, samples=samples)


async def report_spool(spool: Spool, clock_ms: Callable[[], int], every_s: float) -> None:
    """Spool a ``spool_report`` now and every ``every_s``; it travels like any check result."""
    while True:
        now = clock_ms()
        try:
            spool.append(_ENCODER.encode(spool_report(spool, now)), now)
        except SpoolError as exc:
            log.warning("could not spool the agent's own report: %s", exc)
        await asyncio.sleep(every_s)


async def ensure_identity(config: AgentConfig, client: httpx.AsyncClient) -> Identity:
    file = IdentityFile(Path(config.data_dir) / "identity.json")
    identity = file.load()
    if identity is None or identity.collector_url != config.collector_url:
        identity = await enroll(client, config.collector_url, config.enrollment_token)
        file.save(identity)
        log.info("enrolled as agent %s (center %s, host %s)", identity.agent_id, identity.center, identity.host)
    return identity


async def run_agent(config: AgentConfig, source: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
    specs = check_specs(config, source)
    listen = parse_listen(config.metrics_listen, source)
    modules = load_modules(specs)
    data_dir = Path(config.data_dir)
    clock_ms = clock_from_env(os.environ)
    spool = Spool(data_dir / "spool.db", config.spool.max_bytes, int(config.spool.max_age_days * 86_400_000), clock_ms)
    async with httpx.AsyncClient(transport=transport, timeout=config.upload.timeout_s) as client:
        identity = await ensure_identity(config, client)
        uploader = Uploader(
            spool, client, config.collector_url, identity.agent_id, identity.agent_token, config.upload, clock_ms
        )
        state = AgentState(latest={}, checks={}, spool=spool.stats, upload=uploader.stats)

        def sink(result: RunResult) -> None:
            spool.append(_ENCODER.encode(result.body), result.body.started_ms)
            if result.observations is not None:
                state.latest[result.check] = result.observations.samples
            if spool.stats_bytes() >= config.upload.max_batch_bytes:
                uploader.wake.set()  # a full batch is waiting: no need to sit out the interval

        link = CollectorLink(config.collector_url, identity.agent_token)
        scheduler = Scheduler(specs, modules, sink, clock_ms, stats=state.checks, collector=link)
        server = None
        if listen:
            try:
                server, _thread = start_http_server(listen[1], addr=listen[0], registry=build_registry(state))
            except OSError as exc:
                raise ConfigError(source, "metrics_listen", f"cannot listen on {config.metrics_listen}: {exc}") from exc
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks = [
            asyncio.create_task(scheduler.run()),
            asyncio.create_task(uploader.run()),
            asyncio.create_task(report_spool(spool, clock_ms, config.spool.report_interval_s)),
        ]
        log.info(
            "agent %s running %d check(s); metrics on %s",
            identity.agent_id,
            len(specs),
            config.metrics_listen or "(off)",
        )
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stopper.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await uploader.flush(5.0)
            spool.close()
            if server is not None:
                server.shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
