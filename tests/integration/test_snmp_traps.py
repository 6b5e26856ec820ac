"""The trap check's real listener on 127.0.0.1 (and ::1) receiving net-snmp ``snmptrap``/``snmpinform``:
v1/v2c and v3 authPriv traps become events; wrong communities, wrong keys and garbage are counted
and refused while the listener goes on; informs are acknowledged.

Skipped when net-snmp's tools are not installed, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agent.checks import snmp_traps
from agent.checks.base import CheckContext, Observations
from agent.snmp.errors import SnmpError
from agent.snmp.traps import start_receiver
from centerwatch.wire import Event

pytestmark = pytest.mark.integration

COMMUNITY = "cw-trap-5e1b7c"
WRONG_COMMUNITY = "cw-wrong-9d2a"
USER = "cwtrap"
AUTH_KEY = "auth-3f9c1e7a2b"
PRIV_KEY = "priv-8a4d6b0c5e"
WRONG_KEY = "wrong-key-7c7c7c"
ENGINE_ID = "8000000001020304a1"
OTHER_ENGINE_ID = "80000000010203ffee"
SECRETS = (COMMUNITY, WRONG_COMMUNITY, AUTH_KEY, PRIV_KEY, WRONG_KEY)
IF = "1.3.6.1.2.1.2.2.1"
SEND_TIMEOUT_S = 15.0
WAIT_S = 5.0


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        why = f"{tool} is not installed (apt-get install snmp)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so not skipping: {why}")
        pytest.skip(why)
    return path


def free_udp_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Listener:
    """The check's listener on a free loopback port, run the way the scheduler runs it."""

    port: int
    tmp: Path
    host: str = "127.0.0.1"
    state: snmp_traps.Runtime = field(default_factory=snmp_traps.Runtime)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"udp6:[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def config(self) -> snmp_traps.Config:
        listen = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        base: dict[str, Any] = {
            "listen": listen,
            "communities": [COMMUNITY],
            "users": [
                {"user": USER, "auth_protocol": "SHA-256", "auth_key": AUTH_KEY, "priv_key": PRIV_KEY},
                {
                    "user": f"{USER}-aes256",
                    "auth_protocol": "SHA",
                    "auth_key": AUTH_KEY,
                    "priv_protocol": "AES-256",
                    "priv_key": PRIV_KEY,
                },
            ],
            "devices": [{"name": "lab-switch", "address": self.host, "engine_id": ENGINE_ID}],
        }
        return msgspec.convert({**base, **self.options}, snmp_traps.Config)

    async def run(self) -> Observations:
        ctx: CheckContext[snmp_traps.Config] = CheckContext("snmp_traps", self.config())
        return await snmp_traps.collect_with(ctx, self.state, start_receiver)

    async def until(
        self, done: Callable[[list[Event], Observations], bool], what: str
    ) -> tuple[list[Event], Observations]:
        """Run the check until ``done`` holds for the events so far and the last run; bounded."""
        deadline = time.monotonic() + WAIT_S
        events: list[Event] = []
        while True:
            obs = await self.run()
            events += obs.events
            if done(events, obs):
                return events, obs
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {WAIT_S:g} s waiting for {what}; events {events}")
            await asyncio.sleep(0.05)

    async def trap(self, *args: str, expect_rc: int = 0) -> str:
        """``snmptrap <options…> TARGET <uptime> <trap oid> <varbinds…>``: options end at ``--``."""
        cut = list(args).index("--")
        return await self._send("snmptrap", args[:cut], args[cut + 1 :], expect_rc)

    async def inform(self, *args: str, expect_rc: int = 0) -> str:
        cut = list(args).index("--")
        return await self._send("snmpinform", ("-t", "3", "-r", "1", *args[:cut]), args[cut + 1 :], expect_rc)

    async def _send(self, tool: str, options: tuple[str, ...], rest: tuple[str, ...], expect_rc: int) -> str:
        env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(self.tmp / "net-snmp")}
        proc = await asyncio.create_subprocess_exec(
            need(tool),
            *options,
            self.target,
            *rest,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), SEND_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        text = out.decode(errors="replace")
        assert proc.returncode == expect_rc, f"{tool} exited {proc.returncode}: {text}"
        return text


V2C = ("-v", "2c", "-c", COMMUNITY)


def v3(
    user: str = USER, auth: str = "SHA-256", priv: str = "AES", auth_key: str = AUTH_KEY, priv_key: str = PRIV_KEY
) -> tuple[str, ...]:
    return ("-v", "3", "-l", "authPriv", "-u", user, "-a", auth, "-A", auth_key, "-x", priv, "-X", priv_key)


