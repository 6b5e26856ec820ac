"""arp_discovery: MACs, the subnet cap, matching answers to known devices, and reporting (no network)."""

from __future__ import annotations

import msgspec
import pytest

from agent.catalog import load_catalog
from agent.checks import arp_discovery as arp
from agent.checks.base import CheckContext, Observations

LAN = arp.Subnet(cidr="198.18.50.0/24", interface="eth0")
PRINTER = arp.Known(name="printer", mac="3C-2A-F4-00-11-22")
SWITCH = arp.Known(name="switch", address="198.18.50.2")
GHOST = arp.Known(name="ghost", address="198.18.50.99", mac="02:00:00:00:00:99")


@pytest.mark.parametrize("text", ["3C-2A-F4-00-11-22", "3c:2a:f4:00:11:22", "3c2a.f400.1122", " 3C2AF4001122 "])
def test_normalize_mac(text: str) -> None:
    assert arp.normalize_mac(text) == "3c:2a:f4:00:11:22"


@pytest.mark.parametrize("text", ["3c:2a:f4:00:11", "3c:2a-f4:00:11:22", "zz:2a:f4:00:11:22", ""])
def test_invalid_mac(text: str) -> None:
    with pytest.raises(ValueError, match="expected a MAC address"):
        arp.normalize_mac(text)


def test_known_mac_is_normalized_in_the_config() -> None:
    assert PRINTER.mac == "3c:2a:f4:00:11:22"


