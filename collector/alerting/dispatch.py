"""Group alerts and hand them to the notifiers, as Alertmanager does, without ever blocking the evaluator.

``submit(views)`` is synchronous and cheap: it records the evaluator's latest state and wakes a
background task. Each call is the **complete** set of firing alerts to notify (firing, not muted):
a firing alert missing from a later call is no longer notified (it was muted, or went away) and
no resolution is sent for it unless one is submitted. Resolved alerts are kept until sent, so
one call suffices; a resolution is sent only to a receiver that was sent the alert firing.

Per receiver (its ``match`` decides which alerts it gets), alerts are grouped by the route's
``group_by`` labels. A group is notified

- first ``group_wait_s`` after it appeared;
- after a change (an alert added, gone or resolved) no sooner than ``group_interval_s`` after
  its last flush;
- unchanged and firing, again ``repeat_interval_s`` after its last notification;

and forgotten once nothing is left to say. A resolved alert is sent once, then dropped. A group
whose notified alerts are all muted is kept (with nothing to send): when an alert comes back
unmuted it is not news, and when it resolves its resolution is sent.

A flush tries up to ``retry.attempts`` times with exponential backoff and jitter; each attempt
has the receiver's ``timeout_s`` as deadline. A flush that fails is tried again no sooner than
``max(group_interval_s, retry.max_backoff_s)`` later, with the latest state. Flushes run as their
own tasks (at most ``max_parallel`` per receiver): a stuck receiver delays nobody else.

Metrics (on the registry given): ``centerwatch_notifications_total{receiver,result}`` (one per
flush: ok, failed, rejected), ``centerwatch_notification_attempts_total{receiver,result}`` (ok,
error, rejected, timeout), ``centerwatch_notification_latency_seconds{receiver}`` (flush start to
outcome, retries included), ``centerwatch_notification_queue_groups`` (groups waiting to be
notified or being notified) and ``centerwatch_notifier_last_success_timestamp_seconds{receiver}``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from collector.alerting.model import AlertView, NotificationGroup
from collector.alerting.notify.base import Notifier, NotifyError
from collector.alerting.receivers import AlertingConfig, Receiver, Retry

log = logging.getLogger("centerwatch.notify")

Outcome = Literal["ok", "failed", "rejected"]
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Clock(Protocol):
    """Time as the dispatcher sees it; tests pass a fake one."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return float(time.time())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def group_of(view: AlertView, group_by: Iterable[str]) -> tuple[str, dict[str, str]]:
    """The group key (``center=hai-chau,alertname=uplink_down``) and labels of an alert."""
    labels = {name: view.labels[name] for name in group_by if view.labels.get(name)}
    return (",".join(f"{k}={v}" for k, v in labels.items()) or "(all)"), labels


def backoff(attempt: int, retry: Retry, rng: random.Random) -> float:
    """Delay after failed attempt ``attempt`` (0-based): doubling from the initial delay, capped,
    with "equal jitter" (between half and all of it) so receivers are not hit in lockstep."""
    ceiling = min(retry.max_backoff_s, retry.initial_backoff_s * 2.0**attempt)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(eq=False)
