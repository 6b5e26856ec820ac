"""One-shot bootstrap of ``inventory/centers/*.yml`` for Da Nang's 94 service centers.

Run once (``python tools/gen_inventory.py [INVENTORY_DIR]``) to write one file per center. After that
the YAML files are the source of truth: edit them by hand (survey results, replaced gear, new
links) and do not re-run this script over them — it refuses to overwrite an existing file unless
given ``--force``.

Everything here is deterministic: the same input gives byte-identical files. Sources of the facts:
``/work/shared/DOMAIN.md`` (names, links, prices). Addresses are private (RFC 1918) examples; nothing
ever probes them from this repository. MAC addresses are locally administered (``02:…``), derived
from the host name, so they can never collide with a real vendor's.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

WARDS = [
    "Hải Châu", "Hòa Cường", "Thanh Khê", "An Khê", "An Hải", "Sơn Trà", "Ngũ Hành Sơn", "Hòa Khánh",
    "Hải Vân", "Liên Chiểu", "Cẩm Lệ", "Hòa Xuân", "Tam Kỳ", "Quảng Phú", "Hương Trà", "Bàn Thạch",
    "Điện Bàn", "Điện Bàn Đông", "An Thắng", "Điện Bàn Bắc", "Hội An", "Hội An Đông", "Hội An Tây",
]  # fmt: skip

COMMUNES = [
    "Hòa Vang", "Hòa Tiến", "Bà Nà", "Núi Thành", "Tam Mỹ", "Tam Anh", "Đức Phú", "Tam Xuân", "Tam Hải",
    "Tây Hồ", "Chiên Đàn", "Phú Ninh", "Lãnh Ngọc", "Tiên Phước", "Thạnh Bình", "Sơn Cẩm Hà", "Trà Liên",
    "Trà Giáp", "Trà Tân", "Trà Đốc", "Trà My", "Nam Trà My", "Trà Tập", "Trà Vân", "Trà Linh", "Trà Leng",
    "Thăng Bình", "Thăng An", "Thăng Trường", "Thăng Điền", "Thăng Phú", "Đồng Dương", "Quế Sơn Trung",
    "Quế Sơn", "Xuân Phú", "Nông Sơn", "Quế Phước", "Duy Nghĩa", "Nam Phước", "Duy Xuyên", "Thu Bồn",
    "Điện Bàn Tây", "Gò Nổi", "Đại Lộc", "Hà Nha", "Thượng Đức", "Vu Gia", "Phú Thuận", "Thạnh Mỹ",
    "Bến Giằng", "Nam Giang", "Đắc Pring", "La Dêê", "La Êê", "Sông Vàng", "Sông Kôn", "Đông Giang",
    "Bến Hiên", "Avương", "Tây Giang", "Hùng Sơn", "Hiệp Đức", "Việt An", "Phước Trà", "Khâm Đức",
    "Phước Năng", "Phước Chánh", "Phước Thành", "Phước Hiệp", "Tân Hiệp",
]  # fmt: skip

SPECIAL_ZONES = ["Hoàng Sa"]

# Mountain communes: the ones DOMAIN.md names plus the former mountain districts (Bắc/Nam Trà My,
# Phước Sơn, Nam Giang, Đông Giang, Tây Giang, Hiệp Đức, Tiên Phước, Nông Sơn) and western Hòa Vang
# and Đại Lộc. A default: edit the files when a survey says otherwise.
MOUNTAIN = {
    "Bà Nà", "Lãnh Ngọc", "Tiên Phước", "Thạnh Bình", "Sơn Cẩm Hà", "Trà Liên", "Trà Giáp", "Trà Tân",
    "Trà Đốc", "Trà My", "Nam Trà My", "Trà Tập", "Trà Vân", "Trà Linh", "Trà Leng", "Nông Sơn",
    "Quế Phước", "Thượng Đức", "Thạnh Mỹ", "Bến Giằng", "Nam Giang", "Đắc Pring", "La Dêê", "La Êê",
    "Sông Vàng", "Sông Kôn", "Đông Giang", "Bến Hiên", "Avương", "Tây Giang", "Hùng Sơn", "Hiệp Đức",
    "Việt An", "Phước Trà", "Khâm Đức", "Phước Năng", "Phước Chánh", "Phước Thành", "Phước Hiệp",
}  # fmt: skip

# Hoàng Sa (special zone) and Tân Hiệp (the Cù Lao Chàm islands off Hội An).
ISLAND = {"Hoàng Sa", "Tân Hiệp"}

# Remote centers whose government-WAN (TSLCD) link was not raised to 200 Mbps in 2025.
SLOW_GOV_WAN = {
    "tra-leng",
    "tra-tap",
    "tra-linh",
    "tra-van",
    "avuong",
    "la-dee",
    "dac-pring",
    "hung-son",
    "phuoc-chanh",
    "phuoc-thanh",
    "tan-hiep",
    "hoang-sa",
}

# FTTH office plans (DOMAIN.md): 120 Mbps ≈ 210k VND/month, 250 Mbps ≈ 259k VND/month.
FTTH_PLANS = {"urban": (250, 259_000), "other": (120, 210_000)}
ISPS = ("VNPT", "Viettel", "FPT")
# The TSLCD is paid centrally by the city, not per center: 0 until a per-center cost is known.
GOV_WAN_COST_VND = 0

SNMP_NET = {"version": "v3", "credential": "snmp-v3-network-ro"}
SNMP_UPS = {"version": "v3", "credential": "snmp-v3-ups-ro"}
SNMP_PRINTER = {"version": "v2c", "credential": "snmp-v2c-printers"}


def slugify(name: str) -> str:
    """``"Điện Bàn Đông"`` → ``"dien-ban-dong"``: diacritics removed, đ → d, words joined by ``-``."""
    text = name.replace("đ", "d").replace("Đ", "D")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return "-".join(text.lower().split())


@dataclass(frozen=True)
class CenterSpec:
    name: str
    kind: str
    terrain: str
    net: str  # "10.<n>.<m>": the center's /24

    @property
    def slug(self) -> str:
        return slugify(self.name)

    @property
    def group(self) -> str:
        return "center_" + self.slug.replace("-", "_")


def centers() -> list[CenterSpec]:
    out: list[CenterSpec] = []
    for i, name in enumerate(WARDS, start=1):
        out.append(CenterSpec(name, "ward", "urban", f"10.10.{i}"))
    for i, name in enumerate(COMMUNES, start=1):
        terrain = "island" if name in ISLAND else "mountain" if name in MOUNTAIN else "rural"
        out.append(CenterSpec(name, "commune", terrain, f"10.20.{i}"))
    for i, name in enumerate(SPECIAL_ZONES, start=1):
        out.append(CenterSpec(name, "special_zone", "island", f"10.30.{i}"))
    return out


def mac_for(host: str) -> str:
    """A locally administered unicast MAC derived from the host name (stable, never a real OUI)."""
    digest = hashlib.sha256(host.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def uplinks(index: int, c: CenterSpec) -> list[dict[str, Any]]:
    mbps, cost = FTTH_PLANS["urban" if c.terrain == "urban" else "other"]
    # Mountain and island centers are served by VNPT or Viettel only; the plains rotate all three.
    isp = ISPS[index % 2] if c.terrain in ("mountain", "island") else ISPS[index % 3]
    return [
        {
            "name": "internet",
            "kind": "internet",
            "isp": isp,
            "bandwidth_mbps": mbps,
            "monthly_cost_vnd": cost,
        },
        {
            "name": "wan",
            "kind": "gov_wan",
            "isp": "VNPT",
            "bandwidth_mbps": 100 if c.slug in SLOW_GOV_WAN else 200,
            "monthly_cost_vnd": GOV_WAN_COST_VND,
        },
    ]


class HostBook:
    """Collects one center's hosts in order, so each file lists them top-down (router first)."""

    def __init__(self, c: CenterSpec) -> None:
        self.c = c
        self.hosts: dict[str, dict[str, Any]] = {}

    def add(
        self,
        suffix: str,
        role: str,
        parent: str | None,
        octet: int | None = None,
        *,
        vendor: str | None = None,
        model: str | None = None,
        purchased: int | None = None,
        snmp: dict[str, str] | None = None,
        agent: bool = False,
        with_mac: bool = False,
    ) -> str:
        name = f"{self.c.slug}-{suffix}"
        assert name not in self.hosts, name
        h: dict[str, Any] = {"device_role": role}
        if octet is not None:
            h["ansible_host"] = f"{self.c.net}.{octet}"
            if with_mac:
                h["mac"] = mac_for(name)
        if parent is not None:
            h["parent"] = f"{self.c.slug}-{parent}"
        for key, value in (("vendor", vendor), ("model", model), ("purchased", purchased), ("snmp", snmp)):
            if value is not None:
                h[key] = value
        if agent:
            h["agent"] = True
        self.hosts[name] = h
        return name


