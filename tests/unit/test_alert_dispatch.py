"""The dispatcher's grouping and timing (Alertmanager's semantics), retries, isolation and metrics.

Deterministic: a fake clock drives every wait (group timers and backoff); fake notifiers record
what they were given.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from collector.alerting.dispatch import Dispatcher, backoff, group_of
from collector.alerting.model import AlertView, NotificationGroup, fingerprint
from collector.alerting.notify.base import NotifyError
from collector.alerting.receivers import AlertingConfig, Retry, parse_alerting

WALL0 = 1_750_000_000.0


async def settle(rounds: int = 200) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return WALL0 + self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        self.slept.append(seconds)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            if fut.done():
                continue
            self.now = max(self.now, deadline)
            fut.set_result(None)
            await settle()
        self.now = target
        await settle()


class FakeNotifier:
    def __init__(self, name: str, clock: FakeClock) -> None:
        self._name = name
        self.clock = clock
        self.sent: list[tuple[float, NotificationGroup]] = []
        self.calls = 0
        self.failures: list[Exception] = []  # raised one per call, in order, before succeeding
        self.block: asyncio.Event | None = None
        self.closed = False

    @property
    def name(self) -> str:
        return self._name

    async def send(self, group: NotificationGroup) -> None:
        self.calls += 1
        if self.block is not None:
            await self.block.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((self.clock.now, group))

    async def aclose(self) -> None:
        self.closed = True

    def fingerprints(self, index: int = -1) -> tuple[list[str], list[str]]:
        group = self.sent[index][1]
        return [v.fingerprint for v in group.firing], [v.fingerprint for v in group.resolved]


CONFIG = """
route:
  group_by: [center, alertname]
  group_wait_s: 30
  group_interval_s: 300
  repeat_interval_s: 14400
  retry: {attempts: 4, initial_backoff_s: 1, max_backoff_s: 8}
receivers:
  - {name: hook, type: webhook, url: "http://127.0.0.1:9/hook", timeout_s: 5}