class _Group:
    key: str
    labels: dict[str, str]
    created_at: float
    alerts: dict[str, AlertView] = field(default_factory=dict)
    #: firing fingerprints of the last notification delivered
    sent_firing: frozenset[str] = frozenset()
    #: fingerprints delivered while firing whose resolution is owed
    owed: set[str] = field(default_factory=set)
    last_flush_at: float | None = None
    last_sent_at: float | None = None
    retry_at: float | None = None  # set while the last flush failed
    flushing: bool = False

    def firing(self) -> frozenset[str]:
        return frozenset(fp for fp, v in self.alerts.items() if v.status == "firing")

    def owed_resolved(self) -> list[AlertView]:
        return [v for fp, v in self.alerts.items() if v.status == "resolved" and fp in self.owed]

    def has_news(self) -> bool:
        return self.firing() != self.sent_firing or bool(self.owed_resolved())

    def empty(self) -> bool:
        return not self.firing() and not self.owed_resolved()

    def pending(self) -> bool:
        return self.flushing or (not self.empty() and (self.retry_at is not None or self.has_news()))

    def due(self, receiver: Receiver, retry_floor: float) -> float | None:
        if self.flushing or self.empty():
            return None
        timing = receiver.timing
        if self.last_flush_at is None:
            return self.created_at + timing.group_wait_s
        if self.retry_at is not None:
            return self.retry_at
        if self.has_news():
            return self.last_flush_at + timing.group_interval_s
        assert self.last_sent_at is not None
        return self.last_sent_at + timing.repeat_interval_s

    def take(self) -> NotificationGroup:
        """What to send now: the firing alerts, then the resolved ones owed; resolutions of
        alerts this receiver never heard of are dropped here."""
        for fp, v in list(self.alerts.items()):
            if v.status == "resolved" and fp not in self.owed:
                del self.alerts[fp]
        firing = sorted((v for v in self.alerts.values() if v.status == "firing"), key=_order)
        resolved = sorted(self.owed_resolved(), key=_order)
        return NotificationGroup(key=self.key, group_labels=dict(self.labels), alerts=(*firing, *resolved))

    def delivered(self, sent: NotificationGroup, at: float) -> None:
        self.sent_firing = frozenset(v.fingerprint for v in sent.firing)
        for v in sent.resolved:
            if self.alerts.get(v.fingerprint) is v:
                del self.alerts[v.fingerprint]
        # owed: every alert this receiver was told is firing and not yet told resolved — a muted
        # one included, in a group with others too: its resolution is still sent when it comes
        self.owed = (self.owed | self.sent_firing) - {v.fingerprint for v in sent.resolved}
        self.last_sent_at = at
        self.retry_at = None


def _order(view: AlertView) -> tuple[int, str]:
    return view.starts_at_ms, view.fingerprint


