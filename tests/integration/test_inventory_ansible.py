"""The real ``ansible-inventory`` reads ``inventory/`` without a warning and sees exactly what
``load_inventory`` sees: the same hosts, centers, roles, parents and addresses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from collector.inventory import load_inventory
from tests.conftest import BIN, ROOT

pytestmark = pytest.mark.integration

INVENTORY = ROOT / "inventory"


def ansible_inventory(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / "ansible-inventory"
    assert exe.exists(), f"{exe} is missing: install the test extras (ansible-core)"
    env = {
        **os.environ,
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),  # keep ~/.ansible untouched
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),  # no ansible.cfg from the cwd or $HOME
    }
    (tmp_path / "ansible.cfg").write_text("[defaults]\n", encoding="utf-8")
    return subprocess.run(
        [str(exe), "-i", str(INVENTORY), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
        check=False,
    )


def test_ansible_inventory_agrees_with_load_inventory(tmp_path: Path) -> None:
    result = ansible_inventory(tmp_path, "--list")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    assert "ERROR" not in result.stderr, result.stderr
    listing: dict[str, Any] = json.loads(result.stdout)
    hostvars: dict[str, dict[str, Any]] = listing["_meta"]["hostvars"]

    inventory = load_inventory(INVENTORY)
    ours = {d.name: (c.slug, d.role) for c, d in inventory.devices()}
    theirs = {host: (v.get("center_slug"), v.get("device_role")) for host, v in hostvars.items()}
    assert theirs == ours
    assert len(ours) > 3 * 94

    for center, device in inventory.devices():
        v = hostvars[device.name]
        assert v["center_name"] == center.name  # diacritics survive both readers
        assert v.get("parent") == device.parent
        assert v.get("ansible_host") == (str(device.address) if device.address else None)
        assert v["probe_host"] == center.probe_host
        assert v["timezone"] == center.timezone

    assert sorted(listing["centers"]["children"]) == sorted(c.group for c in inventory.centers.values())
    for center in inventory.centers.values():
        assert listing[center.group]["hosts"] == [d.name for d in center.devices]
