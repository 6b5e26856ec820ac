"""One service center in network namespaces: LAN hosts, a center router, two uplinks, services.

Topology (every box is a network namespace named ``cw<4 hex>-<role>``; lines are veth pairs)::

    center  .10 ─┐
    pc2     .11 ─┼─ br-lan [gw] ── up-isp ═ to-gw [isp] to-inet ═ to-isp [inet]  portal .100.10, dns .100.53
    printer .20 ─┘   .0.1      └── up-wan ═ to-gw [wan] to-gov  ═ to-wan [gov]   dichvucong .200.10, dns .200.53

* The LAN is a Linux bridge ``br-lan`` inside ``gw`` (the center router doubles as the LAN switch, as
  the small routers in the centers do); each LAN host has ``eth0`` with its peer enslaved to it.
* IPv4 from 198.18.0.0/15, IPv6 from fd00:cafe::/48 (see ``ADDRESSES``). LAN hosts have a default
  route via gw; gw routes the internet service prefix (198.18.100.0/24) via ``isp`` and the government
  service prefix (198.18.200.0/24) via ``wan``; ``inet`` and ``gov`` route only 198.18.0.0/15 back.
  No namespace has a route out of the lab, and no interface of the host's namespace is created or
  touched: each veth pair is created directly inside its two namespaces.
* Service addresses live on ``lo`` of ``inet`` / ``gov``. Both run ``tests.lab.dnsd`` (same zone,
  all ``*.lab.`` names) and ``tests.lab.httpd`` (HTTP :80, HTTPS :443 with a self-signed cert).
* ``/etc/netns/<ns>/resolv.conf`` points every lab namespace at the internet DNS (198.18.100.53), so
  ``getaddrinfo("portal.lab")`` works under ``ip netns exec`` and no lookup ever goes to the host's
  resolver.
* Faults live in the hop namespaces (``isp``, ``wan``): loss in an nftables table of the lab's own
  (forward hook, both directions, one ``numgen random`` draw per packet), rate with ``tbf`` on both
  hop interfaces, and ``link_down`` sets the hop's interface facing gw down (gw sees NO-CARRIER and
  keeps its routes, so traffic times out like on a dead ISP line).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NFT_TABLE = "centerwatch_lab"
NETNS_DIR = "/run/netns"
LAN_HOSTS = ("center", "pc2", "printer")
ROUTERS = ("gw", "isp", "wan")
ROLES = (*LAN_HOSTS, *ROUTERS, "inet", "gov")
DNS_MODES = ("ok", "servfail", "refused", "nxdomain", "silent")

# name -> (IPv4, IPv6)
ADDRESSES: dict[str, tuple[str, str]] = {
    "gw": ("198.18.0.1", "fd00:cafe::1"),  # LAN side of the center router (br-lan)
    "center": ("198.18.0.10", "fd00:cafe::10"),
    "pc2": ("198.18.0.11", "fd00:cafe::11"),
    "printer": ("198.18.0.20", "fd00:cafe::20"),
    "gw-isp": ("198.18.1.1", "fd00:cafe:1::1"),
    "isp": ("198.18.1.2", "fd00:cafe:1::2"),
    "isp-inet": ("198.18.2.1", "fd00:cafe:2::1"),
    "inet": ("198.18.2.2", "fd00:cafe:2::2"),
    "gw-wan": ("198.18.3.1", "fd00:cafe:3::1"),
    "wan": ("198.18.3.2", "fd00:cafe:3::2"),
    "wan-gov": ("198.18.4.1", "fd00:cafe:4::1"),
    "gov": ("198.18.4.2", "fd00:cafe:4::2"),
    "portal": ("198.18.100.10", "fd00:cafe:100::10"),  # internet HTTP(S) service
    "inet-dns": ("198.18.100.53", "fd00:cafe:100::53"),
    "dichvucong": ("198.18.200.10", "fd00:cafe:200::10"),  # government HTTP(S) service
    "gov-dns": ("198.18.200.53", "fd00:cafe:200::53"),
}
INTERNET_PREFIX = ("198.18.100.0/24", "fd00:cafe:100::/64")
GOV_PREFIX = ("198.18.200.0/24", "fd00:cafe:200::/64")
LAB_PREFIX = ("198.18.0.0/15", "fd00:cafe::/48")

# point-to-point links: (ns, ifname, address name) on each side; all /24 and /64
P2P: tuple[tuple[tuple[str, str, str], tuple[str, str, str]], ...] = (
    (("gw", "up-isp", "gw-isp"), ("isp", "to-gw", "isp")),
    (("isp", "to-inet", "isp-inet"), ("inet", "to-isp", "inet")),
    (("gw", "up-wan", "gw-wan"), ("wan", "to-gw", "wan")),
    (("wan", "to-gov", "wan-gov"), ("gov", "to-wan", "gov")),
)
# static routes: (ns, destination v4, destination v6, via address name)
ROUTES: tuple[tuple[str, str, str, str], ...] = (
    *((host, "default", "default", "gw") for host in LAN_HOSTS),
    ("gw", INTERNET_PREFIX[0], INTERNET_PREFIX[1], "isp"),
    ("gw", "198.18.2.0/24", "fd00:cafe:2::/64", "isp"),
    ("gw", GOV_PREFIX[0], GOV_PREFIX[1], "wan"),
    ("gw", "198.18.4.0/24", "fd00:cafe:4::/64", "wan"),
    ("isp", "198.18.0.0/24", "fd00:cafe::/64", "gw-isp"),
    ("isp", INTERNET_PREFIX[0], INTERNET_PREFIX[1], "inet"),
    ("wan", "198.18.0.0/24", "fd00:cafe::/64", "gw-wan"),
    ("wan", GOV_PREFIX[0], GOV_PREFIX[1], "gov"),
    ("inet", LAB_PREFIX[0], LAB_PREFIX[1], "isp-inet"),
    ("gov", LAB_PREFIX[0], LAB_PREFIX[1], "wan-gov"),
)
SERVICE_ADDRS = {"inet": ("portal", "inet-dns"), "gov": ("dichvucong", "gov-dns")}

ZONE = """\
; the lab's zone, served by both DNS servers (inet and gov)
lab.              60 TXT   "CenterWatch lab"
portal.lab.       60 A     198.18.100.10
portal.lab.       60 AAAA  fd00:cafe:100::10
www.portal.lab.   60 CNAME portal.lab.
dichvucong.lab.   60 A     198.18.200.10
dichvucong.lab.   60 AAAA  fd00:cafe:200::10
ipv4only.lab.     60 A     198.18.100.10
dns.lab.          60 A     198.18.100.53
dns.gov.lab.      60 A     198.18.200.53
"""
TITLES = {"inet": "Cổng Dịch vụ công Quốc gia", "gov": "Dịch vụ công trực tuyến — mạng WAN Chính phủ"}


class LabError(RuntimeError):
    """A lab command failed; the message names the command and its stderr."""


@dataclass(frozen=True)
class Hop:
    """A faultable uplink: the hop namespace, its interface facing gw, both its interfaces, gw's end."""

    ns: str
    gw_side: str
    ifaces: tuple[str, str]
    gw_iface: str


