"""Start and stop ``snmpsim-command-responder`` (lextudio snmpsim, PyPI ``snmpsim``) on loopback.

For tests and benchmarks that need real SNMP agents serving device recordings::

    from tests.snmpsim import find_snmpsim, free_udp_port, start_snmpsim

    port = free_udp_port()
    with start_snmpsim(data_dir, [("127.0.0.1", port)], log_dir) as sim:
        ...  # v2c GET/GETBULK to 127.0.0.1:port with a recording's community
    # stopped here (or call sim.stop(); stopping twice is harmless)

How snmpsim picks the data it serves: each ``*.snmprec`` file under ``data_dir`` is one agent,
answering the v2c community equal to its path relative to ``data_dir`` without the suffix
(``data_dir/switch.snmprec`` → community ``switch``; ``data_dir/ups/apc.snmprec`` → ``ups/apc``).
Every endpoint serves every community; a file ``data_dir/<community>/<transport id>.snmprec``
(transport ids ``1.3.6.1.6.1.1.N``, N = 0, 1, … in the order of ``endpoints``) is served for
``<community>`` on that one endpoint only. A community with no file gets no answer (a timeout).

``start_snmpsim`` returns once every endpoint answers an SNMPv3 engine discovery (which needs no
community and no data), so the first request of a test is served; it raises ``SnmpSimError`` with
the log's tail when the process exits or ``timeout_s`` passes. The index snmpsim builds of each
recording goes to ``log_dir/cache`` (a fresh one per start; big recordings take seconds to index).
The command is ``$SNMPSIM_COMMAND_RESPONDER``, else ``snmpsim-command-responder`` beside this
Python, else on PATH (``find_snmpsim``). As root it runs with ``SNMPSIM_ALLOW_ROOT=true`` (snmpsim
otherwise insists on dropping privileges to a user and group).

pysmi: snmpsim 1.2 imports it (for its version banner only) without declaring it, and pysnmp turns
on MIB compilation, with MIB downloads, whenever pysmi is importable. So pysmi is not installed
in the project's venv (the agent's pysnmp must behave as in production) and the snmpsim child
gets a stub ``pysmi`` package on its PYTHONPATH instead (``log_dir/shim``): install ``snmpsim``
alone, sharing the venv and its pysnmp>=7.1,<8.

Only this module's names without a leading underscore are its API; it imports nothing from the
project and nothing outside the standard library, so a benchmark can use it too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["SnmpSim", "SnmpSimError", "find_snmpsim", "free_udp_port", "start_snmpsim"]

Endpoint = tuple[str, int]


class SnmpSimError(RuntimeError):
    """snmpsim did not start, or exited; the message carries the tail of its log."""


def find_snmpsim() -> str | None:
    """The ``snmpsim-command-responder`` to run, or None when it is not installed."""
    named = os.environ.get("SNMPSIM_COMMAND_RESPONDER")
    if named:
        return named
    beside = Path(sys.executable).parent / "snmpsim-command-responder"
    if beside.exists():
        return str(beside)
    return shutil.which("snmpsim-command-responder")


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port free on ``host`` right now (another process may take it before you bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class SnmpSim:
    """A running snmpsim. ``endpoints`` as given; ``log`` its log file; ``stop()`` ends it."""

    process: subprocess.Popen[bytes]
    endpoints: list[Endpoint]
    log: Path
    data_dir: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout_s: float = 10.0) -> int:
        """Terminate (then kill after ``timeout_s``) and reap the process; returns its exit code."""
        if not self._stopped:
            self._stopped = True
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
        return self.process.returncode if self.process.returncode is not None else -1

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def __enter__(self) -> SnmpSim:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def start_snmpsim(
    data_dir: Path,
    endpoints: Sequence[Endpoint],
    log_dir: Path,
    *,
    timeout_s: float = 60.0,
    extra_args: Sequence[str] = (),
    command: str | None = None,
    log_level: str = "info",
) -> SnmpSim:
    """Start snmpsim serving the recordings of ``data_dir`` on each UDP ``(host, port)`` of
    ``endpoints`` (loopback addresses, IPv4 or IPv6), logging to ``log_dir/snmpsim.log``; wait
    until every endpoint answers. ``extra_args`` go to snmpsim as they are (``--max-var-binds=…``).
    ``log_level`` "error" for benchmarks: at "info" snmpsim logs every request (84 MB in 12 minutes
    for 100 devices) and that logging costs it much of its CPU.
    Raises ``SnmpSimError`` (the process stopped) when it is not installed, exits or stays mute."""
    if not endpoints:
        raise ValueError("start_snmpsim: give at least one endpoint")
    for host, _port in endpoints:
        if not _is_loopback(host):
            raise ValueError(f"start_snmpsim: {host} is not a loopback address")
    binary = command or find_snmpsim()
    if binary is None:
        raise SnmpSimError("snmpsim-command-responder is not installed (pip install snmpsim)")
    log_dir.mkdir(parents=True, exist_ok=True)
    cache = log_dir / "cache"
    if cache.exists():
        shutil.rmtree(cache)  # an index left from other data would be served as if it were current
    cache.mkdir()
    log = log_dir / "snmpsim.log"
    args = [binary, f"--data-dir={data_dir}", f"--cache-dir={cache}", f"--log-level={log_level}"]
    for host, port in endpoints:
        if ":" in host:
            args.append(f"--agent-udpv6-endpoint=[{host}]:{port}")
        else:
            args.append(f"--agent-udpv4-endpoint={host}:{port}")
    args.extend(extra_args)
    env = dict(os.environ)
    if os.getuid() == 0:
        env["SNMPSIM_ALLOW_ROOT"] = "true"
    shim = log_dir / "shim"
    (shim / "pysmi").mkdir(parents=True, exist_ok=True)
    (shim / "pysmi" / "__init__.py").write_text(_PYSMI_STUB, encoding="utf-8")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(shim), env.get("PYTHONPATH", "")) if p)
    with log.open("wb") as fh:  # the child keeps its own descriptor
        process = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    sim = SnmpSim(process, list(endpoints), log, data_dir)
    try:
        _wait_ready(sim, timeout_s)
    except BaseException:
        sim.stop()
        raise
    return sim


#: snmpsim reads ``pysmi.__version__`` for its banner; pysnmp's MIB compiler, finding no
#: ``pysmi.reader``, stays off (it imports pysmi's submodules in a try block)
_PYSMI_STUB = '"""Stub: snmpsim imports pysmi for its banner only (see tests/snmpsim.py)."""\n__version__ = "0+stub"\n'


def _is_loopback(host: str) -> bool:
    return host == "::1" or host.startswith("127.")


def _wait_ready(sim: SnmpSim, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = list(sim.endpoints)
    while waiting:
        if sim.process.poll() is not None:
            raise SnmpSimError(f"snmpsim exited with {sim.process.returncode}:\n{_tail(sim.output())}")
        if time.monotonic() > deadline:
            raise SnmpSimError(f"snmpsim did not answer on {waiting} within {timeout_s:g} s:\n{_tail(sim.output())}")
        waiting = [ep for ep in waiting if not _answers(ep)]
        if waiting:
            time.sleep(0.2)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- an SNMPv3 engine discovery (RFC 3414 §4): any SNMPv3 agent answers it with a Report PDU ---------


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + body


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _discovery(message_id: int) -> bytes:
    empty = _tlv(0x04, b"")
    header = _tlv(0x30, _int(message_id) + _int(65507) + _tlv(0x04, b"\x04") + _int(3))  # reportable, USM
    usm = _tlv(0x30, empty + _int(0) + _int(0) + empty + empty + empty)
    pdu = _tlv(0xA0, _int(message_id) + _int(0) + _int(0) + _tlv(0x30, b""))  # GetRequest, no varbinds
    scoped = _tlv(0x30, empty + empty + pdu)
    return _tlv(0x30, _int(3) + header + _tlv(0x04, usm) + scoped)


def _answers(endpoint: Endpoint, wait_s: float = 0.3) -> bool:
    host, port = endpoint
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(wait_s)
        try:
            s.connect((host, port))
            s.send(_discovery(0x2C57))
            return bool(s.recv(4096))
        except OSError:  # refused (nothing bound yet) or no answer in time
            return False