def counter(obs: Observations, name: str, **labels: str) -> float:
    (value,) = [s.value for s in obs.samples if s.name == name and labels.items() <= s.labels.items()]
    return value


def rejected(reason: str) -> Callable[[list[Event], Observations], bool]:
    return lambda _events, obs: counter(obs, "snmp_traps_rejected_total", reason=reason) >= 1


def got(count: int = 1) -> Callable[[list[Event], Observations], bool]:
    return lambda events, _obs: len(events) >= count


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Listener]]]:
    need("snmptrap")
    made: list[Listener] = []

    async def make(host: str = "127.0.0.1", **options: Any) -> Listener:
        found = Listener(free_udp_port(host), tmp_path, host, options=options)
        made.append(found)
        obs = await found.run()  # starts it
        assert counter(obs, "snmp_trap_listener_up") == 1.0
        return found

    yield make
    for found in made:
        found.state.stop()


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    yield
    for secret in SECRETS:
        assert secret not in caplog.text


async def test_v2c_link_down_with_varbinds(listener: Callable[..., Awaitable[Listener]]) -> None:
    lab = await listener()
    await lab.trap(
        *V2C,
        "--",
        "",
        "1.3.6.1.6.3.1.1.5.3",
        *(f"{IF}.1.3", "i", "3", f"{IF}.2.3", "s", "GigabitEthernet0/3"),
        *(f"{IF}.7.3", "i", "1", f"{IF}.8.3", "i", "2"),
    )
    (event,), obs = await lab.until(got(), "the linkDown event")
    assert event.kind == "snmp.link_down"
    assert event.severity == "warning"
    assert event.labels == {
        "device": "lab-switch",
        "oid": "1.3.6.1.6.3.1.1.5.3",
        "ifindex": "3",
        "ifname": "GigabitEthernet0/3",
    }
    assert event.message == "lab-switch: link down on GigabitEthernet0/3 (ifIndex 3, admin up, oper down)"
    assert event.ts_ms <= obs.ts_ms  # stamped when received, not when drained
    assert counter(obs, "snmp_traps_received_total", kind="snmp.link_down") == 1.0


async def test_v2c_cold_start_and_ups_mib_on_battery(listener: Callable[..., Awaitable[Listener]]) -> None:
    lab = await listener()
    await lab.trap(*V2C, "--", "", "1.3.6.1.6.3.1.1.5.1")
    await lab.trap(
        *V2C,
        "--",
        "",
        "1.3.6.1.2.1.33.2.0.1",
        *("1.3.6.1.2.1.33.1.2.3.0", "i", "42", "1.3.6.1.2.1.33.1.6.1.0", "u", "1"),
    )
    events, _ = await lab.until(got(2), "coldStart and upsTrapOnBattery")
    assert [(e.kind, e.severity) for e in events] == [
        ("snmp.cold_start", "warning"),
        ("snmp.ups_on_battery", "critical"),
    ]
    assert events[1].message == ("lab-switch: UPS on battery — 1.3.6.1.2.1.33.1.2.3.0=42; 1.3.6.1.2.1.33.1.6.1.0=1")
    assert events[0].ts_ms <= events[1].ts_ms


async def test_apc_on_battery_as_the_v1_trap_apc_cards_send(listener: Callable[..., Awaitable[Listener]]) -> None:
    lab = await listener()
    # v1 enterprise-specific trap 5 of enterprise apc (1.3.6.1.4.1.318), as PowerNet cards send it
    await lab.trap(
        "-v",
        "1",
        "-c",
        COMMUNITY,
        "--",
        "1.3.6.1.4.1.318",
        "127.0.0.1",
        "6",
        "5",
        "",
        *("1.3.6.1.4.1.318.2.3.3.0", "s", "UPS: On battery power in response to an input power problem."),
    )
    await lab.trap(*V2C, "--", "", "1.3.6.1.4.1.318.0.9")  # powerRestored, as a v2c trap
    events, _ = await lab.until(got(2), "APC onBattery and powerRestored")
    assert [(e.kind, e.severity, e.labels["oid"]) for e in events] == [
        ("snmp.ups_on_battery", "critical", "1.3.6.1.4.1.318.0.5"),
        ("snmp.ups_on_line", "info", "1.3.6.1.4.1.318.0.9"),
    ]
    assert "UPS: On battery power in response to an input power problem." in events[0].message
    assert COMMUNITY not in repr(events)  # the v1 conversion's snmpTrapCommunity varbind is dropped


