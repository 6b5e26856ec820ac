"""Silences and maintenance windows: when a firing alert is kept but not notified. Pure.

A silence is Alertmanager's: label matchers (``=``, ``!=``, ``=~``, ``!~``, regexes fully
anchored), a start and an end, an author and a comment. A maintenance window is a center's weekly
recurring window in its time zone (Asia/Ho_Chi_Minh by default), e.g. Saturday 22:00–02:00 for the
ISP's planned works.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal

from agent.windows import DEFAULT_TZ, Day, Window, in_window

MatchOp = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    op: MatchOp = "="

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.value) if self.op in ("=~", "!~") else None

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(got) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Silence:
    id: int
    matchers: tuple[Matcher, ...]
    starts_ms: int
    ends_ms: int
    author: str
    comment: str
    created_ms: int = 0

    def active(self, now_ms: int) -> bool:
        return self.starts_ms <= now_ms < self.ends_ms

    def matches(self, labels: Mapping[str, str], now_ms: int) -> bool:
        return self.active(now_ms) and all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class MaintenanceWindow:
    id: int
    center: str
    days: tuple[Day, ...]
    start: str  # HH:MM local
    end: str  # HH:MM local; not after start: runs past midnight
    timezone: str = DEFAULT_TZ
    comment: str = ""
    author: str = ""

    def open_at(self, now_ms: int) -> bool:
        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        return in_window(now, (Window(self.days, self.start, self.end),), self.timezone)


def silenced_by(silences: Sequence[Silence], labels: Mapping[str, str], now_ms: int) -> Silence | None:
    for silence in silences:
        if silence.matches(labels, now_ms):
            return silence
    return None


def in_maintenance(windows: Sequence[MaintenanceWindow], center: str, now_ms: int) -> MaintenanceWindow | None:
    for window in windows:
        if window.center == center and window.open_at(now_ms):
            return window
    return None