@pytest.mark.parametrize("cidr", ["198.18.48.0/22", "198.18.50.0/24", "198.18.50.7/32", "198.18.50.10/24"])
def test_subnets_up_to_a_22_are_accepted(cidr: str) -> None:
    assert arp.parse_subnet(cidr).prefixlen >= 22


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"subnets": [{"cidr": "10.0.0.0/16"}]}, r"'10.0.0.0/16' is larger than /22 \(65536 addresses\)"),
        ({"subnets": [{"cidr": "198.18.48.0/21"}]}, "larger than /22"),
        ({"subnets": [{"cidr": "2001:db8::/120"}]}, "ARP is IPv4 only"),
        ({"subnets": [{"cidr": "lan"}]}, "expected an IPv4 network"),
        ({"subnets": [{"cidr": "198.18.50.0/24"}, {"cidr": "198.18.50.128/25"}]}, "overlap"),
        ({"known": [{"name": "pc"}]}, "give its mac, its address or both"),
        ({"known": [{"name": "pc", "address": "pc1"}]}, "not an IPv4 address"),
        ({"known": [{"name": "pc", "mac": "nope"}]}, "expected a MAC address"),
        ({"known": [{"name": "pc", "address": "198.18.50.1"}, {"name": "pc", "address": "198.18.50.2"}]}, "named"),
        ({"subnets": [{"cidr": "198.18.50.0/24", "vlan": 3}]}, "unknown field `vlan`"),
    ],
)
def test_invalid_configs(raw: dict[str, object], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(raw, arp.Config)


def r(address: str, mac: str) -> arp.Responder:
    return arp.Responder(address, mac)


def test_match_by_mac_first_then_by_address() -> None:
    responders = [
        r("198.18.50.7", "3c:2a:f4:00:11:22"),  # the printer moved: its MAC still names it
        r("198.18.50.2", "aa:aa:aa:aa:aa:02"),  # the switch, by address
        r("198.18.50.10", "aa:aa:aa:aa:aa:10"),  # nobody we know
    ]
    entries, up = arp.match(responders, [PRINTER, SWITCH, GHOST])
    assert up == {"printer", "switch"}
    assert [(e.address, e.known_as) for e in entries] == [
        ("198.18.50.2", "switch"),
        ("198.18.50.7", "printer"),
        ("198.18.50.10", None),  # sorted as addresses, not as text
    ]


def test_a_mac_match_wins_over_an_address_match() -> None:
    other = arp.Known(name="old-pc", address="198.18.50.7")
    entries, up = arp.match([r("198.18.50.7", "3c:2a:f4:00:11:22")], [other, PRINTER])
    assert [e.known_as for e in entries] == ["printer"] and up == {"printer"}


def test_report_samples_events_and_facts() -> None:
    cfg = arp.Config(subnets=(LAN,), known=(PRINTER, SWITCH, GHOST))
    sweep = arp.Sweep(
        LAN,
        (
            r("198.18.50.2", "aa:aa:aa:aa:aa:02"),
            r("198.18.50.5", "3c:2a:f4:00:11:22"),
            r("198.18.50.9", "aa:aa:aa:aa:aa:09"),
        ),
    )
    obs = Observations(ts_ms=1)
    arp.report(obs, cfg, [sweep])
    assert {s.name for s in obs.samples} <= set(load_catalog())
    assert {s.labels["device"]: s.value for s in obs.samples if s.name == "lan_device_up"} == {
        "printer": 1.0,
        "switch": 1.0,
        "ghost": 0.0,
    }
    flat = {s.name: (s.labels, s.value) for s in obs.samples}
    assert flat["lan_devices_found"] == ({"subnet": "198.18.50.0/24"}, 3.0)
    assert flat["lan_unknown_devices"] == ({"subnet": "198.18.50.0/24"}, 1.0)
    assert flat["probe_success"] == ({"probe": "arp_discovery", "target": "198.18.50.0/24"}, 1.0)
    assert [(e.kind, e.labels, e.severity) for e in obs.events] == [
        ("lan.device_unknown", {"mac": "aa:aa:aa:aa:aa:09", "address": "198.18.50.9"}, "warning"),
        ("lan.device_missing", {"device": "ghost"}, "warning"),
    ]
    assert obs.facts == {
        "lan": [
            {"address": "198.18.50.2", "mac": "aa:aa:aa:aa:aa:02", "known_as": "switch"},
            {"address": "198.18.50.5", "mac": "3c:2a:f4:00:11:22", "known_as": "printer"},
            {"address": "198.18.50.9", "mac": "aa:aa:aa:aa:aa:09", "known_as": None},
        ]
    }


def test_a_failed_sweep_leaves_out_the_devices_it_could_have_seen() -> None:
    other = arp.Subnet(cidr="198.18.60.0/24")
    pc = arp.Known(name="pc60", address="198.18.60.4")
    cfg = arp.Config(subnets=(LAN, other), known=(PRINTER, SWITCH, pc))
    sweeps = [arp.Sweep(LAN, ()), arp.Sweep(other, error=("permission", "raw sockets need root"))]
    obs = Observations(ts_ms=1)
    arp.report(obs, cfg, sweeps)
    # switch is on the swept LAN: down; the printer (MAC only) and pc60 (failed subnet) are unknown
    assert {s.labels["device"]: s.value for s in obs.samples if s.name == "lan_device_up"} == {"switch": 0.0}
    assert [e.labels for e in obs.events if e.kind == "lan.device_missing"] == [{"device": "switch"}]


async def test_without_raw_socket_rights_a_permission_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(subnet: arp.Subnet, timeout_s: float) -> list[arp.Responder]:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(arp, "sweep", denied)
    obs = await arp.collect(CheckContext("arp_discovery", arp.Config(subnets=(LAN,), known=(SWITCH,))))
    got = {(s.name, s.labels.get("reason")): s.value for s in obs.samples}
    assert got == {("probe_success", None): 0.0, ("probe_failure_info", "permission"): 1.0}
    assert obs.events[0].kind == "probe.failed" and "CAP_NET_RAW" in obs.events[0].message
    assert obs.facts == {"lan": []}


async def test_collect_sweeps_every_subnet(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, float]] = []

    def fake(subnet: arp.Subnet, timeout_s: float) -> list[arp.Responder]:
        seen.append((subnet.cidr, timeout_s))
        return [r(str(subnet.network.network_address + 2), "aa:aa:aa:aa:aa:02")]

    monkeypatch.setattr(arp, "sweep", fake)
    cfg = arp.Config(subnets=(LAN, arp.Subnet(cidr="198.18.60.0/23")), known=(SWITCH,), sweep_timeout_s=1.5)
    obs = await arp.collect(CheckContext("arp_discovery", cfg))
    assert sorted(seen) == [("198.18.50.0/24", 1.5), ("198.18.60.0/23", 1.5)]
    assert {s.labels["subnet"]: s.value for s in obs.samples if s.name == "lan_unknown_devices"} == {
        "198.18.50.0/24": 0.0,
        "198.18.60.0/23": 1.0,
    }
