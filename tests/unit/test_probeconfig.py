"""Probe-agent settings derived from inventory are valid agent configuration, for every center."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from agent.config import check_specs, parse_config
from collector.inventory import load_inventory
from collector.probeconfig import probe_checks
from tests.conftest import BIN, ROOT

INVENTORY = load_inventory(ROOT / "inventory")


@pytest.mark.parametrize("slug", sorted(INVENTORY.centers))
def test_every_center_yields_a_valid_probe_config(slug: str) -> None:
    checks = probe_checks(INVENTORY.centers[slug])
    config = parse_config({"collector_url": "http://127.0.0.1:8080", "data_dir": "/d", "checks": checks}, slug)
    names = {spec.name for spec in check_specs(config, slug)}
    assert {"network", "arp_discovery", "throughput"} <= names


def test_example_center_knows_its_devices_by_mac_and_address() -> None:
    center = INVENTORY.centers["hoa-khanh"]
    checks = probe_checks(center)
    known = {k["name"]: k for k in checks["arp_discovery"]["known"]}
    router = next(d for d in center.devices if d.role == "router")
    assert checks["network"]["gateway"]["address"] == str(router.address)
    assert known[router.name]["mac"] == router.mac
    assert len(known) == sum(1 for d in center.devices if d.mac or d.address)
    assert checks["throughput"]["contracted_download_mbps"] == center.uplink("wan").bandwidth_mbps


def test_cli_prints_yaml(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(BIN / "centerwatch-collector"), "probe-config", "--inventory", str(ROOT / "inventory"), "--center",
         "tra-leng"], check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert "Trà Leng" in out.splitlines()[0]
    assert yaml.safe_load(out)["checks"]["network"]["gateway"]["name"].startswith("tra-leng-")