@pytest.mark.parametrize(("user", "auth", "priv"), [(USER, "SHA-256", "AES"), (f"{USER}-aes256", "SHA", "AES-256")])
async def test_v3_auth_priv_trap_from_a_known_engine(
    listener: Callable[..., Awaitable[Listener]], user: str, auth: str, priv: str
) -> None:
    lab = await listener()
    await lab.trap(*v3(user, auth, priv), "-e", f"0x{ENGINE_ID}", "--", "", "1.3.6.1.6.3.1.1.5.2")
    (event,), obs = await lab.until(got(), f"a v3 {auth}/{priv} warmStart")
    assert (event.kind, event.labels["device"]) == ("snmp.warm_start", "lab-switch")
    assert counter(obs, "snmp_traps_rejected_total", reason="auth") == 0.0


async def test_a_wrong_community_is_counted_and_gives_no_event(
    listener: Callable[..., Awaitable[Listener]], caplog: pytest.LogCaptureFixture
) -> None:
    lab = await listener()
    await lab.trap("-v", "2c", "-c", WRONG_COMMUNITY, "--", "", "1.3.6.1.6.3.1.1.5.1")
    events, obs = await lab.until(rejected("bad_community"), "the refusal to be counted")
    assert events == []
    assert counter(obs, "snmp_traps_rejected_total", reason="bad_community") == 1.0
    assert "SNMP notification from 127.0.0.1 refused: bad_community" in caplog.text


@pytest.mark.parametrize(
    ("options", "meaning"),
    [
        ((*v3(auth_key=WRONG_KEY), "-e", f"0x{ENGINE_ID}"), "wrong authentication key"),
        ((*v3(priv_key=WRONG_KEY), "-e", f"0x{ENGINE_ID}"), "wrong privacy key"),
        ((*v3(), "-e", f"0x{OTHER_ENGINE_ID}"), "no engine_id configured"),
        ((*v3(user="nobody"), "-e", f"0x{ENGINE_ID}"), "unknown user"),
    ],
    ids=["wrong-auth-key", "wrong-priv-key", "unknown-engine-id", "unknown-user"],
)
async def test_wrong_v3_credentials_are_counted_as_auth_and_give_no_event(
    listener: Callable[..., Awaitable[Listener]],
    caplog: pytest.LogCaptureFixture,
    options: tuple[str, ...],
    meaning: str,
) -> None:
    lab = await listener()
    await lab.trap(*options, "--", "", "1.3.6.1.6.3.1.1.5.1")
    events, obs = await lab.until(rejected("auth"), "the refusal to be counted")
    assert events == []
    assert counter(obs, "snmp_traps_rejected_total", reason="auth") == 1.0
    assert meaning in caplog.text


async def test_garbage_is_counted_as_malformed_and_the_listener_goes_on(
    listener: Callable[..., Awaitable[Listener]],
) -> None:
    lab = await listener()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"hello, trap receiver", ("127.0.0.1", lab.port))  # not BER at all
        s.sendto(b"\x30\x03\x02\x01", ("127.0.0.1", lab.port))  # truncated BER
        s.sendto(b"\x30\x05\x02\x01\x07\x04\x00", ("127.0.0.1", lab.port))  # SNMP version 7
    _, obs = await lab.until(
        lambda _e, o: counter(o, "snmp_traps_rejected_total", reason="malformed") >= 3, "three malformed datagrams"
    )
    assert counter(obs, "snmp_traps_rejected_total", reason="malformed") == 3.0
    await lab.trap(*V2C, "--", "", "1.3.6.1.6.3.1.1.5.1")
    (event,), obs = await lab.until(got(), "a good trap after the garbage")
    assert event.kind == "snmp.cold_start"
    assert counter(obs, "snmp_trap_listener_up") == 1.0


@pytest.mark.parametrize("version", ["v2c", "v3"])
async def test_informs_are_acknowledged(listener: Callable[..., Awaitable[Listener]], version: str) -> None:
    lab = await listener()
    options = V2C if version == "v2c" else v3()  # a v3 inform discovers the receiver's engine ID itself
    # snmpinform exits 0 only once the receiver acknowledged (it would time out otherwise)
    await lab.inform(*options, "--", "", "1.3.6.1.2.1.33.2.0.1")
    (event,), obs = await lab.until(got(), f"the {version} inform's event")
    assert event.kind == "snmp.ups_on_battery"
    assert sum(s.value for s in obs.samples if s.name == "snmp_traps_rejected_total") == 0.0


