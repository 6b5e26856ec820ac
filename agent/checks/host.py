"""Host health: CPU, memory, filesystems, disks, network, sensors, and the host's facts.

The OS is reached only through a ``HostSource``; ``PsutilSource`` is the real one. ``collect_with``
does all the work, synchronously and without touching the OS itself, so tests hand it a fake built
from data captured on real machines (``tests/data/host/``). ``collect`` runs it in one worker thread
with a ``PsutilSource`` built on the first call.

A failing OS call (``AccessDenied`` on one filesystem, an unreadable sensor) becomes a
``check.partial`` warning event naming what failed and why; everything else is still reported.
Cumulative OS counters are reported as ``_total`` counters; the server computes rates.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import math
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

import msgspec
import psutil

import centerwatch
from agent.checks.base import CheckContext, Observations
from agent.errors import AgentError

# Pseudo, virtual, read-only-image and network filesystems. Network mounts are excluded because
# statvfs on a dead server blocks the worker thread indefinitely.
DEFAULT_FS_EXCLUDE_TYPES: tuple[str, ...] = (
    "autofs", "binfmt_misc", "bpf", "cdfs", "cgroup", "cgroup2", "cifs", "configfs", "debugfs",
    "devfs", "devpts", "devtmpfs", "efivarfs", "fuse.gvfsd-fuse", "fuse.lxcfs", "fuse.portal",
    "fuse.sshfs", "fusectl", "hugetlbfs", "iso9660", "mqueue", "nfs", "nfs4", "nsfs", "overlay",
    "proc", "pstore", "ramfs", "rpc_pipefs", "securityfs", "smb3", "smbfs", "squashfs", "sysfs",
    "tmpfs", "tracefs", "udf",
)  # fmt: skip


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: Report ``host_cpu_usage_ratio`` per CPU as well as the total.
    per_cpu: bool = True
    #: Filesystem types not reported (compared case-insensitively: Windows says "NTFS").
    filesystems_exclude_types: tuple[str, ...] = DEFAULT_FS_EXCLUDE_TYPES
    #: Mountpoints not reported (fnmatch patterns, case-insensitive).
    filesystems_exclude_mountpoints: tuple[str, ...] = ()
    #: Block devices not reported in ``host_disk_*`` (fnmatch patterns, case-insensitive).
    disk_exclude: tuple[str, ...] = ("loop*", "ram*", "zram*")
    #: Network interfaces not reported, in metrics or facts (fnmatch patterns, case-insensitive).
    nic_exclude: tuple[str, ...] = ("lo", "Loopback Pseudo-Interface*")
    #: Report facts (hardware, OS, disks, NICs).
    facts: bool = True
    #: Facts change rarely: they go out with the first run and then once per this many seconds.
    facts_interval_s: float = 3600.0


# --- the OS edge: psutil-shaped data, as read-only attributes -------------------------------------


class CpuTimes(Protocol):
    """``psutil.cpu_times()``: its fields differ per OS (Linux has iowait, Windows interrupt/dpc)."""

    def _asdict(self) -> dict[str, Any]: ...


class CpuFreq(Protocol):
    @property
    def current(self) -> float: ...  # MHz


class VirtualMemory(Protocol):
    @property
    def total(self) -> int: ...
    @property
    def available(self) -> int: ...


class SwapMemory(Protocol):
    @property
    def total(self) -> int: ...
    @property
    def used(self) -> int: ...


class DiskPartition(Protocol):
    @property
    def device(self) -> str: ...
    @property
    def mountpoint(self) -> str: ...
    @property
    def fstype(self) -> str: ...
    @property
    def opts(self) -> str: ...


class DiskUsage(Protocol):
    @property
    def total(self) -> int: ...
    @property
    def used(self) -> int: ...
    @property
    def free(self) -> int: ...


class DiskIO(Protocol):
    """``busy_time`` (ms) exists on Linux and FreeBSD only; it is read with ``getattr``."""

    @property
    def read_count(self) -> int: ...
    @property
    def write_count(self) -> int: ...
    @property
    def read_bytes(self) -> int: ...
    @property
    def write_bytes(self) -> int: ...


class NetIO(Protocol):
    @property
    def bytes_sent(self) -> int: ...
    @property
    def bytes_recv(self) -> int: ...
    @property
    def packets_sent(self) -> int: ...
    @property
    def packets_recv(self) -> int: ...
    @property
    def errin(self) -> int: ...
    @property
    def errout(self) -> int: ...
    @property
    def dropin(self) -> int: ...
    @property
    def dropout(self) -> int: ...


class NicStats(Protocol):
    @property
    def isup(self) -> bool: ...
    @property
    def duplex(self) -> int: ...  # psutil.NIC_DUPLEX_*
    @property
    def speed(self) -> int: ...  # Mb/s, 0 = unknown
    @property
    def mtu(self) -> int: ...


class NicAddr(Protocol):
    @property
    def family(self) -> int: ...  # socket.AF_INET, socket.AF_INET6 or psutil.AF_LINK
    @property
    def address(self) -> str: ...
    @property
    def netmask(self) -> str | None: ...


class Temperature(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def current(self) -> float: ...


class Fan(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def current(self) -> float: ...


class Battery(Protocol):
    @property
    def percent(self) -> float: ...
    @property
    def power_plugged(self) -> bool | None: ...


class PlatformInfo(NamedTuple):
    hostname: str
    system: str  # "Linux", "Windows", "Darwin"
    release: str
    version: str
    machine: str
    cpu_model: str
    python: str


class HostSource(Protocol):
    """What the host check reads from the OS. Methods raise what psutil raises."""

    def cpu_percent_percpu(self) -> Sequence[float] | None:
        """Busy percent (0..100) per CPU since the previous call; None on the first call."""
        ...

    def cpu_times(self) -> CpuTimes: ...
    def cpu_count(self, logical: bool) -> int | None: ...
    def cpu_freq(self) -> CpuFreq | None: ...
    def getloadavg(self) -> tuple[float, float, float] | None: ...
    def virtual_memory(self) -> VirtualMemory: ...
    def swap_memory(self) -> SwapMemory: ...
    def disk_partitions(self) -> Sequence[DiskPartition]: ...
    def disk_usage(self, mountpoint: str) -> DiskUsage: ...
    def disk_io_counters(self) -> Mapping[str, DiskIO]: ...
    def net_io_counters(self) -> Mapping[str, NetIO]: ...
    def net_if_stats(self) -> Mapping[str, NicStats]: ...
    def net_if_addrs(self) -> Mapping[str, Sequence[NicAddr]]: ...
    def boot_time(self) -> float: ...

    def sensors_temperatures(self) -> Mapping[str, Sequence[Temperature]] | None:
        """None where psutil has no such function (Windows)."""
        ...

    def sensors_fans(self) -> Mapping[str, Sequence[Fan]] | None: ...
    def sensors_battery(self) -> Battery | None: ...
    def platform_info(self) -> PlatformInfo: ...
    def users_count(self) -> int: ...
    def process_count(self) -> int: ...


def cpu_busy_percent(before: CpuTimes, after: CpuTimes) -> float:
    """Busy share of the time between two ``cpu_times`` readings, in percent. Like psutil, iowait
    counts as idle; unlike psutil on Windows, interrupt and DPC time are not counted twice."""

    def split(times: CpuTimes) -> tuple[float, float]:
        t = times._asdict()
        total = sum(v for k, v in t.items() if k not in _CPU_NESTED_MODES)
        return total, total - t["idle"] - t.get("iowait", 0.0)

    total0, busy0 = split(before)
    total1, busy1 = split(after)
    if total1 - total0 <= 0 or busy1 - busy0 <= 0:
        return 0.0
    return min(100.0, 100.0 * (busy1 - busy0) / (total1 - total0))


def cpu_model_from_cpuinfo(text: str) -> str:
    """The CPU model from ``/proc/cpuinfo``: x86 says "model name", ARM "Model" or "Hardware"."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().casefold(), value.strip())
    for key in ("model name", "model", "hardware", "cpu model", "cpu"):
        if key in fields and not fields[key].isdigit():
            return fields[key]
    return ""


