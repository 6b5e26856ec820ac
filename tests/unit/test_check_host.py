"""The host check over data captured from real machines (tests/data/host/), never the live host;
one integration test runs the real ``collect()``."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
from collections import namedtuple
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

import centerwatch
from agent.catalog import CatalogError, load_catalog, parse_catalog
from agent.checks import host
from agent.checks.base import CheckContext, Observations
from agent.errors import AgentError
from centerwatch.wire import BATCH_DECODER, Batch, Part

DATA = Path(__file__).resolve().parents[1] / "data" / "host"
NOW_MS = 1_795_900_000_000  # after both captures' boot times


# --- a HostSource replaying a capture ----------------------------------------------------------------


@cache
def _tuple_type(typename: str, fields: tuple[str, ...]) -> Any:
    return namedtuple(typename, fields)  # psutil returns plain namedtuples


def nt(typename: str, data: dict[str, Any]) -> Any:
    return _tuple_type(typename, tuple(data))(**data)


_ERRORS: dict[str, type[BaseException]] = {
    "PermissionError": PermissionError,
    "FileNotFoundError": FileNotFoundError,
    "OSError": OSError,
}


class FakeSource:
    """Answers ``HostSource`` calls from a capture. ``fail`` maps a method name, or
    ``disk_usage:<mountpoint>``, to the exception that call raises."""

    def __init__(self, data: dict[str, Any], fail: dict[str, BaseException] | None = None) -> None:
        self.data = data
        self.fail = fail or {}

    @classmethod
    def load(cls, name: str, **kwargs: Any) -> FakeSource:
        return cls(json.loads((DATA / f"{name}_capture.json").read_text(encoding="utf-8")), **kwargs)

    def _get(self, key: str, item: str | None = None) -> Any:
        fail_key = key if item is None else f"{key}:{item}"
        if fail_key in self.fail:
            raise self.fail[fail_key]
        value = self.data[key] if item is None else self.data[key][item]
        if isinstance(value, dict) and set(value) == {"error", "message"}:
            raise _ERRORS.get(value["error"], OSError)(value["message"])
        return value

    def cpu_percent_percpu(self) -> list[float] | None:
        percpu = self._get("cpu_percent_percpu")
        return None if percpu is None else [float(p) for p in percpu]

    def cpu_times(self) -> Any:
        return nt("scputimes", self._get("cpu_times"))

    def cpu_count(self, logical: bool) -> int | None:
        count = self._get("cpu_count")["logical" if logical else "physical"]
        return None if count is None else int(count)

    def cpu_freq(self) -> Any:
        freq = self._get("cpu_freq")
        return None if freq is None else nt("scpufreq", freq)

    def getloadavg(self) -> tuple[float, float, float] | None:
        load = self._get("getloadavg")
        return None if load is None else tuple(load)

    def virtual_memory(self) -> Any:
        return nt("svmem", self._get("virtual_memory"))

    def swap_memory(self) -> Any:
        return nt("sswap", self._get("swap_memory"))

    def disk_partitions(self) -> list[Any]:
        return [nt("sdiskpart", p) for p in self._get("disk_partitions")]

    def disk_usage(self, mountpoint: str) -> Any:
        return nt("sdiskusage", self._get("disk_usage", mountpoint))

    def disk_io_counters(self) -> dict[str, Any]:
        return {k: nt("sdiskio", v) for k, v in self._get("disk_io_counters").items()}

    def net_io_counters(self) -> dict[str, Any]:
        return {k: nt("snetio", v) for k, v in self._get("net_io_counters").items()}

    def net_if_stats(self) -> dict[str, Any]:
        return {k: nt("snicstats", v) for k, v in self._get("net_if_stats").items()}

    def net_if_addrs(self) -> dict[str, list[Any]]:
        families = {"AF_INET": socket.AF_INET, "AF_INET6": socket.AF_INET6, "AF_LINK": psutil.AF_LINK}
        return {
            nic: [nt("snicaddr", {**a, "family": families.get(a["family"], -99)}) for a in entries]
            for nic, entries in self._get("net_if_addrs").items()
        }

    def boot_time(self) -> float:
        return float(self._get("boot_time"))

    def sensors_temperatures(self) -> dict[str, list[Any]] | None:
        temps = self._get("sensors_temperatures")
        return None if temps is None else {k: [nt("shwtemp", t) for t in v] for k, v in temps.items()}

    def sensors_fans(self) -> dict[str, list[Any]] | None:
        fans = self._get("sensors_fans")
        return None if fans is None else {k: [nt("sfan", f) for f in v] for k, v in fans.items()}

    def sensors_battery(self) -> Any:
        battery = self._get("sensors_battery")
        return None if battery is None else nt("sbattery", battery)

    def platform_info(self) -> host.PlatformInfo:
        return host.PlatformInfo(**self._get("platform_info"))

    def users_count(self) -> int:
        return int(self._get("users_count"))

    def process_count(self) -> int:
        return int(self._get("process_count"))


def with_sensors(data: dict[str, Any]) -> dict[str, Any]:
    """A capture with the sensors of a laptop: unlabelled and repeated labels, a fan, a battery."""
    temps = {
        "coretemp": [
            {"label": "Package id 0", "current": 51.0, "high": 84.0, "critical": 100.0},
            {"label": "Core 0", "current": 47.0, "high": 84.0, "critical": 100.0},
            {"label": "Core 0", "current": 49.0, "high": 84.0, "critical": 100.0},
        ],
        "acpitz": [
            {"label": "", "current": 27.8, "high": None, "critical": None},
            {"label": "", "current": 29.8, "high": None, "critical": None},
        ],
    }
    return {
        **data,
        "sensors_temperatures": temps,
        "sensors_fans": {"thinkpad": [{"label": "", "current": 2400}]},
        "sensors_battery": {"percent": 87.5, "secsleft": 9000, "power_plugged": False},
    }


def run(source: host.HostSource, **config: Any) -> Observations:
    ctx = CheckContext("host", msgspec.convert(config, host.Config), lambda: NOW_MS)
    return host.collect_with(source, ctx)


def series(obs: Observations, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in obs.samples if s.name == name}


def values(obs: Observations, name: str, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in obs.samples if s.name == name}


def one(obs: Observations, name: str) -> float:
    (value,) = series(obs, name).values()
    return value


def sources() -> dict[str, FakeSource]:
    linux = FakeSource.load("linux")
    return {
        "linux": linux,
        "windows": FakeSource.load("windows"),
        "linux+sensors": FakeSource(with_sensors(linux.data)),
    }


# --- what each capture gives -------------------------------------------------------------------------


def test_linux_capture() -> None:
    src = FakeSource.load("linux")
    obs = run(src)

    assert obs.events == []
    assert obs.ts_ms == NOW_MS and all(s.ts_ms == NOW_MS for s in obs.samples)
    usage = values(obs, "host_cpu_usage_ratio", "cpu")
    assert set(usage) == {"total", "0", "1"}
    percpu = src.data["cpu_percent_percpu"]
    assert usage["0"] == pytest.approx(percpu[0] / 100)
    assert usage["total"] == pytest.approx(sum(percpu) / len(percpu) / 100)
    modes = values(obs, "host_cpu_seconds_total", "mode")
    assert set(modes) == {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}  # no guest
    assert modes["idle"] == src.data["cpu_times"]["idle"]
    assert values(obs, "host_cpu_count", "kind") == {"logical": 2, "physical": 2}
    assert one(obs, "host_cpu_frequency_hertz") == pytest.approx(src.data["cpu_freq"]["current"] * 1e6)
    assert [one(obs, f"host_load{m}") for m in (1, 5, 15)] == src.data["getloadavg"]

    vm = src.data["virtual_memory"]
    assert one(obs, "host_memory_total_bytes") == vm["total"]
    assert one(obs, "host_memory_used_ratio") == pytest.approx(1 - vm["available"] / vm["total"])
    assert one(obs, "host_swap_total_bytes") == 0

    # proc, sysfs, tmpfs, devpts, cgroup… are excluded by type: only the root filesystem is left
    fs = series(obs, "host_filesystem_size_bytes")
    assert list(fs) == [(("device", "/dev/vda"), ("fstype", "ext4"), ("mountpoint", "/"))]
    root = src.data["disk_usage"]["/"]
    assert one(obs, "host_filesystem_free_bytes") == root["free"]
    assert one(obs, "host_filesystem_used_ratio") == pytest.approx(root["percent"] / 100, abs=1e-3)

    assert set(values(obs, "host_disk_read_bytes_total", "disk")) == {"vda"}  # loop*, zram0 excluded
    vda = src.data["disk_io_counters"]["vda"]
    assert one(obs, "host_disk_io_time_seconds_total") == vda["busy_time"] / 1000
    assert one(obs, "host_disk_writes_total") == vda["write_count"]

    nics = set(src.data["net_if_stats"]) - {"lo"}
    assert set(values(obs, "host_network_receive_bytes_total", "nic")) == nics
    assert set(values(obs, "host_network_up", "nic")) == nics
    assert (
        values(obs, "host_network_receive_bytes_total", "nic")["eth0"]
        == (src.data["net_io_counters"]["eth0"]["bytes_recv"])
    )
    # a virtio NIC reports neither speed nor duplex: no sample rather than a false 0
    assert series(obs, "host_network_speed_bits_per_second") == {}
    assert series(obs, "host_network_full_duplex") == {}
    assert values(obs, "host_network_mtu_bytes", "nic")["eth0"] == src.data["net_if_stats"]["eth0"]["mtu"]

    assert one(obs, "host_boot_time_seconds") == src.data["boot_time"]
    assert one(obs, "host_uptime_seconds") == pytest.approx(NOW_MS / 1000 - src.data["boot_time"])
    assert one(obs, "host_processes") == src.data["process_count"]
    assert one(obs, "host_users") == src.data["users_count"]
    assert not any(s.name.startswith(("host_temperature", "host_fan", "host_battery")) for s in obs.samples)


def test_windows_capture() -> None:
    src = FakeSource.load("windows")
    obs = run(src)

    assert obs.events == []
    assert set(values(obs, "host_cpu_usage_ratio", "cpu")) == {"total", "0", "1", "2", "3"}
    # interrupt and DPC time are inside "system" on Windows: not reported twice
    assert set(values(obs, "host_cpu_seconds_total", "mode")) == {"user", "system", "idle"}
    assert not any(s.name.startswith("host_load") for s in obs.samples)  # no load history yet

    # E:\ is an empty CD-ROM drive (no fstype): skipped, not an error
    assert values(obs, "host_filesystem_size_bytes", "mountpoint") == {
        "C:\\": 255369605120,
        "D:\\": 744587370496,
        "F:\\": 15997071360,
    }
    assert series(obs, "host_filesystem_used_ratio")[
        (("device", "C:\\"), ("fstype", "NTFS"), ("mountpoint", "C:\\"))
    ] == pytest.approx(0.908, abs=1e-3)

    assert set(values(obs, "host_disk_reads_total", "disk")) == {"PhysicalDrive0", "PhysicalDrive1"}
    assert series(obs, "host_disk_io_time_seconds_total") == {}  # Windows has no busy_time

    # the loopback pseudo-interface is excluded by default; a 100 Mb/s link is reported as such
    assert set(values(obs, "host_network_up", "nic")) == {"Ethernet", "Wi-Fi"}
    assert values(obs, "host_network_up", "nic") == {"Ethernet": 1.0, "Wi-Fi": 0.0}
    assert values(obs, "host_network_speed_bits_per_second", "nic") == {"Ethernet": 100_000_000}
    assert values(obs, "host_network_full_duplex", "nic") == {"Ethernet": 1.0, "Wi-Fi": 1.0}
    assert values(obs, "host_network_receive_drops_total", "nic")["Ethernet"] == 12

    # no sensors functions on Windows, and a desktop has no battery: nothing, and no complaint
    assert not any(s.name.startswith(("host_temperature", "host_fan", "host_battery")) for s in obs.samples)


def test_sensors_have_unique_labels_and_battery_is_reported() -> None:
    obs = run(FakeSource(with_sensors(FakeSource.load("linux").data)))

    assert series(obs, "host_temperature_celsius") == {
        (("label", "Package id 0"), ("sensor", "coretemp")): 51.0,
        (("label", "Core 0"), ("sensor", "coretemp")): 47.0,
        (("label", "Core 0 #2"), ("sensor", "coretemp")): 49.0,
        (("label", "0"), ("sensor", "acpitz")): 27.8,
        (("label", "1"), ("sensor", "acpitz")): 29.8,
    }
    assert series(obs, "host_fan_speed_rpm") == {(("label", "0"), ("sensor", "thinkpad")): 2400.0}
    assert one(obs, "host_battery_charge_ratio") == 0.875
    assert one(obs, "host_battery_power_plugged") == 0.0


def test_first_run_has_no_cpu_usage_rather_than_a_false_zero() -> None:
    src = FakeSource.load("linux")
    src.data = {**src.data, "cpu_percent_percpu": None}
    obs = run(src)
    assert series(obs, "host_cpu_usage_ratio") == {}
    assert obs.events == []
    assert series(obs, "host_cpu_seconds_total")  # the rest is there


def test_per_cpu_off_keeps_the_total() -> None:
    obs = run(FakeSource.load("windows"), per_cpu=False)
    assert set(values(obs, "host_cpu_usage_ratio", "cpu")) == {"total"}


def test_exclusion_patterns_are_case_insensitive_globs() -> None:
    obs = run(
        FakeSource.load("windows"),
        nic_exclude=["wi-fi", "loopback*"],
        disk_exclude=["physicaldrive1"],
        filesystems_exclude_mountpoints=["f:*"],
        filesystems_exclude_types=["ntfs"],
    )
    assert set(values(obs, "host_network_up", "nic")) == {"Ethernet"}
    assert set(values(obs, "host_disk_reads_total", "disk")) == {"PhysicalDrive0"}
    assert series(obs, "host_filesystem_size_bytes") == {}  # C:, D: are NTFS; F: by mountpoint
    assert [n["name"] for n in obs.facts["nics"]] == ["Ethernet"]  # type: ignore[index]


# --- the catalog -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["linux", "windows", "linux+sensors"])
def test_every_sample_is_cataloged_unique_and_valid_on_the_wire(name: str) -> None:
    obs = run(sources()[name])
    catalog = load_catalog()

    for sample in obs.samples:
        entry = catalog.get(sample.name)
        assert entry is not None, f"{sample.name} is not in agent/metrics.csv"
        assert entry.unit and entry.help
        assert (entry.type == "counter") == sample.name.endswith("_total"), sample.name
        assert math.isfinite(sample.value)
        if entry.unit in {"ratio", "boolean"}:
            assert 0.0 <= sample.value <= 1.0, sample
        if entry.type == "counter":
            assert sample.value >= 0, sample
    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in obs.samples]
    assert len(keys) == len(set(keys)), "a series is reported twice in one run"

    part = Part(1, "host", NOW_MS, 0.01, True, samples=obs.samples, facts=obs.facts, events=obs.events)
    batch = Batch(v=1, agent_id="a1", sent_ms=NOW_MS, parts=[part])
    assert BATCH_DECODER.decode(msgspec.json.encode(batch)) == batch  # names, labels, facts validate


def test_catalog_lists_exactly_the_host_metrics_emitted() -> None:
    emitted = {s.name for src in sources().values() for s in run(src).samples}
    cataloged = {n for n in load_catalog() if n.startswith("host_")}
    assert cataloged == emitted
    assert len(cataloged) == 40


def test_catalog_file_is_sorted_and_typed() -> None:
    catalog = load_catalog()
    assert list(catalog) == sorted(catalog)
    assert catalog["host_network_receive_bytes_total"] == (
        "host_network_receive_bytes_total",
        "counter",
        "bytes",
        "Bytes received by the interface.",
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("name,kind,unit,help\n", "metrics.csv:1: expected the header 'name,type,unit,help', got"),
        ("name,type,unit,help\nx_bytes,gauge,bytes\n", "metrics.csv:2: expected 4 fields, got 3"),
        ("name,type,unit,help\nx_total,summary,count,X.\n", "metrics.csv:2: 'x_total': type must be one of"),
        ("name,type,unit,help\nx_count,gauge,percent,X.\n", "metrics.csv:2: 'x_count': unit must be one of"),
        (
            "name,type,unit,help\nx_reads,counter,count,X.\n",
            "'x_reads': counters, and only counters, end with",
        ),
        ("name,type,unit,help\nx_total,gauge,count,X.\n", "'x_total': counters, and only counters, end with"),
        (
            "name,type,unit,help\nx_read_total,counter,bytes,X.\n",
            "'x_read_total': a metric in bytes ends with",
        ),
        (
            "name,type,unit,help\nx_seconds,gauge,bytes,X.\n",
            "'x_seconds': a metric in bytes ends with '_bytes'",
        ),
        (
            "name,type,unit,help\nx_seconds,gauge,count,X.\n",
            "'x_seconds': ends with '_seconds' but its unit is",
        ),
        ("name,type,unit,help\nx_up,gauge,boolean,\n", "metrics.csv:2: 'x_up': help text is missing"),
        ("name,type,unit,help\nb_up,gauge,boolean,B.\na_up,gauge,boolean,A.\n", "'a_up' is out of order"),
        ("name,type,unit,help\na_up,gauge,boolean,A.\na_up,gauge,boolean,A.\n", "'a_up' is listed twice"),
        ("name,type,unit,help\nX-up,gauge,boolean,A.\n", "'X-up': a name is lower-case snake_case"),
    ],
)
def test_catalog_errors_name_the_line_and_the_rule(text: str, error: str) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(text, "metrics.csv")
    assert error in str(info.value)


# --- failures are data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        PermissionError(13, "Access is denied", "D:\\"),  # a BitLocker-locked volume
        psutil.AccessDenied(msg="GetDiskFreeSpaceExW"),
    ],
    ids=["PermissionError", "AccessDenied"],
)
def test_one_unreadable_filesystem_is_a_partial_event_and_the_rest_is_reported(exc: BaseException) -> None:
    obs = run(FakeSource.load("windows", fail={"disk_usage:D:\\": exc}))

    assert len(obs.events) == 1
    event = obs.events[0]
    assert (event.kind, event.severity, event.ts_ms) == ("check.partial", "warning", NOW_MS)
    assert event.labels == {"section": "filesystem", "target": "D:\\"}
    assert event.message.startswith(f"disk_usage('D:\\\\') failed: {type(exc).__name__}")
    assert set(values(obs, "host_filesystem_size_bytes", "mountpoint")) == {"C:\\", "F:\\"}
    assert [d["mountpoint"] for d in obs.facts["disks"]] == ["C:\\", "F:\\"]  # type: ignore[index]
    assert series(obs, "host_network_up") and series(obs, "host_memory_total_bytes")


@pytest.mark.parametrize(
    ("method", "lost"),
    [
        ("cpu_percent_percpu", {"host_cpu_usage_ratio"}),
        ("cpu_times", {"host_cpu_seconds_total"}),
        ("cpu_count", {"host_cpu_count"}),
        ("cpu_freq", {"host_cpu_frequency_hertz"}),
        ("getloadavg", {"host_load1", "host_load5", "host_load15"}),
        (
            "virtual_memory",
            {"host_memory_total_bytes", "host_memory_available_bytes", "host_memory_used_ratio"},
        ),
        ("swap_memory", {"host_swap_total_bytes", "host_swap_used_bytes"}),
        (
            "disk_partitions",
            {"host_filesystem_size_bytes", "host_filesystem_free_bytes", "host_filesystem_used_ratio"},
        ),
        ("disk_io_counters", {n for n in load_catalog() if n.startswith("host_disk_")}),
        (
            "net_io_counters",
            {n for n in load_catalog() if n.endswith("_total") and n.startswith("host_network_")},
        ),
        ("net_if_stats", {"host_network_up", "host_network_mtu_bytes"}),
        ("boot_time", {"host_boot_time_seconds", "host_uptime_seconds"}),
        ("sensors_temperatures", {"host_temperature_celsius"}),
        ("sensors_fans", {"host_fan_speed_rpm"}),
        ("sensors_battery", {"host_battery_charge_ratio", "host_battery_power_plugged"}),
        ("users_count", {"host_users"}),
        ("process_count", {"host_processes"}),
        ("net_if_addrs", set()),
        ("platform_info", set()),
    ],
)
def test_any_failing_os_call_costs_only_its_own_part(method: str, lost: set[str]) -> None:
    data = with_sensors(FakeSource.load("linux").data)
    complete = run(FakeSource(data))
    obs = run(FakeSource(data, fail={method: OSError(5, "Input/output error")}))

    assert [(e.kind, e.severity) for e in obs.events] == [("check.partial", "warning")]
    assert obs.events[0].message == f"{method} failed: OSError: [Errno 5] Input/output error"
    assert {s.name for s in complete.samples} - {s.name for s in obs.samples} == lost
    assert obs.facts is not None and set(obs.facts) == FACT_KEYS


def test_a_bug_is_not_swallowed_as_partial() -> None:
    with pytest.raises(KeyError):
        run(FakeSource.load("linux", fail={"virtual_memory": KeyError("total")}))


def test_psutil_source_without_sensor_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("sensors_temperatures", "sensors_fans", "sensors_battery", "getloadavg", "cpu_freq"):
        monkeypatch.delattr(psutil, name, raising=False)
    src = host.PsutilSource()
    assert src.sensors_temperatures() is None
    assert src.sensors_fans() is None
    assert src.sensors_battery() is None
    assert src.getloadavg() is None
    assert src.cpu_freq() is None


# --- facts -------------------------------------------------------------------------------------------

FACT_KEYS = {
    "hostname",
    "os",
    "os_release",
    "os_version",
    "machine",
    "cpu_model",
    "cpu_cores_logical",
    "cpu_cores_physical",
    "memory_bytes",
    "disks",
    "nics",
    "boot_time",
    "agent_version",
    "python",
}


def test_facts_from_the_linux_capture() -> None:
    src = FakeSource.load("linux")
    facts = run(src).facts
    assert facts is not None and set(facts) == FACT_KEYS
    info = src.data["platform_info"]
    assert facts["hostname"] == info["hostname"]
    assert (facts["os"], facts["os_release"], facts["machine"]) == ("Linux", info["release"], "x86_64")
    assert facts["cpu_model"] == "AMD EPYC"
    assert (facts["cpu_cores_logical"], facts["cpu_cores_physical"]) == (2, 2)
    assert facts["memory_bytes"] == src.data["virtual_memory"]["total"]
    assert facts["disks"] == [
        {
            "mountpoint": "/",
            "fstype": "ext4",
            "device": "/dev/vda",
            "size_bytes": src.data["disk_usage"]["/"]["total"],
        }
    ]
    eth0 = next(n for n in facts["nics"] if n["name"] == "eth0")
    assert eth0["mac"] == next(a["address"] for a in src.data["net_if_addrs"]["eth0"] if a["family"] == "AF_LINK")
    assert eth0["addresses"][0] == "192.0.2.2/24"
    assert eth0["addresses"][1].startswith("fd00::2/")
    assert (eth0["speed_mbps"], eth0["duplex"]) == (None, "unknown")
    assert "lo" not in {n["name"] for n in facts["nics"]}
    assert facts["boot_time"] == int(src.data["boot_time"])
    assert facts["agent_version"] == centerwatch.__version__
    assert facts["python"] == info["python"]


def test_facts_from_the_windows_capture() -> None:
    facts = run(FakeSource.load("windows")).facts
    assert facts is not None and set(facts) == FACT_KEYS
    assert (facts["hostname"], facts["os"], facts["machine"]) == ("TTHC-PC07", "Windows", "AMD64")
    assert facts["os_release"] == "11"  # Python 3.11 says "10" for build 22631
    assert facts["os_version"] == "10.0.22631"
    assert facts["cpu_model"] == "Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz"
    assert facts["nics"] == [
        {
            "name": "Ethernet",
            "mac": "00:1a:2b:3c:4d:5e",
            "speed_mbps": 100,
            "duplex": "full",
            "addresses": ["10.20.30.41/24", "fe80::1c2d:3e4f:5a6b:7c8d"],
        },
        {
            "name": "Wi-Fi",
            "mac": "a4:c3:f0:11:22:33",
            "speed_mbps": None,
            "duplex": "full",
            "addresses": ["169.254.12.7/16"],
        },
    ]
    assert [d["mountpoint"] for d in facts["disks"]] == ["C:\\", "D:\\", "F:\\"]


def test_facts_are_off_when_configured_off() -> None:
    obs = run(FakeSource.load("linux"), facts=False)
    assert obs.facts is None
    assert series(obs, "host_memory_total_bytes")


def test_unknown_facts_are_null_not_missing() -> None:
    obs = run(FakeSource.load("windows", fail={"platform_info": OSError("no"), "virtual_memory": OSError("no")}))
    assert obs.facts is not None and set(obs.facts) == FACT_KEYS
    assert obs.facts["hostname"] is None and obs.facts["memory_bytes"] is None
    assert len(obs.events) == 2


@pytest.mark.parametrize(
    ("release", "version", "expected"),
    [("10", "10.0.22631", "11"), ("10", "10.0.19045", "10"), ("2022Server", "10.0.20348", "2022Server")],
)
def test_windows_11_is_named(release: str, version: str, expected: str) -> None:
    info = host.PlatformInfo("pc", "Windows", release, version, "AMD64", "", "3.11.9")
    assert host._os_release(info) == expected


# --- helpers of the OS edge ---------------------------------------------------------------------------

_CPUINFO_X86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 158\nmodel name\t: Intel(R) Core(TM) i5-8500\n"
_CPUINFO_ARM64 = "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"


@pytest.mark.parametrize(
    ("text", "model"),
    [
        (_CPUINFO_X86, "Intel(R) Core(TM) i5-8500"),
        (_CPUINFO_ARM64, "Raspberry Pi 4 Model B Rev 1.4"),
        ("", ""),
    ],
)
def test_cpu_model_from_cpuinfo(text: str, model: str) -> None:
    assert host.cpu_model_from_cpuinfo(text) == model


def test_cpu_busy_percent_counts_iowait_as_idle_and_nested_times_once() -> None:
    before = nt("scputimes", {"user": 10.0, "system": 5.0, "idle": 80.0, "iowait": 5.0, "guest": 2.0})
    after = nt("scputimes", {"user": 16.0, "system": 7.0, "idle": 90.0, "iowait": 7.0, "guest": 4.0})
    # total: user 6 (guest 2 inside) + system 2 + idle 10 + iowait 2 = 20; busy = 20 - 10 - 2 = 8
    assert host.cpu_busy_percent(before, after) == pytest.approx(40.0)
    assert host.cpu_busy_percent(after, after) == 0.0
    windows0 = nt("scputimes", {"user": 10.0, "system": 10.0, "idle": 80.0, "interrupt": 1.0, "dpc": 1.0})
    windows1 = nt("scputimes", {"user": 15.0, "system": 15.0, "idle": 90.0, "interrupt": 3.0, "dpc": 3.0})
    assert host.cpu_busy_percent(windows0, windows1) == pytest.approx(50.0)  # "system" includes them


def test_psutil_source_keeps_its_own_cpu_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter(
        [
            [nt("scputimes", {"user": 1.0, "system": 1.0, "idle": 8.0})] * 2,
            [nt("scputimes", {"user": 2.0, "system": 1.0, "idle": 17.0})] * 2,
        ]
    )
    monkeypatch.setattr(psutil, "cpu_times", lambda percpu=False: next(readings))
    src = host.PsutilSource()
    assert src.cpu_percent_percpu() is None  # the first call only sets the baseline
    assert src.cpu_percent_percpu() == pytest.approx([10.0, 10.0])


@pytest.mark.parametrize(
    ("address", "netmask", "expected"),
    [
        ("10.0.0.5", "255.255.252.0", "10.0.0.5/22"),
        ("fd00::2", "ffff:ffff:ffff:ffff::", "fd00::2/64"),
        ("10.0.0.5", None, "10.0.0.5"),
        ("10.0.0.5", "255.0.255.0", "10.0.0.5"),
    ],
)
def test_cidr(address: str, netmask: str | None, expected: str) -> None:
    assert host._cidr(address, netmask) == expected


# --- config and the check ---------------------------------------------------------------------------


def test_config_defaults_and_unknown_keys() -> None:
    cfg = msgspec.convert({}, host.Config)
    assert cfg.per_cpu and cfg.facts and "tmpfs" in cfg.filesystems_exclude_types and "lo" in cfg.nic_exclude
    with pytest.raises(msgspec.ValidationError, match="Object contains unknown field `percpu`"):
        msgspec.convert({"percpu": False}, host.Config)
    with pytest.raises(msgspec.ValidationError, match=r"Expected `array`, got `str` - at `\$.nic_exclude`"):
        msgspec.convert({"nic_exclude": "lo"}, host.Config)


async def test_collect_refuses_to_pile_up_behind_a_blocked_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host._runtime, "running_since", time.monotonic() - 120)
    ctx = CheckContext("host", host.Config(), lambda: NOW_MS)
    with pytest.raises(AgentError, match=r"previous host collection has been running for 12\d s"):
        await host.collect(ctx)


@pytest.mark.integration
async def test_collect_on_this_host() -> None:
    ctx = CheckContext("host", host.Config())
    fresh = host._runtime.source is None
    first = await host.collect(ctx)
    await asyncio.sleep(0.2)
    obs = await host.collect(ctx)

    catalog = load_catalog()
    assert {s.name for s in first.samples + obs.samples} <= set(catalog)
    if fresh:  # the first run builds the PsutilSource, which has no CPU baseline yet
        assert series(first, "host_cpu_usage_ratio") == {}
    assert 0.0 <= one(obs, "host_memory_used_ratio") <= 1.0
    usage = values(obs, "host_cpu_usage_ratio", "cpu")
    assert "total" in usage and all(0.0 <= v <= 1.0 for v in usage.values())
    assert one(obs, "host_memory_total_bytes") == psutil.virtual_memory().total
    assert one(obs, "host_uptime_seconds") > 0
    assert series(obs, "host_filesystem_size_bytes")
    if fresh:  # facts go out with the first run, then once per facts_interval_s
        assert first.facts is not None and set(first.facts) == FACT_KEYS
        assert first.facts["hostname"] == socket.gethostname()
    assert obs.facts is None
    assert host._runtime.running_since is None
