"""SNMP polling of the center's network gear: switch, router, printers, UPS, access points.

Each run polls every device (``concurrency`` at a time, each within ``poll_budget_s``): a GET of
sysObjectID and sysUpTime picks the device's profile (``agent/snmp/profiles``: longest sysObjectID
prefix, or the device's ``profile``), then one GET of the profile's scalars and a GETBULK walk of each
table column. Counters become rates against the previous run's readings, kept per device in module
state: the first run after start has no rates, and neither has a run after the device restarted
(sysUpTime went back: event ``snmp.rebooted``). Events compare two polls, so none comes from a
first poll. Profiles decide what is emitted; the shipped ones (generic, cisco-catalyst, printer,
ups, apc, ubiquiti-airmax) give

* ``snmp_up``, ``snmp_poll_duration_seconds``, ``snmp_uptime_seconds`` (label ``device``);
* per interface (``ifname``, ``ifindex``): ``snmp_interface_{in,out}_bits_per_second``,
  ``snmp_interface_utilization_ratio{direction}``, ``snmp_interface_errors_per_second{direction}``,
  ``snmp_interface_discards_per_second{direction}``, ``snmp_interface_oper_up``,
  ``snmp_interface_admin_up``, ``snmp_interface_speed_bits_per_second``; events
  ``snmp.interface_down`` (a link that dropped while administratively up) and ``snmp.interface_up``;
* ``snmp_cpu_load_ratio{cpu}``, ``snmp_storage_{size,used}_bytes{storage}``,
  ``snmp_storage_used_ratio{storage}``;
* UPS (UPS-MIB, APC PowerNet-MIB): ``snmp_ups_on_battery``, ``snmp_ups_battery_low`` (1/0),
  ``snmp_ups_battery_status`` (the MIB's enum), ``snmp_ups_battery_charge_ratio``,
  ``snmp_ups_runtime_seconds``, ``snmp_ups_time_on_battery_seconds``,
  ``snmp_ups_battery_temperature_celsius``, ``snmp_ups_input_voltage_volts{line}``,
  ``snmp_ups_input_frequency_hertz{line}``, ``snmp_ups_output_voltage_volts{line}``,
  ``snmp_ups_output_power_watts{line}``, ``snmp_ups_load_ratio{line}``,
  ``snmp_ups_battery_replace_needed`` (APC); events ``snmp.ups_on_battery`` (critical) and
  ``snmp.ups_on_line`` when the output source changes;
* printers (Printer-MIB, HOST-RESOURCES-MIB): ``snmp_printer_status{printer}`` (hrPrinterStatus),
  ``snmp_printer_error{printer,condition}`` 1/0 per hrPrinterDetectedErrorState bit (low_paper,
  no_paper, low_toner, no_toner, door_open, jammed, offline, service_requested, …),
  ``snmp_printer_supply_level_ratio{supply,supply_type,colorant}``,
  ``snmp_printer_tray_level_ratio{tray}`` (absent for the special levels -1, -2 and -3 "some
  remaining": see ``agent/snmp/profiles/_printer-mib.yaml``), ``snmp_printer_pages_total``,
  ``snmp_printer_alert_active{alert,code,alert_severity,group}`` per current prtAlertTable row;
  events, one kind per condition that needs a person, when its bit gets set:
  ``snmp.printer_jam``, ``snmp.printer_door_open``, ``snmp.printer_toner_empty``,
  ``snmp.printer_paper_empty``, ``snmp.printer_service_requested`` (warning),
  ``snmp.printer_offline`` (info);
* Wi-Fi (Ubiquiti airMAX): ``snmp_wifi_{signal,noise_floor,tx_power}_dbm``,
  ``snmp_wifi_ccq_ratio``, ``snmp_wifi_{tx,rx}_rate_bits_per_second``, ``snmp_wifi_stations``,
  ``snmp_wifi_frequency_hertz``.

Facts add, for every device, the ENTITY-MIB chassis rows (model, serial, hardware, firmware,
software; re-read hourly) and the LLDP neighbours (local port → remote system name, port id and
description, chassis id; re-read every 15 minutes), and per profile the UPS identity, the
printer's name, serial, supplies, trays and alert texts, the access point's radios.

A device that fails (no answer, refused credentials, noSuchObject for the system group, garbage)
reports ``snmp_up 0`` and ``probe_failure_info{probe="snmp",target=<device>,uplink="lan",reason}``
with reason ``timeout | auth | no_such | malformed | error | credential`` and a ``probe.failed``
event; the other devices go on. Facts (part subject ``snmp``) map each device name to its system
group, matched profile and interface list; they are sent when they change or every
``facts_interval_s``.

Communities and keys never leave the process: ``Device``'s ``repr`` masks them, the client scrubs
them from error messages, and no sample, event or fact carries them. Instead of secrets inline, a
device may name a ``credential`` kept in ``credentials_file`` (``agent/snmp/credentials.py``: a
0600 YAML file of name → ``{community}`` or ``{user, auth_protocol, auth_key, priv_protocol,
priv_key}``, read again when it changes); that is how devices from inventory arrive
(``collector/probeconfig.py``). A name missing from the file, a credential of the other version
or a file that cannot be used is that device's failure (reason ``credential``, naming the device,
the credential and the file); the other devices are polled. Example::

    checks:
      snmp:
        interval_s: 60
        timeout_s: 30                 # the run's deadline: above poll_budget_s
        devices:
          - {name: core-switch, address: 10.10.0.2, community: "s3cret-ro"}
          - name: edge-router
            address: 10.10.0.1
            version: v3
            user: centerwatch
            auth_protocol: SHA-256    # SHA | SHA-256
            auth_key: "long-auth-passphrase"
            priv_protocol: AES        # AES (128) | AES-256 | AES-256-C (Cisco)
            priv_key: "long-priv-passphrase"
          - {name: printer-1, address: 10.10.0.50, community: public, profile: generic}
          - {name: hoa-khanh-ups1, address: 10.10.0.60, version: v3, credential: snmp-v3-network-ro}
        credentials_file: /etc/centerwatch/snmp-credentials.yaml
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from agent.checks.base import CheckContext, Observations
from agent.errors import ConfigError
from agent.snmp.client import (
    V3,
    AuthProtocol,
    Credentials,
    PrivProtocol,
    PysnmpSession,
    Secret,
    SnmpClient,
    Target,
    V2c,
    Value,
    scrub,
    secret_values,
)
from agent.snmp.credentials import CredentialStore, version_of
from agent.snmp.errors import ProfileError, SnmpError
from agent.snmp.profiles import Column, Profile, ProfileSet, Table, Tag, Transition, load_profiles
from agent.snmp.rates import counter_rate, restarted

log = logging.getLogger("centerwatch.agent.snmp")

PROBE = "snmp"
UPLINK = "lan"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
MAX_LABEL = 200

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=100)]
#: a credential's name in ``credentials_file`` (inventory's rule), or empty
CredentialName = Annotated[str, msgspec.Meta(pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*)?$", max_length=100)]


class Device(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: label value: what this is (``core-switch``, ``printer-1``)
    name: Name
    #: IP address (v4 or v6) or host name
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 161
    version: Literal["v2c", "v3"] = "v2c"
    #: v2c community (a secret)
    community: str = ""
    #: v3 USM user, authPriv only
    user: str = ""
    auth_protocol: AuthProtocol = "SHA"
    auth_key: str = ""
    priv_protocol: PrivProtocol = "AES"
    priv_key: str = ""
    #: a profile name (``generic``, ``cisco-catalyst``); by default the longest sysObjectID match
    profile: str | None = None
    #: the name of a credential in the check's ``credentials_file``, instead of secrets here
    credential: CredentialName = ""

    def __post_init__(self) -> None:
        if self.credential:
            if self.community or self.user or self.auth_key or self.priv_key:
                raise ValueError(
                    "credential: give either a credential name or community/user/auth_key/priv_key, not both"
                )
            return
        if self.version == "v2c":
            if not self.community:
                raise ValueError("community: required for a v2c device")
            if self.user or self.auth_key or self.priv_key:
                raise ValueError("user, auth_key and priv_key are for v3 devices; this one is v2c")
        else:
            if self.community:
                raise ValueError("community is for v2c devices; this one is v3")
            if not self.user:
                raise ValueError("user: required for a v3 device")
            if len(self.auth_key) < 8 or len(self.priv_key) < 8:
                raise ValueError("auth_key and priv_key: required for v3 (authPriv), at least 8 characters each")

    def __repr__(self) -> str:
        # msgspec's repr would show the community and keys
        return (
            f"Device(name={self.name!r}, address={self.address!r}, port={self.port}, version={self.version!r}, "
            f"user={self.user!r}, profile={self.profile!r}, credential={self.credential!r}, secrets='***')"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [("name", self.name), ("address", self.address)]

    def resolved(self, store: Mapping[str, Credentials], where: str) -> Device:
        """This device with the secrets of its ``credential`` from ``store`` (read from ``where``);
        ``ValueError`` naming the device, the credential and the file when it cannot be."""
        if not self.credential:
            return self
        found = store.get(self.credential)
        if found is None:
            known = ", ".join(sorted(store)) or "none"
            raise ValueError(
                f"{self.name}: credential {self.credential!r} is not in {where} (credentials there: {known})"
            )
        if version_of(found) != self.version:
            raise ValueError(
                f"{self.name}: credential {self.credential!r} in {where} is for SNMP {version_of(found)}, "
                f"the device is {self.version}"
            )
        if isinstance(found, V2c):
            return msgspec.structs.replace(self, credential="", community=found.community.reveal())
        return msgspec.structs.replace(
            self,
            credential="",
            user=found.user,
            auth_key=found.auth_key.reveal(),
            priv_key=found.priv_key.reveal(),
            auth_protocol=found.auth_protocol,
            priv_protocol=found.priv_protocol,
        )

    def credentials(self) -> Credentials:
        if self.credential:
            raise ValueError(f"{self.name}: credential {self.credential!r} not resolved")
        if self.version == "v2c":
            return V2c(Secret(self.community))
        return V3(self.user, Secret(self.auth_key), Secret(self.priv_key), self.auth_protocol, self.priv_protocol)


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    devices: tuple[Device, ...] = ()
    #: GETBULK max-repetitions per request
    max_repetitions: Annotated[int, msgspec.Meta(ge=1, le=100)] = 25
    #: per request attempt
    request_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 2.0
    #: further attempts after a timeout
    retries: Annotated[int, msgspec.Meta(ge=0, le=5)] = 1
    #: devices polled at the same time
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 8
    #: one device's whole poll; past it the device reports timeout (keep it under the run's timeout_s)
    poll_budget_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 8.0
    #: site profiles, overriding shipped ones of the same file name
    profiles_dir: str = ""
    facts_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    #: YAML file of credential name → secrets, for devices that name a ``credential``
    #: (``agent/snmp/credentials.py``; mode 0600)
    credentials_file: str = ""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for device in self.devices:
            if device.name in seen:
                raise ValueError(f"devices: {device.name!r} is listed twice")
            seen.add(device.name)
            if device.credential and not self.credentials_file:
                raise ValueError(
                    f"devices: {device.name!r} names credential {device.credential!r}: set credentials_file"
                )


# --- readings and state ---------------------------------------------------------------------------


@dataclass
class ColumnReading:
    mono_s: float  # when the walk ended
    rows: dict[str, Value]  # row index (the OID suffix after the column) → value


@dataclass
class Reading:
    """One poll of one device."""

    mono_s: float  # when sysUpTime was read
    uptime_ticks: int
    scalars: dict[str, Value]  # by OID
    tables: dict[str, dict[str, ColumnReading]]  # table name → column id → reading


@dataclass
class DeviceState:
    device: Device
    profile: str | None = None
    reading: Reading | None = None
    facts: dict[str, Any] | None = None


#: Gives the client for a device (the network edge: tests pass fakes).
Connector = Callable[[Device, Config], Awaitable[SnmpClient]]


@dataclass
class Runtime:
    """Module state, created on first use and never at import."""

    devices: dict[str, DeviceState] = field(default_factory=dict)
    profiles: dict[str, ProfileSet] = field(default_factory=dict)
    session: PysnmpSession | None = None
    clients: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    facts_sent_s: float | None = None
    facts_digest: str | None = None
    credential_store: CredentialStore | None = None
    credential_error: str | None = None  # the last one logged

    def credentials(self, path: str) -> dict[str, Credentials]:
        """The credentials of ``path`` (re-read when it changed); raises its ``ConfigError``."""
        if self.credential_store is None or self.credential_store.path != path:
            self.credential_store = CredentialStore(path)
        return self.credential_store.get()

    def profile_set(self, profiles_dir: str) -> ProfileSet:
        found = self.profiles.get(profiles_dir)
        if found is None:
            found = self.profiles[profiles_dir] = load_profiles(profiles_dir or None)
        return found

    async def pysnmp_client(self, device: Device, config: Config) -> SnmpClient:
        loop = asyncio.get_running_loop()
        if self.session is not None and self.session.loop is not None and self.session.loop is not loop:
            self.session.close()  # made on another event loop (tests; an agent restarting its loop)
            self.session = None
        if self.session is None:
            self.session = PysnmpSession()
            self.clients.clear()
        key = (device, config.request_timeout_s, config.retries)
        cached = self.clients.get(device.name)
        if cached is not None and cached[0] == key:
            client: SnmpClient = cached[1]
            return client
        target = Target(device.address, device.port, config.request_timeout_s, config.retries)
        made = await self.session.client(target, device.credentials())
        self.clients[device.name] = (key, made)
        return made


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime  # module state, made on first use
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


# --- the check ---------------------------------------------------------------------------------------


async def collect(ctx: CheckContext[Config]) -> Observations:
    state = runtime()
    return await collect_with(ctx, state.pysnmp_client, state)


async def collect_with(
    ctx: CheckContext[Config],
    connect: Connector,
    state: Runtime,
    mono: Callable[[], float] = time.monotonic,
    profiles: ProfileSet | None = None,
) -> Observations:
    cfg = ctx.config
    profiles = profiles or state.profile_set(cfg.profiles_dir)
    for device in cfg.devices:
        if device.profile is not None and profiles.get(device.profile) is None:
            raise ProfileError(
                "config",
                f"devices.{device.name}.profile",
                f"no profile {device.profile!r}; known: {', '.join(profiles.names())}",
            )
    obs = Observations(ts_ms=ctx.clock_ms(), subject="snmp")
    for gone in set(state.devices) - {d.name for d in cfg.devices}:
        del state.devices[gone]
    polled = resolve_devices(obs, cfg, state)
    limit = asyncio.Semaphore(cfg.concurrency)

    async def one(device: Device) -> None:
        async with limit:
            await poll_one(obs, device, cfg, connect, state, profiles, mono)

    await asyncio.gather(*(one(d) for d in polled))
    facts: dict[str, Any] = {}
    for d in cfg.devices:
        dstate = state.devices.get(d.name)
        facts[d.name] = (dstate.facts if dstate is not None else None) or {"reachable": False}
    digest = hashlib.sha256(msgspec.json.encode(facts, order="sorted")).hexdigest()
    now = mono()
    if cfg.devices and (
        digest != state.facts_digest or state.facts_sent_s is None or now - state.facts_sent_s >= cfg.facts_interval_s
    ):
        obs.facts = facts
        state.facts_digest, state.facts_sent_s = digest, now
    return obs


def resolve_devices(obs: Observations, cfg: Config, state: Runtime) -> list[Device]:
    """The devices to poll, each naming a ``credential`` given its secrets from ``credentials_file``.
    A device whose credential cannot be had (not in the file, of the other version, the file
    missing, unreadable, open to other users or invalid) reports its failure (reason
    ``credential``) and is left out; the others are polled."""
    if not any(d.credential for d in cfg.devices):
        return list(cfg.devices)
    store: dict[str, Credentials] | None = None
    problem: str | None = None
    try:
        store = state.credentials(cfg.credentials_file)
    except ConfigError as exc:
        problem = str(exc)  # names the file and the key, never a value
    if problem != state.credential_error:
        if problem is not None:
            log.warning("snmp credentials: %s", problem)
        state.credential_error = problem
    polled: list[Device] = []
    for device in cfg.devices:
        if not device.credential:
            polled.append(device)
            continue
        if store is None:
            message = f"{device.name}: credential {device.credential!r}: {problem}"
        else:
            try:
                polled.append(device.resolved(store, cfg.credentials_file))
                continue
            except ValueError as exc:
                message = str(exc)
        dstate = state.devices.get(device.name)
        if dstate is not None and dstate.facts is not None:
            dstate.facts = {**dstate.facts, "reachable": False}
        report_failure(obs, device.name, "credential", message)
    return polled


def report_failure(obs: Observations, device: str, reason: str, message: str) -> None:
    """A device that could not be polled: ``snmp_up 0``, ``probe_failure_info{reason}`` and a
    ``probe.failed`` event with the cause (``message``, already free of secrets)."""
    labels = {"probe": PROBE, "target": device, "uplink": UPLINK}
    obs.add("snmp_up", 0.0, device=device)
    obs.add("probe_failure_info", 1.0, reason=reason, **labels)
    obs.event("probe.failed", message, "warning", reason=reason, **labels)


async def poll_one(
    obs: Observations,
    device: Device,
    cfg: Config,
    connect: Connector,
    state: Runtime,
    profiles: ProfileSet,
    mono: Callable[[], float],
) -> None:
    """Poll one device and report it; any failure becomes this device's result."""
    dstate = state.devices.get(device.name)
    if dstate is None or dstate.device != device:
        dstate = state.devices[device.name] = DeviceState(device)
    started = time.perf_counter()
    error: SnmpError | None = None
    try:
        async with asyncio.timeout(cfg.poll_budget_s):
            client = await connect(device, cfg)
            profile, reading = await read_device(client, device, profiles, cfg, dstate, mono)
    except TimeoutError:
        error = SnmpError("timeout", f"poll did not finish within poll_budget_s={cfg.poll_budget_s:g} s")
    except SnmpError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - one device's trouble is its own result
        error = _unexpected(device, exc)
    duration = time.perf_counter() - started
    own = Observations(ts_ms=obs.ts_ms)  # merged only when the whole device went well
    facts: dict[str, Any] | None = None
    if error is None:
        previous = dstate.reading if dstate.profile == profile.name else None
        try:
            emit(own, device.name, profile, reading, previous)
            facts = device_facts(device, profile, reading)
        except SnmpError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001
            error = _unexpected(device, exc)
    obs.add("snmp_poll_duration_seconds", duration, device=device.name)
    if error is not None:
        if dstate.facts is not None:
            dstate.facts = {**dstate.facts, "reachable": False}
        report_failure(
            obs, device.name, error.kind, scrub(f"{device.name}: {error}", secret_values(device.credentials()))
        )
        return
    obs.add("snmp_up", 1.0, device=device.name)
    obs.samples.extend(own.samples)
    obs.events.extend(own.events)
    dstate.profile = profile.name
    dstate.reading = reading
    dstate.facts = facts


