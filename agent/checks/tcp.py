"""TCP connect time to host:port, over IPv4 or IPv6, with the name resolution timed apart.

A host name is resolved through ``resolve`` (the OS's ``getaddrinfo`` by default; tests replace it
so that no query leaves the machine); an IP literal is parsed locally and not timed. The addresses
are tried in the order the resolver gives, one after the other, until one accepts. The connection
is closed as soon as it is established. All targets run concurrently, each under ``probe_timeout_s``.

* ``probe_success``, ``probe_duration_seconds``, and on failure ``probe_failure_info{reason}``
  plus a ``probe.failed`` warning event naming the cause;
* ``probe_tcp_connect_seconds``: the successful connect (only when one succeeded);
* ``probe_dns_lookup_seconds``: ``getaddrinfo`` (only when a name was resolved).

Reasons: refused, timeout, unreachable (no route to the network or host), resolve_failed, error.
``lookup``, ``connect`` and ``connect_reason`` are used by the HTTP check too. Example::

    checks:
      tcp:
        timeout_s: 10           # the check's deadline (schedule)
        probe_timeout_s: 3      # per target, below the deadline
        targets:
          - {host: 10.10.1.20, port: 443, name: igate-https, uplink: wan}
          - {host: smtp.danang.gov.vn, port: 25, family: ipv4}
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import msgspec

from agent.checks.base import CheckContext, Observations

PROBE = "tcp"
Uplink = Literal["internet", "wan", "lan"]
Family = Literal["any", "ipv4", "ipv6"]
_FAMILIES: dict[str, int] = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
#: errno values of "no route": POSIX names, and Windows' WSAENETUNREACH, WSAEHOSTUNREACH, WSAENETDOWN.
_UNREACHABLE = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, getattr(errno, "EHOSTDOWN", -1), 10050, 10051, 10065}
)

Address = tuple[int, tuple[Any, ...]]  # (family, sockaddr)


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: A host name or an IP address (IPv6 with or without brackets).
    host: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    #: The ``target`` label; "" means "<host>:<port>".
    name: str = ""
    uplink: Uplink = "internet"
    #: Which addresses of a name to try.
    family: Family = "any"

    def __post_init__(self) -> None:
        if not host_of(self.host) or any(c.isspace() or c in "/?#@" for c in self.host):
            raise ValueError(f"host {self.host!r}: expected a host name or an IP address")

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    targets: tuple[Target, ...] = ()
    #: Per target, resolution included; keep it below the check's deadline.
    probe_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for target in self.targets:
            if target.label in seen:
                raise ValueError(f"two targets are named {target.label!r}; give one a distinct `name`")
            seen.add(target.label)


# --- the network edge -------------------------------------------------------------------------------


class Resolver(Protocol):
    """Resolve a host name to stream-socket addresses; raises ``OSError`` (``socket.gaierror``)."""

    async def __call__(self, host: str, port: int, family: int) -> list[Address]: ...


async def system_resolve(host: str, port: int, family: int) -> list[Address]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    return [(fam, addr) for fam, _, _, _, addr in infos]


#: How host names are resolved (tests replace it: no name is looked up for real in a unit test).
resolve: Resolver = system_resolve


class ProbeFailed(Exception):
    """A target failed: ``reason`` is the stable label value, the message the human cause."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def host_of(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host_of(host))
    except ValueError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    text = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def lookup(host: str, port: int, family: Family = "any") -> tuple[list[Address], float | None]:
    """The addresses to connect to and the seconds spent resolving (None for an IP literal).

    Raises ``ProbeFailed("resolve_failed")``."""
    fam = _FAMILIES[family]
    bare = host_of(host)
    t0 = time.perf_counter()
    try:
        if is_ip_literal(bare):  # parsed locally: AI_NUMERICHOST never queries anyone
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(bare, port, family=fam, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
            return [(f, a) for f, _, _, _, a in infos], None
        addresses = await resolve(bare, port, fam)
    except (OSError, UnicodeError) as exc:
        raise ProbeFailed("resolve_failed", f"cannot resolve {bare!r}: {_describe(exc)}") from None
    seconds = time.perf_counter() - t0
    if not addresses:
        raise ProbeFailed("resolve_failed", f"{bare!r} has no {family} address")
    return addresses, seconds


def connect_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if exc.errno in _UNREACHABLE or getattr(exc, "winerror", None) in _UNREACHABLE:
        return "unreachable"
    return "error"


def _sockaddr_text(family: int, sockaddr: tuple[Any, ...]) -> str:
    return f"[{sockaddr[0]}]:{sockaddr[1]}" if family == socket.AF_INET6 else f"{sockaddr[0]}:{sockaddr[1]}"


async def connect(addresses: list[Address]) -> tuple[socket.socket, str]:
    """A connected non-blocking socket to the first address that accepts, and that address.

    Raises ``ProbeFailed`` with the reason of the last address tried and every address's error."""
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    reason = "error"
    for family, sockaddr in addresses:
        where = _sockaddr_text(family, sockaddr)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            sock.close()
            cause = os.strerror(exc.errno) if exc.errno else _describe(exc)  # asyncio's text repeats the address
            errors.append(f"{where}: {cause}")
            reason = connect_reason(exc)
            continue
        except BaseException:  # cancelled (timeout): do not leak the socket
            sock.close()
            raise
        return sock, where
    raise ProbeFailed(reason, "cannot connect: " + ("; ".join(errors) or "no address"))


# --- the probe --------------------------------------------------------------------------------------


@dataclass
class _Result:
    target: Target
    duration_s: float = 0.0
    reason: str | None = None
    message: str = ""
    lookup_s: float | None = None
    connect_s: float | None = None


async def _probe(target: Target, timeout_s: float) -> _Result:
    result = _Result(target)
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            addresses, result.lookup_s = await lookup(target.host, target.port, target.family)
            t1 = time.perf_counter()
            sock, _ = await connect(addresses)
            result.connect_s = time.perf_counter() - t1
            sock.close()
    except ProbeFailed as exc:
        result.reason, result.message = exc.reason, exc.message
    except TimeoutError:
        result.reason, result.message = "timeout", f"no connection within {timeout_s:g} s"
    result.duration_s = time.perf_counter() - t0
    return result


async def collect(ctx: CheckContext[Config]) -> Observations:
    cfg = ctx.config
    outcomes = await asyncio.gather(*(_probe(t, cfg.probe_timeout_s) for t in cfg.targets), return_exceptions=True)
    obs = Observations(ts_ms=ctx.clock_ms())
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome  # a programming error: failures of the network are results
        labels = {"probe": PROBE, "target": outcome.target.label, "uplink": outcome.target.uplink}
        obs.probe_outcome(
            PROBE, labels["target"], labels["uplink"], reason=outcome.reason, message=outcome.message,
            duration_s=outcome.duration_s,
        )  # fmt: skip
        if outcome.lookup_s is not None:
            obs.add("probe_dns_lookup_seconds", outcome.lookup_s, **labels)
        if outcome.connect_s is not None:
            obs.add("probe_tcp_connect_seconds", outcome.connect_s, **labels)
    return obs
