"""Our v2c client (``ber.py`` over ``udp.py``) against a real net-snmp ``snmpd`` on 127.0.0.1: the
same OIDs, types and values as the pysnmp path and as net-snmp's own ``snmpbulkwalk``.

snmpd caches its tables for seconds, so three walks of a subtree back to back see the same data;
only the clocks (sysUpTime, hrSystemUptime, hrSystemDate) move, and they are compared by type. A
round that straddles a cache refresh is tried again (at most four rounds).

The device recordings of ``tests/data/snmpsim`` (real Cisco, HPE, Eaton, APC, Ubiquiti captures and
two written printers), served by snmpsim, come back through our client exactly as recorded: every
OID, value and type (Counter32/Counter64 kept apart, hex strings, IpAddress, OIDs), and as pysnmp
reads them.

Skipped when snmpd, snmpbulkwalk or snmpsim is not installed, except under CI=true, where that is a
failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agent.checks import snmp
from agent.checks.base import CheckContext
from agent.snmp.client import BerClient, Counter32, Counter64, PysnmpClient, PysnmpSession, Secret, Target, V2c, Value
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

COMMUNITY = "cw-fast-5e0c2a71"
ROOTS = {
    "system": "1.3.6.1.2.1.1",
    "ifTable": "1.3.6.1.2.1.2",
    "ifXTable": "1.3.6.1.2.1.31",
    "HOST-RESOURCES": "1.3.6.1.2.1.25",
}
#: clocks: they move between two walks, so only their type is compared
CLOCKS = {"1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.25.1.1.0", "1.3.6.1.2.1.25.1.2.0"}
Rows = list[tuple[str, Value]]


def need(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        why = f"{tool} is not installed (apt-get install snmpd snmp)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so not skipping: {why}")
        pytest.skip(why)
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def snmpd_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = need("snmpd")
    folder = tmp_path_factory.mktemp("snmpd-fast")
    port = free_udp_port()
    conf = folder / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:127.0.0.1:{port}\nrocommunity {COMMUNITY} 127.0.0.1\nsysLocation Bench 3, floor 2\n",
        encoding="utf-8",
    )
    log = folder / "snmpd.log"
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(folder / "persist"), "MIBS": ""}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [binary, "-f", "-Lo", "-C", "-c", str(conf)], stdout=fh, stderr=subprocess.STDOUT, env=env
        )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"snmpd exited ({proc.returncode}): {log.read_text(errors='replace')}")
            return "NET-SNMP version" in log.read_text(errors="replace")

        wait_for("snmpd to start", ready, timeout=15)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def parse_net_snmp(out: str) -> Rows:
    """``snmpbulkwalk -On -Oe -Ot -Ox`` output as (OID, Value) in our types."""
    rows: Rows = []
    pending: tuple[str, list[str]] | None = None  # a Hex-STRING that goes on over more lines

    def close() -> None:
        nonlocal pending
        if pending is not None:
            rows.append((pending[0], bytes.fromhex(" ".join(pending[1]))))
            pending = None

    for line in out.splitlines():
        if not line.startswith("."):
            assert pending is not None, line
            pending[1].append(line)
            continue
        close()
        oid, text = line[1:].split(" = ", 1)
        kind, _, rest = text.partition(": ")
        value: Value
        if kind == "Hex-STRING":
            pending = (oid, [rest])
            continue
        if text == '""':
            value = b""
        elif kind == "OID":
            value = rest.lstrip(".")
        elif kind in ("INTEGER", "Gauge32"):
            value = int(rest)
        elif kind == "Counter32":
            value = Counter32(int(rest))
        elif kind == "Counter64":
            value = Counter64(int(rest))
        elif kind == "IpAddress":
            value = rest
        elif text.isdigit():  # TimeTicks, printed bare with -Ot
            value = int(text)
        else:
            raise AssertionError(f"snmpbulkwalk printed a type this test does not know: {line}")
        rows.append((oid, value))
    close()
    return rows


async def net_snmp_walk(tool: str, port: int, root: str) -> Rows:
    args = [tool, "-v2c", "-c", COMMUNITY, "-On", "-Oe", "-Ot", "-Ox", "-Cr25", f"127.0.0.1:{port}", root]
    done = await asyncio.to_thread(
        subprocess.run, args, check=True, capture_output=True, text=True, env={**os.environ, "MIBS": ""}, timeout=60
    )
    return parse_net_snmp(done.stdout)


def differences(a: Rows, b: Rows) -> list[str]:
    """What differs between two walks, clocks compared by type only."""
    if [oid for oid, _ in a] != [oid for oid, _ in b]:
        only_a = sorted({o for o, _ in a} - {o for o, _ in b})[:5]
        only_b = sorted({o for o, _ in b} - {o for o, _ in a})[:5]
        return [f"OIDs differ: {len(a)} vs {len(b)} rows; only in the first {only_a}, only in the second {only_b}"]
    out = []
    for (oid, x), (_, y) in zip(a, b, strict=True):
        if type(x) is not type(y) or (oid not in CLOCKS and x != y):
            out.append(f"{oid}: {x!r} ({type(x).__name__}) vs {y!r} ({type(y).__name__})")
    return out


async def test_walks_equal_pysnmp_and_snmpbulkwalk(snmpd_port: int) -> None:
    tool = need("snmpbulkwalk")
    target = Target("127.0.0.1", snmpd_port, timeout_s=2.0, retries=1)
    creds = V2c(Secret(COMMUNITY))
    async with PysnmpSession() as ours, PysnmpSession(v2c="pysnmp") as theirs:
        fast = await ours.client(target, creds)
        slow = await theirs.client(target, creds)
        assert isinstance(fast, BerClient) and isinstance(slow, PysnmpClient)
        for name, root in ROOTS.items():
            problems: list[str] = []
            for _attempt in range(4):  # a round that straddled one of snmpd's cache refreshes goes again
                a = await fast.walk(root, 25)
                b = await slow.walk(root, 25)
                c = await net_snmp_walk(tool, snmpd_port, root)
                problems = [f"ber vs pysnmp: {p}" for p in differences(a, b)]
                problems += [f"ber vs snmpbulkwalk: {p}" for p in differences(a, c)]
                if not problems:
                    break
            assert not problems, (name, problems[:10])
            assert len(a) > 5, name
            assert all(oid.startswith(root + ".") for oid, _ in a), name
        # the types a real agent sends all came through: counters keep their width
        walked = await fast.walk(ROOTS["ifXTable"], 25)
        assert any(isinstance(v, Counter64) for _, v in walked)
        walked = await fast.walk(ROOTS["ifTable"], 25)
        assert any(isinstance(v, Counter32) for _, v in walked)
        # max-repetitions changes the requests, never the answer
        assert not differences(await fast.walk(ROOTS["system"], 1), await fast.walk(ROOTS["system"], 100))
        scalars = ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.6.0", "1.3.6.1.2.1.1.99.0"]
        assert await fast.get(scalars) == await slow.get(scalars)
        assert (await fast.get(scalars))["1.3.6.1.2.1.1.6.0"] == b"Bench 3, floor 2"


async def test_the_check_reports_the_same_facts_through_both_paths(snmpd_port: int) -> None:
    cfg = msgspec.convert(
        {"devices": [{"name": "host", "address": "127.0.0.1", "port": snmpd_port, "community": COMMUNITY}]},
        snmp.Config,
    )
    ctx: CheckContext[snmp.Config] = CheckContext("snmp", cfg)
    facts: dict[str, Any] = {}
    names: dict[str, set[tuple[str, tuple[tuple[str, str], ...]]]] = {}
    for path in ("ber", "pysnmp"):
        state = snmp.Runtime()
        state.session = PysnmpSession(v2c=path)
        try:
            obs = await snmp.collect_with(ctx, state.pysnmp_client, state)
        finally:
            state.session.close()
        assert obs.facts is not None
        facts[path] = obs.facts["host"]
        names[path] = {(s.name, tuple(sorted(s.labels.items()))) for s in obs.samples}
        assert [s.value for s in obs.samples if s.name == "snmp_up"] == [1.0], path
    assert facts["ber"] == facts["pysnmp"]
    assert names["ber"] == names["pysnmp"]
    assert facts["ber"]["sysLocation"] == "Bench 3, floor 2"


# --- device recordings served by snmpsim: the recording is the truth -------------------------------


def recorded(path: Path) -> list[tuple[str, str, Value | None]]:
    """(OID, snmprec type, expected value; None for a value a variation module computes)."""
    out: list[tuple[str, str, Value | None]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        oid, kind, text = line.split("|", 2)
        value: Value | None
        if ":" in kind:
            value = None
        elif kind == "2" or kind in ("66", "67"):
            value = int(text)
        elif kind == "4":
            value = text.encode("utf-8")
        elif kind == "4x":
            value = bytes.fromhex(text)
        elif kind == "6":
            value = text
        elif kind == "64x":
            value = ".".join(str(b) for b in bytes.fromhex(text))
        elif kind == "65":
            value = Counter32(int(text))
        elif kind == "70":
            value = Counter64(int(text))
        else:
            raise AssertionError(f"{path.name}: snmprec type {kind} is new to this test")
        out.append((oid, kind, value))
    return out


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    from tests.snmpsim import SnmpSimError, find_snmpsim, free_udp_port, start_snmpsim

    if find_snmpsim() is None:
        why = "snmpsim-command-responder is not installed (pip install snmpsim)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so not skipping: {why}")
        pytest.skip(why)
    data = Path(__file__).resolve().parent.parent / "data" / "snmpsim"
    port = free_udp_port()
    try:
        sim = start_snmpsim(data, [("127.0.0.1", port)], tmp_path_factory.mktemp("snmpsim-fast"))
    except SnmpSimError as exc:
        pytest.fail(str(exc))
    with sim:
        yield port, data


async def test_real_device_recordings_come_back_as_recorded(recordings: tuple[int, Path]) -> None:
    port, data = recordings
    files = sorted(data.glob("*.snmprec"))
    assert len(files) >= 5
    async with PysnmpSession() as ours, PysnmpSession(v2c="pysnmp") as theirs:
        for path in files:
            creds = V2c(Secret(path.stem))
            target = Target("127.0.0.1", port, timeout_s=5.0, retries=1)
            fast_client = await ours.client(target, creds)
            slow_client = await theirs.client(target, creds)
            want = recorded(path)
            # every top of the recording's tree (1.0.8802 LLDP, 1.2.840 IEEE 802.11, 1.3.6 internet)
            roots = sorted({tuple(map(int, oid.split(".")[:2])) for oid, _, _ in want})
            fast = [row for r in roots for row in await fast_client.walk(f"{r[0]}.{r[1]}", 25)]
            slow = [row for r in roots for row in await slow_client.walk(f"{r[0]}.{r[1]}", 25)]
            assert [oid for oid, _ in fast] == [oid for oid, _, _ in want], path.name
            for (oid, got), (_, kind, value) in zip(fast, want, strict=True):
                if value is not None:
                    assert got == value and type(got) is type(value), (path.name, oid, kind, got, value)
            varying = {oid for oid, _, value in want if value is None}  # a variation module's
            assert [d for d in differences(fast, slow) if d.split(": ")[0] not in varying] == [], path.name