async def read_device(
    client: SnmpClient,
    device: Device,
    profiles: ProfileSet,
    cfg: Config,
    dstate: DeviceState,
    mono: Callable[[], float],
) -> tuple[Profile, Reading]:
    system = await client.get([SYS_OBJECT_ID, SYS_UPTIME])
    read_at = mono()
    sys_object_id = system.get(SYS_OBJECT_ID)
    ticks = system.get(SYS_UPTIME)
    if sys_object_id is None or ticks is None:
        missing = [n for n, v in (("sysObjectID", sys_object_id), ("sysUpTime", ticks)) if v is None]
        raise SnmpError("no_such", f"the device has no {' and no '.join(missing)} (SNMPv2-MIB system group)")
    if not isinstance(sys_object_id, str) or not isinstance(ticks, int):
        raise SnmpError("malformed", "sysObjectID is not an OID or sysUpTime is not TimeTicks")
    profile = profiles.get(device.profile) if device.profile else profiles.match(sys_object_id)
    if profile is None:
        raise SnmpError("error", f"no profile matches sysObjectID {sys_object_id}")
    wanted = list(dict.fromkeys([*(m.oid for m in profile.metrics), *(f.oid for f in profile.facts)]))
    scalars: dict[str, Value] = dict(system)
    rest = [oid for oid in wanted if oid not in scalars]
    if rest:
        scalars.update(await client.get(rest))
    tables: dict[str, dict[str, ColumnReading]] = {}
    before = dstate.reading.tables if dstate.reading is not None and dstate.profile == profile.name else {}
    walked: dict[str, ColumnReading] = {}  # one walk per OID and poll, however many columns read it
    for table in profile.tables:
        old = before.get(table.name)
        if (
            table.refresh_s is not None
            and old
            and all(c.id in old for c in table.columns)
            and read_at - min(r.mono_s for r in old.values()) < table.refresh_s
        ):
            tables[table.name] = old  # a table read for facts: its last reading is recent enough
            continue
        columns: dict[str, ColumnReading] = {}
        for column in table.columns:
            if column.oid in walked:
                columns[column.id] = walked[column.oid]
                continue
            # one GETBULK for the whole column when its size is known: the rows of the last poll
            # and one more (the first OID past the column ends the walk); decoding the overshoot
            # of a fixed max-repetitions is most of pysnmp's CPU on small tables
            last = before.get(table.name, {}).get(column.id)
            repetitions = min(cfg.max_repetitions, len(last.rows) + 1) if last is not None else cfg.max_repetitions
            rows = await client.walk(column.oid, repetitions)
            prefix = column.oid + "."
            values: dict[str, Value] = {}
            for oid, value in rows:
                if not oid.startswith(prefix):
                    raise SnmpError("malformed", f"walk of {column.oid} returned {oid}, outside the subtree")
                values[oid[len(prefix) :]] = value
            columns[column.id] = walked[column.oid] = ColumnReading(mono(), values)
        tables[table.name] = columns
    return profile, Reading(read_at, ticks, scalars, tables)


