"""The inventory: the Ansible YAML under ``inventory/`` read into typed, frozen objects.

This module is the only code that reads ``inventory/``; everything else receives an :class:`Inventory`.
It reads the tree the way ``ansible-inventory -i inventory/`` does, so both see the same hosts and
values:

* the directory is walked recursively in sorted order; hidden entries, ``group_vars``/``host_vars``
  directories and files with Ansible's ignored extensions (``~ .orig .bak .cfg .retry .pyc .pyo .swp
  .rpm .md .txt .rst``) are skipped; ``.yml``/``.yaml``/``.json`` files are parsed as the YAML plugin
  does (``all``/``children``/``hosts``/``vars``, later files overriding earlier ones key by key);
* ``group_vars/`` and ``host_vars/`` beside the inventory root are applied with Ansible's precedence
  (``ANSIBLE_PRECEDENCE`` default, ``hash_behaviour=replace``): inventory-file vars of ``all``, then of
  the host's other groups (sorted by depth, ``ansible_group_priority``, name), then
  ``group_vars/all``, then ``group_vars/<group>`` in the same order, then host vars from inventory
  files, then ``host_vars/<host>``.

Where Ansible would silently do something surprising, this loader refuses instead: duplicate YAML
keys (Ansible warns and keeps the last), files Ansible would try to parse as INI or scripts (any other
extension, ``.ini`` included, or none), ``group_vars/`` below the root (Ansible ignores them), vars files
for groups or hosts that do not exist, two candidate vars files for one group (Ansible reads only the
first), and a group var in an inventory file that ``group_vars/all`` overrides.

Every problem found is collected and raised as one :class:`~collector.errors.InventoryError`, each
naming the file, the dotted key (``all.children.centers.children.center_hoa_khanh.hosts.hoa-khanh-sw1
.parent``) and what was expected.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import time
from functools import cached_property
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic_core import ErrorDetails

from collector.errors import InventoryError, Problem

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = [
    "Center",
    "CenterKind",
    "Device",
    "DeviceRole",
    "Inventory",
    "Isp",
    "SnmpRef",
    "Terrain",
    "TimeWindow",
    "Uplink",
    "UplinkKind",
    "Weekday",
    "load_inventory",
]

DeviceRole = Literal[
    "pc",
    "probe",
    "router",
    "switch",
    "ap",
    "printer",
    "scanner",
    "ups",
    "kiosk",
    "queue",
    "rating",
    "idcard",
    "camera",
]
CenterKind = Literal["ward", "commune", "special_zone"]
Terrain = Literal["urban", "rural", "mountain", "island"]
UplinkKind = Literal["internet", "gov_wan"]
Isp = Literal["VNPT", "Viettel", "FPT"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_CREDENTIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAC_RES = (
    re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$"),  # aa:bb:cc:dd:ee:ff, aa-bb-…
    re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$"),  # aabb.ccdd.eeff (Cisco)
    re.compile(r"^[0-9a-f]{12}$"),
)

# Ansible's INVENTORY_IGNORE_EXTS default (ansible-core 2.19: REJECT_EXTS + .orig .cfg .retry).
# Note that ``.ini`` is *not* ignored: Ansible parses such a file as an INI inventory.
_IGNORED_SUFFIXES = (
    ".pyc",
    ".pyo",
    ".swp",
    ".bak",
    "~",
    ".rpm",
    ".md",
    ".txt",
    ".rst",
    ".orig",
    ".cfg",
    ".retry",
)
_YAML_SUFFIXES = (".yml", ".yaml", ".json")
_VARS_DIRS = ("group_vars", "host_vars")
_SKIPPED_DIRS = (*_VARS_DIRS, "vars_plugins")
_PRIORITY_KEY = "ansible_group_priority"
# find_vars_files: group_vars/<name> (file or directory) first, then <name>.yml, .yaml, .json.
_VARS_FILE_ORDER = {"": 0, ".yml": 1, ".yaml": 2, ".json": 3}


# ---------------------------------------------------------------------------------------------------
# Field types


def _check_slug(value: str) -> str:
    if not SLUG_RE.match(value):
        raise ValueError("expected lower-case ASCII letters and digits in words joined by '-', e.g. 'hoa-khanh'")
    return value


def _check_time(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError('write the time in quotes, e.g. "17:30" (unquoted, YAML reads 17:30 as the number 1050)')
    if isinstance(value, str):
        m = _TIME_RE.match(value)
        if not m:
            raise ValueError('expected a time "HH:MM" between "00:00" and "23:59"')
        return time(int(m.group(1)), int(m.group(2)))
    return value


def _check_mac(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("write the MAC address in quotes (unquoted, YAML reads 12:34:56:… as a number)")
    if not isinstance(value, str):
        return value  # the str type rejects it with its own message
    text = value.strip().lower()
    if not any(r.match(text) for r in _MAC_RES):
        raise ValueError("expected a MAC address such as 'aa:bb:cc:dd:ee:ff'")
    digits = re.sub(r"[^0-9a-f]", "", text)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone such as 'Asia/Ho_Chi_Minh'") from None
    return value


def _nfc(value: object) -> object:
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _check_credential(value: str) -> str:
    if not _CREDENTIAL_RE.match(value):
        raise ValueError("expected the name of a credential kept outside the repository, e.g. 'snmp-v3-network-ro'")
    return value


Slug = Annotated[StrictStr, AfterValidator(_check_slug)]
HostName = Slug
Text = Annotated[StrictStr, BeforeValidator(_nfc), Field(min_length=1)]
MacAddress = Annotated[StrictStr, BeforeValidator(_check_mac)]
LocalTime = Annotated[time, BeforeValidator(_check_time)]
TimeZoneName = Annotated[StrictStr, AfterValidator(_check_timezone)]
CredentialName = Annotated[StrictStr, AfterValidator(_check_credential)]
Year = Annotated[StrictInt, Field(ge=1980, le=2100)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------------
# Public models


class Uplink(_Frozen):
    """One of a center's links out: the internet line or the government WAN (TSLCD)."""

    name: Slug
    kind: UplinkKind
    isp: Isp
    bandwidth_mbps: Annotated[StrictInt, Field(gt=0)]
    monthly_cost_vnd: Annotated[StrictInt, Field(ge=0)]


