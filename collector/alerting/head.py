"""The recent samples the rules look at, in memory: Prometheus's "head", fed from the store's tail.

``refresh()`` reads the runs stored since the last call (by run id, so a run backfilled after an
outage is seen whatever its timestamps, and every collector worker's writes are seen) and files
each point under its series in time order; points older than ``retention_ms`` are dropped. The
first refresh starts from the runs received within the retention, so a restarted collector
evaluates on the same data it had.

Only what the rules read is kept (``keep``): the metrics they name, as far back as their longest
window (the latest point for ``last``). A round with nothing new costs one query.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from collector.store.base import Store

#: runs read per query while catching up
PAGE = 2000
#: agents may stamp up to this far ahead of the collector (ingest's max_future); start early enough
CLOCK_SLACK_MS = 300_000


@dataclass
class Series:
    id: int
    name: str
    labels: dict[str, str]
    ts: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)

    @property
    def center(self) -> str:
        return self.labels.get("center", "")

    @property
    def host(self) -> str:
        return self.labels.get("host", "")

    def add(self, ts: int, value: float) -> None:
        if not self.ts or ts > self.ts[-1]:
            self.ts.append(ts)
            self.vals.append(value)
            return
        i = bisect.bisect_left(self.ts, ts)
        if i < len(self.ts) and self.ts[i] == ts:
            self.vals[i] = value  # the same instant again (a replay): keep one point
            return
        self.ts.insert(i, ts)
        self.vals.insert(i, value)

    def trim(self, before_ms: int) -> None:
        i = bisect.bisect_left(self.ts, before_ms)
        if i:
            del self.ts[:i]
            del self.vals[:i]

    def window(self, start_ms: int, end_ms: int) -> tuple[list[int], list[float]]:
        """Points with ``start_ms <= ts <= end_ms``."""
        lo = bisect.bisect_left(self.ts, start_ms)
        hi = bisect.bisect_right(self.ts, end_ms)
        return self.ts[lo:hi], self.vals[lo:hi]

    def last(self, end_ms: int) -> tuple[int, float] | None:
        """The latest point at or before ``end_ms``."""
        hi = bisect.bisect_right(self.ts, end_ms)
        if hi == 0:
            return None
        return self.ts[hi - 1], self.vals[hi - 1]


@dataclass
class Head:
    retention_ms: int = 3_600_000
    #: what the rules need, by metric: how far back in ms (0: the latest point only). A metric not
    #: named is not kept at all. None keeps every metric for ``retention_ms``.
    keep: Mapping[str, int] | None = None
    series: dict[int, Series] = field(default_factory=dict)
    by_name: dict[str, dict[int, Series]] = field(default_factory=dict)
    last_run_id: int | None = None
    #: series ids of metrics no rule reads
    ignored: set[int] = field(default_factory=set)
    #: series given points or trimmed since the last ``take_changed()``
    changed: set[int] = field(default_factory=set)

    async def refresh(self, store: Store, now_ms: int) -> int:
        """File the runs stored since the last call; returns how many runs were read."""
        if self.last_run_id is None:
            self.last_run_id = await store.last_run_id_before(now_ms - self.retention_ms - CLOCK_SLACK_MS)
        floor = now_ms - self.retention_ms
        read = 0
        while True:
            chunks = await store.runs_after(self.last_run_id, PAGE)
            if not chunks:
                break
            ignored = self.ignored
            unknown = {sid for c in chunks for sid in c.sids if sid not in self.series and sid not in ignored}
            if unknown:
                keep = self.keep
                for sid, (name, labels) in (await store.series_info(list(unknown))).items():
                    if keep is not None and name not in keep:
                        ignored.add(sid)
                        continue
                    s = Series(sid, name, labels)
                    self.series[sid] = s
                    self.by_name.setdefault(name, {})[sid] = s
            series = self.series
            changed = self.changed
            for chunk in chunks:
                tss = chunk.tss if chunk.tss is not None else [chunk.ts_min] * len(chunk.sids)
                for sid, ts, value in zip(chunk.sids, tss, chunk.vals, strict=True):
                    if ts >= floor:
                        found = series.get(sid)
                        if found is not None:
                            found.add(ts, value)
                            changed.add(sid)
            self.last_run_id = chunks[-1].id
            read += len(chunks)
            if len(chunks) < PAGE:
                break
            await asyncio.sleep(0)  # catching up after a restart: let ingest in between pages
        self.trim(floor, now_ms)
        return read

    def trim(self, floor_ms: int, now_ms: int | None = None) -> None:
        keep = self.keep
        if keep is None or now_ms is None:
            for s in self.series.values():
                if s.ts and s.ts[0] < floor_ms:
                    s.trim(floor_ms)
            return
        for name, group in self.by_name.items():
            back = keep.get(name, 0)
            if back == 0:  # the latest point is all the rules read
                for s in group.values():
                    if len(s.ts) > 1:
                        del s.ts[:-1]
                        del s.vals[:-1]
                    elif s.ts and s.ts[0] < floor_ms:
                        s.trim(floor_ms)
            else:
                start = max(floor_ms, now_ms - back)
                for s in group.values():
                    if s.ts and s.ts[0] < start:
                        s.trim(start)
                        self.changed.add(s.id)  # a point left the window: the reduction moved

    def take_changed(self) -> dict[str, list[Series]]:
        """The series changed since the last call, by metric name; resets the set."""
        out: dict[str, list[Series]] = {}
        for sid in self.changed:
            s = self.series.get(sid)
            if s is not None:
                out.setdefault(s.name, []).append(s)
        self.changed = set()
        return out

    def named(self, name: str) -> Iterable[Series]:
        return self.by_name.get(name, {}).values()

    def select(
        self, name: str, match: dict[str, str], match_re: dict[str, object], among: Iterable[Series] | None = None
    ) -> Iterator[Series]:
        """Series called ``name`` (or those of ``among``) whose labels equal ``match`` and fully match
        ``match_re`` (compiled patterns)."""
        pool = self.named(name) if among is None else among
        if not match and not match_re:
            yield from pool
            return
        for s in pool:
            labels = s.labels
            if any(labels.get(k) != v for k, v in match.items()):
                continue
            if any(not p.fullmatch(labels.get(k, "")) for k, p in match_re.items()):  # type: ignore[attr-defined]
                continue
            yield s

    def points(self) -> int:
        return sum(len(s.ts) for s in self.series.values())
