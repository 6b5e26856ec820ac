"""SNMP over the lab's LAN: the probe agent in ``center`` polls real net-snmp agents in the
``printer`` and ``pc2`` namespaces (v2c, and v3 authPriv by credential name from a 0600 file),
through the center's bridge as in a real center; a device that dies is that device's failure."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, wait_for
from tests.lab.netlab import ADDRESSES, Lab

pytest_plugins = ["tests.lab.fixtures"]
pytestmark = pytest.mark.integration

PRINTER = ADDRESSES["printer"][0]
PC2 = ADDRESSES["pc2"][0]
COMMUNITY = "lab-ro-not-a-secret"
USER, AUTH_KEY, PRIV_KEY = "cw-lab", "lab-auth-key-1", "lab-priv-key-1"


def start_snmpd(lab: Lab, ns: str, address: str, folder: Path, extra: str = "") -> subprocess.Popen[bytes]:
    conf = folder / f"{ns}-snmpd.conf"
    conf.write_text(
        f"agentAddress udp:{address}:161\n"
        f"rocommunity {COMMUNITY} 198.18.0.0/24\n"
        f"{extra}"
        f"sysLocation CenterWatch lab {ns}\n"
        "sysContact noc@example.invalid\n",
        encoding="utf-8",
    )
    log = f"{ns}-snmpd.log"
    env = {"SNMP_PERSISTENT_DIR": str(folder / f"{ns}-persist"), "MIBS": ""}
    snmpd = shutil.which("snmpd")
    assert snmpd is not None
    proc = lab.popen(ns, snmpd, "-f", "-Lo", "-C", "-c", str(conf), log=log, env=env)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"snmpd in {ns} exited: {lab.log(log)}")
        return "NET-SNMP version" in lab.log(log)

    wait_for(f"snmpd in {ns}", ready, timeout=15)
    return proc


@pytest.fixture
def agents(lab: Lab, tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    from tests.lab.fixtures import require_lab  # imported here: pytest registers the module as a plugin

    require_lab(["snmpd"])
    printer = start_snmpd(lab, "printer", PRINTER, tmp_path)
    pc2 = start_snmpd(
        lab, "pc2", PC2, tmp_path, f'createUser {USER} SHA-256 "{AUTH_KEY}" AES "{PRIV_KEY}"\nrouser {USER} authpriv\n'
    )
    try:
        yield {"printer": printer, "pc2": pc2}
    finally:
        for proc in (printer, pc2):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def probe_config(tmp_path: Path) -> Path:
    creds = tmp_path / "snmp-credentials.yaml"
    creds.write_text(
        f"lab-v3:\n  user: {USER}\n  auth_protocol: SHA-256\n  auth_key: {AUTH_KEY}\n"
        f"  priv_protocol: AES\n  priv_key: {PRIV_KEY}\nlab-v2c:\n  community: {COMMUNITY}\n",
        encoding="utf-8",
    )
    creds.chmod(0o600)
    config = tmp_path / "probe.yaml"
    config.write_text(
        f"""
collector_url: http://{ADDRESSES["dichvucong"][0]}:8080
enrollment_token: cwe_SAMPLE-NOT-A-REAL-TOKEN
data_dir: {tmp_path / "agent"}
metrics_listen: ''
checks:
  snmp:
    request_timeout_s: 1
    retries: 0
    credentials_file: {creds}
    devices:
      - {{name: printer, address: {PRINTER}, version: v2c, credential: lab-v2c}}
      - {{name: pc2, address: {PC2}, version: v3, credential: lab-v3}}
""",
        encoding="utf-8",
    )
    return config


def poll(lab: Lab, config: Path) -> list[tuple[str, dict[str, str], float]]:
    out = lab.exec(
        "center", str(BIN / "centerwatch-agent"), "once", "-c", str(config), "--check", "snmp", check=False, timeout=60
    )
    assert out.stdout.strip(), out.stderr
    (part,) = json.loads(out.stdout)
    return [(s[0], s[1], s[2]) for s in part.get("samples", [])]


def values(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: Any) -> list[float]:
    return [v for n, lab_, v in samples if n == name and labels.items() <= lab_.items()]


def test_the_probe_agent_polls_the_lan_gear_and_a_dead_device_fails_alone(
    lab: Lab, agents: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    config = probe_config(tmp_path)
    first = poll(lab, config)
    assert values(first, "snmp_up", device="printer") == [1.0]
    assert values(first, "snmp_up", device="pc2") == [1.0]  # v3 authPriv, secret from the credentials file
    assert values(first, "snmp_uptime_seconds", device="printer")[0] > 0
    assert values(first, "snmp_interface_oper_up", device="printer", ifname="eth0") == [1.0]
    secrets = (COMMUNITY, AUTH_KEY, PRIV_KEY)
    assert not any(secret in json.dumps(first) for secret in secrets)

    agents["printer"].terminate()
    agents["printer"].wait(timeout=10)
    second = poll(lab, config)
    assert values(second, "snmp_up", device="printer") == [0.0]
    reasons = [
        lab_.get("reason") for n, lab_, _ in second if n == "probe_failure_info" and lab_.get("target") == "printer"
    ]
    assert reasons == ["timeout"], second
    assert values(second, "snmp_up", device="pc2") == [1.0]