#: cpu_times fields already inside others: Linux counts guest time in user time, and on Windows
#: interrupt and DPC time are part of kernel time, which psutil reports as "system".
_CPU_NESTED_MODES = frozenset({"guest", "guest_nice", "interrupt", "dpc"})


class PsutilSource:
    """The real host, through psutil. Keeps its own CPU-times baseline rather than psutil's
    module-wide one, which any other ``psutil.cpu_percent()`` caller in the process would reset."""

    #: How long slow-changing readings are reused (partitions; sensors known to be absent).
    PARTITIONS_TTL_S = 60.0
    NO_SENSORS_RECHECK_S = 600.0
    #: Link speed/duplex/MTU and CPU frequency: ~0.3 ms of ioctls and sysfs reads per run on a
    #: small PC, for values that rarely change; reused this long (a link going down shows up to
    #: this late here, and at once in the switch's SNMP poll and the traffic counters).
    NIC_STATS_TTL_S = 30.0
    CPU_FREQ_TTL_S = 60.0
    PROCESS_COUNT_TTL_S = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_percpu: list[CpuTimes] | None = None
        self._loadavg_primed = False
        self._platform: PlatformInfo | None = None
        self._cpu_counts: dict[bool, int | None] = {}
        self._partitions: tuple[float, list[DiskPartition]] | None = None
        self._no_sensors_until: dict[str, float] = {}
        self._cached: dict[str, tuple[float, Any]] = {}

    def _ttl(self, key: str, ttl_s: float, read: Any) -> Any:
        now = time.monotonic()
        hit = self._cached.get(key)
        if hit is None or now - hit[0] > ttl_s:
            hit = (now, read())
            self._cached[key] = hit
        return hit[1]

    def _sensor(self, name: str) -> Any:
        """psutil's sensors_* reading, skipped for a while once it is known to give nothing: on
        machines without sensors, globbing /sys/class/hwmon was a tenth of the check's time."""
        fn = getattr(psutil, name, None)
        if fn is None or time.monotonic() < self._no_sensors_until.get(name, 0.0):
            return None
        value = fn()
        if not value:
            self._no_sensors_until[name] = time.monotonic() + self.NO_SENSORS_RECHECK_S
        return value

    def cpu_percent_percpu(self) -> list[float] | None:
        now: list[CpuTimes] = list(psutil.cpu_times(percpu=True))
        with self._lock:
            before, self._last_percpu = self._last_percpu, now
        if before is None or len(before) != len(now):  # first call, or CPUs hot-plugged
            return None
        return [cpu_busy_percent(b, a) for b, a in zip(before, now, strict=True)]

    def cpu_times(self) -> CpuTimes:
        return psutil.cpu_times()

    def cpu_count(self, logical: bool) -> int | None:
        if logical not in self._cpu_counts:  # physical count reads /sys or cpuinfo: once is enough
            self._cpu_counts[logical] = psutil.cpu_count(logical=logical)
        return self._cpu_counts[logical]

    def cpu_freq(self) -> CpuFreq | None:
        fn = getattr(psutil, "cpu_freq", None)
        value: CpuFreq | None = None if fn is None else self._ttl("cpu_freq", self.CPU_FREQ_TTL_S, fn)
        return value

    def getloadavg(self) -> tuple[float, float, float] | None:
        fn = getattr(psutil, "getloadavg", None)
        if fn is None:
            return None
        values: tuple[float, float, float] = fn()
        if sys.platform == "win32" and not self._loadavg_primed:
            # On Windows the first call starts psutil's sampler and returns zeros, not a load.
            self._loadavg_primed = True
            return None
        return values

    def virtual_memory(self) -> VirtualMemory:
        return psutil.virtual_memory()

    def swap_memory(self) -> SwapMemory:
        return psutil.swap_memory()

    def disk_partitions(self) -> list[DiskPartition]:
        # Windows: all=False skips network drives and floppies but keeps fixed, removable, CD-ROM.
        # Elsewhere all=True, so that nodev filesystems such as ZFS are not lost; pseudo and
        # network filesystems are excluded by type (Config.filesystems_exclude_types).
        now = time.monotonic()
        if self._partitions is None or now - self._partitions[0] > self.PARTITIONS_TTL_S:
            self._partitions = (now, list(psutil.disk_partitions(all=sys.platform != "win32")))
        return self._partitions[1]

    def disk_usage(self, mountpoint: str) -> DiskUsage:
        return psutil.disk_usage(mountpoint)

    def disk_io_counters(self) -> Mapping[str, DiskIO]:
        return psutil.disk_io_counters(perdisk=True) or {}

    def net_io_counters(self) -> Mapping[str, NetIO]:
        return psutil.net_io_counters(pernic=True)

    def net_if_stats(self) -> Mapping[str, NicStats]:
        value: Mapping[str, NicStats] = self._ttl("net_if_stats", self.NIC_STATS_TTL_S, psutil.net_if_stats)
        return value

    def net_if_addrs(self) -> Mapping[str, Sequence[NicAddr]]:
        return psutil.net_if_addrs()

    def boot_time(self) -> float:
        value: float = self._ttl("boot_time", 3600.0, psutil.boot_time)  # changes only on a clock step
        return value

    def sensors_temperatures(self) -> Mapping[str, Sequence[Temperature]] | None:
        value: Mapping[str, Sequence[Temperature]] | None = self._sensor("sensors_temperatures")
        return value

    def sensors_fans(self) -> Mapping[str, Sequence[Fan]] | None:
        value: Mapping[str, Sequence[Fan]] | None = self._sensor("sensors_fans")
        return value

    def sensors_battery(self) -> Battery | None:
        value: Battery | None = self._sensor("sensors_battery")
        return value

    def platform_info(self) -> PlatformInfo:
        if self._platform is None:  # static; on Windows platform.uname() runs `cmd /c ver` once
            uname = platform.uname()
            self._platform = PlatformInfo(
                hostname="",
                system=uname.system,
                release=uname.release,
                version=uname.version,
                machine=uname.machine,
                cpu_model=_read_cpu_model(),
                python=platform.python_version(),
            )
        return self._platform._replace(hostname=socket.gethostname())

    def users_count(self) -> int:
        return len(psutil.users())

    def process_count(self) -> int:
        # Listing /proc costs ~0.2 ms of kernel time on a quiet PC; a count a minute old is fine.
        value: int = self._ttl("process_count", self.PROCESS_COUNT_TTL_S, lambda: len(psutil.pids()))
        return value