def minimal(b: HostBook) -> None:
    """The floor every center has until surveyed: router, switch and the probe PC."""
    b.add("rt1", "router", None, 1, snmp=SNMP_NET)
    b.add("sw1", "switch", "rt1", 2)
    b.add("probe1", "probe", "sw1", 10, agent=True)


def big_urban(b: HostBook, *, older: bool) -> None:
    """A busy ward center (Hải Châu, Hòa Khánh, Hội An): two switches, eight counters, kiosk."""
    y = 2016 if older else 2021
    b.add(
        "rt1",
        "router",
        None,
        1,
        vendor="MikroTik",
        model="RB4011iGS+",
        purchased=y + 1,
        snmp=SNMP_NET,
        with_mac=True,
    )
    b.add(
        "sw1",
        "switch",
        "rt1",
        2,
        vendor="Cisco",
        model="CBS250-24T-4G",
        purchased=y + 1,
        snmp=SNMP_NET,
        with_mac=True,
    )
    b.add("sw2", "switch", "sw1", 3, vendor="TP-Link", model="TL-SG1024D", purchased=y - 2)  # unmanaged
    b.add("ups1", "ups", "sw1", 5, vendor="APC", model="SMT1000IC", purchased=y, snmp=SNMP_UPS, with_mac=True)
    b.add(
        "ap1",
        "ap",
        "sw1",
        6,
        vendor="Ubiquiti",
        model="UniFi U6 Lite",
        purchased=y + 2,
        snmp=SNMP_NET,
        with_mac=True,
    )
    b.add(
        "probe1",
        "probe",
        "sw1",
        10,
        vendor="Dell",
        model="OptiPlex 3000 Micro",
        purchased=2023,
        agent=True,
        with_mac=True,
    )
    pc_models = [("Dell", "OptiPlex 3080"), ("HP", "ProDesk 400 G7"), ("Lenovo", "ThinkCentre M70t")]
    for n in range(1, 9):
        vendor, model = pc_models[n % 3]
        b.add(
            f"pc{n:02d}",
            "pc",
            "sw1" if n <= 4 else "sw2",
            20 + n,
            vendor=vendor,
            model=model,
            purchased=y - (n % 4),
            agent=True,
            with_mac=True,
        )
    b.add(
        "prn01",
        "printer",
        "sw1",
        41,
        vendor="HP",
        model="LaserJet Pro M404dn",
        purchased=y,
        snmp=SNMP_PRINTER,
        with_mac=True,
    )
    b.add(
        "prn02",
        "printer",
        "sw2",
        42,
        vendor="Brother",
        model="HL-L2366DW",
        purchased=y + 1,
        snmp=SNMP_PRINTER,
        with_mac=True,
    )
    b.add("prn03", "printer", "pc05", None, vendor="Canon", model="LBP2900", purchased=2014)  # USB, reused
    b.add("scn01", "scanner", "pc02", None, vendor="Fujitsu", model="fi-7160", purchased=y)  # USB
    b.add(
        "kiosk1",
        "kiosk",
        "sw2",
        61,
        model="21.5in touch kiosk (printer, scanner, QR)",
        purchased=y + 2,
        agent=True,
        with_mac=True,
    )
    b.add("queue1", "queue", "sw2", 62, model="queue-number machine", purchased=y + 2, with_mac=True)
    b.add("rating1", "rating", "ap1", 71, vendor="Samsung", model="Galaxy Tab A8", purchased=2023, with_mac=True)
    b.add("rating2", "rating", "ap1", 72, vendor="Samsung", model="Galaxy Tab A8", purchased=2023, with_mac=True)
    b.add("idc01", "idcard", "pc01", None, model="chip ID-card reader", purchased=2024)  # USB
    b.add("idc02", "idcard", "pc02", None, model="chip ID-card reader", purchased=2024)  # USB
    for n in range(1, 5):
        b.add(
            f"cam{n:02d}",
            "camera",
            "sw2",
            100 + n,
            vendor="Hikvision",
            model="DS-2CD1023G0E-I",
            purchased=y + 1,
            with_mac=True,
        )


