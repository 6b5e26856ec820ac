"""What every notifier is: one ``send`` of one group, raising ``NotifyError`` on failure.

The dispatcher owns the deadline of an attempt, the retries and the metrics; a notifier only
delivers once and says whether trying again could help.
"""

from __future__ import annotations

from typing import Protocol

from collector.alerting.model import NotificationGroup


class NotifyError(Exception):
    """One delivery attempt failed. ``retryable``: a later attempt may succeed (5xx, timeout,
    connection refused); not retryable means the configuration or the message is wrong (4xx,
    authentication refused), and repeating it only adds noise. Never carries a secret."""

    def __init__(self, receiver: str, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(f"receiver {receiver}: {message}")
        self.receiver = receiver
        self.message = message
        self.retryable = retryable
        self.status = status


class Notifier(Protocol):
    """Delivers a notification group to one receiver."""

    @property
    def name(self) -> str:
        """The receiver's name, as in the alerting file."""
        ...

    async def send(self, group: NotificationGroup) -> None:
        """Deliver ``group`` once; raise ``NotifyError`` if it was not accepted."""
        ...

    async def aclose(self) -> None:
        """Release connections; the notifier is not used afterwards."""
        ...