class _Memory(NamedTuple):
    total: int
    available: int


class _CpuTimes(NamedTuple):
    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    irq: float
    softirq: float
    steal: float


class _DiskIO(NamedTuple):
    read_count: int
    write_count: int
    read_bytes: int
    write_bytes: int
    busy_time: int


class LinuxSource(PsutilSource):
    """psutil, with the three hottest Linux readings done in one pass each.

    Measured cold (a run every 15 s, caches cold) on a 2-core VM: psutil read /proc/stat twice
    (per-CPU and total), /proc/meminfo twice (memory and swap) and, for disk I/O, one sysfs file
    per disk besides /proc/diskstats: ~1.3 ms of the host check's ~2.4 ms. Here each file is read
    once; everything else is psutil's.
    """

    _TICK = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)

    def __init__(self) -> None:
        super().__init__()
        self._percpu_raw: list[_CpuTimes] | None = None
        self._meminfo: dict[bytes, int] | None = None

    def _read_stat(self) -> list[_CpuTimes]:
        tick = self._TICK
        cpus = []
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if not line.startswith(b"cpu"):
                    break
                if line.startswith(b"cpu "):
                    continue
                fields = [int(x) * tick for x in line.split()[1:9]]
                fields += [0.0] * (8 - len(fields))
                # guest time is already included in user: reporting it again would count it twice
                cpus.append(_CpuTimes(*fields))
        return cpus

    def cpu_percent_percpu(self) -> list[float] | None:
        now = self._read_stat()
        self._percpu_raw = now
        with self._lock:
            before, self._last_percpu = self._last_percpu, list(now)
        if before is None or len(before) != len(now):
            return None
        return [cpu_busy_percent(b, a) for b, a in zip(before, now, strict=True)]

    def cpu_times(self) -> CpuTimes:
        cpus = self._percpu_raw if self._percpu_raw is not None else self._read_stat()
        self._percpu_raw = None  # the next run reads afresh
        return _CpuTimes(*(sum(values) for values in zip(*cpus, strict=True)))

    def _mem(self) -> dict[bytes, int]:
        info = self._meminfo
        if info is None:
            info = {}
            with open("/proc/meminfo", "rb") as fh:
                for line in fh:
                    name, _, rest = line.partition(b":")
                    info[name] = int(rest.split()[0]) * 1024
            self._meminfo = info
        return info

    def virtual_memory(self) -> VirtualMemory:
        info = self._mem()
        if b"MemAvailable" not in info:  # kernels before 3.14: psutil knows how to estimate it
            return psutil.virtual_memory()
        return _Memory(info[b"MemTotal"], info[b"MemAvailable"])

    def swap_memory(self) -> SwapMemory:
        info = self._mem()
        self._meminfo = None  # memory is read first, swap second: the next run reads afresh
        return _Swap(info[b"SwapTotal"], info[b"SwapTotal"] - info[b"SwapFree"])

    def disk_io_counters(self) -> Mapping[str, DiskIO]:
        disks: set[str] = self._ttl("block_devices", self.PARTITIONS_TTL_S, lambda: set(os.listdir("/sys/block")))
        out: dict[str, DiskIO] = {}
        with open("/proc/diskstats", "rb") as fh:
            for line in fh:
                f = line.split()
                name = f[2].decode()
                if name in disks and len(f) >= 14:  # whole disks only: partitions would double-count
                    # /proc/diskstats counts 512-byte sectors whatever the device's sector size
                    out[name] = _DiskIO(int(f[3]), int(f[7]), int(f[5]) * 512, int(f[9]) * 512, int(f[12]))
        return out


