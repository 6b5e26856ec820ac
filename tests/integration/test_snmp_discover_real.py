"""``centerwatch-agent snmp-discover`` against real agents on loopback, and its snippet through
inventory into the probe agent's snmp check (``probe_checks``: devices by credential name), which
polls them with the secrets from a local credentials file.

One UDP port, two agents: net-snmp ``snmpd`` bound to 127.0.0.2 (v2c community and a v3 authPriv
user) and ``snmpsim`` bound to 127.0.0.3 serving the Cisco Catalyst 3750 recording under the same
community. The command scans 127.0.0.0/29 (127.0.0.1-6: the other four addresses have nothing on
that port, so they stay silent); nothing but loopback addresses is ever sent to. snmpd takes
``agentAddress udp:127.0.0.2:<port>`` (its address on ``lo``: all of 127/8 is local on Linux) and
answers requests from any source (they come from 127.0.0.1) with ``rocommunity … default``.

Skipped when snmpd or snmpsim is not installed, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from agent.checks import snmp
from agent.checks.base import CheckContext
from collector.inventory import load_inventory
from collector.probeconfig import probe_checks
from tests.conftest import BIN, ROOT, wait_for
from tests.snmpsim import find_snmpsim, start_snmpsim

pytestmark = pytest.mark.integration

DATA = ROOT / "tests" / "data" / "snmpsim"
COMMUNITY = "cw-discover-5e1b7a"  # also snmpsim's recording name
USER = "cwdiscover"
AUTH_KEY = "auth-d15c0ver-91"
PRIV_KEY = "priv-d15c0ver-27"
SECRETS = (COMMUNITY, AUTH_KEY, PRIV_KEY)
SNMPD_HOST, SNMPSIM_HOST = "127.0.0.2", "127.0.0.3"


def need(tool: str, found: str | None) -> str:
    if found is None:
        why = f"{tool} is not installed (apt-get install snmpd; pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so not skipping: {why}")
        pytest.skip(why)
    return found


def port_free_on_both() -> int:
    for _ in range(20):
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
        ):
            a.bind((SNMPD_HOST, 0))
            port = int(a.getsockname()[1])
            try:
                b.bind((SNMPSIM_HOST, port))
            except OSError:
                continue
            return port
    raise AssertionError("no UDP port free on both 127.0.0.2 and 127.0.0.3")


@dataclass
class Lab:
    port: int
    snmpd_log: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    snmpd = need("snmpd", shutil.which("snmpd") or ("/usr/sbin/snmpd" if Path("/usr/sbin/snmpd").exists() else None))
    need("snmpsim-command-responder", find_snmpsim())
    folder = tmp_path_factory.mktemp("discover")
    port = port_free_on_both()
    conf = folder / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:{SNMPD_HOST}:{port}\n"
        f"rocommunity {COMMUNITY} default\n"
        f'createUser {USER} SHA-256 "{AUTH_KEY}" AES "{PRIV_KEY}"\n'
        f"rouser {USER} authpriv\n"
        "sysName hk-core.lab.example\n"
        "sysServices 72\n",
        encoding="utf-8",
    )
    log = folder / "snmpd.log"
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(folder / "persist"), "MIBS": ""}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [snmpd, "-f", "-Lo", "-C", "-c", str(conf)], stdout=fh, stderr=subprocess.STDOUT, env=env
        )
    data = folder / "data"
    data.mkdir()
    shutil.copy(DATA / "cisco-c3750.snmprec", data / f"{COMMUNITY}.snmprec")
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"snmpd exited ({proc.returncode}): {log.read_text(errors='replace')}")
            return "NET-SNMP version" in log.read_text(errors="replace")

        wait_for("snmpd to start", ready, timeout=15)
        with start_snmpsim(data, [(SNMPSIM_HOST, port)], folder / "snmpsim"):
            yield Lab(port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def discover(lab: Lab, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "centerwatch-agent"), "snmp-discover", "--subnet", "127.0.0.0/29", "--port", str(lab.port),
         "--timeout", "0.5", "--retries", "0", "--center", "tra-doc", "--lang", "en", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


async def test_v2c_scan_finds_both_agents_and_its_snippet_goes_through_inventory_to_the_probe(
    lab: Lab, tmp_path: Path
) -> None:
    creds = tmp_path / "snmp-credentials.yaml"
    creds.write_text(f'snmp-v2c-ro:\n  community: "{COMMUNITY}"\n', encoding="utf-8")
    creds.chmod(0o600)
    done = discover(lab, "--credential", "snmp-v2c-ro", "--credentials-file", str(creds))
    assert done.returncode == 0, done.stderr
    assert_no_secret(done.stdout, done.stderr)
    err = done.stderr.splitlines()
    port = lab.port
    assert err[0] == f"Scanning 6 addresses of 127.0.0.0/29 over SNMP v2c, UDP port {port}, credential 'snmp-v2c-ro'…"
    assert err[-1] == "2/6 addresses answered SNMP: 2 usable devices, 0 refused or failed."
    assert "6/6 addresses · 2 answered" in err  # plain progress lines: stderr is no terminal here
    rows = {line.split()[0]: line.split()[1:4] for line in err if line.startswith("127.0.0.")}
    assert rows == {
        SNMPD_HOST: ["tra-doc-hk-core", "generic", "pc"],
        SNMPSIM_HOST: ["tra-doc-dumsys-90", "cisco-catalyst", "switch"],
    }
    snippet = yaml.safe_load(done.stdout)
    assert snippet["hosts"] == {
        "tra-doc-hk-core": {
            "device_role": "pc",
            "ansible_host": SNMPD_HOST,
            "snmp": {"version": "v2c", "credential": "snmp-v2c-ro"},
        },
        "tra-doc-dumsys-90": {
            "device_role": "switch",
            "ansible_host": SNMPSIM_HOST,
            "snmp": {"version": "v2c", "credential": "snmp-v2c-ro"},
        },
    }

    # pasted into the center's hosts, inventory accepts it and the probe agent gets the devices
    inventory = tmp_path / "inventory"
    (inventory / "centers").mkdir(parents=True)
    shutil.copytree(ROOT / "inventory" / "group_vars", inventory / "group_vars")
    center_file: dict[str, Any] = yaml.safe_load((ROOT / "inventory" / "centers" / "tra-doc.yml").read_text("utf-8"))
    group = center_file["all"]["children"]["centers"]["children"]["center_tra_doc"]
    group["hosts"].update(snippet["hosts"])
    (inventory / "centers" / "tra-doc.yml").write_text(yaml.safe_dump(center_file, allow_unicode=True), "utf-8")
    center = load_inventory(inventory).centers["tra-doc"]
    assert center.device("tra-doc-dumsys-90").snmp is not None
    devices = {d["name"]: d for d in probe_checks(center)["snmp"]["devices"]}
    assert devices["tra-doc-dumsys-90"] == {
        "name": "tra-doc-dumsys-90",
        "address": SNMPSIM_HOST,
        "version": "v2c",
        "credential": "snmp-v2c-ro",
    }
    assert devices["tra-doc-hk-core"]["address"] == SNMPD_HOST

    # and the probe agent's snmp check polls them, the secrets from its own credentials file (the
    # lab's agents listen on a test port, not 161); a v3 device by credential name beside them
    creds.write_text(
        f'snmp-v2c-ro:\n  community: "{COMMUNITY}"\n'
        f"snmp-v3-network-ro:\n  user: {USER}\n  auth_protocol: SHA-256\n"
        f'  auth_key: "{AUTH_KEY}"\n  priv_key: "{PRIV_KEY}"\n',
        encoding="utf-8",
    )
    v3 = {"name": "tra-doc-hk-core-v3", "address": SNMPD_HOST, "version": "v3", "credential": "snmp-v3-network-ro"}
    checks = probe_checks(center, snmp_credentials_file=str(creds))["snmp"]
    cfg = msgspec.convert(
        {
            "credentials_file": checks["credentials_file"],
            "devices": [{**d, "port": lab.port} for d in [*checks["devices"], v3] if d["address"].startswith("127.")],
        },
        snmp.Config,
    )
    state = snmp.Runtime()
    try:
        obs = await snmp.collect_with(CheckContext("snmp", cfg), state.pysnmp_client, state)
    finally:
        if state.session is not None:
            state.session.close()
    up = {s.labels["device"]: s.value for s in obs.samples if s.name == "snmp_up"}
    assert up == {"tra-doc-hk-core": 1.0, "tra-doc-dumsys-90": 1.0, "tra-doc-hk-core-v3": 1.0}, obs.events
    assert obs.facts is not None and obs.facts["tra-doc-dumsys-90"]["profile"] == "cisco-catalyst"
    assert_no_secret(msgspec.json.encode([obs.samples, obs.events, obs.facts]).decode())


def test_v3_scan_uses_keys_from_the_environment_and_reports_a_refusal(lab: Lab) -> None:
    done = discover(
        lab,
        "--credential", "snmp-v3-network-ro", "--v3-user", USER, "--auth-protocol", "SHA-256",
        env={"CENTERWATCH_SNMP_AUTH_KEY": AUTH_KEY, "CENTERWATCH_SNMP_PRIV_KEY": PRIV_KEY},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_no_secret(done.stdout, done.stderr)
    snippet = yaml.safe_load(done.stdout)
    assert snippet["hosts"] == {
        "tra-doc-hk-core": {
            "device_role": "pc",
            "ansible_host": SNMPD_HOST,
            "snmp": {"version": "v3", "credential": "snmp-v3-network-ro"},
        }
    }
    err = done.stderr.splitlines()
    refusal = [line for line in err if line.startswith(SNMPSIM_HOST)]
    assert len(refusal) == 1 and "answers SNMP but refused the credentials (auth: " in refusal[0], done.stderr
    assert err[-1] == "2/6 addresses answered SNMP: 1 usable devices, 1 refused or failed."


def test_wrong_community_finds_nothing(lab: Lab) -> None:
    done = discover(lab, "--credential", "snmp-v2c-ro", "--community", "not-the-community")
    assert done.returncode == 1
    assert yaml.safe_load(done.stdout) == {"hosts": {}}
    assert done.stderr.splitlines()[-1] == "0/6 addresses answered SNMP: 0 usable devices, 0 refused or failed."