class _ReceiverState:
    def __init__(self, receiver: Receiver, notifier: Notifier, metrics: _Metrics, max_parallel: int) -> None:
        self.receiver = receiver
        self.notifier = notifier
        self.groups: dict[str, _Group] = {}
        self.slots = asyncio.Semaphore(max_parallel)
        name = receiver.name
        self.flushes = {r: metrics.notifications.labels(receiver=name, result=r) for r in ("ok", "failed", "rejected")}
        self.attempts = {
            r: metrics.attempts.labels(receiver=name, result=r) for r in ("ok", "error", "rejected", "timeout")
        }
        self.latency = metrics.latency.labels(receiver=name)
        self.last_success = metrics.last_success.labels(receiver=name)


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "centerwatch_notifications_total",
            "Notifications (one per group flush) by receiver and outcome: ok, failed (retries used up), rejected",
            ["receiver", "result"],
            registry=registry,
        )
        self.attempts = Counter(
            "centerwatch_notification_attempts_total",
            "Delivery attempts by receiver and outcome: ok, error (retryable), rejected, timeout",
            ["receiver", "result"],
            registry=registry,
        )
        self.latency = Histogram(
            "centerwatch_notification_latency_seconds",
            "Time from the start of a group flush to its outcome, retries included",
            ["receiver"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue = Gauge(
            "centerwatch_notification_queue_groups",
            "Alert groups waiting to be notified or being notified, all receivers",
            registry=registry,
        )
        self.last_success = Gauge(
            "centerwatch_notifier_last_success_timestamp_seconds",
            "Unix time of the receiver's last delivered notification",
            ["receiver"],
            registry=registry,
        )


class Dispatcher:
    def __init__(
        self,
        config: AlertingConfig,
        notifiers: Mapping[str, Notifier],
        registry: CollectorRegistry,
        clock: Clock | None = None,
        *,
        rng: random.Random | None = None,
        max_parallel: int = 4,
        stop_timeout_s: float = 10.0,
        on_delivered: Callable[[str, NotificationGroup], None] | None = None,
    ) -> None:
        missing = [r.name for r in config.receivers if r.name not in notifiers]
        if missing:
            raise ValueError(f"no notifier for receiver(s) {', '.join(missing)}")
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._stop_timeout_s = stop_timeout_s
        self._on_delivered = on_delivered
        self._metrics = _Metrics(registry)
        self._receivers = [_ReceiverState(r, notifiers[r.name], self._metrics, max_parallel) for r in config.receivers]
        self._lock = threading.Lock()
        self._in_firing: dict[str, AlertView] = {}
        self._in_resolved: dict[str, AlertView] = {}
        self._has_input = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._stopped = False

    # --- the evaluator's side ---------------------------------------------------------------

    def submit(self, views: Iterable[AlertView]) -> None:
        """Record the latest state (see the module docstring); never waits. Thread-safe."""
        firing: dict[str, AlertView] = {}
        resolved: dict[str, AlertView] = {}
        for view in views:
            (firing if view.status == "firing" else resolved)[view.fingerprint] = view
        with self._lock:
            self._in_firing = firing
            for fp in firing:
                self._in_resolved.pop(fp, None)
            for fp, view in resolved.items():
                if fp not in firing:
                    self._in_resolved[fp] = view
            self._has_input = True
        self._poke()

    def _poke(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    # --- life -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task; call from the running event loop (the app's lifespan)."""
        if self._task is not None:
            raise RuntimeError("dispatcher already started")
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="centerwatch-notify")

    async def stop(self) -> None:
        """Stop scheduling, send the resolutions still owed (and wait for flushes under way), at
        most ``stop_timeout_s``; then close the notifiers."""
        if self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._apply_input()
            for state in self._receivers:
                for group in state.groups.values():
                    if not group.flushing and group.owed_resolved():
                        self._spawn(state, group)
            pending = set(self._flushes)
            if pending:
                _, late = await asyncio.wait(pending, timeout=self._stop_timeout_s)
                for task in late:
                    task.cancel()
                if late:
                    log.warning("notifications: %d flush(es) still running at stop were abandoned", len(late))
                    await asyncio.gather(*late, return_exceptions=True)
        for state in self._receivers:
            try:
                await state.notifier.aclose()
            except Exception:
                log.exception("receiver %s: error while closing the notifier", state.receiver.name)
        self._update_queue()

    # --- the background task --------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                delay = self._schedule()
            except Exception:
                log.exception("notifications: scheduling failed; trying again in 1 s")
                delay = 1.0
            await self._wait(delay)

    def _schedule(self) -> float:
        """Apply the latest input, start the flushes due; return the delay to the next one."""
        self._apply_input()
        now = self._clock.monotonic()
        floor = self._config.route.retry.max_backoff_s
        next_due = math.inf
        for state in self._receivers:
            for key, group in list(state.groups.items()):
                if not group.flushing and group.empty() and not group.owed:
                    # a group whose alerts are all muted is held: it remembers what the receiver
                    # was told, so the alert coming back is not news and its resolution is owed
                    del state.groups[key]
                    continue
                due = group.due(state.receiver, floor)
                if due is None:
                    continue
                if due <= now:
                    self._spawn(state, group)
                else:
                    next_due = min(next_due, due)
        self._update_queue()
        return next_due - now

    async def _wait(self, delay: float) -> None:
        waiter: asyncio.Future[object] = asyncio.ensure_future(self._wake.wait())
        tasks = {waiter}
        if math.isfinite(delay):
            tasks.add(asyncio.ensure_future(self._clock.sleep(max(0.0, delay))))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()

    def _apply_input(self) -> None:
        with self._lock:
            if not self._has_input:
                return
            firing, resolved = self._in_firing, self._in_resolved
            self._in_resolved = {}
            self._has_input = False
        now = self._clock.monotonic()
        group_by = self._config.route.group_by
        for state in self._receivers:
            wanted = {fp: v for fp, v in firing.items() if state.receiver.wants(v)}
            for group in state.groups.values():
                for fp, view in list(group.alerts.items()):
                    if view.status == "firing" and fp not in wanted:
                        del group.alerts[fp]  # muted or gone: no longer notified
            for fp, view in wanted.items():
                key, labels = group_of(view, group_by)
                held = state.groups.get(key)
                if held is None:
                    held = state.groups[key] = _Group(key, labels, created_at=now)
                held.alerts[fp] = view
            for fp, view in resolved.items():
                if not state.receiver.wants(view):
                    continue
                known = state.groups.get(group_of(view, group_by)[0])
                if known is not None and (fp in known.alerts or fp in known.owed):
                    known.alerts[fp] = view

    def _update_queue(self) -> None:
        self._metrics.queue.set(sum(1 for s in self._receivers for g in s.groups.values() if g.pending()))

    # --- flushing -------------------------------------------------------------------------

    def _spawn(self, state: _ReceiverState, group: _Group) -> None:
        group.flushing = True
        task = asyncio.create_task(self._flush(state, group), name=f"notify-{state.receiver.name}-{group.key}")
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, state: _ReceiverState, group: _Group) -> None:
        try:
            async with state.slots:
                sent = group.take()
                if not sent.alerts:
                    return
                started = self._clock.monotonic()
                group.last_flush_at = started
                outcome = await self._deliver(state, sent)
                state.flushes[outcome].inc()
                state.latency.observe(max(0.0, self._clock.monotonic() - started))
                if outcome == "ok":
                    group.delivered(sent, started)
                    state.last_success.set(self._clock.time())
                    self._delivered(state.receiver.name, sent)
                else:
                    retry = self._config.route.retry
                    wait = max(state.receiver.timing.group_interval_s, retry.max_backoff_s)
                    group.retry_at = self._clock.monotonic() + wait
                    log.error(
                        "receiver %s: notification for group %s %s; next try in %.0f s",
                        state.receiver.name,
                        group.key,
                        "refused" if outcome == "rejected" else f"not delivered after {retry.attempts} attempt(s)",
                        wait,
                    )
        except Exception:
            log.exception("receiver %s: flush of group %s failed unexpectedly", state.receiver.name, group.key)
            group.retry_at = self._clock.monotonic() + self._config.route.retry.max_backoff_s
        finally:
            group.flushing = False
            if not self._stopped:
                self._poke()

    def _delivered(self, receiver: str, sent: NotificationGroup) -> None:
        if self._on_delivered is None:
            return
        try:
            self._on_delivered(receiver, sent)
        except Exception:
            log.exception("receiver %s: on_delivered callback failed", receiver)

    async def _deliver(self, state: _ReceiverState, group: NotificationGroup) -> Outcome:
        name = state.receiver.name
        retry = self._config.route.retry
        deadline = state.receiver.spec.timeout_s
        for attempt in range(retry.attempts):
            try:
                async with asyncio.timeout(deadline):
                    await state.notifier.send(group)
            except NotifyError as exc:
                if not exc.retryable:
                    state.attempts["rejected"].inc()
                    log.error("%s (group %s; not retried)", exc, group.key)
                    return "rejected"
                state.attempts["error"].inc()
                log.warning("%s (group %s, attempt %d of %d)", exc, group.key, attempt + 1, retry.attempts)
            except TimeoutError:
                state.attempts["timeout"].inc()
                log.warning(
                    "receiver %s: no answer within %.1f s (group %s, attempt %d of %d)",
                    name,
                    deadline,
                    group.key,
                    attempt + 1,
                    retry.attempts,
                )
            except Exception:
                state.attempts["error"].inc()
                log.exception("receiver %s: notifier failed unexpectedly (group %s)", name, group.key)
            else:
                state.attempts["ok"].inc()
                return "ok"
            if attempt + 1 < retry.attempts:
                await self._clock.sleep(backoff(attempt, retry, self._rng))
        return "failed"

    # --- for tests and the status page ----------------------------------------------------

    def groups(self, receiver: str) -> dict[str, tuple[str, ...]]:
        """The groups a receiver holds: key → fingerprints (firing and owed resolved)."""
        for state in self._receivers:
            if state.receiver.name == receiver:
                return {k: tuple(sorted(g.alerts)) for k, g in state.groups.items()}
        raise KeyError(receiver)
