"""Throughput: download from and upload to the collector, inside the maintenance window only.

Capped in bytes each way; reported in bits per second and as a share of the uplink's contracted
bandwidth (from inventory), so a 100 Mb/s contract delivering 12 Mb/s shows up in the plan.
Outside the window a run measures nothing and says so (``probe_throughput_in_window`` 0).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

import httpx
import msgspec

from agent.checks.base import CheckContext, Observations
from agent.windows import DEFAULT_TZ, DEFAULT_WINDOWS, Window, in_window

_CHUNK = bytes(range(256)) * 256  # 64 KiB


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    download_bytes: Annotated[int, msgspec.Meta(ge=0, le=256 * 1024 * 1024)] = 20 * 1024 * 1024
    upload_bytes: Annotated[int, msgspec.Meta(ge=0, le=256 * 1024 * 1024)] = 5 * 1024 * 1024
    uplink: Literal["internet", "wan", "lan"] = "wan"
    contracted_download_mbps: Annotated[float, msgspec.Meta(gt=0)] | None = None
    contracted_upload_mbps: Annotated[float, msgspec.Meta(gt=0)] | None = None
    windows: tuple[Window, ...] = DEFAULT_WINDOWS
    timezone: str = DEFAULT_TZ
    #: run whatever the time (on demand, tests)
    ignore_window: bool = False
    transfer_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 120.0


async def _download(client: httpx.AsyncClient, url: str, token: str, size: int) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("GET", f"{url}/api/v1/speedtest/download", params={"bytes": size}, headers=headers) as r:
        r.raise_for_status()
        received = 0
        started = None
        async for chunk in r.aiter_raw():
            if started is None:  # from the first byte: the request's own latency is not bandwidth
                started = time.perf_counter()
            received += len(chunk)
        elapsed = time.perf_counter() - (started or time.perf_counter())
    return received, elapsed


async def _upload(client: httpx.AsyncClient, url: str, token: str, size: int) -> tuple[int, float]:
    async def body() -> AsyncIterator[bytes]:
        left = size
        while left > 0:
            chunk = _CHUNK if left >= len(_CHUNK) else _CHUNK[:left]
            left -= len(chunk)
            yield chunk

    started = time.perf_counter()
    r = await client.post(
        f"{url}/api/v1/speedtest/upload",
        content=body(),
        headers={"Authorization": f"Bearer {token}", "Content-Length": str(size)},
    )
    r.raise_for_status()
    return int(r.json()["bytes"]), time.perf_counter() - started


async def collect(ctx: CheckContext[Config]) -> Observations:
    cfg = ctx.config
    obs = Observations(ts_ms=ctx.clock_ms())
    now = datetime.fromtimestamp(obs.ts_ms / 1000, tz=UTC)
    inside = cfg.ignore_window or in_window(now, cfg.windows, cfg.timezone)
    obs.add("probe_throughput_in_window", 1.0 if inside else 0.0, uplink=cfg.uplink)
    if not inside:
        return obs
    if ctx.collector is None:
        raise RuntimeError("the throughput check needs the collector as its peer; run it from `centerwatch-agent run`")
    url, token = ctx.collector.url.rstrip("/"), ctx.collector.token
    async with httpx.AsyncClient(timeout=cfg.transfer_timeout_s) as client:
        for direction, size, contract, run in (
            ("download", cfg.download_bytes, cfg.contracted_download_mbps, _download),
            ("upload", cfg.upload_bytes, cfg.contracted_upload_mbps, _upload),
        ):
            if not size:
                continue
            labels = {"uplink": cfg.uplink, "direction": direction}
            try:
                moved, seconds = await run(client, url, token, size)
            except httpx.HTTPError as exc:
                obs.add("probe_success", 0.0, probe=f"throughput_{direction}", target="collector", uplink=cfg.uplink)
                obs.event("probe.failed", f"{direction}: {type(exc).__name__}: {exc}", "warning", **labels)
                continue
            bps = moved * 8 / seconds if seconds > 0 else 0.0
            obs.add("probe_success", 1.0, probe=f"throughput_{direction}", target="collector", uplink=cfg.uplink)
            obs.add("probe_throughput_bits_per_second", bps, **labels)
            obs.add("probe_throughput_transferred_bytes", moved, **labels)
            if contract:
                obs.add("probe_throughput_contract_ratio", bps / (contract * 1e6), **labels)
    return obs
