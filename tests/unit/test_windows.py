"""Maintenance windows in Asia/Ho_Chi_Minh (UTC+7, no DST)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.windows import DEFAULT_WINDOWS, Window, in_window

VN = timedelta(hours=7)


def vn(y: int, m: int, d: int, hh: int, mm: int) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC) - VN  # the UTC instant of that Vietnamese wall time


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (vn(2026, 12, 1, 10, 0), False),  # Tuesday 10:00, working hours
        (vn(2026, 12, 1, 17, 29), False),
        (vn(2026, 12, 1, 17, 30), True),  # Tuesday evening
        (vn(2026, 12, 2, 6, 59), True),  # Wednesday early morning: Tuesday's window runs on
        (vn(2026, 12, 2, 7, 0), False),
        (vn(2026, 12, 5, 10, 0), False),  # Saturday morning: centers may open
        (vn(2026, 12, 5, 3, 0), True),  # Saturday 03:00: Friday's window
        (vn(2026, 12, 6, 12, 0), True),  # Sunday, all day
        (vn(2026, 12, 7, 6, 0), False),  # Monday 06:00: Sunday's window ended at midnight
    ],
)
def test_default_windows(when: datetime, inside: bool) -> None:
    assert in_window(when, DEFAULT_WINDOWS) is inside


def test_same_day_window() -> None:
    lunch = (Window(("mon",), "11:30", "13:30"),)
    assert in_window(vn(2026, 11, 30, 12, 0), lunch)
    assert not in_window(vn(2026, 11, 30, 13, 30), lunch)