def _unexpected(device: Device, exc: Exception) -> SnmpError:
    """A bug or an error no layer translated: the device's result, its text scrubbed of secrets."""
    text = scrub(f"{type(exc).__name__}: {exc}", secret_values(device.credentials()))
    log.warning("snmp poll of %s failed: %s", device.name, text)
    return SnmpError("error", text)


# --- turning readings into samples, events and facts (pure) -------------------------------------------


def number(value: Value, what: str) -> float:
    """A numeric value; a number sent as text (some printers do) is accepted."""
    if isinstance(value, int):
        return float(value)
    if isinstance(value, bytes):
        try:
            return float(value.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            pass
    raise SnmpError("malformed", f"{what}: expected a number, got {type(value).__name__}")


def integer(value: Value, what: str) -> int:
    """A counter reading, exact (a Counter64 does not fit a float)."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, bytes):
        try:
            return int(value.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            pass
    raise SnmpError("malformed", f"{what}: expected a counter, got {type(value).__name__}")


def text(value: Value) -> str:
    """A value as label or fact text: bytes as UTF-8 (trailing NULs dropped), else hex (a MAC)."""
    if isinstance(value, bytes):
        stripped = value.rstrip(b"\0")
        try:
            decoded = stripped.decode("utf-8")
        except UnicodeDecodeError:
            return ":".join(f"{b:02x}" for b in value)
        if decoded.isprintable():
            return decoded
        return ":".join(f"{b:02x}" for b in value)
    return str(value)


def _index_key(index: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in index.split("."))
    except ValueError:
        return ()


def _index_labels(names: Sequence[str], index: str) -> dict[str, str]:
    """One label per index name, an arc each, the last name taking the remaining arcs; ``_``
    names an arc that is no label."""
    if not names:
        return {}
    arcs = index.split(".")
    if len(names) == 1:
        labels = {names[0]: index}
    else:
        labels = {name: arcs[i] for i, name in enumerate(names[:-1]) if i < len(arcs)}
        labels[names[-1]] = ".".join(arcs[len(names) - 1 :])
    labels.pop("_", None)
    return labels


def bit_set(value: Value, bit: int) -> bool | None:
    """Bit ``bit`` of a BITS value (an OCTET STRING whose bit 0 is the first octet's high bit);
    a bit past the value's octets is clear. ``None`` when the value is no octet string."""
    if not isinstance(value, bytes):
        return None
    octet = bit // 8
    return octet < len(value) and bool(value[octet] & (0x80 >> (bit % 8)))


def _valid(value: float, valid_min: float | None) -> float | None:
    return None if valid_min is not None and value < valid_min else value


def emit(obs: Observations, device: str, profile: Profile, reading: Reading, previous: Reading | None) -> None:
    """Samples and events of one good poll, rates against ``previous``."""
    if previous is not None and restarted(
        previous.uptime_ticks, reading.uptime_ticks, reading.mono_s - previous.mono_s
    ):
        obs.event(
            "snmp.rebooted",
            f"{device}: sysUpTime went back from {previous.uptime_ticks / 100:.0f} s "
            f"to {reading.uptime_ticks / 100:.0f} s; no rates this round",
            "warning",
            device=device,
        )
        previous_for_rates = None
    else:
        previous_for_rates = previous
    for metric in profile.metrics:
        raw = reading.scalars.get(metric.oid)
        if raw is None:
            continue
        labels = {**metric.labels, "device": device}
        if metric.type == "counter":
            before = previous_for_rates.scalars.get(metric.oid) if previous_for_rates else None
            rate = counter_rate(
                integer(before, metric.oid) if before is not None else None,
                integer(raw, metric.oid),
                reading.mono_s - previous_for_rates.mono_s if previous_for_rates else 0.0,
                bits=getattr(raw, "bits", 64),
                scale=metric.scale,
            )
            if rate is not None:
                obs.add(metric.name, rate, **labels)
        elif metric.true_values is not None:
            obs.add(metric.name, 1.0 if number(raw, metric.oid) in metric.true_values else 0.0, **labels)
        else:
            value = _valid(number(raw, metric.oid), metric.valid_min)
            if value is not None:
                obs.add(metric.name, value * metric.scale, **labels)
    if previous is not None:
        emit_scalar_events(obs, device, profile, reading, previous)
    for table in profile.tables:
        emit_table(
            obs,
            device,
            table,
            profile,
            reading.tables.get(table.name, {}),
            previous_for_rates.tables.get(table.name) if previous_for_rates else None,
            previous.tables.get(table.name) if previous else None,
            reading.tables,
        )


def _fires(transition: Transition, before: int, now: int) -> bool:
    if now not in transition.to:
        return False
    return before not in transition.to if transition.from_ is None else before in transition.from_


def emit_scalar_events(obs: Observations, device: str, profile: Profile, reading: Reading, previous: Reading) -> None:
    """The profile's ``events``: a scalar that changed between the previous poll and this one."""
    by_id = {m.id: m for m in profile.metrics if m.id is not None}
    for transition in profile.events:
        metric = by_id[transition.column]
        before, now = previous.scalars.get(metric.oid), reading.scalars.get(metric.oid)
        if not isinstance(before, int) or not isinstance(now, int) or not _fires(transition, before, now):
            continue
        if any(reading.scalars.get(by_id[ref].oid) in vetoes for ref, vetoes in transition.unless.items()):
            continue
        names = profile.enums.get(metric.enum or "", {})
        obs.event(
            transition.kind,
            f"{device}: {metric.id} {names.get(before, before)} → {names.get(now, now)}",
            transition.severity,
            device=device,
        )


@dataclass
class Row:
    index: str
    labels: dict[str, str]
    raw: dict[str, Value]
    values: dict[str, float | None]


def table_rows(
    table: Table,
    columns: Mapping[str, ColumnReading],
    previous: Mapping[str, ColumnReading] | None,
    tables: Mapping[str, Mapping[str, ColumnReading]] | None = None,
    enums: Mapping[str, Mapping[int, str]] | None = None,
) -> list[Row]:
    """Rows of a table with their labels and computed values (gauges scaled, counters as rates).
    ``tables`` (the whole reading) serves tags that look up another table; ``enums`` tags that name
    values. Rows failing the table's ``where`` are left out."""
    indexes: dict[str, None] = {}
    for reading in columns.values():
        indexes.update(dict.fromkeys(reading.rows))
    by_id = {c.id: c for c in table.columns}
    ordered = sorted(indexes, key=lambda i: (_index_key(i), i))
    rows: list[Row] = []
    for index in ordered:
        raw = {cid: col.rows[index] for cid, col in columns.items() if index in col.rows}
        if any(raw.get(ref) not in allowed for ref, allowed in table.where.items()):
            continue
        labels = _index_labels(table.index or [], index)
        for tag in table.tags:
            labels[tag.label] = _tag_value(tag, index, raw, tables or {}, enums or {})
        values: dict[str, float | None] = {}
        counters: list[Column] = []
        for column in table.columns:
            if column.id not in raw or column.bits is not None:
                values[column.id] = None  # absent, or bits (read by emit_table)
            elif column.type == "counter":
                counters.append(column)
            elif isinstance(raw[column.id], int) or column.metric or column.multiply_by:
                values[column.id] = _gauge(column, raw, f"{column.oid}.{index}")
            else:
                values[column.id] = None  # text column (a name, a description)
        for column in counters:
            values[column.id] = _rate(column, index, raw, columns, previous, values, by_id)
        rows.append(Row(index, labels, raw, values))
    return rows


def _tag_value(
    tag: Tag,
    index: str,
    raw: Mapping[str, Value],
    tables: Mapping[str, Mapping[str, ColumnReading]],
    enums: Mapping[str, Mapping[int, str]],
) -> str:
    source: Mapping[str, Value | None] = raw
    if tag.lookup is not None:
        arcs = index.split(".")
        parts: list[str] = []
        for part in tag.lookup.key:
            if part.startswith("index."):
                n = int(part.removeprefix("index."))
                parts.append(arcs[n - 1] if n <= len(arcs) else "")
            else:
                parts.append(text(raw[part]) if part in raw else "")
        key = ".".join(parts)
        other = tables.get(tag.lookup.table, {})
        source = {cid: col.rows.get(key) for cid, col in other.items()}
    value = source.get(tag.column)
    if (value is None or text(value) == "") and tag.fallback is not None:
        value = source.get(tag.fallback)
    if value is None or text(value) == "":
        return tag.default if tag.default is not None else index
    if tag.enum is not None and isinstance(value, int):
        return enums.get(tag.enum, {}).get(value, str(value))[:MAX_LABEL]
    return text(value)[:MAX_LABEL]


def _gauge(column: Column, raw: Mapping[str, Value], where: str) -> float | None:
    value = number(raw[column.id], where)
    if column.true_values is not None:
        return 1.0 if value in column.true_values else 0.0
    if _valid(value, column.valid_min) is None:
        return None  # a special value (-1 other, -2 unknown, -3 some remaining …)
    value *= column.scale
    if column.multiply_by is not None:
        factor = raw.get(column.multiply_by)
        if factor is None:
            return None
        value *= number(factor, f"{where} ({column.multiply_by})")
    return value


def _rate(
    column: Column,
    index: str,
    raw: Mapping[str, Value],
    columns: Mapping[str, ColumnReading],
    previous: Mapping[str, ColumnReading] | None,
    values: Mapping[str, float | None],
    by_id: Mapping[str, Column],
) -> float | None:
    current = raw[column.id]
    where = f"{column.oid}.{index}"
    count = integer(current, where)
    before_col = previous.get(column.id) if previous else None
    before = before_col.rows.get(index) if before_col else None
    if before_col is None or before is None:
        return None
    bound = values.get(column.rate_limit) if column.rate_limit else None
    if bound is not None and column.rate_limit and by_id[column.rate_limit].type == "counter":
        bound = None
    return counter_rate(
        integer(before, where),
        count,
        columns[column.id].mono_s - before_col.mono_s,
        bits=getattr(current, "bits", 64),
        scale=column.scale,
        max_rate=bound,
    )


def emit_table(
    obs: Observations,
    device: str,
    table: Table,
    profile: Profile,
    columns: Mapping[str, ColumnReading],
    previous_for_rates: Mapping[str, ColumnReading] | None,
    previous: Mapping[str, ColumnReading] | None,
    tables: Mapping[str, Mapping[str, ColumnReading]] | None = None,
) -> None:
    by_id = {c.id: c for c in table.columns}
    for row in table_rows(table, columns, previous_for_rates, tables, profile.enums):
        base = {"device": device, **row.labels}
        if table.row_metric is not None:
            obs.add(table.row_metric, 1.0, **base)
        for column in table.columns:
            if column.bits is not None:
                if column.metric and column.bit_label and column.id in row.raw:
                    for bit, name in profile.enums[column.bits].items():
                        state = bit_set(row.raw[column.id], bit)
                        if state is not None:
                            labels = {**base, **column.labels, column.bit_label: name}
                            obs.add(column.metric, 1.0 if state else 0.0, **labels)
                continue
            value = row.values.get(column.id)
            if column.metric and value is not None:
                obs.add(column.metric, value, **{**base, **column.labels})
        for ratio in table.ratios:
            num, den = row.values.get(ratio.numerator), row.values.get(ratio.denominator)
            if num is not None and den is not None and den > 0:
                obs.add(ratio.metric, num / den, **{**base, **ratio.labels})
        if previous is None:
            continue
        for transition in table.events:
            before_col = previous.get(transition.column)
            before = before_col.rows.get(row.index) if before_col else None
            now = row.raw.get(transition.column)
            if before is None or now is None:
                continue
            column = by_id[transition.column]
            what = " ".join(f"{k}={v}" for k, v in row.labels.items())
            if transition.bit is not None:
                bit = next(b for b, n in profile.enums[column.bits or ""].items() if n == transition.bit)
                if bit_set(before, bit) is not False or bit_set(now, bit) is not True:
                    continue
                message = f"{device} {what}: {transition.bit}"
            else:
                if not isinstance(before, int) or not isinstance(now, int) or not _fires(transition, before, now):
                    continue
                names = profile.enums.get(column.enum or "", {})
                message = f"{device} {what}: {transition.column} {names.get(before, before)} → {names.get(now, now)}"
            if any(row.raw.get(ref) in vetoes for ref, vetoes in transition.unless.items()):
                continue
            obs.event(transition.kind, message, transition.severity, **base)


def device_facts(device: Device, profile: Profile, reading: Reading) -> dict[str, Any]:
    """What the device is: its system group and other profile facts, the matched profile, and the
    rows of tables that list facts (interfaces). No secrets, nothing that changes every poll."""
    facts: dict[str, Any] = {"reachable": True, "address": device.address, "profile": profile.name}
    for fact in profile.facts:
        value = reading.scalars.get(fact.oid)
        if value is None:
            continue
        if fact.enum is not None and isinstance(value, int):
            facts[fact.name] = profile.enums[fact.enum].get(value, str(value))
        else:
            facts[fact.name] = text(value)
    for table in profile.tables:
        if not table.facts:
            continue
        entries = []
        by_id = {c.id: c for c in table.columns}
        for row in table_rows(table, reading.tables.get(table.name, {}), None, reading.tables, profile.enums):
            entry: dict[str, Any] = dict(row.labels)
            for cid in table.facts:
                raw = row.raw.get(cid)
                if raw is None:
                    continue
                column = by_id[cid]
                number_value = row.values.get(cid)
                if column.enum is not None and isinstance(raw, int):
                    # a named value, else the number (a level whose map names only its special values)
                    name = profile.enums[column.enum].get(raw)
                    if name is not None:
                        entry[cid] = name
                    elif number_value is not None and column.type == "gauge" and column.true_values is None:
                        entry[cid] = number_value
                    else:
                        entry[cid] = str(raw)
                elif column.bits is not None:
                    names = profile.enums[column.bits]
                    entry[cid] = [n for b, n in names.items() if bit_set(raw, b)]
                elif number_value is not None and column.type == "gauge":
                    entry[cid] = number_value
                else:
                    entry[cid] = text(raw)
            entries.append(entry)
        facts[table.name] = entries
    return facts
