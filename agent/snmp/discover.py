"""SNMP discovery: which hosts of a subnet answer SNMP, which profile each matches, and a ready
inventory snippet (``centerwatch-agent snmp-discover``).

Every host of the subnet (at most 4,096 addresses: a /20 of IPv4) gets one GET of sysObjectID,
sysDescr, sysName and sysServices, ``concurrency`` hosts at a time, v2c over our own client or v3
over pysnmp. A host that stays silent (nothing there, no SNMP, or a wrong v2c community, which
agents do not answer) is only counted; one that answers with a refusal (a v3 report: unknown
user, wrong key) or an unusable answer is reported with its cause; one that answers is matched
to a profile by sysObjectID (``profiles.py``, as the snmp check does) and becomes an inventory
host: its name from sysName made to fit inventory's host-name rule (``collector/inventory.py``:
lower-case ASCII words joined by ``-``, prefixed with the center slug), its role guessed from the
profile (else from sysDescr, else from sysServices), and ``snmp: {version, credential}`` with
the credential's *name*, never its secret.

The pure parts (subnet bounds, names, roles, the snippet, the progress line) take data and give
text; ``scan`` is the only part that sends, through a ``Probe`` the tests can replace. Texts
come from the message catalog (``centerwatch/i18n.py``, table ``snmp_discover``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TextIO

from agent.errors import AgentError
from agent.snmp.client import BerClient, Credentials, PysnmpSession, Target, Value, scrub, secret_values
from agent.snmp.errors import SnmpError
from agent.snmp.profiles import ProfileSet
from centerwatch.i18n import DEFAULT_LANG, t

#: the most addresses one scan may cover: a /20 of IPv4
MAX_ADDRESSES = 4096
MAX_PREFIX_V4 = 20

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_SERVICES = "1.3.6.1.2.1.1.7.0"
SYSTEM_OIDS = (SYS_OBJECT_ID, SYS_DESCR, SYS_NAME, SYS_SERVICES)

#: inventory's host-name rule (``collector/inventory.py`` SLUG_RE; a test keeps them equal)
HOST_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MAX_NAME = 63

Role = Literal["router", "switch", "ap", "printer", "ups", "pc"]
Basis = Literal["profile", "descr", "services", "default"]
#: profile → inventory role, for the shipped profiles that say what a device is
ROLE_BY_PROFILE: dict[str, Role] = {
    "cisco-catalyst": "switch",
    "printer": "printer",
    "ups": "ups",
    "apc": "ups",
    "ubiquiti-airmax": "ap",
}
#: words of sysDescr (lower case) → role, first match wins
ROLE_BY_DESCR: tuple[tuple[Role, tuple[str, ...]], ...] = (
    ("printer", ("printer", "laserjet", "jetdirect", "officejet", "imagerunner", "bizhub")),
    ("ups", ("ups", "powerware", "smart-ups", "uninterruptible")),
    ("ap", ("access point", "airos", "unifi", "wireless")),
    ("router", ("router", "routeros", "mikrotik", "draytek", "isr", "edgeos")),
    ("switch", ("switch", "catalyst", "procurve", "aruba", "cisco ios")),
)

Status = Literal["ok", "refused", "error"]


class DiscoverError(AgentError):
    """The scan cannot start (a bad subnet, center or option); the text is for the user."""


@dataclass(frozen=True)
class Answer:
    """A host that answered SNMP: its system group (``ok``), or why it is of no use (``refused``:
    credentials refused; ``error``: an answer without sysObjectID, garbage)."""

    address: str
    status: Status
    sys_object_id: str = ""
    sys_descr: str = ""
    sys_name: str = ""
    sys_services: int | None = None
    error: str = ""


@dataclass(frozen=True)
class Found:
    """An answering host as it goes into the inventory."""

    answer: Answer
    name: str
    profile: str
    role: Role
    basis: Basis


# --- the subnet ---------------------------------------------------------------------------------------


def subnet_hosts(text: str, lang: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, list[str]]:
    """The network of ``text`` and its host addresses; ``DiscoverError`` when it is no subnet or
    larger than a /20 (4,096 addresses)."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise DiscoverError(t("snmp_discover.bad_subnet", lang, subnet=text)) from None
    if network.num_addresses > MAX_ADDRESSES:
        raise DiscoverError(
            t("snmp_discover.too_big", lang, subnet=str(network), count=network.num_addresses, max=MAX_ADDRESSES)
        )
    return network, [str(a) for a in network.hosts()]


# --- names and roles ----------------------------------------------------------------------------------


