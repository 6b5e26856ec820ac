"""Generic webhook: one POST of JSON per notification group.

The body (``schema: centerwatch.notification``, ``version: 1``; fields are only ever added within
a version)::

    {
      "schema": "centerwatch.notification", "version": 1,
      "receiver": "ops-webhook",
      "groupKey": "center=hai-chau,alertname=uplink_down",
      "groupLabels": {"center": "hai-chau", "alertname": "uplink_down"},
      "status": "firing",                  # "resolved" once no alert of the group fires
      "lang": "vi",                        # language of title, summary and description
      "title": "[CẢNH BÁO:1] Mất kết nối internet — Hải Châu",
      "counts": {"firing": 1, "resolved": 0},
      "alerts": [{
        "fingerprint": "3f2a…", "status": "firing", "rule": "uplink_down", "severity": "critical",
        "labels": {"alertname": "uplink_down", "center": "hai-chau", "severity": "critical", …},
        "summary": "…", "description": "…",                  # in "lang"
        "texts": {"vi": {"summary": "…", "description": "…"}, "en": {…}},
        "startsAt": "2025-07-01T03:04:05.000Z", "endsAt": null,  # RFC 3339 UTC; set when resolved
        "url": "https://centerwatch.example.org/alerts/3f2a…"
      }]
    }

Firing alerts come first. Headers: ``Content-Type: application/json; charset=utf-8`` and
``X-CenterWatch-Notification``, the same for every retry of one notification (a receiver may
drop a repeat). 2xx is delivered; 408, 425, 429, 5xx and connection errors are retried; any
other status is the receiver's configuration refusing us, and is not.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from collector.alerting.model import AlertView, NotificationGroup
from collector.alerting.notify import render
from collector.alerting.notify.http import make_client, post_json
from collector.alerting.receivers import Receiver, WebhookSpec

SCHEMA = "centerwatch.notification"
VERSION = 1


def alert_body(view: AlertView, lang: str) -> dict[str, Any]:
    return {
        "fingerprint": view.fingerprint,
        "status": view.status,
        "rule": view.rule,
        "severity": view.severity,
        "labels": dict(view.labels),
        "summary": view.text(lang, "summary"),
        "description": view.text(lang, "description"),
        "texts": {k: dict(v) for k, v in view.texts.items()},
        "startsAt": render.rfc3339(view.starts_at_ms),
        "endsAt": render.rfc3339(view.ends_at_ms) if view.ends_at_ms is not None else None,
        "url": view.url,
    }


def body(group: NotificationGroup, receiver: str, lang: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "receiver": receiver,
        "groupKey": group.key,
        "groupLabels": dict(group.group_labels),
        "status": render.status_of(group),
        "lang": lang,
        "title": render.title(group, lang),
        "counts": {"firing": len(group.firing), "resolved": len(group.resolved)},
        "alerts": [alert_body(v, lang) for v in (*group.firing, *group.resolved)],
    }


def notification_id(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


class WebhookNotifier:
    def __init__(self, receiver: Receiver, transport: httpx.AsyncBaseTransport | None = None) -> None:
        assert isinstance(receiver.spec, WebhookSpec)
        self._receiver = receiver
        self._spec = receiver.spec
        self._client = make_client(receiver.spec.timeout_s, receiver.spec.headers, receiver.secret, transport)

    @property
    def name(self) -> str:
        return self._receiver.name

    async def send(self, group: NotificationGroup) -> None:
        payload = body(group, self.name, self._receiver.lang)
        await post_json(
            self._client,
            self.name,
            self._spec.url,
            payload,
            headers={"X-CenterWatch-Notification": notification_id(payload)},
        )

    async def aclose(self) -> None:
        await self._client.aclose()
