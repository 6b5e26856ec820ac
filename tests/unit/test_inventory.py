"""The inventory loader: the real ``inventory/``, a folder of broken inventories each paired with its
exact error, and the Ansible rules the loader mirrors (precedence, ignored files)."""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from collector.errors import InventoryError
from collector.inventory import Inventory, load_inventory
from tests.conftest import ROOT

INVENTORY = ROOT / "inventory"
INVALID = ROOT / "tests" / "data" / "inventory_invalid"
EXAMPLES = ("hai-chau", "hoa-khanh", "hoi-an", "tra-leng", "hung-son")


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(INVENTORY)


# -- the real inventory ------------------------------------------------------------------------------


def test_all_94_centers_by_kind(inventory: Inventory) -> None:
    assert len(inventory.centers) == 94
    assert Counter(c.kind for c in inventory.centers.values()) == {"ward": 23, "commune": 70, "special_zone": 1}
    assert inventory.centers["hoang-sa"].kind == "special_zone"
    assert inventory.centers["hoang-sa"].terrain == "island"
    assert list(inventory.centers) == sorted(inventory.centers)


def test_slugs_are_ascii_unique_and_match_groups_and_files(inventory: Inventory) -> None:
    slugs = [c.slug for c in inventory.centers.values()]
    assert len(set(slugs)) == len(slugs) == 94
    for slug, center in inventory.centers.items():
        assert center.slug == slug
        assert slug.isascii() and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
        assert center.group == "center_" + slug.replace("-", "_")
        assert (INVENTORY / "centers" / f"{slug}.yml").is_file()


def test_diacritics_preserved(inventory: Inventory) -> None:
    names = {slug: c.name for slug, c in inventory.centers.items()}
    assert names["hoa-khanh"] == "Hòa Khánh"
    assert names["dien-ban-dong"] == "Điện Bàn Đông"
    assert names["dac-pring"] == "Đắc Pring"
    assert names["la-dee"] == "La Dêê"
    assert names["avuong"] == "Avương"
    assert names["hoang-sa"] == "Hoàng Sa"
    assert all(unicodedata.is_normalized("NFC", n) for n in names.values())


def test_every_center_has_internet_and_gov_wan(inventory: Inventory) -> None:
    for center in inventory.centers.values():
        kinds = {u.kind: u for u in center.uplinks}
        assert set(kinds) == {"internet", "gov_wan"}, center.slug
        assert 100 <= kinds["internet"].bandwidth_mbps <= 300
        assert kinds["internet"].monthly_cost_vnd > 0
        assert kinds["gov_wan"].isp == "VNPT"
        assert kinds["gov_wan"].bandwidth_mbps in (100, 200)
    assert inventory.centers["tra-leng"].uplink("wan").bandwidth_mbps == 100
    assert inventory.centers["hai-chau"].uplink("wan").bandwidth_mbps == 200


def test_every_center_has_router_switch_and_probe(inventory: Inventory) -> None:
    for center in inventory.centers.values():
        roles = {d.role for d in center.devices}
        assert {"router", "switch", "probe"} <= roles, center.slug
        assert center.probe.role == "probe" and center.probe.agent
        assert [d.role for d in center.roots()] == ["router"]
        assert center.ancestors(center.probe_host)[-1].role == "router"


def test_host_names_unique_prefixed_with_slug_and_addresses_in_center_subnet(inventory: Inventory) -> None:
    seen: set[str] = set()
    for center, device in inventory.devices():
        assert device.name not in seen
        seen.add(device.name)
        assert device.name.startswith(center.slug + "-")
        assert inventory.center_of_host(device.name) is center
        assert inventory.host(device.name) is device
    for center in inventory.centers.values():
        nets = {str(d.address).rsplit(".", 1)[0] for d in center.devices if d.address is not None}
        assert len(nets) == 1, center.slug
        assert all(isinstance(d.address, IPv4Address) and d.address.is_private for d in center.devices if d.address)


def test_full_examples_topology(inventory: Inventory) -> None:
    hai_chau = inventory.centers["hai-chau"]
    assert {d.name for d in hai_chau.children("hai-chau-sw2")} == {
        *(f"hai-chau-pc{n:02d}" for n in range(5, 9)),
        "hai-chau-prn02",
        "hai-chau-kiosk1",
        "hai-chau-queue1",
        *(f"hai-chau-cam{n:02d}" for n in range(1, 5)),
    }
    assert [d.name for d in hai_chau.children("hai-chau-rt1")] == ["hai-chau-sw1"]
    assert [d.name for d in hai_chau.ancestors("hai-chau-rating1")] == ["hai-chau-ap1", "hai-chau-sw1", "hai-chau-rt1"]
    assert hai_chau.device("hai-chau-idc01").address is None  # USB, hangs off a PC
    assert hai_chau.device("hai-chau-idc01").parent == "hai-chau-pc01"

    tra_leng = inventory.centers["tra-leng"]
    assert tra_leng.terrain == "mountain"
    assert {d.role for d in tra_leng.children("tra-leng-sw1")} >= {"ap", "probe", "pc", "printer", "queue", "camera"}
    assert [d.name for d in tra_leng.children("tra-leng-probe1")] == ["tra-leng-ups1"]

    for slug in EXAMPLES:
        roles = {d.role for d in inventory.centers[slug].devices}
        assert roles >= {"pc", "printer", "scanner", "ups", "ap", "queue", "rating", "idcard", "camera"}, slug
        for device in inventory.centers[slug].devices:
            if device.mac is not None:
                assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", device.mac)


