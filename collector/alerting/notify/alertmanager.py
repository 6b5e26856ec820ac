"""Prometheus Alertmanager: POST the group's alerts to ``<url>/api/v2/alerts``.

Alertmanager identifies an alert by its labels and does its own grouping, silencing and routing,
so every flush sends every alert of the group, as Prometheus does. A firing alert carries an
``endsAt`` four resend intervals ahead (the receiver's ``repeat_interval_s``, 60 s by default):
if CenterWatch stops, Alertmanager resolves it by itself, and while CenterWatch runs the alert
is renewed long before. A resolved alert carries its end time.

Annotations: ``summary`` and ``description`` in the receiver's language, then ``summary_vi``,
``description_vi``, ``summary_en``, ``description_en``; ``generatorURL`` is the alert's page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from centerwatch.i18n import LANGS
from collector.alerting.model import AlertView, NotificationGroup
from collector.alerting.notify import render
from collector.alerting.notify.http import make_client, post_json
from collector.alerting.receivers import AlertmanagerSpec, Receiver

#: how many resend intervals a firing alert stays valid in Alertmanager without news
VALID_FOR_RESENDS = 4


def alert_body(view: AlertView, lang: str, now_ms: int, valid_ms: int) -> dict[str, Any]:
    annotations = {"summary": view.text(lang, "summary"), "description": view.text(lang, "description")}
    for other in LANGS:
        for key in ("summary", "description"):
            annotations[f"{key}_{other}"] = view.texts.get(other, {}).get(key, "")
    if view.status == "resolved":
        ends_ms = view.ends_at_ms if view.ends_at_ms is not None else now_ms
    else:
        ends_ms = now_ms + valid_ms
    out: dict[str, Any] = {
        "labels": {k: v for k, v in view.labels.items() if v},
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": render.rfc3339(view.starts_at_ms),
        "endsAt": render.rfc3339(max(ends_ms, view.starts_at_ms)),
    }
    if view.url:
        out["generatorURL"] = view.url
    return out


class AlertmanagerNotifier:
    def __init__(
        self,
        receiver: Receiver,
        transport: httpx.AsyncBaseTransport | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        assert isinstance(receiver.spec, AlertmanagerSpec)
        self._receiver = receiver
        self._url = receiver.spec.url.rstrip("/") + "/api/v2/alerts"
        self._valid_ms = int(VALID_FOR_RESENDS * receiver.timing.repeat_interval_s * 1000)
        self._wall = wall
        self._client = make_client(receiver.spec.timeout_s, None, receiver.secret, transport)

    @property
    def name(self) -> str:
        return self._receiver.name

    def body(self, group: NotificationGroup) -> list[dict[str, Any]]:
        now_ms = int(self._wall() * 1000)
        lang = self._receiver.lang
        return [alert_body(v, lang, now_ms, self._valid_ms) for v in (*group.firing, *group.resolved)]

    async def send(self, group: NotificationGroup) -> None:
        await post_json(self._client, self.name, self._url, self.body(group))

    async def aclose(self) -> None:
        await self._client.aclose()