async def test_a_v3_inform_with_a_wrong_key_is_refused(listener: Callable[..., Awaitable[Listener]]) -> None:
    lab = await listener()
    out = await lab.inform(*v3(auth_key=WRONG_KEY), "--", "", "1.3.6.1.6.3.1.1.5.1", expect_rc=1)
    assert "Authentication failure" in out
    events, _ = await lab.until(rejected("auth"), "the refusal to be counted")
    assert events == []


async def test_a_full_queue_drops_the_oldest(listener: Callable[..., Awaitable[Listener]]) -> None:
    lab = await listener(max_queue=2)
    for oid in ("1.3.6.1.4.1.99.0.1", "1.3.6.1.4.1.99.0.2", "1.3.6.1.4.1.99.0.3"):
        await lab.trap(*V2C, "--", "", oid)
    await asyncio.sleep(0.2)  # all three received before the next run drains
    events, obs = await lab.until(got(2), "the two newest traps")
    assert [e.labels["oid"] for e in events] == ["1.3.6.1.4.1.99.0.2", "1.3.6.1.4.1.99.0.3"]
    assert counter(obs, "snmp_traps_rejected_total", reason="queue_full") == 1.0


async def test_a_port_in_use_fails_the_run_naming_the_address(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        lab = Listener(port, tmp_path)
        with pytest.raises(SnmpError, match=rf"udp 127\.0\.0\.1:{port}: the address is in use"):
            await lab.run()
        assert lab.state.receiver is None
    obs = await lab.run()  # the port is free again: the next run listens
    try:
        assert counter(obs, "snmp_trap_listener_up") == 1.0
    finally:
        lab.state.stop()


async def test_an_address_on_no_interface_fails_the_run_naming_it(tmp_path: Path) -> None:
    lab = Listener(free_udp_port(), tmp_path, host="192.0.2.1")  # TEST-NET-1: on no interface here
    with pytest.raises(SnmpError, match=r"udp 192\.0\.2\.1:\d+: no interface has this address"):
        await lab.run()


PRIVILEGED_PORT_PROBE = """
import asyncio, collections, sys
from agent.checks import snmp_traps
from agent.checks.base import CheckContext
from agent.snmp.traps import start_receiver
import msgspec
cfg = msgspec.convert({"listen": "127.0.0.1:162", "communities": [sys.argv[1]]}, snmp_traps.Config)
try:
    asyncio.run(snmp_traps.collect_with(CheckContext("snmp_traps", cfg), snmp_traps.Runtime(), start_receiver))
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
"""


def test_a_privileged_port_without_the_privilege_is_a_clear_failure() -> None:
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 162:
        pytest.skip("net.ipv4.ip_unprivileged_port_start lets anyone bind port 162 here")
    # as root, drop CAP_NET_BIND_SERVICE for the child (util-linux setpriv), as the agent's service would lack it
    prefix = [need("setpriv"), "--bounding-set", "-net_bind_service"] if os.geteuid() == 0 else []
    done = subprocess.run(
        [*prefix, sys.executable, "-c", PRIVILEGED_PORT_PROBE, COMMUNITY],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.stdout.strip() == (
        "SnmpError: error: cannot listen for SNMP traps on udp 127.0.0.1:162: "
        "permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE"
    ), done.stderr
    assert COMMUNITY not in done.stdout + done.stderr


async def test_a_config_change_restarts_the_listener_on_the_same_port(
    listener: Callable[..., Awaitable[Listener]],
) -> None:
    lab = await listener()
    lab.options = {"communities": ["cw-new-community-1"]}
    await lab.run()  # restarted with the new community, same port
    await lab.trap("-v", "2c", "-c", "cw-new-community-1", "--", "", "1.3.6.1.6.3.1.1.5.1")
    await lab.trap(*V2C, "--", "", "1.3.6.1.6.3.1.1.5.2")  # the old community: refused now
    events, _ = await lab.until(
        lambda e, o: len(e) >= 1 and counter(o, "snmp_traps_rejected_total", reason="bad_community") >= 1,
        "one accepted and one refused trap",
    )
    assert [e.kind for e in events] == ["snmp.cold_start"]


async def test_an_ipv6_listener(listener: Callable[..., Awaitable[Listener]]) -> None:
    try:
        free_udp_port("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    lab = await listener(host="::1")
    await lab.trap(*V2C, "--", "", "1.3.6.1.6.3.1.1.5.4", f"{IF}.1.2", "i", "2")
    (event,), _ = await lab.until(got(), "a trap over IPv6")
    assert (event.kind, event.labels["device"], event.labels["ifindex"]) == ("snmp.link_up", "lab-switch", "2")
