"""Who is on the center's LAN: an ARP sweep of each subnet, matched against the known devices.

Each subnet (IPv4, at most a /22) is swept with scapy: one broadcast ``Ether()/ARP(pdst=host)`` per
host address on the subnet's interface (``interface``, or the one the routing table gives for the
subnet), unanswered requests sent once more, ``sweep_timeout_s`` after each round. The sweeping
host does not answer its own requests: its own address and MAC on that interface count as found.

The known devices come from configuration (built from the center's inventory by whoever writes
the agent's configuration; the agent never reads inventory files). A device is up when a responder
has its MAC; failing that, its address. Output:

* ``lan_devices_found{subnet}``, ``lan_unknown_devices{subnet}`` (responders matching no device);
* ``lan_device_up{device}``: 1/0 for every known device; a device is left out when a sweep failed
  and it could have been in that subnet (no address, or an address inside it);
* ``probe_success{probe="arp_discovery",target=<subnet>}``, and ``probe_failure_info{reason}``
  (permission, error) with a ``probe.failed`` event when a sweep cannot run;
* events ``lan.device_unknown`` (labels mac, address) and ``lan.device_missing`` (label device),
  warnings, on every run that sees them;
* the fact ``lan: [{address, mac, known_as}, …]`` (MACs lower-case with colons, sorted by address).

Raw sockets need root or CAP_NET_RAW. scapy is imported on the first run only. Example::

    checks:
      arp_discovery:
        interval_s: 300
        subnets: [{cidr: 192.168.10.0/24, interface: eth0}]
        known:
          - {name: hoa-khanh-printer1, mac: "3c:2a:f4:00:11:22"}
          - {name: hoa-khanh-sw1, address: 192.168.10.2}
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import msgspec

from agent.checks.base import CheckContext, Observations
from agent.checks.traceroute import refresh_tables

PROBE = "arp_discovery"
#: the largest subnet swept: 1,022 hosts, a few seconds of ARP
MAX_PREFIX = 22
_MAC_RES = (
    re.compile(r"^[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}$"),
    re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$"),
    re.compile(r"^[0-9a-f]{12}$"),
)


def normalize_mac(value: str) -> str:
    """'3C-2A-F4-00-11-22', '3c2a.f400.1122' or '3c2af4001122' → '3c:2a:f4:00:11:22'."""
    text = value.strip().lower()
    if not any(r.match(text) for r in _MAC_RES):
        raise ValueError(f"{value!r}: expected a MAC address such as 'aa:bb:cc:dd:ee:ff'")
    digits = re.sub(r"[^0-9a-f]", "", text)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def parse_subnet(cidr: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ValueError(f"subnet {cidr!r}: expected an IPv4 network such as '192.168.10.0/24'") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"subnet {cidr!r}: ARP is IPv4 only")
    if net.prefixlen < MAX_PREFIX:
        raise ValueError(
            f"subnet {cidr!r} is larger than /{MAX_PREFIX} ({net.num_addresses} addresses): "
            f"list it as /{MAX_PREFIX} or smaller subnets"
        )
    return net


class Subnet(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cidr: str
    #: the interface to sweep on; None: the one the routing table gives for the subnet
    interface: Annotated[str, msgspec.Meta(pattern=r"^[^\s/]{1,15}$")] | None = None

    def __post_init__(self) -> None:
        parse_subnet(self.cidr)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return parse_subnet(self.cidr)


class Known(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=100)]
    mac: str | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.mac is None and self.address is None:
            raise ValueError(f"device {self.name!r}: give its mac, its address or both")
        if self.mac is not None:
            msgspec.structs.force_setattr(self, "mac", normalize_mac(self.mac))
        if self.address is not None:
            try:
                ipaddress.IPv4Address(self.address)
            except ValueError:
                raise ValueError(f"device {self.name!r}: address {self.address!r} is not an IPv4 address") from None


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    subnets: tuple[Subnet, ...] = ()
    known: tuple[Known, ...] = ()
    #: wait after each round of requests (there are two: unanswered ones are sent again)
    sweep_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 3.0

    def __post_init__(self) -> None:
        names = [k.name for k in self.known]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"two known devices are named {dup!r}")
        nets = [s.network for s in self.subnets]
        for i, a in enumerate(nets):
            for b in nets[i + 1 :]:
                if a.overlaps(b):
                    raise ValueError(f"subnets {a} and {b} overlap")


# ---------------------------------------------------------------------------------------------------
# Pure part: responders → matches → samples


@dataclass(frozen=True)
class Responder:
    address: str
    mac: str  # normalized


@dataclass(frozen=True)
class Sweep:
    subnet: Subnet
    responders: tuple[Responder, ...] = ()
    error: tuple[str, str] | None = None  # (reason, message)


@dataclass(frozen=True)
class Entry:
    address: str
    mac: str
    known_as: str | None


def match(responders: Iterable[Responder], known: Sequence[Known]) -> tuple[list[Entry], set[str]]:
    """Each responder with the device it is (by MAC first, else by address); the names seen up."""
    by_mac = {k.mac: k.name for k in known if k.mac is not None}
    by_address = {k.address: k.name for k in known if k.address is not None}
    entries = []
    for r in responders:
        name = by_mac.get(r.mac)
        if name is None:
            name = by_address.get(r.address)
        entries.append(Entry(r.address, r.mac, name))
    entries.sort(key=lambda e: (ipaddress.IPv4Address(e.address), e.mac))
    return entries, {e.known_as for e in entries if e.known_as is not None}


def checkable(device: Known, sweeps: Sequence[Sweep]) -> bool:
    """Whether absence means down: every sweep that could have seen the device succeeded."""
    failed = [s for s in sweeps if s.error is not None]
    if not failed:
        return True
    if device.address is None:
        return False
    ip = ipaddress.IPv4Address(device.address)
    return not any(ip in s.subnet.network for s in failed)


def report(obs: Observations, cfg: Config, sweeps: Sequence[Sweep]) -> None:
    seen: set[str] = set()
    lan: list[dict[str, Any]] = []
    for sweep in sweeps:
        labels = {"probe": PROBE, "target": sweep.subnet.cidr}
        if sweep.error is not None:
            reason, message = sweep.error
            obs.add("probe_success", 0.0, **labels)
            obs.add("probe_failure_info", 1.0, reason=reason, **labels)
            obs.event("probe.failed", message[:1000], "warning", **labels)
            continue
        obs.add("probe_success", 1.0, **labels)
        entries, up = match(sweep.responders, cfg.known)
        seen |= up
        unknown = [e for e in entries if e.known_as is None]
        obs.add("lan_devices_found", len(entries), subnet=sweep.subnet.cidr)
        obs.add("lan_unknown_devices", len(unknown), subnet=sweep.subnet.cidr)
        for e in unknown:
            obs.event(
                "lan.device_unknown",
                f"{e.address} ({e.mac}) answered ARP on {sweep.subnet.cidr} and is no known device",
                "warning",
                mac=e.mac,
                address=e.address,
            )
        lan += [{"address": e.address, "mac": e.mac, "known_as": e.known_as} for e in entries]
    for device in cfg.known:
        if device.name in seen:
            obs.add("lan_device_up", 1.0, device=device.name)
        elif checkable(device, sweeps):
            obs.add("lan_device_up", 0.0, device=device.name)
            where = " or ".join(x for x in (device.mac, device.address) if x)
            obs.event(
                "lan.device_missing", f"{device.name} ({where}) did not answer ARP", "warning", device=device.name
            )
    obs.facts = {"lan": lan}


# ---------------------------------------------------------------------------------------------------
# The network edge


class SweepFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class Sweeper(Protocol):
    """ARP-sweep one subnet; blocking (run in a thread). Raises ``PermissionError`` without
    raw-socket rights and ``SweepFailed`` for other trouble."""

    def __call__(self, subnet: Subnet, timeout_s: float) -> list[Responder]: ...


def scapy_sweep(subnet: Subnet, timeout_s: float) -> list[Responder]:
    from scapy.config import conf
    from scapy.error import Scapy_Exception
    from scapy.interfaces import resolve_iface
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    refresh_tables(conf)
    net = subnet.network
    hosts = [str(h) for h in net.hosts()]
    try:
        iface = subnet.interface or conf.route.route(hosts[0])[0]
        nic = resolve_iface(iface)
        if not nic.is_valid():
            raise SweepFailed("error", f"interface {iface!r} does not exist")
        own_mac, own_ip = nic.mac, nic.ip
        request = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=hosts)
        kwargs: dict[str, Any] = {"iface": iface, "timeout": timeout_s, "retry": 1, "verbose": 0, "chainEX": True}
        try:
            answered, _ = srp(request, filter="arp", **kwargs)
        except Scapy_Exception as exc:
            if "filter" not in str(exc):
                raise
            answered, _ = srp(request, **kwargs)  # no libpcap for BPF: every frame is parsed in Python
    except Scapy_Exception as exc:
        raise SweepFailed("error", f"scapy: {exc}") from exc
    except PermissionError:
        raise
    except OSError as exc:
        raise SweepFailed("error", f"{iface}: {exc.strerror or exc}") from exc
    found: dict[str, Responder] = {}
    for _query, answer in answered:
        arp = answer[ARP]
        found.setdefault(str(arp.psrc), Responder(str(arp.psrc), normalize_mac(str(arp.hwsrc))))
    if own_ip and own_mac and ipaddress.IPv4Address(own_ip) in net:
        found.setdefault(own_ip, Responder(own_ip, normalize_mac(own_mac)))
    return list(found.values())


#: the OS edge; tests replace it
sweep: Sweeper = scapy_sweep


async def _sweep(subnet: Subnet, timeout_s: float) -> Sweep:
    try:
        responders = await asyncio.to_thread(sweep, subnet, timeout_s)
    except PermissionError as exc:
        return Sweep(subnet, error=("permission", f"raw sockets need root or CAP_NET_RAW: {exc}"))
    except SweepFailed as exc:
        return Sweep(subnet, error=(exc.reason, exc.message))
    return Sweep(subnet, tuple(responders))


async def collect(ctx: CheckContext[Config]) -> Observations:
    cfg = ctx.config
    obs = Observations(ts_ms=ctx.clock_ms())
    sweeps = await asyncio.gather(*(_sweep(s, cfg.sweep_timeout_s) for s in cfg.subnets))
    report(obs, cfg, sweeps)
    return obs