class _Swap(NamedTuple):
    total: int
    used: int


def _read_cpu_model() -> str:
    if sys.platform == "linux":
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                model = cpu_model_from_cpuinfo(f.read())
        except OSError:
            model = ""
        if model:
            return model
    elif sys.platform == "win32":
        import winreg

        key_path = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key_path) as key:
                model = str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
        except OSError:
            model = ""
        if model:  # "Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz", not "Intel64 Family 6 Model 158 …"
            return model
    return platform.processor()


# --- the work ---------------------------------------------------------------------------------------

#: Errors an OS call may raise that make a part of the run partial (psutil.AccessDenied is a
#: psutil.Error; NotImplementedError is a RuntimeError). Anything else is a bug and fails the run.
_OS_ERRORS = (psutil.Error, OSError, RuntimeError)

#: cpu_times fields reported as host_cpu_seconds_total{mode}: they add up to the total time.
_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

_DUPLEX: dict[int, str] = {psutil.NIC_DUPLEX_FULL: "full", psutil.NIC_DUPLEX_HALF: "half"}


@contextmanager
def _partial(obs: Observations, what: str, section: str, target: str = "") -> Iterator[None]:
    """Turn an OS error inside the block into a ``check.partial`` warning and go on."""
    try:
        yield
    except _OS_ERRORS as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        labels = {"section": section, "target": target} if target else {"section": section}
        obs.event("check.partial", f"{what} failed: {reason}"[:1000], "warning", **labels)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    folded = name.casefold()
    return any(fnmatch.fnmatchcase(folded, p.casefold()) for p in patterns)


