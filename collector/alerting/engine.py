"""The alert engine: one evaluation round every few seconds, from stored samples to notifications.

A round

1. files the runs stored since the last round into the ``Head`` (by run id, so data backfilled
   after an outage is seen, at its true timestamps);
2. works out the fleet: which agents are silent (no report for ``silent_after_intervals`` agent
   intervals) and which centers are **dark** (every agent of the center silent) — one
   ``center_unreachable`` alert, never N ``agent_silent`` ones;
3. evaluates every expression rule into instances (``evaluate.py``) and moves each alert
   pending → firing (after ``for_s``) → resolved, with hysteresis (``clear``);
4. decides for each firing alert whether it is notified or muted — *suppressed* (its center is
   dark, its host is silent, a parent rule fires on the same labels, an inventory ancestor of its
   device is unreachable), *silenced* (a silence matches), or in the center's *maintenance* window;
5. saves what changed (one transaction) and hands the dispatcher the complete set of firing,
   unmuted alerts plus the resolutions owed.

**Held over.** A child rule that reduces over a window (``uplink_lossy``: the average loss of the
last 300 s) still sees its parent's outage in that window after the parent resolved, and a center's
backfilled outage data after it came back. So a windowed alert stays suppressed while its window
(plus one agent interval, for the round that straddled the end) reaches back to when its parent
last held or its center was last dark; past that, it notifies on data of its own. Every alert of a
center that was dark stays suppressed for at least one silence period after it is heard again: the
spooled rounds filed before the agents' fresh ones describe the outage already notified as
``center_unreachable`` (uplinks down), and a rule on the latest value would fire on them.

**Frozen, not resolved.** An alert whose data stopped because its hosts went silent (or its center
went dark) keeps its state: the outage is the center's alert, and when the agents return and
their spooled data is filed, the rule decides on real data. Topology alerts resolve only when an
agent is heard again after the alert began, so a collector restart (every ``last_seen`` old)
neither resolves them nor raises N new ones: for one silence period after start nothing is
declared silent.

Only one process evaluates: the holder of an ``flock`` on ``<db>.alerting.lock`` (several
collector workers share one database).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from centerwatch.i18n import LANGS, t
from collector.alerting.evaluate import Instance, evaluate, holds
from collector.alerting.head import Head, Series
from collector.alerting.model import AlertView, NotificationGroup, fingerprint
from collector.alerting.mute import in_maintenance, silenced_by
from collector.alerting.rules import LoadedRule, RuleSet
from collector.alerting.state import AlertRow, AlertState
from collector.store.base import AgentRecord, Store

if TYPE_CHECKING:
    from collector.alerting.dispatch import Dispatcher
    from collector.inventory import Inventory

log = logging.getLogger("centerwatch.alerting")

#: besides the series that changed, each round re-reduces one slice of every rule's series (by id
#: modulo SLICES), so what time alone changes (staleness, absence) is seen within SLICES rounds
#: (a minute at the default 5 s) without a full, long round every minute
SLICES = 12
#: default staleness of a ``last`` series: Prometheus's lookback
DEFAULT_STALE_S = 300.0


@dataclass(frozen=True)
class EngineSettings:
    agent_interval_s: float = 15.0
    silent_after_intervals: float = 2.5
    eval_interval_s: float = 5.0
    stale_s: float = DEFAULT_STALE_S
    retention_s: float = 3600.0
    public_url: str = ""

    @property
    def silent_ms(self) -> int:
        return int(self.agent_interval_s * self.silent_after_intervals * 1000)


@dataclass
class Fleet:
    """Who is heard from, this round."""

    agents: dict[tuple[str, str], AgentRecord]
    #: (center, host) of every agent not heard for the silence period
    silent: set[tuple[str, str]]
    #: center → its agents, for centers whose every agent is silent
    dark: dict[str, list[AgentRecord]]


@dataclass
class RoundStats:
    now_ms: int
    runs: int = 0
    instances: int = 0
    pending: int = 0
    firing: int = 0
    muted: int = 0
    changed: int = 0
    seconds: float = 0.0


#: what a dark center's cause is read from (the latest point of each)
CAUSE_METRICS = ("snmp_ups_on_battery", "host_battery_power_plugged", "center_network_state")


def head_keep(rules: RuleSet) -> dict[str, int]:
    """Metric → how far back the rules read it, in ms (0: the latest point only)."""
    keep = dict.fromkeys(CAUSE_METRICS, 0)
    for lr in rules.rules:
        expr = lr.rule.expr
        if expr is not None:
            back = 0 if expr.reduce == "last" else int(expr.window_s * 1000)
            keep[expr.metric] = max(keep.get(expr.metric, 0), back)
    return keep


class _Fields(dict[str, Any]):
    """Template fields: a label the series lacks renders empty instead of failing."""

    def __missing__(self, key: str) -> str:
        return ""


def render(rule: LoadedRule, fields: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The rule's texts in every language; a field may be ``{lang: text}`` (a translated cause)."""
    out: dict[str, dict[str, str]] = {}
    for lang, texts in rule.texts.items():
        values = _Fields({k: v.get(lang, "") if isinstance(v, dict) else v for k, v in fields.items()})
        out[lang] = {}
        for key, template in texts.items():
            try:
                out[lang][key] = template.format_map(values)
            except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
                out[lang][key] = f"{template} ({exc})"
    return out


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3g}"


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "centerwatch_alert_evaluation_seconds",
            "Wall time of one evaluation round",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.alerts = Gauge(
            "centerwatch_alerts", "Open alerts by state and mute", ["state", "muted"], registry=registry
        )
        self.failures = Counter("centerwatch_alert_evaluation_failures_total", "Rounds that failed", registry=registry)
        self.last = Gauge(
            "centerwatch_alert_last_evaluation_timestamp_seconds",
            "Unix time of the last completed round",
            registry=registry,
        )


