"""Capture what ``PsutilSource`` reads on this machine, as JSON, for the host check's unit tests.

    .venv/bin/python tests/data/host/capture.py -o tests/data/host/linux_capture.json

Every ``HostSource`` method is called once (``cpu_percent_percpu`` twice, a second apart, so it has
an interval to measure) and its psutil structures are written as objects with their field names,
so platform-specific fields (``iowait``, ``busy_time``…) survive. A method that raises is written as
``{"error": <type>, "message": <text>}``. Address families are written by name (``AF_LINK`` is -1
on Windows and 17 on Linux). ``tests/unit/test_check_host.py`` reads the file back (``FakeSource``).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def plain(value: Any) -> Any:
    """psutil structures → JSON: named tuples as objects, enums as ints."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise TypeError(f"cannot capture {type(value).__name__}: {value!r}")


def family_name(family: int) -> str:
    import psutil

    if family == psutil.AF_LINK:
        return "AF_LINK"
    for name in ("AF_INET", "AF_INET6"):
        if family == getattr(socket, name):
            return name
    return str(int(family))


def attempt(fn: Any, *args: Any) -> Any:
    try:
        return plain(fn(*args))
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


def capture(skip_mounts: list[str]) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    import psutil

    from agent.checks.host import PsutilSource

    src = PsutilSource()
    src.cpu_percent_percpu()
    time.sleep(1.0)
    partitions = [p for p in src.disk_partitions() if not any(fnmatch.fnmatch(p.mountpoint, g) for g in skip_mounts)]
    addrs = src.net_if_addrs()
    return {
        "_meta": {
            "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "platform": sys.platform,
            "psutil": psutil.__version__,
            "python": sys.version.split()[0],
            "mounts_skipped": len(src.disk_partitions()) - len(partitions),
        },
        "cpu_percent_percpu": attempt(src.cpu_percent_percpu),
        "cpu_times": attempt(src.cpu_times),
        "cpu_count": {"logical": src.cpu_count(True), "physical": src.cpu_count(False)},
        "cpu_freq": attempt(src.cpu_freq),
        "getloadavg": attempt(src.getloadavg),
        "virtual_memory": attempt(src.virtual_memory),
        "swap_memory": attempt(src.swap_memory),
        "disk_partitions": plain(partitions),
        "disk_usage": {p.mountpoint: attempt(src.disk_usage, p.mountpoint) for p in partitions},
        "disk_io_counters": attempt(src.disk_io_counters),
        "net_io_counters": attempt(src.net_io_counters),
        "net_if_stats": attempt(src.net_if_stats),
        "net_if_addrs": {
            nic: [{**plain(a), "family": family_name(a.family)} for a in entries] for nic, entries in addrs.items()
        },
        "boot_time": attempt(src.boot_time),
        "sensors_temperatures": attempt(src.sensors_temperatures),
        "sensors_fans": attempt(src.sensors_fans),
        "sensors_battery": attempt(src.sensors_battery),
        "platform_info": attempt(src.platform_info),
        "users_count": attempt(src.users_count),
        "process_count": attempt(src.process_count),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    parser.add_argument(
        "--skip-mount",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out mountpoints matching GLOB",
    )
    args = parser.parse_args()
    text = json.dumps(capture(args.skip_mount), indent=1, ensure_ascii=False) + "\n"
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