def _ascii(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")  # no decomposition in Unicode
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def host_name(sys_name: str, address: str, center: str | None = None) -> str:
    """A host name inventory accepts, from sysName: the first label of a domain name, Vietnamese
    letters without their marks, lower case, anything else turned into ``-``; prefixed with
    ``center-`` unless it starts so. ``snmp-<address>`` when sysName gives nothing."""
    base = sys_name.strip()
    try:
        ipaddress.ip_address(base)
    except ValueError:
        base = base.split(".", 1)[0]  # sw1.hoa-khanh.example → sw1
    slug = re.sub(r"[^a-z0-9]+", "-", _ascii(base).lower()).strip("-")
    if not slug:
        slug = "snmp-" + re.sub(r"[^0-9a-f]+", "-", address.lower()).strip("-")
    if center and slug != center and not slug.startswith(center + "-"):
        slug = f"{center}-{slug}"
    return slug[:MAX_NAME].rstrip("-")


def unique_names(names: Iterable[str]) -> list[str]:
    """``names`` with repeats made unique: ``sw``, ``sw-2``, ``sw-3``…"""
    taken: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            suffix = f"-{n}"
            candidate = name[: MAX_NAME - len(suffix)].rstrip("-") + suffix
        taken.add(candidate)
        out.append(candidate)
    return out


def guess_role(profile: str, sys_descr: str, sys_services: int | None) -> tuple[Role, Basis]:
    """The inventory role of a device: from its profile when that says, else from words of its
    sysDescr, else from sysServices (layer 3 without applications: a router; layer 2: a switch;
    applications: a host), else ``switch``."""
    if profile in ROLE_BY_PROFILE:
        return ROLE_BY_PROFILE[profile], "profile"
    descr = sys_descr.lower()
    for role, words in ROLE_BY_DESCR:
        if any(re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", descr) for w in words):
            return role, "descr"
    if sys_services is not None and 0 < sys_services < 128:
        if sys_services & 0x04 and not sys_services & 0x40:
            return "router", "services"
        if sys_services & 0x40:
            return "pc", "services"
        if sys_services & 0x02:
            return "switch", "services"
    return "switch", "default"


def one_line(value: str, limit: int = 80) -> str:
    """Text fit for a YAML comment or a report column: one line, printable, at most ``limit``."""
    line = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _text(value: Value | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.rstrip(b"\0").decode("utf-8", errors="replace")
    return str(value)


def answer_from(address: str, values: dict[str, Value]) -> Answer:
    """The ``Answer`` of a host that answered the GET of ``SYSTEM_OIDS`` with ``values``."""
    oid = values.get(SYS_OBJECT_ID)
    services = values.get(SYS_SERVICES)
    if not isinstance(oid, str):
        return Answer(address, "error", sys_descr=_text(values.get(SYS_DESCR)), error="no sysObjectID")
    return Answer(
        address,
        "ok",
        sys_object_id=oid,
        sys_descr=_text(values.get(SYS_DESCR)),
        sys_name=_text(values.get(SYS_NAME)),
        sys_services=services if isinstance(services, int) else None,
    )


def identify(answers: Sequence[Answer], profiles: ProfileSet, center: str | None = None) -> list[Found]:
    """The answering hosts as inventory hosts: profile, unique name, role."""
    ok = [a for a in answers if a.status == "ok"]
    names = unique_names(host_name(a.sys_name, a.address, center) for a in ok)
    found = []
    for answer, name in zip(ok, names, strict=True):
        profile = profiles.match(answer.sys_object_id)
        profile_name = profile.name if profile is not None else ""
        role, basis = guess_role(profile_name, answer.sys_descr, answer.sys_services)
        found.append(Found(answer, name, profile_name, role, basis))
    return found


# --- output ---------------------------------------------------------------------------------------------


def snippet(found: Sequence[Found], subnet: str, scanned: int, version: str, credential: str, lang: str) -> str:
    """The inventory YAML for ``found`` (a center group's ``hosts:``), with comments saying where
    each value came from. Names, addresses, roles and the credential name are plain YAML scalars."""
    lines = [
        f"# {t('snmp_discover.snippet_header', lang, subnet=subnet, found=len(found), scanned=scanned)}",
        f"# {t('snmp_discover.snippet_hint', lang)}",
    ]
    if not found:
        lines.append("hosts: {}")
        return "\n".join(lines) + "\n"
    lines.append("hosts:")
    for item in found:
        a = item.answer
        basis = t(f"snmp_discover.basis.{item.basis}", lang, profile=item.profile or "-")
        name, descr = one_line(a.sys_name, 40) or "-", one_line(a.sys_descr, 60) or "-"
        lines.append(f"  # {a.address} · sysName {name} · {descr}")
        lines.append(f"  {item.name}:")
        lines.append(f"    device_role: {item.role}  # {basis}")
        lines.append(f"    ansible_host: {a.address}")
        lines.append("    snmp:")
        lines.append(f"      version: {version}")
        lines.append(f"      credential: {credential}")
    return "\n".join(lines) + "\n"


def report(found: Sequence[Found], answers: Sequence[Answer], scanned: int, lang: str) -> str:
    """What the scan found, one host a line, and a summary."""
    lines: list[str] = []
    if found:
        header = (
            t("snmp_discover.col.address", lang),
            t("snmp_discover.col.name", lang),
            t("snmp_discover.col.profile", lang),
            t("snmp_discover.col.role", lang),
            t("snmp_discover.col.descr", lang),
        )
        rows = [
            (f.answer.address, f.name, f.profile or "-", f.role, one_line(f.answer.sys_descr, 50) or "-") for f in found
        ]
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
        for row in (header, *rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    for a in answers:
        if a.status != "ok":
            lines.append(t(f"snmp_discover.{a.status}", lang, address=a.address, error=one_line(a.error, 120)))
    refused = sum(1 for a in answers if a.status != "ok")
    counts = {"answered": len(answers), "scanned": scanned, "usable": len(found), "refused": refused}
    lines.append(t("snmp_discover.summary", lang, **counts))
    return "\n".join(lines) + "\n"


class Progress:
    """The scan's progress on ``stream``: a bar redrawn in place on a terminal, else a plain line
    at every tenth of the way (and at the end)."""

    def __init__(self, stream: TextIO, total: int, lang: str, tty: bool | None = None, width: int = 30) -> None:
        self.stream = stream
        self.total = total
        self.lang = lang
        self.tty = stream.isatty() if tty is None else tty
        self.width = width
        self.done = 0
        self.answered = 0
        self._tenth = 0

    def line(self) -> str:
        status = t("snmp_discover.progress", self.lang, done=self.done, total=self.total, answered=self.answered)
        if not self.tty:
            return status
        filled = self.width * self.done // self.total if self.total else self.width
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {status}"

    def update(self, answered: bool) -> None:
        self.done += 1
        self.answered += int(answered)
        if self.tty:
            self.stream.write("\r" + self.line())
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
            return
        tenth = 10 * self.done // self.total if self.total else 10
        if tenth > self._tenth or self.done == self.total:
            self._tenth = tenth
            self.stream.write(self.line() + "\n")
            self.stream.flush()


# --- the network edge -----------------------------------------------------------------------------------

#: Asks one address; ``None`` when it stays silent.
Probe = Callable[[str], Awaitable[Answer | None]]


def snmp_probe(
    session: PysnmpSession, port: int, credentials: Credentials, timeout_s: float, retries: int, lang: str
) -> Probe:
    """A ``Probe`` sending a GET of ``SYSTEM_OIDS`` to ``address:port`` through ``session``. A
    failure before anything is sent (no route, no socket) is this machine's problem, the same
    for every address: ``DiscoverError``, which ends the scan."""
    secrets = secret_values(credentials)

    async def probe(address: str) -> Answer | None:
        try:
            client = await session.client(Target(address, port, timeout_s, retries), credentials)
        except SnmpError as exc:
            error = scrub(str(exc), secrets)
            raise DiscoverError(t("snmp_discover.cannot_send", lang, address=address, error=error)) from None
        try:
            try:
                values = await client.get(list(SYSTEM_OIDS))
            finally:
                if isinstance(client, BerClient):
                    client.close()  # one socket per host: a /20 would run out of descriptors
        except SnmpError as exc:
            if exc.kind == "timeout":
                return None
            status: Status = "refused" if exc.kind == "auth" else "error"
            return Answer(address, status, error=scrub(str(exc), secrets))
        return answer_from(address, values)

    return probe


async def scan(
    addresses: Sequence[str], probe: Probe, concurrency: int, on_done: Callable[[Answer | None], None] | None = None
) -> list[Answer]:
    """Every address asked (``concurrency`` at a time); the answers in address order."""
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(address: str) -> Answer | None:
        async with limit:
            answer = await probe(address)
        if on_done is not None:
            on_done(answer)
        return answer

    results = await asyncio.gather(*(one(a) for a in addresses))
    return [r for r in results if r is not None]


async def discover(
    addresses: Sequence[str],
    port: int,
    credentials: Credentials,
    *,
    timeout_s: float,
    retries: int,
    concurrency: int,
    on_done: Callable[[Answer | None], None] | None = None,
    lang: str = DEFAULT_LANG,
) -> list[Answer]:
    """``scan`` over SNMP with one session, closed at the end."""
    async with PysnmpSession() as session:
        probe = snmp_probe(session, port, credentials, timeout_s, retries, lang)
        return await scan(addresses, probe, concurrency, on_done)
