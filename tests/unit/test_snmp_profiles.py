"""Device profiles: the shipped set loads, ``extends`` merges with the child winning, sysObjectID
picks the longest prefix, and every invalid profile gives its exact error (file and key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.catalog import load_catalog
from agent.snmp.errors import ProfileError
from agent.snmp.profiles import Profile, ProfileSet, _shipped, build_profiles, load_profiles, merge

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "tests" / "data" / "snmp_profiles_invalid"


def build(**files: str) -> ProfileSet:
    return build_profiles({name: (text, f"{name}.yaml") for name, text in files.items()})


def columns(profile: Profile, table: str) -> dict[str, str]:
    return {c.id: c.oid for t in profile.tables if t.name == table for c in t.columns}


def test_shipped_profiles_load() -> None:
    profiles = load_profiles()
    assert profiles.names() == ["apc", "cisco-catalyst", "generic", "printer", "ubiquiti-airmax", "ups"]
    generic = profiles.get("generic")
    assert generic is not None
    assert {t.name for t in generic.tables} == {
        "interfaces",
        "processors",
        "storage",
        "chassis",
        "lldp_local_ports",
        "lldp_neighbors",
    }
    assert {f.name for f in generic.facts} == {"sysDescr", "sysObjectID", "sysName", "sysContact", "sysLocation"}
    assert [m.name for m in generic.metrics] == ["snmp_uptime_seconds"]
    # the IF-MIB building block: 64-bit octet counters from ifXTable, status from ifTable
    interfaces = columns(generic, "interfaces")
    assert interfaces["in_octets"] == "1.3.6.1.2.1.31.1.1.1.6"
    assert interfaces["out_octets"] == "1.3.6.1.2.1.31.1.1.1.10"
    assert interfaces["speed"] == "1.3.6.1.2.1.31.1.1.1.15"
    assert interfaces["oper_status"] == "1.3.6.1.2.1.2.2.1.8"
    assert generic.enums["if_status"][7] == "lowerLayerDown"


def test_building_blocks_are_never_chosen() -> None:
    profiles = load_profiles()
    assert profiles.get("_base") is None
    assert profiles.get("_if-mib.yaml") is None
    assert "_base" in profiles.profiles  # loaded, only not selectable


def test_every_metric_a_shipped_profile_names_is_in_the_catalog() -> None:
    catalog = load_catalog()
    for profile in load_profiles().profiles.values():
        names = {m.name for m in profile.metrics}
        names |= {c.metric for t in profile.tables for c in t.columns if c.metric}
        names |= {r.metric for t in profile.tables for r in t.ratios}
        names |= {t.row_metric for t in profile.tables if t.row_metric}
        assert names <= set(catalog), f"{profile.file}: not in agent/metrics.csv: {sorted(names - set(catalog))}"


def test_extends_merges_and_the_child_wins() -> None:
    cisco = load_profiles().get("cisco-catalyst")
    assert cisco is not None
    # the child's column replaces the parent's of the same id …
    assert columns(cisco, "processors") == {"load": "1.3.6.1.4.1.9.9.109.1.1.1.1.7"}
    # … and everything else comes from the parents
    assert columns(cisco, "interfaces") == columns(load_profiles().get("generic"), "interfaces")  # type: ignore[arg-type]
    assert {f.name for f in cisco.facts} >= {"sysDescr", "sysName", "ciscoImageString"}
    assert cisco.sysobjectid == ("1.3.6.1.4.1.9.1",)
    assert cisco.description.startswith("Cisco Catalyst")


def test_later_parents_win_over_earlier_ones_and_the_child_over_all() -> None:
    profiles = build(
        _a="metrics: [{name: snmp_x, oid: 1.3.6.1.1.0}, {name: snmp_y, oid: 1.3.6.1.2.0}]\nenums: {e: {1: one}}\n",
        _b="metrics: [{name: snmp_x, oid: 1.3.6.1.9.0}]\nenums: {e: {1: uno, 2: dos}}\n",
        child="extends: [_a.yaml, _b.yaml]\nsysobjectid: ['*']\n"
        "metrics: [{name: snmp_y, oid: 1.3.6.1.8.0, scale: 2}]\n",
    )
    child = profiles.get("child")
    assert child is not None
    assert {m.name: (m.oid, m.scale) for m in child.metrics} == {
        "snmp_x": ("1.3.6.1.9.0", 1.0),
        "snmp_y": ("1.3.6.1.8.0", 2.0),
    }
    assert child.enums == {"e": {1: "uno", 2: "dos"}}


def test_a_table_merge_keeps_parent_columns_tags_and_events() -> None:
    profiles = build(
        _t="tables:\n  - name: t\n    index: [i]\n    tags: [{label: n, column: name}]\n"
        "    columns:\n      - {id: name, oid: 1.3.6.1.5.1}\n      - {id: v, oid: 1.3.6.1.5.2, metric: snmp_v}\n"
        "    facts: [name]\n",
        child="extends: [_t.yaml]\nsysobjectid: [1.3.6.1.4.1.1]\n"
        "tables:\n  - name: t\n    columns: [{id: w, oid: 1.3.6.1.5.3, metric: snmp_w, multiply_by: v}]\n"
        "    facts: [w]\n",
    )
    child = profiles.get("child")
    assert child is not None
    (table,) = child.tables
    assert table.index == ["i"]
    assert [c.id for c in table.columns] == ["name", "v", "w"]
    assert [t.label for t in table.tags] == ["n"]
    assert table.facts == ["name", "w"]


@pytest.mark.parametrize(
    ("oid", "expected"),
    [
        ("1.3.6.1.4.1.9.1.1208", "cisco-catalyst"),  # a Catalyst 2960X
        (".1.3.6.1.4.1.9.1.1208", "cisco-catalyst"),
        ("1.3.6.1.4.1.9.1", "cisco-catalyst"),
        ("1.3.6.1.4.1.9.10.1", "generic"),  # 9.10 is not under 9.1: prefixes match whole arcs
        ("1.3.6.1.4.1.8072.3.2.10", "generic"),  # net-snmp on Linux
        ("0.0", "generic"),
        ("1.3.6.1.4.1.11.2.3.9.1", "printer"),  # an HP LaserJet (netPrinter)
        ("1.3.6.1.4.1.11.2.3.7.11.107", "generic"),  # an HP ProCurve switch: not stolen by the printers
        ("1.3.6.1.4.1.11.2.3.2.3", "generic"),  # an HP-UX server
        ("1.3.6.1.4.1.2435.2.3.9.1", "printer"),  # Brother
        ("1.3.6.1.4.1.1602.4.7", "printer"),  # Canon
        ("1.3.6.1.4.1.1347.41", "printer"),  # Kyocera
        ("1.3.6.1.4.1.367.1.1", "printer"),  # Ricoh
        ("1.3.6.1.4.1.253.8.62.1.20.3.1.1", "printer"),  # Xerox
        ("1.3.6.1.4.1.1248.1.2.1", "printer"),  # Epson
        ("1.3.6.1.4.1.705.1", "ups"),  # the Eaton 93E recording (MGE enterprise)
        ("1.3.6.1.4.1.534.1", "ups"),  # Eaton / Powerware
        ("1.3.6.1.4.1.318.1.3.27", "apc"),  # an APC Smart-UPS
        ("1.3.6.1.4.1.318.1.3.4.6", "apc"),  # an APC rack PDU: apc, its UPS objects absent
        ("1.3.6.1.4.1.41112.1.4", "ubiquiti-airmax"),
    ],
)
def test_sysobjectid_picks_the_longest_prefix(oid: str, expected: str) -> None:
    profile = load_profiles().match(oid)
    assert profile is not None
    assert profile.name == expected


def test_longest_prefix_wins_over_a_shorter_one_whatever_the_file_order() -> None:
    profiles = build(
        a_vendor="sysobjectid: [1.3.6.1.4.1.9]\n",
        z_family="sysobjectid: [1.3.6.1.4.1.9.1]\n",
        m_model="sysobjectid: [1.3.6.1.4.1.9.1.1208]\n",
    )
    assert profiles.match("1.3.6.1.4.1.9.1.1208.5").name == "m_model"  # type: ignore[union-attr]
    assert profiles.match("1.3.6.1.4.1.9.1.1").name == "z_family"  # type: ignore[union-attr]
    assert profiles.match("1.3.6.1.4.1.9.5").name == "a_vendor"  # type: ignore[union-attr]
    assert profiles.match("1.3.6.1.4.1.11") is None  # no "*" profile here


def test_a_site_profile_overrides_a_shipped_one_by_file_name(tmp_path: Path) -> None:
    (tmp_path / "cisco-catalyst.yaml").write_text(
        "extends: [generic.yaml]\nsysobjectid: [1.3.6.1.4.1.9.1]\ndescription: ours\n", encoding="utf-8"
    )
    (tmp_path / "site-ups.yaml").write_text(
        "extends: [_base.yaml]\nsysobjectid: [1.3.6.1.4.1.99999]\n"
        "metrics: [{name: snmp_uptime_seconds, oid: 1.3.6.1.2.1.1.3.0, scale: 0.01}]\n",
        encoding="utf-8",
    )
    profiles = load_profiles(tmp_path)
    assert profiles.get("cisco-catalyst").description == "ours"  # type: ignore[union-attr]
    assert profiles.match("1.3.6.1.4.1.99999.1.2").name == "site-ups"  # type: ignore[union-attr]


def test_a_missing_profiles_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"absent: profiles_dir is not a directory$"):
        load_profiles(tmp_path / "absent")


def test_merge_is_child_over_parent() -> None:
    generic = load_profiles().get("generic")
    assert generic is not None
    same = merge(generic, generic)
    assert same.tables == generic.tables
    assert same.metrics == generic.metrics


CASES = sorted(INVALID.glob("*.yaml"))


def test_every_invalid_case_has_its_expected_error() -> None:
    assert len(CASES) >= 15
    for case in CASES:
        assert case.with_suffix(".error").exists(), f"{case.name} has no .error file"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_invalid_profile_gives_its_exact_error(case: Path) -> None:
    where = f"tests/data/snmp_profiles_invalid/{case.name}"
    expected = case.with_suffix(".error").read_text(encoding="utf-8").strip().replace("{file}", where)
    sources = {**_shipped(), case.stem: (case.read_text(encoding="utf-8"), where)}
    with pytest.raises(ProfileError) as info:
        build_profiles(sources)
    assert str(info.value) == expected
    assert info.value.file == where


def test_an_invalid_site_profile_names_its_path(tmp_path: Path) -> None:
    (tmp_path / "printer.yaml").write_text("sysobjectid: [1.3.6.1.4.1.11]\nmetrix: []\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"printer\.yaml: metrix: unknown key$"):
        load_profiles(tmp_path)


def test_new_table_keys_are_merged_child_over_parent() -> None:
    profiles = build(
        _t="tables:\n  - name: t\n    index: [_, i]\n    where: {c: [3]}\n    row_metric: snmp_t_rows\n"
        "    refresh_s: 60\n    columns:\n      - {id: c, oid: 1.3.6.1.5.1}\n"
        "events: []\n",
        child="extends: [_t.yaml]\nsysobjectid: [1.3.6.1.4.1.1]\n"
        "tables:\n  - name: t\n    refresh_s: 600\n    columns: [{id: d, oid: 1.3.6.1.5.2}]\n",
    )
    child = profiles.get("child")
    assert child is not None
    (table,) = child.tables
    assert table.index == ["_", "i"]
    assert table.where == {"c": [3]}  # the parent's: the child gives none
    assert table.row_metric == "snmp_t_rows"
    assert table.refresh_s == 600  # the child's


def test_scalars_of_one_name_are_told_apart_by_labels_and_events_merge_by_kind_and_column() -> None:
    profiles = build(
        _a="metrics:\n  - {name: snmp_v, oid: 1.3.6.1.1.0, labels: {line: '1'}, id: a}\n"
        "  - {name: snmp_v, oid: 1.3.6.1.2.0, labels: {line: '2'}}\n"
        "events:\n  - {kind: snmp.x, column: a, to: [5]}\n",
        child="extends: [_a.yaml]\nsysobjectid: [1.3.6.1.4.1.1]\n"
        "metrics: [{name: snmp_v, oid: 1.3.6.1.9.0, labels: {line: '2'}}]\n"
        "events:\n  - {kind: snmp.x, column: a, to: [5], severity: critical}\n",
    )
    child = profiles.get("child")
    assert child is not None
    assert [(m.labels["line"], m.oid) for m in child.metrics] == [("1", "1.3.6.1.1.0"), ("2", "1.3.6.1.9.0")]
    (event,) = child.events
    assert event.severity == "critical" and event.from_ is None


def test_the_printer_ups_and_lldp_parts_are_as_the_mibs_say() -> None:
    profiles = load_profiles()
    printer = profiles.get("printer")
    ups = profiles.get("ups")
    apc = profiles.get("apc")
    assert printer is not None and ups is not None and apc is not None
    status = next(t for t in printer.tables if t.name == "printer_status")
    errors = next(c for c in status.columns if c.id == "errors")
    assert errors.oid == "1.3.6.1.2.1.25.3.5.1.2"  # hrPrinterDetectedErrorState
    assert printer.enums[errors.bits or ""][5] == "jammed"
    assert {e.bit: e.kind for e in status.events}["jammed"] == "snmp.printer_jam"
    assert columns(printer, "supplies")["level"] == "1.3.6.1.2.1.43.11.1.1.9"
    assert columns(printer, "trays")["level"] == "1.3.6.1.2.1.43.8.2.1.10"
    # the UPS profiles: one on-battery metric and event pair each
    for profile, oid, battery in ((ups, "1.3.6.1.2.1.33.1.4.1.0", 5), (apc, "1.3.6.1.4.1.318.1.1.1.4.1.1.0", 3)):
        (on_battery,) = (m for m in profile.metrics if m.name == "snmp_ups_on_battery")
        assert (on_battery.oid, on_battery.true_values) == (oid, [battery])
        kinds = {e.kind: e for e in profile.events}
        assert kinds["snmp.ups_on_battery"].to == [battery]
        assert kinds["snmp.ups_on_battery"].severity == "critical"
        assert kinds["snmp.ups_on_line"].from_ == [battery]
    # every device gets the chassis inventory and the LLDP neighbours, read for facts, not every poll
    for profile in (printer, ups, apc, profiles.get("cisco-catalyst")):
        assert profile is not None
        tables = {t.name: t for t in profile.tables}
        assert tables["chassis"].where == {"class": [3]}
        assert tables["lldp_neighbors"].refresh_s