def _ratio(part: float, whole: float) -> float | None:
    if whole <= 0 or not math.isfinite(part):
        return None
    return min(1.0, max(0.0, part / whole))


def collect_with(source: HostSource, ctx: CheckContext[Config], *, facts: bool | None = None) -> Observations:
    """Read everything through ``source`` and return the samples, facts and partial events.

    ``facts`` overrides ``ctx.config.facts`` for this run (the check sends them only now and then).
    """
    cfg = ctx.config
    if facts is not None and facts != cfg.facts:
        cfg = msgspec.structs.replace(cfg, facts=facts)
    obs = Observations(ts_ms=ctx.clock_ms())
    counts = _cpu(source, cfg, obs)
    memory_total = _memory(source, obs)
    disks = _filesystems(source, cfg, obs)
    _disk_io(source, cfg, obs)
    nics = _network(source, cfg, obs)
    boot_time = _system(source, obs)
    _sensors(source, obs)
    if cfg.facts:
        info: PlatformInfo | None = None
        with _partial(obs, "platform_info", "facts"):
            info = source.platform_info()
        obs.facts = {
            "hostname": info.hostname if info else None,
            "os": info.system if info else None,
            "os_release": _os_release(info) if info else None,
            "os_version": info.version if info else None,
            "machine": info.machine if info else None,
            "cpu_model": (info.cpu_model or None) if info else None,
            "cpu_cores_logical": counts[0],
            "cpu_cores_physical": counts[1],
            "memory_bytes": memory_total,
            "disks": disks,
            "nics": nics,
            "boot_time": boot_time,
            "agent_version": centerwatch.__version__,
            "python": info.python if info else None,
        }
    return obs