class SnmpRef(_Frozen):
    """How to poll a device over SNMP: the version and the *name* of a credential kept outside the repo."""

    version: Literal["v2c", "v3"]
    credential: CredentialName


class TimeWindow(_Frozen):
    """A weekly window in the center's time zone: it starts on each of ``days`` at ``start`` and ends at
    ``end`` the same day, or the next day when ``end`` is not after ``start`` (17:30 → 07:00 is
    overnight; 00:00 → 00:00 is a whole day)."""

    days: Annotated[tuple[Weekday, ...], Field(min_length=1)]
    start: LocalTime
    end: LocalTime

    @property
    def overnight(self) -> bool:
        return self.end <= self.start


class Device(_Frozen):
    """A host of a center: a PC, the probe PC, or a piece of gear (switch, printer, camera…)."""

    name: HostName
    role: DeviceRole
    address: IPv4Address | IPv6Address | None = None
    mac: MacAddress | None = None
    parent: HostName | None = None  # None: hangs off the center's uplinks (the router)
    model: Text | None = None
    vendor: Text | None = None
    purchased: Year | None = None
    snmp: SnmpRef | None = None
    agent: StrictBool = False  # runs the CenterWatch agent


class Center(_Frozen):
    """One public administrative service center: its links, its devices and their topology."""

    slug: Slug
    name: Text  # Vietnamese, with diacritics (NFC)
    kind: CenterKind
    terrain: Terrain
    group: str  # the Ansible group, center_<slug with underscores>
    uplinks: tuple[Uplink, ...]
    devices: tuple[Device, ...]  # in inventory order
    probe_host: HostName  # the agent that runs the network probes, discovery and SNMP polls
    timezone: TimeZoneName
    working_hours: tuple[TimeWindow, ...]
    maintenance_windows: tuple[TimeWindow, ...]

    @cached_property
    def _by_name(self) -> dict[str, Device]:
        return {d.name: d for d in self.devices}

    def has_device(self, name: str) -> bool:
        return name in self._by_name

    def device(self, name: str) -> Device:
        """The device called ``name``; ``KeyError`` if this center has none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"center {self.slug!r} has no host {name!r}") from None

    def children(self, name: str) -> tuple[Device, ...]:
        """The devices whose ``parent`` is ``name``, in inventory order."""
        self.device(name)
        return tuple(d for d in self.devices if d.parent == name)

    def ancestors(self, name: str) -> tuple[Device, ...]:
        """The chain above ``name``, nearest first, ending at the device that hangs off the uplinks."""
        chain: list[Device] = []
        parent = self.device(name).parent
        while parent is not None:  # the loader has ruled out cycles
            device = self.device(parent)
            chain.append(device)
            parent = device.parent
        return tuple(chain)

    def roots(self) -> tuple[Device, ...]:
        """The devices without a parent: those hanging off the uplinks (normally the router)."""
        return tuple(d for d in self.devices if d.parent is None)

    @property
    def probe(self) -> Device:
        return self.device(self.probe_host)

    def uplink(self, name: str) -> Uplink:
        for link in self.uplinks:
            if link.name == name:
                return link
        raise KeyError(f"center {self.slug!r} has no uplink {name!r}")


class Inventory(_Frozen):
    """Every center by slug (sorted), with host lookups across centers."""

    centers: dict[str, Center]

    @cached_property
    def _hosts(self) -> dict[str, tuple[Center, Device]]:
        return {d.name: (c, d) for c in self.centers.values() for d in c.devices}

    def has_host(self, name: str) -> bool:
        return name in self._hosts

    def host(self, name: str) -> Device:
        """The device called ``name`` in whichever center holds it; ``KeyError`` if none does."""
        return self._entry(name)[1]

    def center_of_host(self, name: str) -> Center:
        """The center holding host ``name``; ``KeyError`` if none does."""
        return self._entry(name)[0]

    def devices(self) -> Iterator[tuple[Center, Device]]:
        """Every (center, device) pair, centers by slug, devices in inventory order."""
        for center in self.centers.values():
            for device in center.devices:
                yield center, device

    def _entry(self, name: str) -> tuple[Center, Device]:
        try:
            return self._hosts[name]
        except KeyError:
            raise KeyError(f"no host {name!r} in the inventory") from None


# ---------------------------------------------------------------------------------------------------
# What the YAML may say: the shapes of group-level and host-level variables


class _CenterVars(_Frozen):
    center_slug: Slug
    center_name: Text
    center_kind: CenterKind
    center_terrain: Terrain
    uplinks: Annotated[tuple[Uplink, ...], Field(min_length=1)]
    probe_host: HostName
    timezone: TimeZoneName
    working_hours: tuple[TimeWindow, ...]
    maintenance_windows: tuple[TimeWindow, ...]


class _HostVars(_Frozen):
    device_role: DeviceRole
    ansible_host: IPvAnyAddress | None = None
    mac: MacAddress | None = None
    parent: HostName | None = None
    model: Text | None = None
    vendor: Text | None = None
    purchased: Year | None = None
    snmp: SnmpRef | None = None
    agent: StrictBool = False


_CENTER_KEYS = frozenset(_CenterVars.model_fields)
_HOST_KEYS = frozenset(_HostVars.model_fields)
_GROUP_KEYS = _CENTER_KEYS | _HOST_KEYS  # host keys in a group are defaults for its hosts


# ---------------------------------------------------------------------------------------------------
# YAML


class _DuplicateKeyError(Exception):
    def __init__(self, path: tuple[str, ...], line: int, first_line: int) -> None:
        super().__init__(".".join(path))
        self.path = path
        self.line = line
        self.first_line = first_line


class _StrictLoader(_SafeLoader):
    """A safe loader (libyaml's when available: ten times faster) that refuses duplicate mapping keys,
    where Ansible would warn and keep the last."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_duplicates(node, ())
        return self.construct_document(node)


def _check_duplicates(node: yaml.Node, path: tuple[str, ...]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            ident = (key_node.tag, str(key_node.value))
            here = (*path, str(key_node.value))
            if ident in seen:
                raise _DuplicateKeyError(here, key_node.start_mark.line + 1, seen[ident])
            seen[ident] = key_node.start_mark.line + 1
            _check_duplicates(value_node, here)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicates(item, (*path, str(index)))


# ---------------------------------------------------------------------------------------------------
# The raw Ansible structure, with where each value came from


@dataclass(frozen=True)
class _Var:
    value: Any
    file: Path
    key: str


@dataclass
class _Group:
    name: str
    file: Path
    key: str  # where it first appears
    vars: dict[str, _Var] = field(default_factory=dict)  # from inventory files
    gv: dict[str, _Var] = field(default_factory=dict)  # from group_vars/
    children: dict[str, None] = field(default_factory=dict)
    parents: dict[str, None] = field(default_factory=dict)
    hosts: dict[str, tuple[Path, str]] = field(default_factory=dict)  # host → where it is listed
    priority: int = 1
    depth: int = 0

    def vars_base(self) -> tuple[Path, str]:
        """Where this group's ``vars:`` are (or would be) written in an inventory file."""
        for var in self.vars.values():
            return var.file, var.key.rsplit(".", 1)[0]
        return self.file, f"{self.key}.vars"


@dataclass
class _Host:
    name: str
    file: Path
    key: str  # where it first appears
    vars: dict[str, _Var] = field(default_factory=dict)  # from inventory files
    hv: dict[str, _Var] = field(default_factory=dict)  # from host_vars/
    groups: dict[str, None] = field(default_factory=dict)


def _join(*parts: object) -> str:
    return ".".join(str(p) for p in parts if str(p) != "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    """Reads the tree into groups and hosts, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.groups: dict[str, _Group] = {}
        self.hosts: dict[str, _Host] = {}

    def problem(self, file: Path, key: str, message: str) -> None:
        self.problems.append(Problem(file, key, message))

    # -- files ---------------------------------------------------------------------------------

    def read_tree(self, root: Path) -> None:
        self.groups["all"] = _Group("all", root, "all")
        if root.is_dir():
            self._walk(root, top=True)
            basedir = root
        elif root.is_file():
            self._parse_source(root)
            basedir = root.parent
        else:
            self.problem(root, "", "no such file or directory")
            return
        for kind in _VARS_DIRS:
            if (basedir / kind).is_dir():
                self._read_vars_dir(basedir / kind, kind)

    def _walk(self, directory: Path, *, top: bool) -> None:
        for entry in sorted(directory.iterdir(), key=lambda p: os.fsencode(p.name)):
            name = entry.name
            if name.startswith("."):
                continue
            if name in _SKIPPED_DIRS:
                if not top and name in _VARS_DIRS and entry.is_dir():
                    self.problem(
                        entry,
                        "",
                        f"Ansible reads {name}/ only beside the inventory root and would "
                        "ignore this one: move its files there",
                    )
                continue
            if name.endswith(_IGNORED_SUFFIXES):
                continue
            if entry.is_dir():
                self._walk(entry, top=False)
            elif entry.suffix in _YAML_SUFFIXES:
                self._parse_source(entry)
            else:
                self.problem(
                    entry,
                    "",
                    "Ansible would try to parse this file as an inventory (INI or script): "
                    "write inventory files as .yml, or give notes an ignored extension such as .md",
                )

    def _load(self, path: Path) -> tuple[bool, Any]:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            self.problem(path, "", f"not UTF-8 text (byte {exc.start})")
            return False, None
        except OSError as exc:
            self.problem(path, "", f"cannot read: {exc.strerror or exc}")
            return False, None
        loader = _StrictLoader(text)
        try:
            return True, loader.get_single_data()
        except _DuplicateKeyError as dup:
            self.problem(
                path,
                _join(*dup.path),
                f"duplicate key (line {dup.line}, first at line {dup.first_line}): "
                "Ansible would silently keep the last value",
            )
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            context = ""
            if exc.problem and exc.context:
                started = f" started at line {exc.context_mark.line + 1}" if exc.context_mark else ""
                context = f" ({exc.context}{started})"
            self.problem(path, "", f"YAML syntax error{where}: {exc.problem or exc.context}{context}")
        except yaml.YAMLError as exc:
            self.problem(path, "", f"YAML error: {exc}")
        finally:
            loader.dispose()
        return False, None

    def _parse_source(self, path: Path) -> None:
        ok, data = self._load(path)
        if not ok:
            return
        if data is None:
            self.problem(path, "", "empty file: Ansible refuses to parse it as an inventory")
            return
        if not isinstance(data, dict):
            self.problem(path, "", f"expected a mapping of groups (all: children: …), got {type(data).__name__}")
            return
        for name, body in data.items():
            self._group(path, str(name), name, body, parent=None)

    # -- the YAML inventory structure --------------------------------------------------------------

    def _group(self, file: Path, key: str, name: Any, body: Any, parent: str | None) -> None:
        if not isinstance(name, str) or not _IDENTIFIER_RE.match(name):
            self.problem(
                file,
                key,
                "a group name is letters, digits and '_' and does not start with a digit "
                "(Ansible warns about anything else), e.g. center_hoa_khanh",
            )
            return
        group = self.groups.setdefault(name, _Group(name, file, key))
        if parent is not None:
            self.groups[parent].children[name] = None
            group.parents[parent] = None
        if body is None:
            return
        if not isinstance(body, dict):
            self.problem(file, key, "expected a mapping with 'vars', 'children' and/or 'hosts'")
            return
        for section, content in body.items():
            here = _join(key, section)
            if section == "vars":
                self._group_vars(file, here, group, content)
            elif section == "children":
                if content is None:
                    continue
                if not isinstance(content, dict):
                    self.problem(file, here, "expected a mapping of child groups")
                    continue
                for child, child_body in content.items():
                    self._group(file, _join(here, child), child, child_body, parent=name)
            elif section == "hosts":
                if content is None:
                    continue
                if not isinstance(content, dict):
                    self.problem(file, here, "expected a mapping of host names to their variables")
                    continue
                for host, host_body in content.items():
                    self._host(file, _join(here, host), host, host_body, group)
            else:
                self.problem(file, here, "unknown key: a group has only 'vars', 'children' and 'hosts'")

    def _group_vars(self, file: Path, key: str, group: _Group, content: Any) -> None:
        if content is None:
            return
        if not isinstance(content, dict):
            self.problem(file, key, "expected a mapping of variables")
            return
        for var, value in content.items():
            here = _join(key, var)
            if var == _PRIORITY_KEY:
                if isinstance(value, int) and not isinstance(value, bool):
                    group.priority = value
                else:
                    self.problem(file, here, f"expected an integer, got {_short(value)}")
            elif self._var_name_ok(file, here, var):
                group.vars[var] = _Var(value, file, here)

    def _var_name_ok(self, file: Path, key: str, var: Any) -> bool:
        if isinstance(var, str) and _IDENTIFIER_RE.match(var):
            return True
        self.problem(file, key, "a variable name is letters, digits and '_' and does not start with a digit")
        return False

    def _host(self, file: Path, key: str, name: Any, body: Any, group: _Group) -> None:
        if not isinstance(name, str) or not SLUG_RE.match(name):
            self.problem(
                file,
                key,
                "a host name is lower-case ASCII words joined by '-', prefixed with the "
                "center slug, e.g. hoa-khanh-pc01 (no ranges, ports or domains)",
            )
            return
        host = self.hosts.setdefault(name, _Host(name, file, key))
        host.groups[group.name] = None
        group.hosts.setdefault(name, (file, key))
        if body is None:
            return
        if not isinstance(body, dict):
            self.problem(file, key, "expected a mapping of host variables")
            return
        for var, value in body.items():
            here = _join(key, var)
            if self._var_name_ok(file, here, var):
                host.vars[var] = _Var(value, file, here)

    # -- group_vars/ and host_vars/ ------------------------------------------------------------

    def _read_vars_dir(self, directory: Path, kind: str) -> None:
        candidates: dict[str, list[Path]] = {}
        for entry in sorted(directory.iterdir(), key=lambda p: os.fsencode(p.name)):
            if entry.name.startswith(".") or entry.name.endswith(_IGNORED_SUFFIXES):
                continue
            if entry.is_dir() or entry.suffix == "":
                name = entry.name
            elif entry.suffix in _YAML_SUFFIXES:
                name = entry.stem
            else:
                self.problem(entry, "", "Ansible ignores this file: name vars files <name>.yml")
                continue
            candidates.setdefault(name, []).append(entry)
        for name, paths in candidates.items():
            # Ansible looks for <name>, <name>.yml, <name>.yaml, <name>.json and reads only the first found.
            paths.sort(key=lambda p: _VARS_FILE_ORDER[p.name[len(name) :]])
            for extra in paths[1:]:
                self.problem(
                    extra,
                    "",
                    f"Ansible reads only {paths[0].name} for {name!r} and ignores this file: merge the two",
                )
            target: _Group | _Host | None = self.groups.get(name) if kind == "group_vars" else self.hosts.get(name)
            if target is None:
                what = "group" if kind == "group_vars" else "host"
                self.problem(
                    paths[0],
                    "",
                    f"there is no {what} named {name!r} in the inventory, so Ansible ignores this file",
                )
                continue
            store = target.gv if isinstance(target, _Group) else target.hv
            for path in self._vars_files(paths[0]):
                self._read_vars_file(path, store)

    def _vars_files(self, path: Path) -> Iterator[Path]:
        if not path.is_dir():
            yield path
            return
        for entry in sorted(path.iterdir(), key=lambda p: os.fsencode(p.name)):
            if entry.name.startswith(".") or entry.name.endswith("~"):
                continue
            if entry.is_dir() and entry.suffix == "":
                yield from self._vars_files(entry)
            elif entry.is_file() and entry.suffix in ("", *_YAML_SUFFIXES):
                yield entry
            else:
                self.problem(entry, "", "Ansible ignores this file: name vars files *.yml")

    def _read_vars_file(self, path: Path, store: dict[str, _Var]) -> None:
        ok, data = self._load(path)
        if not ok or data is None:
            return
        if not isinstance(data, dict):
            self.problem(path, "", f"expected a mapping of variables, got {type(data).__name__}")
            return
        for var, value in data.items():
            if self._var_name_ok(path, str(var), var):
                store[var] = _Var(value, path, var)

    # -- the group graph -----------------------------------------------------------------------

    def link_groups(self) -> None:
        """Hang parentless groups under ``all`` and compute depths as Ansible does (longest path)."""
        for group in self.groups.values():
            if group.name != "all" and not group.parents:
                group.parents["all"] = None
                self.groups["all"].children[group.name] = None
        done: dict[str, int] = {}

        def depth(name: str, trail: tuple[str, ...]) -> int:
            if name in done:
                return done[name]
            if name in trail:
                group = self.groups[name]
                cycle = " -> ".join((*trail[trail.index(name) :], name))
                self.problem(group.file, group.key, f"group cycle: {cycle}")
                return 0
            group = self.groups[name]
            parents = [p for p in group.parents if p != name]
            value = 0 if name == "all" else 1 + max(depth(p, (*trail, name)) for p in parents)
            done[name] = group.depth = value
            return value

        for name in self.groups:
            depth(name, ())

    def ancestors(self, names: Iterator[str] | list[str]) -> list[_Group]:
        """The given groups and all their ancestors, without ``all``, in Ansible's merge order."""
        seen: dict[str, None] = {}
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in seen or name == "all":
                continue
            seen[name] = None
            stack.extend(self.groups[name].parents)
        return sorted((self.groups[n] for n in seen), key=lambda g: (g.depth, g.priority, g.name))

    def descendants(self, name: str) -> list[_Group]:
        seen: dict[str, None] = {}
        stack = [name]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen[current] = None
            stack.extend(self.groups[current].children)
        return [self.groups[n] for n in seen]

    def resolve(self, groups: list[_Group], host: _Host | None = None) -> dict[str, _Var]:
        """Merge variables in Ansible's default precedence (``hash_behaviour=replace``)."""
        everyone = self.groups["all"]
        merged: dict[str, _Var] = dict(everyone.vars)
        for group in groups:
            merged.update(group.vars)
        merged.update(everyone.gv)
        for group in groups:
            merged.update(group.gv)
        if host is not None:
            merged.update(host.vars)
            merged.update(host.hv)
        return merged


# ---------------------------------------------------------------------------------------------------
# From raw structure to models


def _translate(
    exc: ValidationError, merged: Mapping[str, _Var], fallback: tuple[Path, str], allowed: frozenset[str]
) -> list[Problem]:
    """Pydantic's errors as problems naming the file and key each offending value came from."""
    problems = []
    for err in exc.errors():
        loc = err["loc"]
        head = str(loc[0]) if loc else ""
        var = merged.get(head)
        file, key = (var.file, var.key) if var is not None else (fallback[0], _join(fallback[1], head))
        problems.append(Problem(file, _join(key, *loc[1:]), _message(err, allowed if len(loc) == 1 else None)))
    return problems


def _message(err: ErrorDetails, allowed: frozenset[str] | None) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        if allowed is None:
            return "unknown key"
        return "unknown key; expected one of: " + ", ".join(sorted(allowed))
    message = err["msg"].removeprefix("Value error, ")
    return f"{message} (got {_short(err['input'])})"


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


@dataclass
class _Built:
    group: _Group
    center: _CenterVars | None
    hosts: dict[str, tuple[Path, str]]  # every host listed in the center, valid or not
    devices: list[Device] = field(default_factory=list)


def _build(reader: _Reader) -> dict[str, Center]:
    problems = reader.problems
    everyone = reader.groups["all"]

    # A group var written in an inventory file loses to group_vars/all: refuse rather than ignore it.
    for group in reader.groups.values():
        if group.name == "all":
            continue
        for name, var in group.vars.items():
            if name in everyone.gv:
                problems.append(
                    Problem(
                        var.file,
                        var.key,
                        f"Ansible ignores this value: {everyone.gv[name].file} "
                        f"sets {name!r} and ranks above group vars in inventory files; set it in "
                        f"group_vars/{group.name}.yml instead",
                    )
                )

    # Group-level keys are checked once, wherever they are written.
    for group in reader.groups.values():
        for var in (*group.vars.values(), *group.gv.values()):
            name = var.key.rsplit(".", 1)[-1]
            if name not in _GROUP_KEYS:
                problems.append(
                    Problem(var.file, var.key, "unknown key; expected one of: " + ", ".join(sorted(_GROUP_KEYS)))
                )

    centers_group = reader.groups.get("centers")
    if centers_group is None or not centers_group.children:
        problems.append(
            Problem(
                everyone.file,
                "all.children.centers",
                "no centers: expected a group 'centers' whose children are the center groups (center_<slug>)",
            )
        )
        return {}

    # Centers, and which center each host belongs to.
    built: list[_Built] = []
    owner: dict[str, _Built] = {}
    contested: set[str] = set()  # hosts listed in two centers: reported once, not built
    for name in centers_group.children:
        group = reader.groups[name]
        listed: dict[str, tuple[Path, str]] = {}
        for sub in reader.descendants(name):
            for hostname, where in sub.hosts.items():
                listed.setdefault(hostname, where)
        b = _Built(group, None, {})
        for hostname, where in listed.items():
            if hostname in owner:
                first = owner[hostname]
                problems.append(
                    Problem(
                        where[0],
                        where[1],
                        f"host is already in center group {first.group.name} "
                        f"({first.hosts[hostname][0]}): a host belongs to exactly one center",
                    )
                )
                contested.add(hostname)
                continue
            owner[hostname] = b
            b.hosts[hostname] = where
        merged = reader.resolve(reader.ancestors([name]))
        data = {k: v.value for k, v in merged.items() if k in _CENTER_KEYS}
        try:
            b.center = _CenterVars.model_validate(data)
        except ValidationError as exc:
            problems.extend(_translate(exc, merged, group.vars_base(), _CENTER_KEYS))
        built.append(b)

    for raw in reader.hosts.values():
        if raw.name not in owner:
            problems.append(
                Problem(
                    raw.file,
                    raw.key,
                    "host is in no center: list it under all.children.centers.children.center_<slug>.hosts",
                )
            )

    # Devices.
    for b in built:
        for name in b.hosts:
            if name in contested:
                continue
            host = reader.hosts[name]
            merged = reader.resolve(reader.ancestors(list(host.groups)), host)
            host_level = {id(v) for v in (*host.vars.values(), *host.hv.values())}
            data = {k: v.value for k, v in merged.items() if k in _HOST_KEYS or id(v) in host_level}
            try:
                hv = _HostVars.model_validate(data)
            except ValidationError as exc:
                for found in _translate(exc, merged, (host.file, host.key), _HOST_KEYS):
                    field_name = found.key.rsplit(".", 1)[-1]
                    if found.message.startswith("unknown key") and field_name in _CENTER_KEYS:
                        message = "a center-level key: set it in the center group's vars, not on a host"
                        found = Problem(found.file, found.key, message)
                    problems.append(found)
                continue
            b.devices.append(
                Device(
                    name=name,
                    role=hv.device_role,
                    address=hv.ansible_host,
                    mac=hv.mac,
                    parent=hv.parent,
                    model=hv.model,
                    vendor=hv.vendor,
                    purchased=hv.purchased,
                    snmp=hv.snmp,
                    agent=hv.agent,
                )
            )

    return _cross_check(reader, built, owner, problems)


def _misplaced(host: str, b: _Built, owner: Mapping[str, _Built]) -> str:
    """Why ``host`` is not a host of center ``b`` ("" if it is)."""
    slug = b.center.center_slug if b.center else b.group.name
    if host in b.hosts:
        return ""
    other = owner[host].center if host in owner else None
    if other is not None:
        return f"{host!r} is a host of center {other.center_slug!r}, not of {slug!r}"
    return f"{host!r} names no host of center {slug!r}"


def _cross_check(
    reader: _Reader, built: list[_Built], owner: dict[str, _Built], problems: list[Problem]
) -> dict[str, Center]:
    centers: dict[str, Center] = {}
    slug_owner: dict[str, _Built] = {}
    address_owner: dict[IPv4Address | IPv6Address, str] = {}

    def var_where(host: str, var: str) -> tuple[Path, str]:
        h = reader.hosts[host]
        merged = reader.resolve(reader.ancestors(list(h.groups)), h)
        if var in merged:
            return merged[var].file, merged[var].key
        return h.file, _join(h.key, var)

    for b in built:
        c = b.center
        if c is None:
            continue
        group = b.group
        merged = reader.resolve(reader.ancestors([group.name]))
        ok = True
        slug_file, slug_key = merged["center_slug"].file, merged["center_slug"].key
        expected_group = "center_" + c.center_slug.replace("-", "_")
        if group.name != expected_group:
            problems.append(
                Problem(
                    slug_file,
                    slug_key,
                    f"the group of center {c.center_slug!r} must be named {expected_group}, not {group.name}",
                )
            )
            ok = False
        if c.center_slug in slug_owner:
            other = slug_owner[c.center_slug].group
            problems.append(
                Problem(
                    slug_file,
                    slug_key,
                    f"slug {c.center_slug!r} is already used by group {other.name} ({other.file})",
                )
            )
            ok = False
        else:
            slug_owner[c.center_slug] = b

        names = [u.name for u in c.uplinks]
        for index, name in enumerate(names):
            if name in names[:index]:
                up = merged["uplinks"]
                problems.append(Problem(up.file, _join(up.key, index, "name"), f"uplink {name!r} is listed twice"))
                ok = False

        for host, where in b.hosts.items():
            if not host.startswith(c.center_slug + "-"):
                problems.append(
                    Problem(where[0], where[1], f"host name must start with the center slug: {c.center_slug}-…")
                )
                ok = False

        if why := _misplaced(c.probe_host, b, owner):
            probe = merged["probe_host"]
            problems.append(Problem(probe.file, probe.key, f"probe_host {why}"))
            ok = False

        by_name = {d.name: d for d in b.devices}
        for device in b.devices:
            if device.parent is not None and (why := _misplaced(device.parent, b, owner)):
                file, key = var_where(device.name, "parent")
                problems.append(Problem(file, key, f"parent {why}"))
                ok = False
            if device.address is not None:
                if device.address in address_owner:
                    file, key = var_where(device.name, "ansible_host")
                    problems.append(
                        Problem(
                            file,
                            key,
                            f"address {device.address} is already used by host {address_owner[device.address]}",
                        )
                    )
                    ok = False
                else:
                    address_owner[device.address] = device.name

        # Parent cycles: walk up from each device; report each cycle once, at its first host by name.
        reported: set[frozenset[str]] = set()
        for device in b.devices:
            trail: list[str] = []
            current: Device | None = device
            while current is not None and current.name not in trail:
                trail.append(current.name)
                current = by_name.get(current.parent) if current.parent else None
            if current is None:
                continue
            loop = trail[trail.index(current.name) :]
            if frozenset(loop) in reported:
                continue
            reported.add(frozenset(loop))
            start = loop.index(min(loop))
            loop = loop[start:] + loop[:start]
            file, key = var_where(loop[0], "parent")
            problems.append(Problem(file, key, "parent cycle: " + " -> ".join([*loop, loop[0]])))
            ok = False

        if ok:
            centers[c.center_slug] = Center(
                slug=c.center_slug,
                name=c.center_name,
                kind=c.center_kind,
                terrain=c.center_terrain,
                group=group.name,
                uplinks=c.uplinks,
                devices=tuple(b.devices),
                probe_host=c.probe_host,
                timezone=c.timezone,
                working_hours=c.working_hours,
                maintenance_windows=c.maintenance_windows,
            )
    return dict(sorted(centers.items()))


def load_inventory(path: Path) -> Inventory:
    """Read the Ansible YAML inventory at ``path`` (a directory, or one file).

    Raises :class:`~collector.errors.InventoryError` listing every problem found. File names in the
    problems are ``path`` joined with the file's place under it, so a relative ``path`` gives relative
    names.
    """
    reader = _Reader()
    reader.read_tree(path)
    if not reader.problems:
        reader.link_groups()
    centers = _build(reader) if not reader.problems else {}
    if reader.problems:
        raise InventoryError(_dedupe(reader.problems))
    return Inventory(centers=centers)