def test_lookups_fail_with_key_error(inventory: Inventory) -> None:
    with pytest.raises(KeyError):
        inventory.host("nowhere-pc01")
    with pytest.raises(KeyError):
        inventory.center_of_host("nowhere-pc01")
    with pytest.raises(KeyError):
        inventory.centers["hai-chau"].children("hoa-khanh-sw1")


def test_shared_defaults_from_group_vars_all(inventory: Inventory) -> None:
    center = inventory.centers["hoa-khanh"]
    assert center.timezone == "Asia/Ho_Chi_Minh"
    weekday_nights = center.maintenance_windows[0]
    assert weekday_nights.days == ("mon", "tue", "wed", "thu", "fri")
    assert (weekday_nights.start.isoformat("minutes"), weekday_nights.end.isoformat("minutes")) == ("17:30", "07:00")
    assert weekday_nights.overnight


# -- invalid inventories, each with its exact error ----------------------------------------------------

CASES = sorted(p.name for p in INVALID.iterdir() if p.is_dir())


def test_invalid_cases_are_there() -> None:
    assert len(CASES) >= 11
    assert all((INVALID / case / "expected_error.txt").is_file() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_invalid_inventory(case: str) -> None:
    case_dir = INVALID / case
    expected = (case_dir / "expected_error.txt").read_text(encoding="utf-8").rstrip("\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(case_dir)
    err = info.value
    assert str(err).replace(f"{case_dir}{os.sep}", "") == expected
    first = err.problems[0]
    assert (err.file, err.key, err.message) == (first.file, first.key, first.message)
    assert str(err).startswith(str(first))
    assert err.file.is_relative_to(case_dir)


# -- the Ansible rules the loader follows --------------------------------------------------------------

ALL_VARS = """\
timezone: Asia/Ho_Chi_Minh
working_hours: [{days: [mon, tue, wed, thu, fri], start: "07:30", end: "17:00"}]
maintenance_windows: [{days: [sun], start: "00:00", end: "00:00"}]
"""

CENTER = """\
all:
  children:
    centers:
      children:
        center_an_hai:
          vars:
            center_slug: an-hai
            center_name: An Hải
            center_kind: ward
            center_terrain: urban
            uplinks:
              - {name: internet, kind: internet, isp: FPT, bandwidth_mbps: 120, monthly_cost_vnd: 210000}
              - {name: wan, kind: gov_wan, isp: VNPT, bandwidth_mbps: 200, monthly_cost_vnd: 0}
            probe_host: an-hai-probe1
          hosts:
            an-hai-rt1: {device_role: router, ansible_host: 10.10.5.1, mac: AA-BB-CC-00-11-22}
            an-hai-sw1: {device_role: switch, parent: an-hai-rt1, mac: aabb.cc00.1133, model: TL-SG1024D}
            an-hai-probe1: {device_role: probe, parent: an-hai-sw1, agent: true, ansible_host: "fd00::10"}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_precedence_group_vars_and_host_vars(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "group_vars/all.yml": ALL_VARS,
            "group_vars/center_an_hai/hours.yml": 'working_hours: [{days: [sat], start: "07:30", end: "11:30"}]\n',
            "host_vars/an-hai-sw1.yaml": "model: CBS250-24T-4G\nsnmp: {version: v3, credential: snmp-v3-ro}\n",
            "centers/an-hai.yml": CENTER,
        },
    )
    center = load_inventory(tmp_path).centers["an-hai"]
    assert [w.days for w in center.working_hours] == [("sat",)]  # group_vars/<group> over group_vars/all
    assert center.device("an-hai-sw1").model == "CBS250-24T-4G"  # host_vars over the inventory file
    assert center.device("an-hai-sw1").snmp is not None
    assert center.device("an-hai-rt1").mac == "aa:bb:cc:00:11:22"
    assert center.device("an-hai-sw1").mac == "aa:bb:cc:00:11:33"
    assert str(center.device("an-hai-probe1").address) == "fd00::10"


def test_ignored_files_are_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "group_vars/all.yml": ALL_VARS,
            "centers/an-hai.yml": CENTER,
            "centers/an-hai.yml~": "not: [valid",
            "centers/.an-hai.yml.swp.yml": "not: [valid",
            "centers/old.yml.bak": "not: [valid",
            "README.md": "# notes",
        },
    )
    assert list(load_inventory(tmp_path).centers) == ["an-hai"]


def test_single_file_needs_its_group_vars_beside_it(tmp_path: Path) -> None:
    write(tmp_path, {"group_vars/all.yml": ALL_VARS, "an-hai.yml": CENTER})
    assert list(load_inventory(tmp_path / "an-hai.yml").centers) == ["an-hai"]


def test_all_problems_are_collected(tmp_path: Path) -> None:
    broken = CENTER.replace("device_role: switch", "device_role: hub").replace("10.10.5.1", "10.10.5")
    write(tmp_path, {"group_vars/all.yml": ALL_VARS, "centers/an-hai.yml": broken})
    with pytest.raises(InventoryError) as info:
        load_inventory(tmp_path)
    keys = [p.key.rsplit(".", 2)[-2:] for p in info.value.problems]
    assert keys == [["an-hai-rt1", "ansible_host"], ["an-hai-sw1", "device_role"]]
    assert len(str(info.value).splitlines()) == 2


def test_missing_inventory_and_nested_group_vars(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such file or directory"):
        load_inventory(tmp_path / "absent")
    write(tmp_path, {"group_vars/all.yml": ALL_VARS, "centers/an-hai.yml": CENTER, "centers/group_vars/x.yml": "a: 1"})
    with pytest.raises(InventoryError, match="Ansible reads group_vars/ only beside the inventory root"):
        load_inventory(tmp_path)
