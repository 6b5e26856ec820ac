"""Notifiers, one module per receiver type, and ``build_notifiers`` (receiver name → notifier)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from collector.alerting.notify.base import Notifier, NotifyError
from collector.alerting.receivers import AlertingConfig, Receiver


def build_notifier(
    receiver: Receiver, zone: str = "Asia/Ho_Chi_Minh", transport: httpx.AsyncBaseTransport | None = None
) -> Notifier:
    from collector.alerting.notify.alertmanager import AlertmanagerNotifier
    from collector.alerting.notify.email import EmailNotifier
    from collector.alerting.notify.webhook import WebhookNotifier

    builders: dict[str, Callable[[], Notifier]] = {
        "webhook": lambda: WebhookNotifier(receiver, transport=transport),
        "email": lambda: EmailNotifier(receiver, zone=zone),
        "alertmanager": lambda: AlertmanagerNotifier(receiver, transport=transport),
    }
    return builders[receiver.type]()


def build_notifiers(config: AlertingConfig, transport: httpx.AsyncBaseTransport | None = None) -> dict[str, Notifier]:
    """One notifier per receiver of ``config``; the caller (the dispatcher) closes them."""
    return {r.name: build_notifier(r, config.route.timezone, transport) for r in config.receivers}


__all__ = ["Notifier", "NotifyError", "build_notifier", "build_notifiers"]