def mountain(b: HostBook) -> None:
    """A remote mountain commune (Trà Leng, Hùng Sơn): ISP router, one unmanaged switch, reused gear."""
    b.add(
        "rt1",
        "router",
        None,
        1,
        vendor="VNPT Technology",
        model="iGate GW040-H (ISP-provided)",
        purchased=2020,
        snmp=SNMP_NET,
        with_mac=True,
    )
    b.add("sw1", "switch", "rt1", 2, vendor="TP-Link", model="TL-SG1016D", purchased=2017)  # unmanaged
    b.add("ap1", "ap", "sw1", 6, vendor="TP-Link", model="EAP225", purchased=2022, with_mac=True)
    b.add(
        "probe1",
        "probe",
        "sw1",
        10,
        vendor="HP",
        model="ProDesk 400 G4",
        purchased=2018,
        agent=True,
        with_mac=True,
    )
    b.add("ups1", "ups", "probe1", None, vendor="Santak", model="Blazer 1000 Pro", purchased=2019)  # USB
    for n, (vendor, model, year) in enumerate(
        [
            ("Dell", "OptiPlex 3070", 2020),
            ("HP", "ProDesk 400 G7", 2021),
            ("Lenovo", "ThinkCentre M710s", 2017),
        ],
        start=1,
    ):
        b.add(
            f"pc{n:02d}",
            "pc",
            "sw1",
            20 + n,
            vendor=vendor,
            model=model,
            purchased=year,
            agent=True,
            with_mac=True,
        )
    b.add("prn01", "printer", "pc01", None, vendor="Canon", model="LBP2900", purchased=2013)  # USB, reused
    b.add("prn02", "printer", "sw1", 42, vendor="Brother", model="HL-L2321D", purchased=2019)  # via print server
    b.add("scn01", "scanner", "pc02", None, vendor="Canon", model="DR-C225 II", purchased=2021)  # USB
    b.add("queue1", "queue", "sw1", 62, model="queue-number machine", purchased=2024, with_mac=True)
    b.add(
        "rating1",
        "rating",
        "ap1",
        71,
        vendor="Samsung",
        model="Galaxy Tab A7 Lite",
        purchased=2022,
        with_mac=True,
    )
    b.add("idc01", "idcard", "pc01", None, model="chip ID-card reader", purchased=2024)  # USB
    b.add("cam01", "camera", "sw1", 101, vendor="Dahua", model="IPC-HFW1230S", purchased=2022, with_mac=True)
    b.add("cam02", "camera", "sw1", 102, vendor="Dahua", model="IPC-HFW1230S", purchased=2022, with_mac=True)


