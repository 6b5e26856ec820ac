"""Per-device SNMP credentials: inventory names them (``snmp: {version, credential}``), the collector
passes the names to the probe agent (``probe_checks``), and the snmp check resolves each name from
its local ``credentials_file``. A name it cannot resolve is that device's failure, naming the
device, the credential and the file; the other devices are polled; no secret shows anywhere."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agent.checks import snmp
from agent.checks.base import CheckContext, Observations
from agent.config import check_specs, parse_config
from agent.errors import ConfigError
from agent.snmp.client import V3, Counter64, Credentials, Secret, V2c, Value
from agent.snmp.credentials import CredentialStore, load_credentials, parse_credentials
from collector.inventory import load_inventory
from collector.probeconfig import SNMP_CREDENTIALS_FILE, probe_checks, snmp_devices
from tests.conftest import ROOT

COMMUNITY = "v2c-Sec-8f1d2c"
PRINTERS = "printers-Sec-77aa01"
AUTH_KEY = "auth-Sec-3b9e55d0"
PRIV_KEY = "priv-Sec-c4e71a26"
SECRETS = (COMMUNITY, PRINTERS, AUTH_KEY, PRIV_KEY)
CREDENTIALS = f"""\
snmp-v2c-ro:
  community: "{COMMUNITY}"
snmp-v2c-printers:
  community: "{PRINTERS}"
snmp-v3-network-ro:
  user: centerwatch
  auth_protocol: SHA-256
  auth_key: "{AUTH_KEY}"
  priv_protocol: AES-256
  priv_key: "{PRIV_KEY}"
