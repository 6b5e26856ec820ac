"""The SNMP check and client against a real net-snmp ``snmpd`` on 127.0.0.1 (v2c and v3 authPriv).

Skipped when snmpd is not installed, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agent.checks import snmp
from agent.checks.base import CheckContext, Observations
from agent.snmp.client import V3, PysnmpSession, Secret, SnmpClient, Target, V2c, Value
from agent.snmp.errors import SnmpError
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

COMMUNITY = "cw-ro-7d1e4b90"
USER, USER256 = "cwprobe", "cwprobe256"
AUTH_KEY = "auth-7c2f9e41a0"
PRIV_KEY = "priv-0b6d83c5f2"
WRONG_KEY = "wrong-key-5a5a5a"
WRONG_COMMUNITY = "wrong-community-3e3e"
SECRETS = (COMMUNITY, AUTH_KEY, PRIV_KEY, WRONG_KEY, WRONG_COMMUNITY)
IF_MIB = "1.3.6.1.2.1.2"


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


@dataclass
class Snmpd:
    port: int
    log: Path


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    binary = need("snmpd")
    folder = tmp_path_factory.mktemp("snmpd")
    port = free_udp_port()
    conf = folder / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:127.0.0.1:{port}\n"
        f"rocommunity {COMMUNITY} 127.0.0.1\n"
        f'createUser {USER} SHA "{AUTH_KEY}" AES "{PRIV_KEY}"\n'
        f'createUser {USER256} SHA-256 "{AUTH_KEY}" AES-256 "{PRIV_KEY}"\n'
        f"rouser {USER} authpriv\n"
        f"rouser {USER256} authpriv\n"
        "sysLocation CenterWatch test lab\n"
        "sysContact noc@example.invalid\n",
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
        yield Snmpd(port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Recording:
    """Wraps the real client: remembers every walk's root and the OIDs it returned."""

    def __init__(self, inner: SnmpClient, walks: list[tuple[str, list[str]]]) -> None:
        self.inner = inner
        self.walks = walks

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        return await self.inner.get(oids)

    async def walk(self, root: str, max_repetitions: int = 25) -> list[tuple[str, Value]]:
        rows = await self.inner.walk(root, max_repetitions)
        self.walks.append((root, [oid for oid, _ in rows]))
        return rows


