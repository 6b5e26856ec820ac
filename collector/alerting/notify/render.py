"""Texts every notifier shares: the title line, times, severity words. All words from the catalog."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from centerwatch.i18n import t
from collector.alerting.model import AlertView, NotificationGroup


def rfc3339(ms: int) -> str:
    """Unix milliseconds as RFC 3339 UTC with milliseconds: ``2025-07-01T03:04:05.123Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local_time(ms: int, zone: str) -> str:
    """Unix milliseconds as a local wall time people read: ``2025-07-01 10:04:05 (+07)``."""
    moment = datetime.fromtimestamp(ms / 1000, ZoneInfo(zone))
    offset = moment.strftime("%z")  # +0700
    short = offset[:3] if offset.endswith("00") else f"{offset[:3]}:{offset[3:]}"
    return f"{moment:%Y-%m-%d %H:%M:%S} ({short})"


def status_of(group: NotificationGroup) -> str:
    """``firing`` while one alert of the group fires, else ``resolved``."""
    return "firing" if group.firing else "resolved"


def summary(view: AlertView, lang: str) -> str:
    """The alert's summary in ``lang`` (falling back as ``AlertView.text`` does), else its rule."""
    return view.text(lang, "summary") or view.rule


def title(group: NotificationGroup, lang: str) -> str:
    """``[FIRING:2] Uplink down — Hải Châu``: status and count, then the first alert's summary,
    with how many others differ."""
    status = status_of(group)
    shown = group.firing if status == "firing" else group.resolved
    head = summary(shown[0], lang) if shown else group.key
    others = len({summary(v, lang) for v in shown}) - 1
    text = t("notify.title_more", lang, title=head, more=others) if others > 0 else head
    return t("notify.title", lang, status=t(f"notify.status.{status}", lang), count=len(shown), text=text)


def severity(view: AlertView, lang: str) -> str:
    return t(f"notify.severity.{view.severity}", lang)
