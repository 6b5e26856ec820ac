"""What the alerting parts hand each other. Pure data; no I/O.

The evaluator turns rules into ``Alert`` rows (one per fingerprint) that move
pending → firing → resolved. What leaves the collector is an ``AlertView``: a frozen snapshot with
rendered texts, which the dispatcher groups (by center and rule) and the notifiers send.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
State = Literal["pending", "firing", "resolved"]
#: Why a firing alert is not notified: nothing, a silence, the center's maintenance window, or a
#: failed parent (the center is unreachable, the uplink is down) that explains it.
Muted = Literal["", "silenced", "maintenance", "suppressed"]


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """Stable identity of an alert: its rule and labels (order-free), 16 hex digits."""
    text = "\x1f".join([rule, *(f"{k}\x1e{labels[k]}" for k in sorted(labels))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AlertView:
    """One alert as notifiers and the API see it."""

    fingerprint: str
    status: Literal["firing", "resolved"]
    rule: str
    severity: Severity
    #: includes ``alertname`` (the rule), ``severity`` and, where known, ``center``
    labels: Mapping[str, str]
    #: rendered texts by language: ``{"vi": {"summary": …, "description": …}, "en": {…}}``
    texts: Mapping[str, Mapping[str, str]]
    starts_at_ms: int
    ends_at_ms: int | None = None
    #: link to the alert on the collector's status page ("" when public_url is unset)
    url: str = ""

    @property
    def center(self) -> str:
        return self.labels.get("center", "")

    def text(self, lang: str, key: str) -> str:
        """``summary`` or ``description`` in ``lang``, else Vietnamese, else English, else ""."""
        for candidate in (lang, "vi", "en"):
            value = self.texts.get(candidate, {}).get(key)
            if value:
                return value
        return ""


@dataclass(frozen=True)
class NotificationGroup:
    """What one notification carries: the alerts of one group (same center and rule)."""

    key: str  # e.g. "center=hai-chau,alertname=uplink_down"
    group_labels: Mapping[str, str]
    alerts: tuple[AlertView, ...]
    #: the firing ones first, then the resolved
    firing: tuple[AlertView, ...] = field(init=False)
    resolved: tuple[AlertView, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "firing", tuple(a for a in self.alerts if a.status == "firing"))
        object.__setattr__(self, "resolved", tuple(a for a in self.alerts if a.status == "resolved"))