class Engine:
    def __init__(
        self,
        rules: RuleSet,
        store: Store,
        state: AlertState,
        settings: EngineSettings,
        *,
        inventory: Inventory | None = None,
        dispatcher: Dispatcher | None = None,
        registry: CollectorRegistry | None = None,
        center_names: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.rules = rules
        self.store = store
        self.state = state
        self.settings = settings
        self.inventory = inventory
        self.dispatcher = dispatcher
        self.head = Head(retention_ms=int(settings.retention_s * 1000), keep=head_keep(rules))
        self._center_names = center_names or (lambda: {})
        self._metrics = _Metrics(registry) if registry is not None else None
        self._open: dict[str, AlertRow] = {a.fingerprint: a for a in state.open_alerts()}
        self._pending: dict[str, AlertRow] = {}
        self._epoch_ms: int | None = None
        self._dark_before: dict[str, list[AgentRecord]] = {}
        self._instances: dict[str, dict[object, Instance]] = {}
        self._round_no = 0
        self._recovered: dict[str, int] = {}
        self._delivered: set[str] = set()
        #: (parent rule, its ``equal`` labels, their values) → when such a parent alert last held
        self._parent_seen: dict[tuple[str, tuple[str, ...], tuple[str, ...]], int] = {}
        #: center → when it was last dark
        self._dark_seen: dict[str, int] = {}
        self._log: list[tuple[AlertRow, int, str, str, str]] = []
        self.last_round: RoundStats | None = None

    def reload(self) -> None:
        """Take the open alerts from the database (a new leader; a test)."""
        self._open = {a.fingerprint: a for a in self.state.open_alerts()}
        self._pending = {}
        self._epoch_ms = None
        self._round_no = 0

    # --- reading -----------------------------------------------------------------------------
    def open_alerts(self) -> list[AlertRow]:
        """Pending (in memory) and firing alerts."""
        return [*self._pending.values(), *self._open.values()]

    def on_delivered(self, _receiver: str, group: NotificationGroup) -> None:
        """The dispatcher delivered ``group``: remember its firing alerts were notified."""
        self._delivered.update(a.fingerprint for a in group.firing)

    # --- the round ---------------------------------------------------------------------------
    async def round(self, now_ms: int | None = None) -> RoundStats:
        started = time.perf_counter()
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        if self._epoch_ms is None:
            self._epoch_ms = now
        stats = RoundStats(now)
        stats.runs = await self.head.refresh(self.store, now)
        fleet = self._fleet(await self.store.agents(), now)
        changed = self.head.take_changed()
        full = self._round_no == 0
        self._round_no += 1
        seen: set[str] = set()
        for lr in self.rules.rules:
            kind = lr.rule.kind
            if kind == "center_unreachable":
                instances = self._dark_instances(fleet, now)
            elif kind == "agent_silent":
                instances = self._silent_instances(fleet)
            else:
                instances = self._expr_instances(lr, now, changed, full)
            stats.instances += len(instances)
            self._apply(lr, instances, fleet, now, seen)
            # the loop also serves ingest: let it in between rules (a round of a big fleet takes
            # seconds of CPU; no single rule holds the loop for long)
            await asyncio.sleep(0)
        self._resolve_vanished(seen, fleet, now)
        self._mute_all(fleet, now)
        self._mark_delivered()
        rows = list(self._open.values())
        if self._log or any(r.dirty for r in rows):
            self.state.save(rows, self._log)
        resolved = [entry[0] for entry in self._log if entry[2] == "resolved"]
        stats.changed = len(self._log)
        self._log = []
        self._open = {fp: r for fp, r in self._open.items() if r.state != "resolved"}
        self._notify(resolved)
        stats.pending = len(self._pending)
        stats.firing = len(self._open)
        stats.muted = sum(1 for r in self._open.values() if r.muted)
        stats.seconds = time.perf_counter() - started
        if self._metrics is not None:
            m = self._metrics
            m.duration.observe(stats.seconds)
            m.last.set(now / 1000)
            m.alerts.labels("pending", "").set(stats.pending)
            for muted in ("", "suppressed", "silenced", "maintenance"):
                m.alerts.labels("firing", muted).set(sum(1 for r in self._open.values() if r.muted == muted))
        self.last_round = stats
        return stats

    def _expr_instances(
        self, lr: LoadedRule, now: int, changed: Mapping[str, list[Series]], full: bool
    ) -> list[Instance]:
        """A rule's instances. A rule without ``by`` reads one series per instance, so after the first
        round only the series that changed (new points, a point leaving the window) and this round's
        slice are reduced again; a rule with ``by`` (few series: the probes') is reduced whole."""
        expr = lr.rule.expr
        assert expr is not None
        stale_ms = int((expr.stale_s or self.settings.stale_s) * 1000)
        want = self._want(lr)
        if full or expr.by is not None:
            found = evaluate(lr, self.head, now, stale_ms, want)
            self._instances[lr.name] = {i.key: i for i in found}
            return found
        cache = self._instances.setdefault(lr.name, {})
        part = self._round_no % SLICES
        among = {s.id: s for s in self.head.named(expr.metric) if s.id % SLICES == part}
        for s in changed.get(expr.metric, ()):
            among[s.id] = s
        for sid in among:
            cache.pop(sid, None)
        for i in evaluate(lr, self.head, now, stale_ms, want, among.values()):
            cache[i.key] = i
        return list(cache.values())

    def _fleet(self, agents: Iterable[AgentRecord], now: int) -> Fleet:
        limit = self.settings.silent_ms
        epoch = self._epoch_ms or now
        heard: dict[tuple[str, str], AgentRecord] = {}
        silent: set[tuple[str, str]] = set()
        per_center: dict[str, list[AgentRecord]] = {}
        for a in agents:
            if a.revoked or a.last_seen_ms is None:
                continue  # a revoked agent is gone; one never heard is not yet part of the fleet
            key = (a.center, a.host)
            heard[key] = a
            per_center.setdefault(a.center, []).append(a)
            if now - max(a.last_seen_ms, epoch) > limit:
                silent.add(key)
        dark = {c: group for c, group in per_center.items() if all((a.center, a.host) in silent for a in group)}
        # A center coming back: its agents return one by one as their links and spools catch up.
        # Those not back yet get a fresh silence period before they count as silent on their own.
        for center in self._dark_before.keys() - dark.keys():
            self._recovered[center] = now
        self._dark_before = dark
        for key in list(silent):
            back = self._recovered.get(key[0])
            if back is not None and now - back <= limit:
                silent.discard(key)
        return Fleet(heard, silent, dark)

    def _dark_instances(self, fleet: Fleet, now: int) -> list[Instance]:
        out = []
        for center, group in fleet.dark.items():
            hosts = frozenset((a.center, a.host) for a in group)
            out.append(Instance({"center": center}, float(len(group)), hosts))
        return out

    def _silent_instances(self, fleet: Fleet) -> list[Instance]:
        return [
            Instance({"center": c, "host": h}, 1.0, frozenset({(c, h)}))
            for (c, h) in sorted(fleet.silent)
            if c not in fleet.dark
        ]

    def _cause(self, center: str, now: int) -> str:
        """Why a center went dark, from the last data heard from it: power, uplink or unknown."""
        stale = now - int(self.settings.retention_s * 1000)

        def last_values(name: str) -> list[float]:
            out = []
            for s in self.head.named(name):
                if s.center == center:
                    p = s.last(now)
                    if p is not None and p[0] >= stale:
                        out.append(p[1])
            return out

        if any(v >= 1 for v in last_values("snmp_ups_on_battery")) or any(
            v == 0 for v in last_values("host_battery_power_plugged")
        ):
            return "power"
        if any(v >= 1 for v in last_values("center_network_state")):
            return "uplink"
        return "unknown"

    def _fields(self, lr: LoadedRule, labels: Mapping[str, str], value: float, now: int) -> dict[str, Any]:
        center = labels.get("center", "")
        fields: dict[str, Any] = dict(labels)
        fields.update(
            value=_fmt(value),
            value_pct=f"{value * 100:.0f}",
            value_ms=f"{value * 1000:.0f}",
            value_min=f"{value / 60:.0f}",
            value_mbps=_fmt(round(value / 1e6, 1)),
            center_name=self._center_names().get(center, center),
            rule=lr.name,
            severity=lr.rule.severity,
        )
        if lr.rule.kind == "center_unreachable":
            fields["agents"] = _fmt(value)
            cause = self._cause(center, now)
            fields["cause"] = {lang: t(f"alerting.cause.{cause}", lang) for lang in LANGS}
        return fields

    def _want(self, lr: LoadedRule) -> Callable[[float, Mapping[str, str]], bool]:
        """The threshold test, before any alert object exists: the value crosses the threshold, or
        sits between threshold and clear while its alert fires (hysteresis; rare, so only then is
        the fingerprint computed)."""
        expr = lr.rule.expr
        assert expr is not None
        op, threshold, clear = expr.op, expr.threshold, expr.clear
        extra = lr.rule.labels
        name = lr.name
        firing = self._open

        def want(value: float, labels: Mapping[str, str]) -> bool:
            if holds(op, value, threshold):
                return True
            if clear is None or not holds(op, value, clear):
                return False
            current = firing.get(fingerprint(name, {**labels, **extra}))
            return current is not None and current.state == "firing"

        return want

    def _active(self, lr: LoadedRule, inst: Instance, current: AlertRow | None) -> bool:
        expr = lr.rule.expr
        if expr is None:
            return True  # a topology instance exists only while its condition holds
        if holds(expr.op, inst.value, expr.threshold):
            return True
        return (
            current is not None
            and current.state == "firing"
            and expr.clear is not None
            and holds(expr.op, inst.value, expr.clear)
        )

    def _apply(self, lr: LoadedRule, instances: list[Instance], fleet: Fleet, now: int, seen: set[str]) -> None:
        rule = lr.rule
        for inst in instances:
            labels = {**inst.labels, **rule.labels}
            fp = fingerprint(lr.name, labels)
            current = self._open.get(fp) or self._pending.get(fp)
            if not self._active(lr, inst, current):
                continue  # not seen: resolved below unless frozen
            seen.add(fp)
            if current is None:
                current = AlertRow(
                    fingerprint=fp,
                    rule=lr.name,
                    center=labels.get("center", ""),
                    severity=rule.severity,
                    labels=labels,
                    state="pending",
                    value=inst.value,
                    active_ms=now,
                    hosts=inst.hosts,
                )
                self._pending[fp] = current
            current.value = inst.value
            if inst.hosts != current.hosts:
                current.hosts = inst.hosts
                current.dirty = True
            if current.state == "pending" and now - current.active_ms >= rule.for_s * 1000:
                current.state = "firing"
                current.firing_ms = now
                current.texts = render(lr, self._fields(lr, labels, inst.value, now))
                current.dirty = True
                del self._pending[fp]
                self._open[fp] = current
                self._log.append((current, now, "firing", "", _fmt(inst.value)))

    def _frozen(self, row: AlertRow, fleet: Fleet) -> bool:
        """Is the alert's data missing because its hosts are silent (then it keeps its state)?"""
        lr = self.rules.get(row.rule)
        if lr is None:
            return False
        kind = lr.rule.kind
        if kind == "center_unreachable":
            # resolved only once an agent of the center is heard after the alert began
            return not any(
                a.center == row.center and (a.last_seen_ms or 0) > row.active_ms for a in fleet.agents.values()
            )
        if kind == "agent_silent":
            host = (row.center, row.labels.get("host", ""))
            agent = fleet.agents.get(host)
            if agent is None:
                return False  # revoked or removed: nothing left to wait for
            return (agent.last_seen_ms or 0) <= row.active_ms or row.center in fleet.dark
        if row.center in fleet.dark:
            return True
        if bool(row.hosts) and all(h in fleet.silent for h in row.hosts):
            return True
        # after a restart nobody counts as silent for one silence period: an outage still open is
        # known by its own alert
        return self._outage_open(row)

    def _outage_open(self, row: AlertRow) -> bool:
        for other in self._open.values():
            if other.state != "firing" or other.center != row.center:
                continue
            kind = lr.rule.kind if (lr := self.rules.get(other.rule)) is not None else "expr"
            if kind == "center_unreachable":
                return True
            host = (other.center, other.labels.get("host", ""))
            if kind == "agent_silent" and row.hosts and all(h == host for h in row.hosts):
                return True
        return False

    def _resolve_vanished(self, seen: set[str], fleet: Fleet, now: int) -> None:
        for fp in [fp for fp in self._pending if fp not in seen]:
            row = self._pending[fp]
            if not self._frozen(row, fleet):
                del self._pending[fp]
        for fp, row in self._open.items():
            if fp in seen or self._frozen(row, fleet):
                continue
            row.state = "resolved"
            row.resolved_ms = now
            row.dirty = True
            note = "" if self.rules.get(row.rule) is not None else "rule removed"
            self._log.append((row, now, "resolved", "", note))

    def _hold_ms(self, lr: LoadedRule | None) -> int:
        """How long after its cause ended a child alert of ``lr`` is still suppressed: the window
        its value is reduced over, plus one agent interval; 0 for a rule on the latest value."""
        expr = lr.rule.expr if lr is not None else None
        if expr is None or expr.reduce == "last":
            return 0
        return int((expr.window_s + self.settings.agent_interval_s) * 1000)

    def _remember_causes(self, active: list[AlertRow], fleet: Fleet, now: int) -> None:
        relations = {(p.rule, p.equal) for lr in self.rules.rules for p in lr.rule.parents}
        for r in active:
            for rule, equal in relations:
                if rule == r.rule:
                    self._parent_seen[(rule, equal, tuple(r.labels.get(k, "") for k in equal))] = now
        for center in fleet.dark:
            self._dark_seen[center] = now
        horizon = now - max(self.settings.silent_ms, *(self._hold_ms(lr) for lr in self.rules.rules))
        self._parent_seen = {k: ms for k, ms in self._parent_seen.items() if ms >= horizon}
        self._dark_seen = {k: ms for k, ms in self._dark_seen.items() if ms >= horizon}

    def _mute_all(self, fleet: Fleet, now: int) -> None:
        firing = [r for r in self._open.values() if r.state == "firing"]
        active = [*firing, *self._pending.values()]
        self._remember_causes(active, fleet, now)
        failing_devices: dict[tuple[str, str], str] = {}
        for r in active:
            lr = self.rules.get(r.rule)
            if lr is not None and lr.rule.suppresses_below and r.labels.get("device"):
                failing_devices[(r.center, r.labels["device"])] = r.rule
        silences = self.state.silences(since_ms=now)
        windows = self.state.windows()
        for row in firing:
            muted, by = self._mute_of(row, fleet, failing_devices, now)
            if not muted:
                silence = silenced_by(silences, {**row.labels, "alertname": row.rule}, now)
                if silence is not None:
                    muted, by = "silenced", f"silence:{silence.id}"
                else:
                    window = in_maintenance(windows, row.center, now)
                    if window is not None:
                        muted, by = "maintenance", f"window:{window.id}"
            if (muted, by) != (row.muted, row.muted_by):
                row.muted, row.muted_by = muted, by
                row.dirty = True
                self._log.append((row, now, f"muted:{muted}" if muted else "unmuted", "", by))

    def _mute_of(
        self,
        row: AlertRow,
        fleet: Fleet,
        failing_devices: dict[tuple[str, str], str],
        now: int,
    ) -> tuple[str, str]:
        lr = self.rules.get(row.rule)
        kind = lr.rule.kind if lr is not None else "expr"
        if kind == "center_unreachable":
            return "", ""
        hold = self._hold_ms(lr)
        dark_at = self._dark_seen.get(row.center)
        if row.center in fleet.dark or (dark_at is not None and now - dark_at <= max(hold, self.settings.silent_ms)):
            return "suppressed", f"center_unreachable:{row.center}"
        if kind == "agent_silent":
            return "", ""
        silent = [h for h in row.hosts if h in fleet.silent]
        if row.hosts and len(silent) == len(row.hosts):
            return "suppressed", f"agent_silent:{silent[0][1]}"
        if lr is not None:
            for parent in lr.rule.parents:
                values = tuple(row.labels.get(k, "") for k in parent.equal)
                held_at = self._parent_seen.get((parent.rule, parent.equal, values))
                if held_at is not None and now - held_at <= hold:  # held_at == now: the parent holds now
                    return "suppressed", f"{parent.rule}:" + ",".join(values)
        device = row.labels.get("device")
        if device and self.inventory is not None:
            center = self.inventory.centers.get(row.center)
            if center is not None and center.has_device(device):
                for above in center.ancestors(device):
                    rule = failing_devices.get((row.center, above.name))
                    if rule is not None:
                        return "suppressed", f"{rule}:{above.name}"
        return "", ""

    def _mark_delivered(self) -> None:
        if not self._delivered:
            return
        delivered, self._delivered = self._delivered, set()
        for fp in delivered:
            row = self._open.get(fp)
            if row is not None and not row.notified:
                row.notified = True
                row.dirty = True

    def view(self, row: AlertRow) -> AlertView:
        url = f"{self.settings.public_url.rstrip('/')}/alerts/{row.id}" if self.settings.public_url and row.id else ""
        return AlertView(
            fingerprint=row.fingerprint,
            status="resolved" if row.state == "resolved" else "firing",
            rule=row.rule,
            severity=row.severity,  # type: ignore[arg-type]
            labels={**row.labels, "alertname": row.rule, "severity": row.severity},
            texts=row.texts,
            starts_at_ms=row.firing_ms or row.active_ms,
            ends_at_ms=row.resolved_ms,
            url=url,
        )

    def _notify(self, resolved: list[AlertRow]) -> None:
        if self.dispatcher is None:
            return
        views = [self.view(r) for r in self._open.values() if r.state == "firing" and not r.muted]
        views += [self.view(r) for r in resolved if r.notified]
        self.dispatcher.submit(views)

    # --- the loop ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, lock_path: Path | None = None) -> None:
        """Evaluate every ``eval_interval_s`` until ``stop`` is set, while holding the leader lock."""
        interval = self.settings.eval_interval_s
        lock = _LeaderLock(lock_path) if lock_path is not None else None
        leading = lock is None
        try:
            while not stop.is_set():
                # the first round one period after start: the app is up, agents are reconnecting
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
                if stop.is_set():
                    break
                if lock is not None and not leading and lock.acquire():
                    leading = True
                    self.reload()  # the previous leader's state, as it left it
                if leading:
                    try:
                        await self.round()
                    except Exception:  # a failing round is logged and counted; the next one tries again
                        log.exception("alert evaluation round failed")
                        if self._metrics is not None:
                            self._metrics.failures.inc()
        finally:
            if lock is not None:
                lock.release()


@dataclass
class _LeaderLock:
    path: Path
    _fd: int | None = field(default=None, init=False)

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
