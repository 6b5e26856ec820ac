"""The UDP edge of the v2c client: one connected datagram socket per device, requests matched to
answers by request-id, each attempt timed, lost requests resent.

``await open_channel(address, port, where=...)`` gives a ``Channel``; ``await channel.request(build,
decode, timeout_s, attempts)`` sends ``build(request_id)`` and returns what ``decode`` made of the
answer. Timers are callbacks on the loop (no task per request): an attempt that times out resends
the same message (a late answer to the first attempt is as good as one to the second), the last one
raises ``SnmpError("timeout")``. A datagram whose request-id nobody waits for (an answer that came
after its request gave up) is dropped; one that cannot be decoded fails the requests waiting on
this device with ``SnmpError("malformed")``. The socket is connected, so the kernel drops datagrams
from any other address, and an ICMP port unreachable shows in the timeout's message.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Container
from typing import Generic, Protocol, TypeVar, cast

from agent.snmp.errors import SnmpError

log = logging.getLogger("centerwatch.agent.snmp")


class Answer(Protocol):
    @property
    def request_id(self) -> int: ...


T = TypeVar("T", bound=Answer)
#: decodes one datagram: the answer, ``None`` when it is not for any waiting request-id, or raises
#: ``SnmpError``
Decoder = Callable[[bytes, Container[int]], "T | None"]

_ID_SPACE = 2**31


class _Waiting(Generic[T]):
    """One request in flight: its future, its message (for resending) and the attempts left."""

    __slots__ = ("attempts_left", "channel", "future", "message", "timeout_s", "timer")

    def __init__(
        self, channel: Channel[T], future: asyncio.Future[T], message: bytes, timeout_s: float, attempts: int
    ) -> None:
        self.channel = channel
        self.future = future
        self.message = message
        self.timeout_s = timeout_s
        self.attempts_left = attempts
        self.timer: asyncio.TimerHandle | None = None

    def send(self) -> None:
        self.attempts_left -= 1
        self.channel.send(self.message)
        self.timer = self.channel.loop.call_later(self.timeout_s, self.expire)

    def expire(self) -> None:
        if self.future.done():
            return
        if self.attempts_left > 0:
            self.send()
        else:
            self.future.set_exception(self.channel.timeout_error(self.timeout_s))


class Channel(asyncio.DatagramProtocol, Generic[T]):
    """A connected UDP socket to one device."""

    def __init__(self, where: str, decode: Decoder[T]) -> None:
        self.where = where
        self.loop = asyncio.get_running_loop()
        self._decode = decode
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = False
        self._waiting: dict[int, _Waiting[T]] = {}
        self._next_id = random.randrange(1, _ID_SPACE)  # uniqueness, not secrecy
        self._attempts = 0
        self.last_error: OSError | None = None

    # asyncio.DatagramProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a DatagramTransport in all but name (3.11's selector transport does not subclass it)
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self._waiting:
            log.debug("snmp: datagram from %s while no request waits, dropped", self.where)
            return
        try:
            answer = self._decode(data, self._waiting)
        except SnmpError as exc:
            self._fail_all(exc)  # whose answer it was cannot be told: this device's requests fail
            return
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not close the socket
            self._fail_all(SnmpError("malformed", f"undecodable answer from {self.where} ({type(exc).__name__})"))
            return
        if answer is None:
            log.debug("snmp: answer from %s to no waiting request (late or stale), dropped", self.where)
            return
        waiting = self._waiting.pop(answer.request_id, None)
        if waiting is not None and not waiting.future.done():
            waiting.future.set_result(answer)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) on the connected socket; the request's timer decides
        if isinstance(exc, OSError):
            self.last_error = exc

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._fail_all(SnmpError("error", f"the UDP socket to {self.where} was closed"))

    # requests

    def send(self, message: bytes) -> None:
        if self._transport is not None and not self._closed:
            self._transport.sendto(message)

    def timeout_error(self, timeout_s: float) -> SnmpError:
        why = f" (last socket error: {self.last_error.strerror or self.last_error})" if self.last_error else ""
        return SnmpError(
            "timeout", f"no answer from {self.where} after {self._attempts} attempt(s) of {timeout_s:g} s{why}"
        )

    async def request(self, build: Callable[[int], bytes], timeout_s: float, attempts: int) -> T:
        """Sends ``build(request_id)`` up to ``attempts`` times, ``timeout_s`` apart; the decoded answer."""
        if self._closed or self._transport is None:
            raise SnmpError("error", f"the UDP socket to {self.where} is closed")
        request_id = self._next_id
        self._next_id = request_id + 1 if request_id + 1 < _ID_SPACE else 1
        self._attempts = attempts
        self.last_error = None
        future: asyncio.Future[T] = self.loop.create_future()
        waiting = _Waiting(self, future, build(request_id), timeout_s, attempts)
        self._waiting[request_id] = waiting
        try:
            waiting.send()
            return await future
        finally:
            if waiting.timer is not None:
                waiting.timer.cancel()
            self._waiting.pop(request_id, None)

    def _fail_all(self, exc: SnmpError) -> None:
        waiting, self._waiting = self._waiting, {}
        for item in waiting.values():
            if not item.future.done():
                item.future.set_exception(exc)

    def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()


async def open_channel(address: str, port: int, decode: Decoder[T]) -> Channel[T]:
    """A channel to ``address:port`` (IPv4, IPv6 or a host name, resolved once, here)."""
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    loop = asyncio.get_running_loop()
    try:
        _transport, protocol = await loop.create_datagram_endpoint(
            lambda: Channel(where, decode), remote_addr=(address, port)
        )
    except OSError as exc:
        raise SnmpError("error", f"cannot open a UDP socket to {where}: {exc.strerror or exc}") from None
    return protocol