def device(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": "127.0.0.1", "port": port, **extra}


def v3(name: str, port: int, user: str = USER, auth_key: str = AUTH_KEY, **extra: Any) -> dict[str, Any]:
    return device(name, port, version="v3", user=user, auth_key=auth_key, priv_key=PRIV_KEY, **extra)


def samples(obs: Observations, name: str, **labels: str) -> list[float]:
    return [s.value for s in obs.samples if s.name == name and labels.items() <= s.labels.items()]


def reasons(obs: Observations, target: str) -> list[str]:
    return [s.labels["reason"] for s in obs.samples if s.name == "probe_failure_info" and s.labels["target"] == target]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


async def test_check_polls_v2c_and_v3_twice_and_keeps_failures_to_their_device(
    snmpd: Snmpd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    closed = free_udp_port()  # nothing listens there
    cfg = msgspec.convert(
        {
            "devices": [
                device("v2c", snmpd.port, community=COMMUNITY),
                v3("v3", snmpd.port),
                v3("v3-sha256", snmpd.port, user=USER256, auth_protocol="SHA-256", priv_protocol="AES-256"),
                v3("v3-wrong-key", snmpd.port, auth_key=WRONG_KEY),
                device("v2c-wrong-community", snmpd.port, community=WRONG_COMMUNITY),
                device("closed", closed, community=COMMUNITY),
            ],
            "request_timeout_s": 0.5,
            "retries": 1,
        },
        snmp.Config,
    )
    state = snmp.Runtime()
    walks: list[tuple[str, list[str]]] = []

    async def connect(dev: snmp.Device, config: snmp.Config) -> SnmpClient:
        return Recording(await state.pysnmp_client(dev, config), walks)

    ctx: CheckContext[snmp.Config] = CheckContext("snmp", cfg)
    try:
        first = await snmp.collect_with(ctx, connect, state)
        await asyncio.sleep(1.0)
        started = time.monotonic()
        second = await snmp.collect_with(ctx, connect, state)
        took = time.monotonic() - started
    finally:
        assert state.session is not None
        state.session.close()

    # system facts, the same through v2c and both v3 users
    assert first.facts is not None
    facts = first.facts["v2c"]
    assert facts["reachable"] is True
    assert facts["profile"] == "generic"
    assert facts["sysObjectID"].startswith("1.3.6.1.4.1.8072.3.2.")  # net-snmp
    assert facts["sysName"] == socket.gethostname()
    assert facts["sysLocation"] == "CenterWatch test lab"
    assert facts["sysContact"] == "noc@example.invalid"
    assert facts["sysDescr"].startswith("Linux")
    lo = next(i for i in facts["interfaces"] if i["ifname"] == "lo")
    assert lo["oper_status"] == "up"
    for other in ("v3", "v3-sha256"):
        assert first.facts[other]["sysName"] == facts["sysName"]
        assert [i["ifname"] for i in first.facts[other]["interfaces"]] == [i["ifname"] for i in facts["interfaces"]]

    # the second run, one second later, has rates for the loopback interface
    for name in ("v2c", "v3", "v3-sha256"):
        assert samples(second, "snmp_up", device=name) == [1.0], name
        assert samples(second, "snmp_uptime_seconds", device=name)[0] > 0
        for metric in ("snmp_interface_in_bits_per_second", "snmp_interface_out_bits_per_second"):
            (rate,) = samples(second, metric, device=name, ifname="lo")
            assert rate >= 0, (name, metric)
        assert samples(second, "snmp_interface_oper_up", device=name, ifname="lo") == [1.0]
    assert not samples(first, "snmp_interface_in_bits_per_second")  # none on the first reading

    # every walk stayed inside its subtree, and the interface columns had rows
    assert walks
    for root, oids in walks:
        assert all(oid.startswith(root + ".") for oid in oids), root
    assert any(root == "1.3.6.1.2.1.31.1.1.1.6" and oids for root, oids in walks)

    # failures: each its own device's result, with its reason, while the others report
    for obs in (first, second):
        assert reasons(obs, "v3-wrong-key") == ["auth"]  # snmpd answers a wrong digest with a report
        assert reasons(obs, "v2c-wrong-community") == ["timeout"]  # v2c: a wrong community gets no answer
        assert reasons(obs, "closed") == ["timeout"]
        for name in ("v3-wrong-key", "v2c-wrong-community", "closed"):
            assert samples(obs, "snmp_up", device=name) == [0.0]
        assert reasons(obs, "v2c") == []
    events = {e.labels["target"]: e.message for e in second.events if e.kind == "probe.failed"}
    assert "WrongDigest" in events["v3-wrong-key"]
    assert took < 5.0  # timeouts ran side by side (0.5 s × 2 attempts), not one after another

    # secrets: in no sample, event, fact or log line
    for obs in (first, second):
        assert_no_secret(msgspec.json.encode([obs.samples, obs.events, obs.facts]).decode())
    assert_no_secret(caplog.text, repr(cfg), str(cfg))


async def test_client_walk_matches_snmpbulkwalk(snmpd: Snmpd) -> None:
    tool = need("snmpbulkwalk")
    async with PysnmpSession() as session:
        client = await session.client(Target("127.0.0.1", snmpd.port), V2c(Secret(COMMUNITY)))
        ours = [oid for oid, _ in await client.walk(IF_MIB, 25)]
    args = [tool, "-v2c", "-c", COMMUNITY, "-On", "-Oq", "-Cr25", f"127.0.0.1:{snmpd.port}", IF_MIB]
    env = {**os.environ, "MIBS": ""}
    done = await asyncio.to_thread(
        subprocess.run, args, check=True, capture_output=True, text=True, env=env, timeout=30
    )
    out = done.stdout
    theirs = [line.split(" ", 1)[0].lstrip(".") for line in out.splitlines() if line.startswith(".")]
    assert len(ours) > 20
    assert ours == theirs
    assert all(oid.startswith(IF_MIB + ".") for oid in ours)


async def test_errors_name_the_cause_and_never_a_secret(snmpd: Snmpd) -> None:
    async with PysnmpSession() as session:
        wrong = await session.client(
            Target("127.0.0.1", snmpd.port, 0.5, 0), V3(USER, Secret(WRONG_KEY), Secret(PRIV_KEY))
        )
        with pytest.raises(SnmpError) as auth:
            await wrong.get(["1.3.6.1.2.1.1.3.0"])
        assert auth.value.kind == "auth"
        silent = await session.client(Target("127.0.0.1", snmpd.port, 0.3, 0), V2c(Secret(WRONG_COMMUNITY)))
        with pytest.raises(SnmpError) as timeout:
            await silent.walk(IF_MIB)
        assert timeout.value.kind == "timeout"
        good = await session.client(Target("127.0.0.1", snmpd.port), V2c(Secret(COMMUNITY)))
        got = await good.get(["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.99.0"])  # the second does not exist
        assert list(got) == ["1.3.6.1.2.1.1.3.0"]
        assert isinstance(got["1.3.6.1.2.1.1.3.0"], int)
        assert await good.walk("1.3.6.1.2.1.99") == []  # nothing there: an empty walk, no error
        assert_no_secret(str(auth.value), str(timeout.value), repr(wrong), repr(silent), repr(good))


async def test_the_module_runtime_runs_the_check(snmpd: Snmpd, monkeypatch: pytest.MonkeyPatch) -> None:
    state = snmp.Runtime()
    monkeypatch.setattr(snmp, "_runtime", state)
    cfg = msgspec.convert({"devices": [device("v2c", snmpd.port, community=COMMUNITY)]}, snmp.Config)
    try:
        obs = await snmp.collect(CheckContext("snmp", cfg))
    finally:
        assert state.session is not None
        state.session.close()
    assert samples(obs, "snmp_up", device="v2c") == [1.0]
