"""Hop-by-hop path to each target with loss and RTT per hop, like mtr, over IPv4.

For TTL 1..``max_hops`` the check sends ``probes_per_hop`` probes (ICMP echo requests, or UDP
datagrams to ``udp_port`` and up, like traceroute) and collects the ICMP time-exceeded, echo-reply
and port-unreachable answers. TTLs are probed ``hops_at_once`` at a time in one scapy ``sr`` call
(probes interleaved by TTL, ``inter_s`` apart); the trace stops after the round in which the
destination answered, or an ICMP unreachable ended the path. A round costs at most
``probe_timeout_s`` after its last send, so keep ``max_hops / hops_at_once × probe_timeout_s`` below
the check's ``timeout_s``. Targets run concurrently, each in a worker thread (scapy blocks).

Per hop (labels ``target``, ``uplink``, ``hop`` = the TTL):

* ``probe_traceroute_hop_loss_ratio`` (with ``address``: the hop's main responder; absent for a
  silent hop);
* ``probe_traceroute_hop_rtt_seconds{stat=min|avg|max,address}`` per responding address (ECMP paths
  give several);

per target ``probe_traceroute_reached``, ``probe_traceroute_hops`` (the destination's distance, only
when reached) and ``probe_success{probe="traceroute"}``; on failure ``probe_failure_info{reason}``
(permission, resolve_failed, error, unreached) with a ``probe.failed`` event except for
unreached. The path goes out as a ``path.trace`` event (``1 198.18.1.1 0% 0.4ms | 2 * 100% | …``)
and as the fact ``traceroute: {target: [[hop, address, loss, avg_s], …]}``. When the destination
does not answer, the silent hops after the last answering one are cut to the first.

Loss at an intermediate hop with none further on is usually the router rate-limiting its ICMP
(Linux: ``net.ipv4.icmp_ratelimit``), not lost traffic. Raw sockets need root or CAP_NET_RAW;
without them every target reports ``reason="permission"``. scapy is imported on the first run only
(its layer modules, not ``scapy.all``: about 35 MiB instead of 63). Example::

    checks:
      traceroute:
        interval_s: 300
        timeout_s: 20
        targets:
          - {name: dichvucong, address: dichvucong.gov.vn}
          - {name: wan-gw, address: 10.10.1.1, uplink: wan}
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import msgspec

from agent.checks.base import CheckContext, Observations

PROBE = "traceroute"
Uplink = Literal["internet", "wan", "lan"]
ReplyKind = Literal["time_exceeded", "echo_reply", "port_unreachable", "unreachable", "other"]
#: answers that come from the destination itself
REACHED: frozenset[str] = frozenset({"echo_reply", "port_unreachable"})


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: label value: what this is (``dichvucong``, ``wan-gw``)
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=100)]
    #: IPv4 address or host name (resolved to IPv4)
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    uplink: Uplink = "internet"

    def __post_init__(self) -> None:
        try:
            ip = ipaddress.ip_address(self.address)
        except ValueError:
            return  # a host name
        if ip.version != 4:
            raise ValueError(f"address {self.address!r}: only IPv4 is traced")


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    targets: tuple[Target, ...] = ()
    max_hops: Annotated[int, msgspec.Meta(ge=1, le=64)] = 20
    probes_per_hop: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    #: wait for answers after a round's last send (not ``timeout_s``: that is the check's deadline)
    probe_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 2.0
    protocol: Literal["icmp", "udp"] = "icmp"
    #: first UDP destination port; each probe uses the next one (traceroute's 33434)
    udp_port: Annotated[int, msgspec.Meta(ge=1, le=65535 - 64 * 20)] = 33434
    #: TTLs probed in one send/receive round
    hops_at_once: Annotated[int, msgspec.Meta(ge=1, le=64)] = 5
    #: pause between two sends of a round
    inter_s: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.01

    def __post_init__(self) -> None:
        names = [t.name for t in self.targets]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"two targets are named {dup!r}")


# ---------------------------------------------------------------------------------------------------
# Pure part: probes → hops → samples


@dataclass(frozen=True)
class Reply:
    address: str
    rtt_s: float
    kind: ReplyKind


@dataclass(frozen=True)
class HopProbe:
    """What one TTL got: ``sent`` probes and the answers matched to them."""

    ttl: int
    sent: int
    replies: tuple[Reply, ...]


@dataclass(frozen=True)
class RttStats:
    min: float
    avg: float
    max: float


def rtt_stats(values: Sequence[float]) -> RttStats:
    return RttStats(min(values), sum(values) / len(values), max(values))


@dataclass(frozen=True)
class Hop:
    ttl: int
    sent: int
    received: int
    loss_ratio: float
    #: responders, most answers first (ties: first answer first)
    addresses: tuple[str, ...]
    rtt: RttStats | None
    rtt_by_address: dict[str, RttStats]
    terminal: bool  # the destination answered, or an unreachable ended the path
    reached: bool

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None


@dataclass(frozen=True)
class Trace:
    hops: tuple[Hop, ...]
    reached: bool

    @property
    def distance(self) -> int | None:
        return self.hops[-1].ttl if self.reached else None


def hop_of(probe: HopProbe) -> Hop:
    replies = probe.replies
    counts = Counter(r.address for r in replies)  # insertion-ordered: ties keep the first answer first
    addresses = tuple(sorted(counts, key=lambda a: -counts[a]))
    received = min(len(replies), probe.sent)
    loss = 1.0 - received / probe.sent if probe.sent else 1.0
    by_address = {a: rtt_stats([r.rtt_s for r in replies if r.address == a]) for a in addresses}
    return Hop(
        ttl=probe.ttl,
        sent=probe.sent,
        received=received,
        loss_ratio=loss,
        addresses=addresses,
        rtt=rtt_stats([r.rtt_s for r in replies]) if replies else None,
        rtt_by_address=by_address,
        terminal=any(r.kind != "time_exceeded" for r in replies),
        reached=any(r.kind in REACHED for r in replies),
    )


def build_trace(probes: Sequence[HopProbe]) -> Trace:
    """Hops in TTL order up to the first terminal one; without one, silent tail hops are cut to one."""
    hops: list[Hop] = []
    for probe in sorted(probes, key=lambda p: p.ttl):
        hop = hop_of(probe)
        hops.append(hop)
        if hop.terminal:
            return Trace(tuple(hops), hop.reached)
    last_answering = max((i for i, h in enumerate(hops) if h.received), default=-1)
    return Trace(tuple(hops[: last_answering + 2]), False)


def path_text(trace: Trace) -> str:
    parts = []
    for hop in trace.hops:
        if hop.rtt is None:
            parts.append(f"{hop.ttl} * {hop.loss_ratio:.0%}")
        else:
            parts.append(f"{hop.ttl} {','.join(hop.addresses)} {hop.loss_ratio:.0%} {hop.rtt.avg * 1000:.1f}ms")
    return " | ".join(parts)


def path_fact(trace: Trace) -> list[list[Any]]:
    return [[h.ttl, h.address, h.loss_ratio, h.rtt.avg if h.rtt else None] for h in trace.hops]


def report(obs: Observations, target: Target, trace: Trace) -> None:
    labels = {"target": target.name, "uplink": target.uplink}
    for hop in trace.hops:
        hop_labels = {**labels, "hop": str(hop.ttl)}
        if hop.address is None:
            obs.add("probe_traceroute_hop_loss_ratio", hop.loss_ratio, **hop_labels)
        else:
            obs.add("probe_traceroute_hop_loss_ratio", hop.loss_ratio, address=hop.address, **hop_labels)
        for address, stats in hop.rtt_by_address.items():
            for stat in ("min", "avg", "max"):
                obs.add(
                    "probe_traceroute_hop_rtt_seconds", getattr(stats, stat), stat=stat, address=address, **hop_labels
                )
    obs.add("probe_traceroute_reached", 1.0 if trace.reached else 0.0, **labels)
    if trace.distance is not None:
        obs.add("probe_traceroute_hops", trace.distance, **labels)
    obs.add("probe_success", 1.0 if trace.reached else 0.0, probe=PROBE, **labels)
    if not trace.reached:
        obs.add("probe_failure_info", 1.0, probe=PROBE, reason="unreached", **labels)
    obs.event("path.trace", path_text(trace), "info" if trace.reached else "warning", **labels)
    if obs.facts is None:
        obs.facts = {}
    obs.facts.setdefault("traceroute", {})[target.name] = path_fact(trace)


def report_failure(obs: Observations, target: Target, reason: str, message: str) -> None:
    labels = {"target": target.name, "uplink": target.uplink}
    obs.add("probe_success", 0.0, probe=PROBE, **labels)
    obs.add("probe_failure_info", 1.0, probe=PROBE, reason=reason, **labels)
    obs.event("probe.failed", message[:1000], "warning", probe=PROBE, **labels)


# ---------------------------------------------------------------------------------------------------
# The network edge


class ProbeFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class Prober(Protocol):
    """Send ``cfg.probes_per_hop`` probes for each TTL to ``address`` and return what each TTL got.

    Blocking (run in a thread). Raises ``PermissionError`` without raw-socket rights and
    ``ProbeFailed`` for other trouble."""

    def __call__(self, address: str, ttls: Sequence[int], cfg: Config) -> list[HopProbe]: ...


def classify(icmp_type: int, icmp_code: int) -> ReplyKind:
    if icmp_type == 11:
        return "time_exceeded"
    if icmp_type == 0:
        return "echo_reply"
    if icmp_type == 3:
        return "port_unreachable" if icmp_code == 3 else "unreachable"
    return "other"


_tables_lock = threading.Lock()
_tables_at = [-1e9]


def refresh_tables(conf: Any) -> None:
    """A long-running agent uses the interfaces and routes of now, not those of the import; at most
    once a second however many targets (threads) ask."""
    with _tables_lock:
        if time.monotonic() - _tables_at[0] < 1.0:
            return
        conf.ifaces.reload()
        conf.route.resync()
        _tables_at[0] = time.monotonic()


def scapy_probe(address: str, ttls: Sequence[int], cfg: Config) -> list[HopProbe]:
    """One scapy ``sr`` round: every probe of every TTL, interleaved, then ``probe_timeout_s``."""
    from scapy.config import conf
    from scapy.error import Scapy_Exception
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.sendrecv import sr

    refresh_tables(conf)
    ident = int.from_bytes(os.urandom(2), "big")
    packets: list[Any] = []
    for k in range(cfg.probes_per_hop):
        for ttl in ttls:
            layer4: Any
            if cfg.protocol == "icmp":
                layer4 = ICMP(type=8, id=ident, seq=(ttl << 8) | k)
            else:
                layer4 = UDP(sport=1024 + ident % 60000, dport=cfg.udp_port + (ttl - 1) * cfg.probes_per_hop + k)
            packets.append(IP(dst=address, ttl=ttl) / layer4)
    try:
        try:
            answered, _ = sr(
                packets, timeout=cfg.probe_timeout_s, inter=cfg.inter_s, retry=0, verbose=0, filter="icmp", chainEX=True
            )
        except Scapy_Exception as exc:
            if "filter" not in str(exc):
                raise
            # no libpcap to compile the BPF filter: match in Python, every packet is parsed
            answered, _ = sr(packets, timeout=cfg.probe_timeout_s, inter=cfg.inter_s, retry=0, verbose=0, chainEX=True)
    except Scapy_Exception as exc:
        raise ProbeFailed("error", f"scapy: {exc}") from exc
    except PermissionError:
        raise
    except OSError as exc:
        raise ProbeFailed("error", f"send: {exc.strerror or exc}") from exc
    replies: dict[int, list[Reply]] = {ttl: [] for ttl in ttls}
    for query, answer in answered:
        icmp = answer.getlayer(ICMP)
        if icmp is None:
            continue
        if query.sent_time is None:
            continue
        rtt = max(0.0, float(answer.time) - float(query.sent_time))
        replies[int(query[IP].ttl)].append(Reply(str(answer[IP].src), rtt, classify(int(icmp.type), int(icmp.code))))
    return [HopProbe(ttl, cfg.probes_per_hop, tuple(replies[ttl])) for ttl in ttls]


#: the OS edge; tests replace it
probe: Prober = scapy_probe


async def resolve_ipv4(address: str) -> str:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(address, None, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ProbeFailed("resolve_failed", f"cannot resolve {address!r}: {exc.strerror or exc}") from exc
    return str(infos[0][4][0])


async def trace(target: Target, cfg: Config) -> Trace:
    address = await resolve_ipv4(target.address)
    probes: list[HopProbe] = []
    for first in range(1, cfg.max_hops + 1, cfg.hops_at_once):
        ttls = list(range(first, min(first + cfg.hops_at_once, cfg.max_hops + 1)))
        try:
            probes += await asyncio.to_thread(probe, address, ttls, cfg)
        except PermissionError as exc:
            raise ProbeFailed("permission", f"raw sockets need root or CAP_NET_RAW: {exc}") from exc
        if any(hop_of(p).terminal for p in probes):
            break
    return build_trace(probes)


async def collect(ctx: CheckContext[Config]) -> Observations:
    cfg = ctx.config
    obs = Observations(ts_ms=ctx.clock_ms())
    outcomes = await asyncio.gather(*(trace(t, cfg) for t in cfg.targets), return_exceptions=True)
    for target, outcome in zip(cfg.targets, outcomes, strict=True):
        if isinstance(outcome, ProbeFailed):
            report_failure(obs, target, outcome.reason, outcome.message)
        elif isinstance(outcome, BaseException):
            raise outcome  # a programming error: trouble of the network is a result
        else:
            report(obs, target, outcome)
    return obs