LINKS: dict[str, Hop] = {
    "isp": Hop("isp", "to-gw", ("to-gw", "to-inet"), "up-isp"),
    "wan": Hop("wan", "to-gw", ("to-gw", "to-gov"), "up-wan"),
}


def run(
    cmd: Sequence[str], *, check: bool = True, timeout: float = 30.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd, check=check)``; a failure raises ``LabError`` naming the command and stderr."""
    argv = list(cmd)
    try:
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.CalledProcessError as exc:
        err = (exc.stderr or exc.stdout or "").strip()
        raise LabError(f"`{shlex.join(argv)}` failed with exit code {exc.returncode}: {err}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{shlex.join(argv)}` did not finish within {timeout:.0f} s") from None
    except FileNotFoundError as exc:
        raise LabError(f"`{shlex.join(argv)}`: {argv[0]} not found ({exc.strerror})") from None


def missing_tools() -> list[str]:
    return [tool for tool in ("ip", "nft", "tc", "sysctl") if shutil.which(tool) is None]


def existing_namespaces() -> set[str]:
    """Names of the named network namespaces (read from /run/netns, as ``ip netns`` does).

    Not ``ip netns list``: it queries each namespace, and fails when another run deletes one meanwhile.
    """
    try:
        return set(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return set()


class Lab:
    """A service center in network namespaces. Use as a context manager, or ``up()`` / ``down()``."""

    def __init__(self, *, services: bool = True, prefix: str | None = None, tls: bool = True) -> None:
        self.services = services
        self.tls = tls and shutil.which("openssl") is not None
        self.prefix = prefix or self._new_prefix()
        self.tmpdir: Path | None = None
        self.cert: Path | None = None  # self-signed: also the CA file clients should trust
        self._namespaces: list[str] = []
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._loss: dict[str, int] = {}
        self._rate: dict[str, int] = {}
        self._down_links: set[str] = set()
        self._dns_broken = False

    # ------------------------------------------------------------------ names and addresses
    @staticmethod
    def _new_prefix() -> str:
        taken = {name.split("-", 1)[0] for name in existing_namespaces()}
        for _ in range(100):
            prefix = f"cw{secrets.token_hex(2)}"
            if prefix not in taken:
                return prefix
        raise LabError("no free lab prefix after 100 tries")

    def ns(self, role: str) -> str:
        """Full namespace name of a role (``center``, ``gw``, ``isp``, ...)."""
        if role not in ROLES:
            raise ValueError(f"unknown lab namespace {role!r}; known: {', '.join(ROLES)}")
        return f"{self.prefix}-{role}"

    @staticmethod
    def addr(name: str, family: int = 4) -> str:
        """Address by name (see ``ADDRESSES``), family 4 or 6."""
        v4, v6 = ADDRESSES[name]
        return v4 if family == 4 else v6

    @property
    def namespaces(self) -> list[str]:
        return list(self._namespaces)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def up(self) -> Lab:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces)")
        if missing := missing_tools():
            raise LabError(f"the lab needs {', '.join(missing)} (tests/debian-packages.txt)")
        try:
            self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-lab-"))
            self._build()
            if self.services:
                self._start_services()
        except BaseException:
            self.down()
            raise
        return self

    def _build(self) -> None:
        for role in ROLES:
            name = self.ns(role)
            run(["ip", "netns", "add", name])
            self._namespaces.append(name)
            settings = [
                "net.ipv4.ping_group_range=0 2147483647",
                "net.ipv4.icmp_ratelimit=0",
                "net.ipv6.icmp.ratelimit=0",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.keep_addr_on_down=1",
                "net.ipv6.conf.default.keep_addr_on_down=1",
            ]
            if role in ROUTERS:
                settings += ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]
            run(["ip", "netns", "exec", name, "sysctl", "-q", "-w", *settings])
            run(["ip", "-n", name, "link", "set", "lo", "up"])
            etc = Path("/etc/netns") / name
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(
                f"# CenterWatch lab {self.prefix}\nnameserver {self.addr('inet-dns')}\noptions timeout:1 attempts:1\n"
            )
        # LAN: bridge in gw, one port per LAN host
        gw = self.ns("gw")
        run(["ip", "-n", gw, "link", "add", "br-lan", "type", "bridge", "stp_state", "0", "mcast_snooping", "0"])
        self._addresses(gw, "br-lan", "gw")
        for host in LAN_HOSTS:
            port = f"lan-{host}"
            self._veth(self.ns(host), "eth0", gw, port)
            run(["ip", "-n", gw, "link", "set", port, "master", "br-lan"])
            self._addresses(self.ns(host), "eth0", host)
        run(["ip", "-n", gw, "link", "set", "br-lan", "up"])
        for (ns_a, if_a, addr_a), (ns_b, if_b, addr_b) in P2P:
            self._veth(self.ns(ns_a), if_a, self.ns(ns_b), if_b)
            self._addresses(self.ns(ns_a), if_a, addr_a)
            self._addresses(self.ns(ns_b), if_b, addr_b)
        for role, names in SERVICE_ADDRS.items():
            for name in names:
                v4, v6 = ADDRESSES[name]
                run(["ip", "-n", self.ns(role), "addr", "add", f"{v4}/32", "dev", "lo"])
                run(["ip", "-n", self.ns(role), "addr", "add", f"{v6}/128", "dev", "lo", "nodad"])
        self._routes()
        self._wait_operational()

    def _wait_operational(self, roles: Iterable[str] = ROLES, timeout: float = 5.0) -> None:
        """Wait until every interface of these namespaces is operationally UP (bounded).

        Carrier changes reach IPv6 through the kernel's link watch, which runs at most once a second:
        until then the bridge has not joined its solicited-node groups and the first IPv6 neighbour
        solicitation from a LAN host goes unanswered (a 1 s stall on the first packet).
        """
        names = [self.ns(role) for role in roles]
        # the ends of another uplink that is cut on purpose stay down
        cut = {(self.ns(h.ns), h.gw_side) for h in map(self._hop, self._down_links)}
        cut |= {(self.ns("gw"), h.gw_iface) for h in map(self._hop, self._down_links)}
        deadline = time.monotonic() + timeout
        pending: list[str] = []
        while time.monotonic() < deadline:
            pending = []
            for name in names:
                for link in json.loads(run(["ip", "-j", "-n", name, "link", "show"]).stdout):
                    if (name, link["ifname"]) in cut:
                        continue
                    if link["ifname"] != "lo" and link.get("operstate") != "UP":
                        pending.append(f"{name}/{link['ifname']}={link.get('operstate')}")
            maddr = run(["ip", "-n", self.ns("gw"), "-6", "maddr", "show", "dev", "br-lan"]).stdout
            if not pending and "ff02::1:ff00:1" in maddr:
                return
            time.sleep(0.05)
        raise LabError(f"interfaces not up within {timeout:.0f} s: {', '.join(pending) or 'br-lan multicast'}")

    def _veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        """A veth pair born inside its two namespaces: it never exists in the host's."""
        run(["ip", "link", "add", "name", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        run(["ip", "-n", ns_a, "link", "set", if_a, "up"])
        run(["ip", "-n", ns_b, "link", "set", if_b, "up"])

    def _addresses(self, ns: str, dev: str, name: str) -> None:
        v4, v6 = ADDRESSES[name]
        run(["ip", "-n", ns, "addr", "replace", f"{v4}/24", "dev", dev])
        run(["ip", "-n", ns, "addr", "replace", f"{v6}/64", "dev", dev, "nodad"])

    def _routes(self, only: Iterable[str] | None = None) -> None:
        roles = set(only) if only is not None else None
        for role, dst4, dst6, via in ROUTES:
            if roles is not None and role not in roles:
                continue
            v4, v6 = ADDRESSES[via]
            run(["ip", "-n", self.ns(role), "route", "replace", dst4, "via", v4])
            run(["ip", "-n", self.ns(role), "-6", "route", "replace", dst6, "via", v6])

    def down(self) -> None:
        """Stop the lab's processes and delete its namespaces; idempotent, touches nothing else."""
        for _, proc in reversed(self._procs):
            _stop(proc)
        self._procs.clear()
        present = existing_namespaces()
        for name in reversed(self._namespaces):  # only those this lab created: a clash never costs another's
            if name in present:
                self._kill_inside(name)
                run(["ip", "netns", "del", name], check=False)
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
        self._namespaces.clear()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        self._loss.clear()
        self._rate.clear()
        self._down_links.clear()
        self._dns_broken = False

    @staticmethod
    def _kill_inside(name: str) -> None:
        """Kill what still runs in one of the lab's own namespaces (bounded: 3 s, then SIGKILL)."""
        deadline = time.monotonic() + 3.0
        sig = signal.SIGTERM
        while True:
            pids = [int(p) for p in run(["ip", "netns", "pids", name], check=False).stdout.split()]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if time.monotonic() > deadline:
                if sig == signal.SIGKILL:
                    return
                sig, deadline = signal.SIGKILL, time.monotonic() + 2.0
            time.sleep(0.05)

    # ------------------------------------------------------------------ processes
    def exec(
        self, ns: str, *cmd: str, check: bool = True, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a lab namespace and wait for it (text output captured)."""
        return run(["ip", "netns", "exec", self.ns(ns), *cmd], check=check, timeout=timeout, input=input)

    def popen(
        self, ns: str, *cmd: str, log: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a process inside a lab namespace; output goes to a log file in the lab's tmpdir.

        The process is tracked and stopped by ``down()`` (own session: its children go with it).
        """
        if self.tmpdir is None:
            raise LabError("lab is not up")
        logfile = self.tmpdir / (log or f"{ns}-{Path(cmd[0]).name}-{len(self._procs)}.log")
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        full_env = {**os.environ, "PYTHONPATH": pythonpath, **(env or {})}
        argv = ["ip", "netns", "exec", self.ns(ns), *cmd]
        with logfile.open("ab") as fh:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=full_env,
                start_new_session=True,
            )  # fmt: skip
        self._procs.append((ns, proc))
        return proc

    def log(self, name: str) -> str:
        """Text of a log file in the lab's tmpdir (``inet-dnsd.log``, ``gov-httpd.log``, ...)."""
        if self.tmpdir is None:
            return ""
        path = self.tmpdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------------ services
    def _start_services(self) -> None:
        assert self.tmpdir is not None
        zone = self.tmpdir / "lab.zone"
        zone.write_text(ZONE)
        if self.tls:
            self.cert, key = self.tmpdir / "cert.pem", self.tmpdir / "key.pem"
            sans = ["DNS:portal.lab", "DNS:www.portal.lab", "DNS:dichvucong.lab"]
            sans += [f"IP:{a}" for name in ("portal", "dichvucong") for a in ADDRESSES[name]]
            run([
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(key), "-out", str(self.cert), "-days", "2", "-subj", "/CN=portal.lab",
                "-addext", "subjectAltName=" + ",".join(sans),
            ])  # fmt: skip
        waits: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        for role, (http_name, dns_name) in SERVICE_ADDRS.items():
            dns_ready = self.tmpdir / f"{role}-dnsd.ready"
            proc = self.popen(
                role, sys.executable, "-m", "tests.lab.dnsd", "--zone", str(zone), "--origin", "lab.",
                "--listen", ADDRESSES[dns_name][0], "--listen", ADDRESSES[dns_name][1], "--port", "53",
                "--control", str(self._dns_control(role)), "--ready-file", str(dns_ready), log=f"{role}-dnsd.log",
            )  # fmt: skip
            waits.append((f"{role}-dnsd", dns_ready, proc))
            http_ready = self.tmpdir / f"{role}-httpd.ready"
            http_cmd = [
                sys.executable, "-m", "tests.lab.httpd", "--listen", ADDRESSES[http_name][0],
                "--listen", ADDRESSES[http_name][1], "--port", "80", "--title", TITLES[role],
                "--ready-file", str(http_ready),
            ]  # fmt: skip
            if self.cert is not None:
                http_cmd += ["--tls-port", "443", "--cert", str(self.cert), "--key", str(self.tmpdir / "key.pem")]
            waits.append((f"{role}-httpd", http_ready, self.popen(role, *http_cmd, log=f"{role}-httpd.log")))
        deadline = time.monotonic() + 15.0
        for name, ready, proc in waits:
            while not ready.exists():
                if proc.poll() is not None:
                    raise LabError(f"{name} exited with {proc.returncode}: {self.log(name + '.log')[-2000:]}")
                if time.monotonic() > deadline:
                    raise LabError(f"{name} not ready within 15 s: {self.log(name + '.log')[-2000:]}")
                time.sleep(0.02)

    def _dns_control(self, role: str) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / f"{role}-dnsd.control.json"

    # ------------------------------------------------------------------ faults
    @staticmethod
    def _hop(link: str) -> Hop:
        try:
            return LINKS[link]
        except KeyError:
            raise ValueError(f"unknown link {link!r}; known: {', '.join(LINKS)}") from None

    def set_loss(self, link: str, percent: int) -> None:
        """Drop ``percent``% of the packets the hop forwards (each direction, independently per packet).

        Replaces any earlier loss on the link; the drop counter starts again from 0.
        """
        if not 0 <= percent <= 100:
            raise ValueError(f"loss percent must be within 0..100, not {percent}")
        hop = self._hop(link)
        self.clear_loss(link)
        rules = (
            f"table inet {NFT_TABLE} {{\n"
            "  chain loss {\n    type filter hook forward priority -10; policy accept;\n"
            f'    numgen random mod 100 < {percent} counter drop comment "loss {percent}%"\n  }}\n}}\n'
        )
        self.exec(hop.ns, "nft", "-f", "-", input=rules)
        self._loss[link] = percent

    def drop_count(self, link: str) -> int:
        """Packets dropped by the loss rule on ``link`` since the last ``set_loss`` (0 without loss)."""
        hop = self._hop(link)
        if link not in self._loss:
            return 0
        out = self.exec(hop.ns, "nft", "-j", "list", "table", "inet", NFT_TABLE).stdout
        total = 0
        for item in json.loads(out)["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    total += int(expr["counter"]["packets"])
        return total

    def clear_loss(self, link: str) -> None:
        hop = self._hop(link)
        self._loss.pop(link, None)
        tables = self.exec(hop.ns, "nft", "list", "tables").stdout.split()
        if NFT_TABLE in tables:
            self.exec(hop.ns, "nft", "delete", "table", "inet", NFT_TABLE)

    def set_rate(self, link: str, kbit: int) -> None:
        """Shape both directions through the hop to ``kbit`` kbit/s (tbf on each hop interface)."""
        if kbit <= 0:
            raise ValueError(f"rate must be positive, not {kbit} kbit/s")
        hop = self._hop(link)
        burst = max(4096, kbit * 1000 // 8 // 100)  # 10 ms worth, at least a few full frames
        for dev in hop.ifaces:
            self.exec(
                hop.ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{kbit}kbit",
                "burst", str(burst), "latency", "100ms",
            )  # fmt: skip
        self._rate[link] = kbit

    def clear_rate(self, link: str) -> None:
        hop = self._hop(link)
        if self._rate.pop(link, None) is not None:
            for dev in hop.ifaces:
                self.exec(hop.ns, "tc", "qdisc", "del", "dev", dev, "root", check=False)

    def link_down(self, link: str) -> None:
        """Cut the uplink: the hop's interface facing gw goes down (gw sees NO-CARRIER)."""
        hop = self._hop(link)
        run(["ip", "-n", self.ns(hop.ns), "link", "set", hop.gw_side, "down"])
        self._down_links.add(link)

    def link_up(self, link: str) -> None:
        """Restore the uplink, and the static routes the kernel flushed with the interface."""
        hop = self._hop(link)
        run(["ip", "-n", self.ns(hop.ns), "link", "set", hop.gw_side, "up"])
        self._down_links.discard(link)
        self._wait_operational((hop.ns, "gw"))
        self._routes(only=(hop.ns, "gw"))
        # neighbours that failed during the outage would cost a retry (about 1 s) on the first packets
        run(["ip", "-n", self.ns(hop.ns), "neigh", "flush", "dev", hop.gw_side])
        run(["ip", "-n", self.ns("gw"), "neigh", "flush", "dev", hop.gw_iface])

    def break_dns(self, mode: str = "servfail", names: Iterable[str] | None = None, server: str | None = None) -> None:
        """Make the lab's DNS fail: ``mode`` is servfail, refused, nxdomain, silent or ``delay:MS``.

        ``names`` limits it to those names (default: every query); ``server`` to ``inet`` or ``gov``
        (default: both). Takes effect on the next query (the servers re-read their control file).
        """
        if mode not in DNS_MODES and not (mode.startswith("delay:") and mode[6:].isdigit()):
            raise ValueError(f"unknown DNS failure mode {mode!r}; known: {', '.join(DNS_MODES)}, delay:MS")
        control: dict[str, Any] = {"mode": "ok", "names": {}}
        if names is None:
            control["mode"] = mode
        else:
            control["names"] = {n.lower().rstrip(".") + ".": mode for n in names}
        for role in (server,) if server else SERVICE_ADDRS:
            self._write_control(role, control)
        self._dns_broken = True

    def fix_dns(self, server: str | None = None) -> None:
        for role in (server,) if server else SERVICE_ADDRS:
            self._write_control(role, {"mode": "ok", "names": {}})
        self._dns_broken = False

    def _write_control(self, role: str, control: dict[str, Any]) -> None:
        if role not in SERVICE_ADDRS:
            raise ValueError(f"unknown DNS server {role!r}; known: {', '.join(SERVICE_ADDRS)}")
        path = self._dns_control(role)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(control))
        os.replace(tmp, path)  # atomic: the server never reads half a file

    def reset_faults(self) -> None:
        """Undo every fault: loss, rate, links, DNS."""
        for link in list(self._loss):
            self.clear_loss(link)
        for link in list(self._rate):
            self.clear_rate(link)
        for link in list(self._down_links):
            self.link_up(link)
        if self._dns_broken and self.services:
            self.fix_dns()

    # ------------------------------------------------------------------ state for the CLI
    def state(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "namespaces": self.namespaces,
            "tmpdir": str(self.tmpdir) if self.tmpdir else None,
            "pids": [proc.pid for _, proc in self._procs],
            "cert": str(self.cert) if self.cert else None,
            "addresses": ADDRESSES,
        }

    @classmethod
    def attach(cls, state: dict[str, Any]) -> Lab:
        """A handle on a lab built by another process (``python -m tests.lab up``), e.g. to ``down()`` it."""
        lab = cls(prefix=str(state["prefix"]), services=False)
        names = state.get("namespaces") or [lab.ns(role) for role in ROLES]
        lab._namespaces = [str(n) for n in names]
        lab.tmpdir = Path(state["tmpdir"]) if state.get("tmpdir") else None
        return lab


def _stop(proc: subprocess.Popen[bytes], timeout: float = 3.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
