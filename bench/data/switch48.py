"""A synthetic 48-port Cisco Catalyst access switch as an snmpsim recording (``.snmprec``).

Generated, not committed: ``write(folder / "name.snmprec", seed=...)`` at bench start. The layout
follows a Catalyst 2960-X (sysObjectID 1.3.6.1.4.1.9.1.1208): Vlan1 (ifIndex 1), GigabitEthernet1/0/1-48
(ifIndex 10101-10148, so every row's OID has a multi-octet sub-identifier, as on real IOS), four
TenGigabitEthernet uplinks (10149-10152) and Null0 (10501); the whole IF-MIB (ifTable and ifXTable
with HC counters, one of which is above 2**63), the system group, CISCO-PROCESS-MIB CPU load and
ciscoImageString. Values differ by ``seed`` (each simulated device its own counters and name).

    python bench/data/switch48.py OUT.snmprec [--seed N]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SYS_OBJECT_ID = "1.3.6.1.4.1.9.1.1208"
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"

# snmprec type tags (snmpsim): a trailing "x" means the value is hex
INTEGER, OCTETS, OCTETS_HEX, OID, COUNTER32, GAUGE32, TIMETICKS, COUNTER64 = "2", "4", "4x", "6", "65", "66", "67", "70"


def interfaces() -> list[tuple[int, str, str, int, int]]:
    """(ifIndex, ifName, ifDescr, ifType, Mbit/s) of the switch, in ifIndex order."""
    rows = [(1, "Vl1", "Vlan1", 53, 1000)]
    rows += [(10100 + p, f"Gi1/0/{p}", f"GigabitEthernet1/0/{p}", 6, 1000) for p in range(1, 49)]
    rows += [(10148 + p, f"Te1/0/{p}", f"TenGigabitEthernet1/0/{p}", 6, 10000) for p in range(1, 5)]
    rows.append((10501, "Nu0", "Null0", 1, 10000))
    return rows


def records(seed: int = 1) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    recs: list[tuple[str, str, str]] = [
        ("1.3.6.1.2.1.1.1.0", OCTETS, "Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E4"),
        ("1.3.6.1.2.1.1.2.0", OID, SYS_OBJECT_ID),
        ("1.3.6.1.2.1.1.3.0", TIMETICKS, str(rng.randrange(10**6, 10**9))),
        ("1.3.6.1.2.1.1.4.0", OCTETS, "noc@example.invalid"),
        ("1.3.6.1.2.1.1.5.0", OCTETS, f"access-sw-{seed:03d}"),
        ("1.3.6.1.2.1.1.6.0", OCTETS, "Rack A, service center"),
        ("1.3.6.1.2.1.1.7.0", INTEGER, "6"),
    ]
    ports = interfaces()
    recs.append(("1.3.6.1.2.1.2.1.0", INTEGER, str(len(ports))))
    up = {index: rng.random() < 0.7 or name.startswith(("Vl", "Nu", "Te1/0/1")) for index, name, *_ in ports}
    high = {index: rng.randrange(2**40) for index, *_ in ports}
    high[10149] = 2**63 + rng.randrange(2**62)  # an uplink whose HC counter passed 2**63
    columns: dict[int, list[tuple[str, str]]] = {}
    xcolumns: dict[int, list[tuple[str, str]]] = {}
    for index, name, descr, if_type, mbits in ports:
        state = "1" if up[index] else "2"
        mac = f"00a0c9{index & 0xFFFFFF:06x}"
        octets_in, octets_out = high[index], rng.randrange(2**40)
        columns.setdefault(1, []).append((INTEGER, str(index)))
        columns.setdefault(2, []).append((OCTETS, descr))
        columns.setdefault(3, []).append((INTEGER, str(if_type)))
        columns.setdefault(4, []).append((INTEGER, "1500"))
        columns.setdefault(5, []).append((GAUGE32, str(min(mbits * 1_000_000, 2**32 - 1))))
        columns.setdefault(6, []).append((OCTETS_HEX, mac if if_type != 1 else ""))
        columns.setdefault(7, []).append((INTEGER, "1"))
        columns.setdefault(8, []).append((INTEGER, state))
        columns.setdefault(9, []).append((TIMETICKS, str(rng.randrange(10**6))))
        columns.setdefault(10, []).append((COUNTER32, str(octets_in % 2**32)))
        columns.setdefault(11, []).append((COUNTER32, str(rng.randrange(2**32))))
        columns.setdefault(12, []).append((COUNTER32, str(rng.randrange(2**24))))
        columns.setdefault(13, []).append((COUNTER32, str(rng.randrange(1000))))
        columns.setdefault(14, []).append((COUNTER32, str(rng.randrange(100))))
        columns.setdefault(15, []).append((COUNTER32, "0"))
        columns.setdefault(16, []).append((COUNTER32, str(octets_out % 2**32)))
        columns.setdefault(17, []).append((COUNTER32, str(rng.randrange(2**32))))
        columns.setdefault(18, []).append((COUNTER32, str(rng.randrange(2**24))))
        columns.setdefault(19, []).append((COUNTER32, str(rng.randrange(1000))))
        columns.setdefault(20, []).append((COUNTER32, str(rng.randrange(100))))
        columns.setdefault(21, []).append((GAUGE32, "0"))
        columns.setdefault(22, []).append((OID, "0.0"))
        xcolumns.setdefault(1, []).append((OCTETS, name))
        for column in (2, 3, 4, 5):
            xcolumns.setdefault(column, []).append((COUNTER32, str(rng.randrange(2**30))))
        xcolumns.setdefault(6, []).append((COUNTER64, str(octets_in)))
        for column in (7, 8, 9):
            xcolumns.setdefault(column, []).append((COUNTER64, str(rng.randrange(2**36))))
        xcolumns.setdefault(10, []).append((COUNTER64, str(octets_out)))
        for column in (11, 12, 13):
            xcolumns.setdefault(column, []).append((COUNTER64, str(rng.randrange(2**36))))
        xcolumns.setdefault(14, []).append((INTEGER, "1" if if_type == 6 else "2"))
        xcolumns.setdefault(15, []).append((GAUGE32, str(mbits)))
        xcolumns.setdefault(16, []).append((INTEGER, "2"))
        xcolumns.setdefault(17, []).append((INTEGER, "1" if if_type == 6 else "2"))
        xcolumns.setdefault(18, []).append((OCTETS, f"desk {index % 100:02d}" if if_type == 6 else ""))
        xcolumns.setdefault(19, []).append((TIMETICKS, "0"))
    for table, cols in ((IF, columns), (IFX, xcolumns)):
        for column in sorted(cols):
            for (index, *_), (tag, value) in zip(ports, cols[column], strict=True):
                recs.append((f"{table}.{column}.{index}", tag, value))
    recs.append(("1.3.6.1.4.1.9.9.25.1.1.1.2.5", OCTETS, "CW_VERSION$15.2(7)E4$"))
    recs.append(("1.3.6.1.4.1.9.9.109.1.1.1.1.7.1", GAUGE32, str(rng.randrange(1, 40))))
    return sorted(recs, key=lambda r: tuple(int(a) for a in r[0].split(".")))


def render(seed: int = 1) -> str:
    return "".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in records(seed))


def write(path: Path, seed: int = 1) -> int:
    """Writes the recording; returns its number of OIDs."""
    text = render(seed)
    path.write_text(text, encoding="utf-8")
    return text.count("\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{write(args.out, args.seed)} OIDs written to {args.out}")
