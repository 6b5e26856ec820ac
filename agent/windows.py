"""Maintenance windows: when disruptive tests (bandwidth) may run. Pure functions.

Default (DOMAIN.md): weekdays 17:30–07:00 and all of Sunday, Asia/Ho_Chi_Minh. A window whose end
is not after its start runs past midnight into the next day; ``days`` names the day it starts.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class Window(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    days: tuple[Day, ...]
    start: HHMM
    end: HHMM


DEFAULT_WINDOWS: tuple[Window, ...] = (
    Window(("mon", "tue", "wed", "thu", "fri"), "17:30", "07:00"),
    Window(("sun",), "00:00", "00:00"),  # the whole day
)
DEFAULT_TZ = "Asia/Ho_Chi_Minh"


def _hm(text: str) -> time:
    m = re.fullmatch(r"(\d\d):(\d\d)", text)
    if not m:
        raise ValueError(f"expected HH:MM, got {text!r}")
    return time(int(m.group(1)), int(m.group(2)))


def in_window(now: datetime, windows: tuple[Window, ...], tz: str = DEFAULT_TZ) -> bool:
    """Is the aware datetime ``now`` inside any window (evaluated in ``tz``)?"""
    local = now.astimezone(ZoneInfo(tz))
    for window in windows:
        start, end = _hm(window.start), _hm(window.end)
        length = (datetime.combine(local.date(), end) - datetime.combine(local.date(), start)) % timedelta(days=1)
        if length == timedelta(0):
            length = timedelta(days=1)
        # the window may have started today or (running past midnight) yesterday
        for days_back in (0, 1):
            day = local.date() - timedelta(days=days_back)
            if DAYS[day.weekday()] not in window.days:
                continue
            opened = datetime.combine(day, start, tzinfo=local.tzinfo)
            if opened <= local < opened + length:
                return True
    return False