def _cpu(source: HostSource, cfg: Config, obs: Observations) -> tuple[int | None, int | None]:
    with _partial(obs, "cpu_percent_percpu", "cpu"):
        percpu = source.cpu_percent_percpu()
        if percpu:  # None on the first run: no interval to measure over yet
            ratios = [min(1.0, max(0.0, p / 100.0)) for p in percpu]
            obs.add("host_cpu_usage_ratio", sum(ratios) / len(ratios), cpu="total")
            if cfg.per_cpu:
                for i, r in enumerate(ratios):
                    obs.add("host_cpu_usage_ratio", r, cpu=str(i))
    with _partial(obs, "cpu_times", "cpu"):
        times = source.cpu_times()._asdict()
        for mode in _CPU_MODES:
            if mode in times:
                obs.add("host_cpu_seconds_total", times[mode], mode=mode)
    logical = physical = None
    with _partial(obs, "cpu_count", "cpu"):
        logical = source.cpu_count(True)
        physical = source.cpu_count(False)
        for kind, n in (("logical", logical), ("physical", physical)):
            if n:
                obs.add("host_cpu_count", n, kind=kind)
    with _partial(obs, "cpu_freq", "cpu"):
        freq = source.cpu_freq()
        if freq is not None and freq.current > 0:
            obs.add("host_cpu_frequency_hertz", freq.current * 1e6)
    with _partial(obs, "getloadavg", "cpu"):
        load = source.getloadavg()
        if load is not None:
            for minutes, value in zip((1, 5, 15), load, strict=True):
                obs.add(f"host_load{minutes}", value)
    return logical, physical


def _memory(source: HostSource, obs: Observations) -> int | None:
    total = None
    with _partial(obs, "virtual_memory", "memory"):
        vm = source.virtual_memory()
        total = vm.total
        obs.add("host_memory_total_bytes", vm.total)
        obs.add("host_memory_available_bytes", vm.available)
        used = _ratio(vm.total - vm.available, vm.total)
        if used is not None:
            obs.add("host_memory_used_ratio", used)
    with _partial(obs, "swap_memory", "memory"):
        swap = source.swap_memory()
        obs.add("host_swap_total_bytes", swap.total)
        obs.add("host_swap_used_bytes", swap.used)
    return total


def _filesystems(source: HostSource, cfg: Config, obs: Observations) -> list[dict[str, Any]]:
    partitions: Sequence[DiskPartition] = ()
    with _partial(obs, "disk_partitions", "filesystem"):
        partitions = source.disk_partitions()
    excluded = {t.casefold() for t in cfg.filesystems_exclude_types}
    seen: set[str] = set()
    facts: list[dict[str, Any]] = []
    for part in partitions:
        # No fstype: a drive without media (empty CD-ROM or card reader on Windows).
        if not part.fstype or part.fstype.casefold() in excluded or part.mountpoint in seen:
            continue
        if _matches(part.mountpoint, cfg.filesystems_exclude_mountpoints):
            continue
        seen.add(part.mountpoint)  # over-mounted: statvfs sees the top one only
        with _partial(obs, f"disk_usage({part.mountpoint!r})", "filesystem", part.mountpoint):
            usage = source.disk_usage(part.mountpoint)
            labels = {"mountpoint": part.mountpoint, "fstype": part.fstype, "device": part.device}
            obs.add("host_filesystem_size_bytes", usage.total, **labels)
            obs.add("host_filesystem_free_bytes", usage.free, **labels)
            # used / (used + free), as df computes it: blocks reserved for root count as neither.
            used = _ratio(usage.used, usage.used + usage.free)
            if used is not None:
                obs.add("host_filesystem_used_ratio", used, **labels)
            facts.append({**labels, "size_bytes": usage.total})
    return facts