FULL_EXAMPLES = {
    "hai-chau": lambda b: big_urban(b, older=False),
    "hoa-khanh": lambda b: big_urban(b, older=False),
    "hoi-an": lambda b: big_urban(b, older=True),
    "tra-leng": mountain,
    "hung-son": mountain,
}


class _Dumper(yaml.SafeDumper):
    """Indents block sequences under their key, as ``yamllint`` and most hand-written YAML do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def render(index: int, c: CenterSpec) -> str:
    book = HostBook(c)
    FULL_EXAMPLES.get(c.slug, minimal)(book)
    group = {
        "vars": {
            "center_slug": c.slug,
            "center_name": c.name,
            "center_kind": c.kind,
            "center_terrain": c.terrain,
            "uplinks": uplinks(index, c),
            "probe_host": f"{c.slug}-probe1",
        },
        "hosts": book.hosts,
    }
    doc = {"all": {"children": {"centers": {"children": {c.group: group}}}}}
    header = (
        f"# {c.name} ({c.kind}) — public administrative service center.\n"
        "# Bootstrapped by tools/gen_inventory.py; this file is now the source of truth: edit it by hand.\n"
        f"# LAN {c.net}.0/24. Parents: devices -> switch -> router; the router hangs off the uplinks.\n"
    )
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)
    return header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("inventory", nargs="?", type=Path, default=Path("inventory"))
    parser.add_argument("--force", action="store_true", help="overwrite existing center files")
    args = parser.parse_args(argv)
    all_centers = centers()
    slugs = [c.slug for c in all_centers]
    assert len(all_centers) == 94 and len(set(slugs)) == 94, "expected 94 distinct centers"
    out_dir: Path = args.inventory / "centers"
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = [c.slug for c in all_centers if (out_dir / f"{c.slug}.yml").exists()]
    if existing and not args.force:
        print(
            f"{out_dir}: {len(existing)} center files exist; the YAML is the source of truth now "
            "(pass --force to overwrite)",
            file=sys.stderr,
        )
        return 1
    for index, c in enumerate(all_centers):
        (out_dir / f"{c.slug}.yml").write_text(render(index, c), encoding="utf-8")
    print(f"wrote {len(all_centers)} files to {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
