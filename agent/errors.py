"""The agent's exceptions. Errors of other libraries are translated where they are called."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """A configuration file is wrong. ``str()`` reads ``<file>: <key>: <what was expected>``."""

    def __init__(self, file: str, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")
        self.file = file
        self.key = key
        self.message = message


class SpoolError(AgentError):
    """The on-disk spool cannot be opened or written."""


class EnrollError(AgentError):
    """Enrollment with the collector failed; the message says why."""


class Retryable(AgentError):
    """The upload may succeed later: network trouble, the collector busy or down, auth refused."""

    def __init__(self, reason: str, *, auth: bool = False) -> None:
        super().__init__(reason)
        self.auth = auth


class UploadRejected(AgentError):
    """The collector refused a batch for what it contains (4xx other than auth)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