def _disk_io(source: HostSource, cfg: Config, obs: Observations) -> None:
    with _partial(obs, "disk_io_counters", "disk"):
        for disk, io in source.disk_io_counters().items():
            if _matches(disk, cfg.disk_exclude):
                continue
            obs.add("host_disk_read_bytes_total", io.read_bytes, disk=disk)
            obs.add("host_disk_written_bytes_total", io.write_bytes, disk=disk)
            obs.add("host_disk_reads_total", io.read_count, disk=disk)
            obs.add("host_disk_writes_total", io.write_count, disk=disk)
            busy_ms = getattr(io, "busy_time", None)
            if busy_ms is not None:
                obs.add("host_disk_io_time_seconds_total", busy_ms / 1000.0, disk=disk)


def _network(source: HostSource, cfg: Config, obs: Observations) -> list[dict[str, Any]]:
    with _partial(obs, "net_io_counters", "network"):
        for nic, io in source.net_io_counters().items():
            if _matches(nic, cfg.nic_exclude):
                continue
            obs.add("host_network_receive_bytes_total", io.bytes_recv, nic=nic)
            obs.add("host_network_transmit_bytes_total", io.bytes_sent, nic=nic)
            obs.add("host_network_receive_packets_total", io.packets_recv, nic=nic)
            obs.add("host_network_transmit_packets_total", io.packets_sent, nic=nic)
            obs.add("host_network_receive_errors_total", io.errin, nic=nic)
            obs.add("host_network_transmit_errors_total", io.errout, nic=nic)
            obs.add("host_network_receive_drops_total", io.dropin, nic=nic)
            obs.add("host_network_transmit_drops_total", io.dropout, nic=nic)
    stats: Mapping[str, NicStats] = {}
    with _partial(obs, "net_if_stats", "network"):
        stats = source.net_if_stats()
        for nic, st in stats.items():
            if _matches(nic, cfg.nic_exclude):
                continue
            obs.add("host_network_up", 1.0 if st.isup else 0.0, nic=nic)
            if st.speed > 0:
                obs.add("host_network_speed_bits_per_second", st.speed * 1e6, nic=nic)
            duplex = _DUPLEX.get(st.duplex)
            if duplex is not None:
                obs.add("host_network_full_duplex", 1.0 if duplex == "full" else 0.0, nic=nic)
            if st.mtu > 0:
                obs.add("host_network_mtu_bytes", st.mtu, nic=nic)
    if not cfg.facts:
        return []
    addrs: Mapping[str, Sequence[NicAddr]] = {}
    with _partial(obs, "net_if_addrs", "network"):
        addrs = source.net_if_addrs()
    facts = []
    for nic in sorted(set(addrs) | set(stats)):
        if _matches(nic, cfg.nic_exclude):
            continue
        nic_stats = stats.get(nic)
        nic_addrs = addrs.get(nic, ())
        macs = [_mac(a.address) for a in nic_addrs if a.family == psutil.AF_LINK]
        facts.append(
            {
                "name": nic,
                "mac": macs[0] if macs else None,
                "speed_mbps": nic_stats.speed if nic_stats is not None and nic_stats.speed > 0 else None,
                "duplex": _DUPLEX.get(nic_stats.duplex, "unknown") if nic_stats is not None else None,
                "addresses": [
                    _cidr(a.address, a.netmask) for a in nic_addrs if a.family in (socket.AF_INET, socket.AF_INET6)
                ],
            }
        )
    return facts


def _mac(address: str) -> str:
    return address.replace("-", ":").lower()  # Windows writes 00-1A-2B-…


