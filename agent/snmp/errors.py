"""The SNMP package's exceptions. pysnmp's errors are translated in ``client.py`` where they arise."""

from __future__ import annotations

from typing import Literal

from agent.errors import AgentError, ConfigError

#: Why a request failed: no answer in time (dead device, wrong community, closed port), refused
#: credentials (v3 report, authorizationError), the object does not exist, the answer makes no sense
#: (wrong type, OIDs not increasing, a walk without end), anything else.
SnmpErrorKind = Literal["timeout", "auth", "no_such", "malformed", "error"]
KINDS: tuple[SnmpErrorKind, ...] = ("timeout", "auth", "no_such", "malformed", "error")


class SnmpError(AgentError):
    """One SNMP request (or the poll of one device) failed. ``str()`` reads ``<kind>: <message>``.

    The message never contains a community or a key.
    """

    def __init__(self, kind: SnmpErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: SnmpErrorKind = kind
        self.message = message


class ProfileError(ConfigError):
    """A device profile is wrong. ``str()`` reads ``<file>: <key>: <what was expected>``."""