"""
SYS = "1.3.6.1.2.1.1"


def write(folder: Path, text: str = CREDENTIALS, mode: int = 0o600) -> Path:
    path = folder / "snmp-credentials.yaml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# --- the file -----------------------------------------------------------------------------------------


def test_file_gives_secrets_by_name_masked_in_repr(tmp_path: Path) -> None:
    creds = load_credentials(write(tmp_path))
    assert creds["snmp-v2c-ro"] == V2c(Secret(COMMUNITY))
    assert creds["snmp-v3-network-ro"] == V3("centerwatch", Secret(AUTH_KEY), Secret(PRIV_KEY), "SHA-256", "AES-256")
    text = repr(creds) + str(creds)
    assert "snmp-v3-network-ro" in text
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("- a\n- b\n", "", "expected a mapping of credential names"),
        ("'bad name':\n  community: x\n", "bad name", "a credential name is letters"),
        ("ro: public\n", "ro", "expected {community: …} (v2c)"),
        ("ro:\n  community: 12345\n", "ro.community", "expected str, got int"),
        ("ro:\n  community: ''\n", "ro.community", "expected str of length >= 1"),
        ("ro:\n  community: x\n  user: u\n", "ro.user", "unknown key"),
        (f"v3:\n  user: u\n  auth_key: {AUTH_KEY}\n", "v3.priv_key", "required key is missing"),
        ("v3:\n  user: u\n  auth_key: short\n  priv_key: short\n", "v3.auth_key", "expected str of length >= 8"),
        (
            f"v3:\n  user: u\n  auth_key: {AUTH_KEY}\n  priv_key: {PRIV_KEY}\n  auth_protocol: MD5\n",
            "v3.auth_protocol",
            "expected one of SHA, SHA-256",
        ),
    ],
)
def test_each_invalid_file_names_file_and_key_and_never_a_value(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_credentials(path)
    assert caught.value.file == str(path)
    assert caught.value.key == key
    assert expected in caught.value.message
    for secret in SECRETS:
        assert secret not in str(caught.value)


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("mode", [0o644, 0o604, 0o620, 0o666])
def test_a_file_other_users_may_read_or_change_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, mode=mode)
    with pytest.raises(ConfigError, match=rf"mode {mode:04o} lets other users .*chmod 600 {path}"):
        load_credentials(path)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640, 0o440])
def test_owner_only_or_group_read_is_accepted(tmp_path: Path, mode: int) -> None:
    assert set(load_credentials(write(tmp_path, mode=mode))) == {
        "snmp-v2c-ro",
        "snmp-v2c-printers",
        "snmp-v3-network-ro",
    }


def test_missing_file_and_directory_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read: No such file"):
        load_credentials(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match=r"Is a directory|not a regular file"):
        load_credentials(tmp_path)


def test_empty_file_has_no_credentials() -> None:
    assert parse_credentials(None, "x.yaml") == {}


def test_store_reads_again_only_when_the_file_changed(tmp_path: Path) -> None:
    path = write(tmp_path)
    store = CredentialStore(str(path))
    first = store.get()
    assert store.get() is first  # unchanged: not read again
    write(tmp_path, CREDENTIALS + "extra:\n  community: more-secret-1\n")
    os.utime(path, ns=(1, 1))  # a different mtime whatever the clock's resolution
    assert "extra" in store.get()
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="mode 0644"):
        store.get()
    path.chmod(0o600)
    assert "extra" in store.get()  # fixed: no restart needed


# --- the check ----------------------------------------------------------------------------------------


class FakeClient:
    def __init__(self, data: dict[str, Value]) -> None:
        self.data = data

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        return {o: self.data[o] for o in oids if o in self.data}

    async def walk(self, root: str, max_repetitions: int = 25) -> list[tuple[str, Value]]:
        prefix = root + "."
        rows = [(o, v) for o, v in self.data.items() if o.startswith(prefix)]
        return sorted(rows, key=lambda ov: tuple(int(a) for a in ov[0].split(".")))


def device_data(name: str) -> dict[str, Value]:
    return {
        f"{SYS}.1.0": b"Linux",
        f"{SYS}.2.0": "1.3.6.1.4.1.8072.3.2.10",
        f"{SYS}.3.0": 1000,
        f"{SYS}.5.0": name.encode(),
        "1.3.6.1.2.1.2.2.1.2.1": b"eth0",
        "1.3.6.1.2.1.31.1.1.1.6.1": Counter64(10),
    }


class Connector:
    """Hands out a fake device per name and remembers the credentials each was reached with."""

    def __init__(self) -> None:
        self.seen: dict[str, Credentials] = {}

    async def __call__(self, device: snmp.Device, config: snmp.Config) -> FakeClient:
        self.seen[device.name] = device.credentials()
        return FakeClient(device_data(device.name))


def config(credentials_file: Path | str, *devices: dict[str, Any]) -> snmp.Config:
    return msgspec.convert({"devices": list(devices), "credentials_file": str(credentials_file)}, snmp.Config)


def named(name: str, credential: str, version: str = "v2c") -> dict[str, Any]:
    return {"name": name, "address": "192.0.2.20", "version": version, "credential": credential}


async def run(cfg: snmp.Config, connect: Connector, state: snmp.Runtime | None = None) -> Observations:
    ctx: CheckContext[snmp.Config] = CheckContext("snmp", cfg, lambda: 1_795_900_000_000)
    return await snmp.collect_with(ctx, connect, state or snmp.Runtime(), lambda: 100.0)


def up(obs: Observations) -> dict[str, float]:
    return {s.labels["device"]: s.value for s in obs.samples if s.name == "snmp_up"}


def failures(obs: Observations) -> dict[str, str]:
    return {s.labels["target"]: s.labels["reason"] for s in obs.samples if s.name == "probe_failure_info"}


def messages(obs: Observations) -> dict[str, str]:
    return {e.labels["target"]: e.message for e in obs.events if e.kind == "probe.failed"}


def assert_no_secret(obs: Observations, *texts: str) -> None:
    blob = msgspec.json.encode([obs.samples, obs.events, obs.facts]).decode() + "".join(texts)
    for secret in SECRETS:
        assert secret not in blob


async def test_named_credentials_are_resolved_and_a_missing_one_fails_only_its_device(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = write(tmp_path)
    cfg = config(
        path,
        named("hk-sw1", "snmp-v2c-ro"),
        named("hk-rt1", "snmp-v3-network-ro", "v3"),
        named("hk-ups1", "snmp-v3-ups-ro", "v3"),  # not in the file
        named("hk-prn1", "snmp-v3-network-ro"),  # a v3 credential for a v2c device
        {"name": "inline", "address": "192.0.2.30", "community": "public"},
    )
    connect = Connector()
    obs = await run(cfg, connect)
    assert up(obs) == {"hk-sw1": 1.0, "hk-rt1": 1.0, "inline": 1.0, "hk-ups1": 0.0, "hk-prn1": 0.0}
    assert failures(obs) == {"hk-ups1": "credential", "hk-prn1": "credential"}
    assert messages(obs)["hk-ups1"] == (
        f"hk-ups1: credential 'snmp-v3-ups-ro' is not in {path} "
        "(credentials there: snmp-v2c-printers, snmp-v2c-ro, snmp-v3-network-ro)"
    )
    assert messages(obs)["hk-prn1"] == (
        f"hk-prn1: credential 'snmp-v3-network-ro' in {path} is for SNMP v3, the device is v2c"
    )
    assert connect.seen["hk-sw1"] == V2c(Secret(COMMUNITY))
    assert connect.seen["hk-rt1"] == V3("centerwatch", Secret(AUTH_KEY), Secret(PRIV_KEY), "SHA-256", "AES-256")
    assert set(connect.seen) == {"hk-sw1", "hk-rt1", "inline"}
    assert obs.facts is not None
    assert obs.facts["hk-ups1"] == {"reachable": False}
    assert obs.facts["hk-sw1"]["sysName"] == "hk-sw1"
    assert_no_secret(obs, caplog.text, repr(cfg))


async def test_an_unusable_file_fails_the_devices_that_need_it_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, mode=0o644)
    cfg = config(path, named("hk-sw1", "snmp-v2c-ro"), {"name": "inline", "address": "192.0.2.30", "community": "x"})
    state = snmp.Runtime()
    obs = await run(cfg, Connector(), state)
    assert up(obs) == {"hk-sw1": 0.0, "inline": 1.0}
    assert messages(obs)["hk-sw1"] == (
        f"hk-sw1: credential 'snmp-v2c-ro': {path}: mode 0644 lets other users read or change these "
        f"secrets: chmod 600 {path} (0640 at most)"
    )
    assert caplog.text.count("mode 0644") == 1
    await run(cfg, Connector(), state)
    assert caplog.text.count("mode 0644") == 1  # logged once, not every run
    path.chmod(0o600)
    assert up(await run(cfg, Connector(), state)) == {"hk-sw1": 1.0, "inline": 1.0}
    assert_no_secret(obs, caplog.text)


def test_config_refuses_a_credential_without_file_or_beside_secrets() -> None:
    with pytest.raises(msgspec.ValidationError, match="names credential 'ro': set credentials_file"):
        msgspec.convert({"devices": [named("a", "ro")]}, snmp.Config)
    with pytest.raises(msgspec.ValidationError, match="either a credential name or community"):
        msgspec.convert({"devices": [{**named("a", "ro"), "community": "x"}], "credentials_file": "f"}, snmp.Config)
    with pytest.raises(msgspec.ValidationError, match="Expected `str` matching regex"):
        msgspec.convert({"devices": [named("a", "bad name")], "credentials_file": "f"}, snmp.Config)
    device = msgspec.convert(named("a", "ro"), snmp.Device)
    assert "credential='ro'" in repr(device)
    with pytest.raises(ValueError, match="not resolved"):
        device.credentials()


# --- derivation from inventory ------------------------------------------------------------------------


def test_probe_checks_list_every_snmp_device_by_credential_name_and_parse_as_agent_config() -> None:
    inventory = load_inventory(ROOT / "inventory")
    center = inventory.centers["hoa-khanh"]
    checks = probe_checks(center)
    wanted = [d for d in center.devices if d.snmp is not None and d.address is not None]
    assert len(wanted) >= 3
    assert checks["snmp"]["credentials_file"] == SNMP_CREDENTIALS_FILE
    assert checks["snmp"]["devices"] == [
        {"name": d.name, "address": str(d.address), "version": d.snmp.version, "credential": d.snmp.credential}
        for d in wanted
        if d.snmp is not None
    ]
    assert {e["credential"] for e in checks["snmp"]["devices"]} >= {"snmp-v3-network-ro", "snmp-v2c-printers"}
    config = parse_config({"collector_url": "http://127.0.0.1:8080", "data_dir": "/d", "checks": checks}, "hk")
    spec = next(s for s in check_specs(config, "hk") if s.name == "snmp")
    assert isinstance(spec.config, snmp.Config)
    assert all(d.profile is None and d.credential and not d.community for d in spec.config.devices)
    assert probe_checks(center, snmp_credentials_file="/srv/c.yaml")["snmp"]["credentials_file"] == "/srv/c.yaml"


def test_a_center_without_snmp_gear_gets_no_snmp_check() -> None:
    inventory = load_inventory(ROOT / "inventory")
    for center in inventory.centers.values():
        assert ("snmp" in probe_checks(center)) == bool(snmp_devices(center))