def _cidr(address: str, netmask: str | None) -> str:
    """``192.0.2.7/24``; the address alone when the mask is missing or not a contiguous mask."""
    if not netmask:
        return address
    try:
        bits = int(ipaddress.ip_address(netmask))
        width = 32 if ":" not in netmask else 128
        prefix = bits.bit_count()
        if bits != ((1 << prefix) - 1) << (width - prefix):
            return address
    except ValueError:
        return address
    return f"{address}/{prefix}"


def _os_release(info: PlatformInfo) -> str:
    """Python 3.11 reports Windows 11 as release "10"; its builds start at 22000."""
    if info.system == "Windows" and info.release == "10":
        build = info.version.split(".")[2:3]
        if build and build[0].isdigit() and int(build[0]) >= 22000:
            return "11"
    return info.release


def _system(source: HostSource, obs: Observations) -> int | None:
    boot_time = None
    with _partial(obs, "boot_time", "system"):
        boot = source.boot_time()
        boot_time = int(boot)
        obs.add("host_boot_time_seconds", boot)
        obs.add("host_uptime_seconds", max(0.0, obs.ts_ms / 1000.0 - boot))
    with _partial(obs, "process_count", "system"):
        obs.add("host_processes", source.process_count())
    with _partial(obs, "users_count", "system"):
        obs.add("host_users", source.users_count())
    return boot_time


def _sensors(source: HostSource, obs: Observations) -> None:
    with _partial(obs, "sensors_temperatures", "sensors"):
        for sensor, label, value in _unique_labels(source.sensors_temperatures()):
            obs.add("host_temperature_celsius", value, sensor=sensor, label=label)
    with _partial(obs, "sensors_fans", "sensors"):
        for sensor, label, value in _unique_labels(source.sensors_fans()):
            obs.add("host_fan_speed_rpm", value, sensor=sensor, label=label)
    with _partial(obs, "sensors_battery", "sensors"):
        battery = source.sensors_battery()
        if battery is not None:
            obs.add("host_battery_charge_ratio", min(1.0, max(0.0, battery.percent / 100.0)))
            if battery.power_plugged is not None:
                obs.add("host_battery_power_plugged", 1.0 if battery.power_plugged else 0.0)


def _unique_labels(
    readings: Mapping[str, Sequence[Temperature]] | Mapping[str, Sequence[Fan]] | None,
) -> Iterator[tuple[str, str, float]]:
    """(sensor, label, value) with labels made unique within a sensor: psutil gives "" for
    unlabelled inputs, and "Core 0" once per package on multi-socket machines."""
    for sensor, entries in (readings or {}).items():
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            label = entry.label or str(i)
            if label in seen:
                label = f"{label} #{i}"
            seen.add(label)
            if entry.current is not None and math.isfinite(entry.current):
                yield sensor, label, float(entry.current)


# --- the check --------------------------------------------------------------------------------------


class _Runtime:
    """Module state, set on first use and never at import."""

    source: PsutilSource | None = None
    #: monotonic start of the collection running in a worker thread, if any
    running_since: float | None = None
    #: monotonic time facts were last sent
    facts_sent: float | None = None


_runtime = _Runtime()


async def collect(ctx: CheckContext[Config]) -> Observations:
    # A thread blocked in the OS (statvfs on a dead mount, a failing disk) cannot be cancelled:
    # refuse to start another one on top of it rather than fill the default executor.
    since = _runtime.running_since
    if since is not None:
        raise AgentError(
            f"the previous host collection has been running for {time.monotonic() - since:.0f} s "
            "(blocked in an OS call?); not starting another"
        )
    if _runtime.source is None:
        _runtime.source = LinuxSource() if sys.platform.startswith("linux") else PsutilSource()
    now = time.monotonic()
    facts = ctx.config.facts and (
        _runtime.facts_sent is None or now - _runtime.facts_sent >= ctx.config.facts_interval_s
    )
    obs = await asyncio.to_thread(_collect_in_thread, _runtime.source, ctx, facts)
    if facts and obs.facts is not None:
        _runtime.facts_sent = now
    return obs


def _collect_in_thread(source: PsutilSource, ctx: CheckContext[Config], facts: bool) -> Observations:
    _runtime.running_since = time.monotonic()
    try:
        return collect_with(source, ctx, facts=facts)
    finally:
        _runtime.running_since = None