"""


def config(text: str = CONFIG) -> AlertingConfig:
    return parse_alerting(text, "alerting.yaml", env={})


def alert(
    center: str = "hai-chau",
    rule: str = "uplink_down",
    status: str = "firing",
    severity: str = "critical",
    start_ms: int = 1_000,
    **extra: str,
) -> AlertView:
    labels = {"alertname": rule, "center": center, "severity": severity, **extra}
    return AlertView(
        fingerprint=fingerprint(rule, labels),
        status=status,  # type: ignore[arg-type]
        rule=rule,
        severity=severity,  # type: ignore[arg-type]
        labels=labels,
        texts={"vi": {"summary": f"Mất kết nối — {center}"}, "en": {"summary": f"Uplink down — {center}"}},
        starts_at_ms=start_ms,
        ends_at_ms=None if status == "firing" else start_ms + 60_000,
    )


def resolved(view: AlertView) -> AlertView:
    return AlertView(
        fingerprint=view.fingerprint,
        status="resolved",
        rule=view.rule,
        severity=view.severity,
        labels=view.labels,
        texts=view.texts,
        starts_at_ms=view.starts_at_ms,
        ends_at_ms=view.starts_at_ms + 60_000,
    )


class Rig:
    def __init__(self, cfg: AlertingConfig, **kwargs: Any) -> None:
        self.clock = FakeClock()
        self.registry = CollectorRegistry()
        self.notifiers = {r.name: FakeNotifier(r.name, self.clock) for r in cfg.receivers}
        self.dispatcher = Dispatcher(
            cfg, self.notifiers, self.registry, self.clock, rng=random.Random(7), stop_timeout_s=2.0, **kwargs
        )

    @property
    def hook(self) -> FakeNotifier:
        return self.notifiers["hook"]

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def at(self, t: float) -> None:
        assert t >= self.clock.now
        await self.clock.advance(t - self.clock.now)


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(cfg: AlertingConfig | None = None, **kwargs: Any) -> Rig:
        rig = Rig(cfg or config(), **kwargs)
        rig.dispatcher.start()
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        for notifier in rig.notifiers.values():
            if notifier.block is not None:
                notifier.block.set()
        await rig.dispatcher.stop()


@pytest.fixture
async def rig(rig_factory: Callable[..., Rig]) -> Rig:
    return rig_factory()


async def test_first_notification_waits_group_wait_and_batches_the_group(rig: Rig) -> None:
    a, b = alert(uplink="internet"), alert(uplink="wan")
    rig.dispatcher.submit([a])
    await rig.at(10)
    rig.dispatcher.submit([a, b])
    await rig.at(29.9)
    assert rig.hook.sent == []
    await rig.at(30)
    assert len(rig.hook.sent) == 1
    t, group = rig.hook.sent[0]
    assert t == 30
    assert group.key == "center=hai-chau,alertname=uplink_down"
    assert group.group_labels == {"center": "hai-chau", "alertname": "uplink_down"}
    assert {v.fingerprint for v in group.firing} == {a.fingerprint, b.fingerprint}
    assert group.resolved == ()


async def test_groups_by_center_and_rule(rig: Rig) -> None:
    rig.dispatcher.submit([alert("hai-chau"), alert("hoa-khanh"), alert("hai-chau", rule="dns_failed")])
    await rig.at(30)
    keys = sorted(g.key for _, g in rig.hook.sent)
    assert keys == [
        "center=hai-chau,alertname=dns_failed",
        "center=hai-chau,alertname=uplink_down",
        "center=hoa-khanh,alertname=uplink_down",
    ]


async def test_a_change_waits_group_interval_after_the_last_notification(rig: Rig) -> None:
    a, b = alert(uplink="internet"), alert(uplink="wan")
    rig.dispatcher.submit([a])
    await rig.at(30)
    rig.dispatcher.submit([a, b])
    await rig.at(329)
    assert len(rig.hook.sent) == 1
    await rig.at(330)
    assert len(rig.hook.sent) == 2
    assert sorted(rig.hook.fingerprints()[0]) == sorted([a.fingerprint, b.fingerprint])


async def test_an_unchanged_firing_group_repeats_every_repeat_interval(rig: Rig) -> None:
    a = alert()
    rig.dispatcher.submit([a])
    for t in (30, 300, 600, 14_000):
        await rig.at(t)
        rig.dispatcher.submit([a])  # the evaluator resubmits every round: no change
    assert [t for t, _ in rig.hook.sent] == [30]
    await rig.at(30 + 14_400)
    await rig.at(30 + 2 * 14_400)
    assert [t for t, _ in rig.hook.sent] == [30, 14_430, 28_830]


async def test_resolved_is_sent_once_then_the_group_is_forgotten(rig: Rig) -> None:
    a = alert()
    rig.dispatcher.submit([a])
    await rig.at(30)
    rig.dispatcher.submit([resolved(a)])
    await rig.at(100)
    rig.dispatcher.submit([])  # a resolved alert need be submitted once
    await rig.at(329)
    assert len(rig.hook.sent) == 1
    await rig.at(330)
    assert len(rig.hook.sent) == 2
    assert rig.hook.fingerprints() == ([], [a.fingerprint])
    assert rig.dispatcher.groups("hook") == {}
    rig.dispatcher.submit([resolved(a)])  # resubmitted: already sent, nothing owed
    await rig.at(30 + 3 * 14_400)
    assert len(rig.hook.sent) == 2


async def test_resolved_before_the_first_notification_is_never_sent(rig: Rig) -> None:
    a = alert()
    rig.dispatcher.submit([a])
    await rig.at(10)
    rig.dispatcher.submit([resolved(a)])
    await rig.at(1000)
    assert rig.hook.sent == []
    assert rig.dispatcher.groups("hook") == {}


async def test_resolution_and_new_alert_in_one_flush(rig: Rig) -> None:
    a, b = alert(uplink="internet"), alert(uplink="wan")
    rig.dispatcher.submit([a])
    await rig.at(30)
    rig.dispatcher.submit([b, resolved(a)])
    await rig.at(330)
    assert rig.hook.fingerprints() == ([b.fingerprint], [a.fingerprint])
    group = rig.hook.sent[-1][1]
    assert [v.status for v in group.alerts] == ["firing", "resolved"]
    await rig.at(330 + 14_400)
    assert rig.hook.fingerprints() == ([b.fingerprint], [])  # the resolution is not repeated


async def test_an_alert_that_disappears_is_no_longer_notified(rig: Rig) -> None:
    a, b = alert(uplink="internet"), alert(uplink="wan")
    rig.dispatcher.submit([a, b])
    await rig.at(30)
    rig.dispatcher.submit([a])  # b muted (silence, maintenance, suppressed)
    await rig.at(330)
    assert rig.hook.fingerprints() == ([a.fingerprint], [])
    rig.dispatcher.submit([])  # a muted too: nothing left to say, no notification
    await rig.at(1000)
    assert len(rig.hook.sent) == 2
    assert rig.dispatcher.groups("hook") == {"center=hai-chau,alertname=uplink_down": ()}  # held for a


async def test_a_muted_alert_coming_back_is_not_news_and_its_resolution_is_sent(rig: Rig) -> None:
    # Found in the lab (test_lab_alerts): uplink_down notified, then suppressed while its center was
    # dark, came back unmuted and was notified firing a second time; had it resolved while muted,
    # its resolution would have been dropped with the forgotten group.
    a = alert()
    rig.dispatcher.submit([a])
    await rig.at(30)
    rig.dispatcher.submit([])  # suppressed: its center went dark
    await rig.at(400)
    rig.dispatcher.submit([a])  # the center is back, the uplink still down
    await rig.at(800)
    assert rig.hook.fingerprints() == ([a.fingerprint], [])
    assert len(rig.hook.sent) == 1
    rig.dispatcher.submit([])  # suppressed again, and it resolves meanwhile
    await rig.at(900)
    rig.dispatcher.submit([resolved(a)])
    await rig.at(1200)
    assert len(rig.hook.sent) == 2
    assert rig.hook.fingerprints() == ([], [a.fingerprint])
    assert rig.dispatcher.groups("hook") == {}


async def test_a_refiring_alert_starts_a_new_group_wait(rig: Rig) -> None:
    a = alert()
    rig.dispatcher.submit([a])
    await rig.at(30)
    rig.dispatcher.submit([resolved(a)])
    await rig.at(330)
    rig.dispatcher.submit([a])
    await rig.at(359)
    assert len(rig.hook.sent) == 2
    await rig.at(360)
    assert len(rig.hook.sent) == 3
    assert rig.hook.fingerprints() == ([a.fingerprint], [])


async def test_retries_with_backoff_then_delivers_once(rig: Rig) -> None:
    rig.hook.failures = [
        NotifyError("hook", "HTTP 503", retryable=True, status=503),
        NotifyError("hook", "connection refused", retryable=True),
    ]
    rig.dispatcher.submit([alert()])
    await rig.at(60)
    assert rig.hook.calls == 3
    assert len(rig.hook.sent) == 1
    # two backoffs (1 s then 2 s ceilings, jittered), drawn from the dispatcher's seeded generator
    rng = random.Random(7)
    retry = config().route.retry
    first, second = backoff(0, retry, rng), backoff(1, retry, rng)
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0
    assert first in rig.clock.slept and second in rig.clock.slept
    assert rig.hook.sent[0][0] == pytest.approx(30 + first + second)
    assert rig.metric("centerwatch_notification_attempts_total", receiver="hook", result="error") == 2
    assert rig.metric("centerwatch_notification_attempts_total", receiver="hook", result="ok") == 1
    assert rig.metric("centerwatch_notifications_total", receiver="hook", result="ok") == 1
    assert rig.metric("centerwatch_notifications_total", receiver="hook", result="failed") == 0
    latency = rig.metric("centerwatch_notification_latency_seconds_sum", receiver="hook")
    assert latency == pytest.approx(rig.hook.sent[0][0] - 30)
    assert rig.metric("centerwatch_notifier_last_success_timestamp_seconds", receiver="hook") == pytest.approx(
        WALL0 + rig.hook.sent[0][0]
    )


async def test_attempts_are_bounded_and_the_next_flush_carries_the_latest_state(rig: Rig) -> None:
    a, b = alert(uplink="internet"), alert(uplink="wan")
    rig.hook.failures = [NotifyError("hook", "HTTP 503", retryable=True, status=503) for _ in range(4)]
    rig.dispatcher.submit([a])
    await rig.at(100)
    assert rig.hook.calls == 4  # retry.attempts
    assert rig.hook.sent == []
    assert rig.metric("centerwatch_notifications_total", receiver="hook", result="failed") == 1
    assert rig.metric("centerwatch_notification_queue_groups") == 1
    rig.dispatcher.submit([a, b])
    await rig.at(1000)  # failed near t=37: tried again max(group_interval 300, max_backoff 8) later
    assert rig.hook.calls == 5
    assert 300 < rig.hook.sent[0][0] < 350
    assert sorted(rig.hook.fingerprints()[0]) == sorted([a.fingerprint, b.fingerprint])
    assert rig.metric("centerwatch_notification_queue_groups") == 0


async def test_a_refusal_is_not_retried(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.hook.failures = [NotifyError("hook", "http://127.0.0.1:9: HTTP 404", retryable=False, status=404)]
    rig.dispatcher.submit([alert()])
    await rig.at(100)
    assert rig.hook.calls == 1
    assert rig.metric("centerwatch_notification_attempts_total", receiver="hook", result="rejected") == 1
    assert rig.metric("centerwatch_notifications_total", receiver="hook", result="rejected") == 1
    assert any("receiver hook" in r.getMessage() and "HTTP 404" in r.getMessage() for r in caplog.records)
    await rig.at(400)
    assert len(rig.hook.sent) == 1  # tried again at the next interval, then delivered


async def test_a_stuck_receiver_delays_no_other_and_never_blocks_submit(rig_factory: Callable[..., Rig]) -> None:
    cfg = config(CONFIG + '  - {name: slow, type: webhook, url: "http://127.0.0.1:9/slow", timeout_s: 300}\n')
    rig = rig_factory(cfg)
    slow = rig.notifiers["slow"]
    slow.block = asyncio.Event()
    rig.dispatcher.submit([alert("hai-chau")])
    await rig.at(30)
    assert [t for t, _ in rig.hook.sent] == [30]
    assert slow.calls == 1 and slow.sent == []
    for t in (40, 330, 360):
        rig.dispatcher.submit([alert("hai-chau"), alert("hoa-khanh")])  # returns at once
        await rig.at(t)
    assert [g.key.split(",")[0] for _, g in rig.hook.sent] == ["center=hai-chau", "center=hoa-khanh"]
    assert slow.calls == 2  # the other group of the stuck receiver got its own flush
    slow.block.set()
    await rig.at(361)
    assert len(slow.sent) == 2


async def test_the_attempt_deadline_is_the_dispatchers(rig_factory: Callable[..., Rig]) -> None:
    text = CONFIG.replace("attempts: 4", "attempts: 1").replace("timeout_s: 5", "timeout_s: 0.05")
    rig = rig_factory(config(text))
    rig.hook.block = asyncio.Event()  # never answers
    rig.dispatcher.submit([alert()])
    await rig.at(30)
    for _ in range(100):  # the deadline runs on the event loop's real time
        if rig.metric("centerwatch_notifications_total", receiver="hook", result="failed"):
            break
        await asyncio.sleep(0.01)
    assert rig.metric("centerwatch_notification_attempts_total", receiver="hook", result="timeout") == 1
    assert rig.metric("centerwatch_notifications_total", receiver="hook", result="failed") == 1


async def test_receivers_get_only_the_alerts_they_match(rig_factory: Callable[..., Rig]) -> None:
    text = CONFIG + (
        "  - name: mail\n    type: webhook\n    url: http://127.0.0.1:9/mail\n    match: {severity: critical}\n"
    )
    rig = rig_factory(config(text))
    crit, warn = alert(severity="critical"), alert("hoa-khanh", severity="warning")
    rig.dispatcher.submit([crit, warn])
    await rig.at(30)
    assert len(rig.hook.sent) == 2
    assert [g.firing[0].fingerprint for _, g in rig.notifiers["mail"].sent] == [crit.fingerprint]
    rig.dispatcher.submit([resolved(crit), resolved(warn)])
    await rig.at(330)
    assert len(rig.hook.sent) == 4
    assert rig.notifiers["mail"].fingerprints() == ([], [crit.fingerprint])


async def test_stop_sends_owed_resolutions_at_once_and_closes(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    a, b = alert(uplink="internet"), alert("hoa-khanh")
    rig.dispatcher.submit([a])
    await rig.at(30)
    rig.dispatcher.submit([resolved(a), b])  # b is new: not flushed early by stop
    await rig.at(31)
    await rig.dispatcher.stop()
    assert rig.hook.fingerprints() == ([], [a.fingerprint])
    assert len(rig.hook.sent) == 2
    assert rig.hook.closed


async def test_stop_is_bounded_by_its_timeout(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    rig.hook.block = asyncio.Event()  # a flush stuck until the end of time
    rig.dispatcher._stop_timeout_s = 0.05
    rig.dispatcher.submit([alert()])
    await rig.at(30)
    assert rig.hook.calls == 1
    await asyncio.wait_for(rig.dispatcher.stop(), timeout=5)
    assert rig.hook.closed


async def test_submit_from_another_thread(rig: Rig) -> None:
    thread = threading.Thread(target=rig.dispatcher.submit, args=([alert()],))
    thread.start()
    thread.join(timeout=5)
    await rig.at(30)
    assert len(rig.hook.sent) == 1


async def test_on_delivered_hears_each_delivered_notification(rig_factory: Callable[..., Rig]) -> None:
    heard: list[tuple[str, str]] = []
    rig = rig_factory(on_delivered=lambda receiver, group: heard.append((receiver, group.key)))
    rig.dispatcher.submit([alert()])
    await rig.at(30)
    assert heard == [("hook", "center=hai-chau,alertname=uplink_down")]


async def test_metrics_are_exposed_and_queue_counts_waiting_groups(rig: Rig) -> None:
    text = generate_latest(rig.registry).decode()
    for name in (
        "centerwatch_notifications_total",
        "centerwatch_notification_attempts_total",
        "centerwatch_notification_latency_seconds_bucket",
        "centerwatch_notification_queue_groups",
        "centerwatch_notifier_last_success_timestamp_seconds",
    ):
        assert name in text
    rig.dispatcher.submit([alert("hai-chau"), alert("hoa-khanh")])
    await rig.at(1)
    assert rig.metric("centerwatch_notification_queue_groups") == 2
    await rig.at(30)
    assert rig.metric("centerwatch_notification_queue_groups") == 0


def test_backoff_doubles_is_capped_and_jittered() -> None:
    retry = Retry(attempts=10, initial_backoff_s=1, max_backoff_s=8)
    rng = random.Random(1)
    for attempt, ceiling in enumerate([1, 2, 4, 8, 8, 8]):
        values = [backoff(attempt, retry, rng) for _ in range(50)]
        assert all(ceiling / 2 <= v <= ceiling for v in values)
        assert len(set(values)) > 1


def test_group_key_follows_group_by_order_and_skips_missing_labels() -> None:
    view = alert()
    assert group_of(view, ("center", "alertname")) == (
        "center=hai-chau,alertname=uplink_down",
        {"center": "hai-chau", "alertname": "uplink_down"},
    )
    assert group_of(view, ("alertname", "device"))[0] == "alertname=uplink_down"
    assert group_of(view, ())[0] == "(all)"


def test_a_receiver_without_notifier_is_refused() -> None:
    with pytest.raises(ValueError, match="no notifier for receiver"):
        Dispatcher(config(), {}, CollectorRegistry(), FakeClock())
