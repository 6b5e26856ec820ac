"""Wires one running agent: checks → scheduler → spool → uploader, and the /metrics server."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from pathlib import Path
from types import ModuleType

import httpx
import msgspec
from prometheus_client import start_http_server

from agent.checks.base import CollectorLink
from agent.config import AgentConfig, CheckSpec, check_specs
from agent.errors import ConfigError
from agent.exporter import AgentState, build_registry
from agent.identity import Identity, IdentityFile, enroll
from agent.scheduler import RunResult, Scheduler
from agent.spool import Spool
from agent.uploader import Uploader

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
    spool = Spool(data_dir / "spool.db", config.spool.max_bytes, int(config.spool.max_age_days * 86_400_000))
    async with httpx.AsyncClient(transport=transport, timeout=config.upload.timeout_s) as client:
        identity = await ensure_identity(config, client)
        uploader = Uploader(spool, client, config.collector_url, identity.agent_id, identity.agent_token, config.upload)
        state = AgentState(latest={}, checks={}, spool=spool.stats, upload=uploader.stats)

        def sink(result: RunResult) -> None:
            spool.append(_ENCODER.encode(result.body), result.body.started_ms)
            if result.observations is not None:
                state.latest[result.check] = result.observations.samples
            if spool.stats_bytes() >= config.upload.max_batch_bytes:
                uploader.wake.set()  # a full batch is waiting: no need to sit out the interval

        link = CollectorLink(config.collector_url, identity.agent_token)
        scheduler = Scheduler(specs, modules, sink, stats=state.checks, collector=link)
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
        tasks = [asyncio.create_task(scheduler.run()), asyncio.create_task(uploader.run())]
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
