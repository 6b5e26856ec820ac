"""The metric catalog: every metric an agent may emit, with its type, unit and help text.

``agent/metrics.csv`` (``name,type,unit,help``, sorted by name) is the one list; a test checks that
each check emits nothing outside it. Names follow Prometheus conventions: base units, the unit as
the name's suffix, and ``_total`` on counters and only on counters.
"""

from __future__ import annotations

import csv
import io
import re
from importlib import resources
from typing import Literal, NamedTuple, cast

CATALOG_FILE = "metrics.csv"
HEADER = ["name", "type", "unit", "help"]
TYPES = frozenset({"gauge", "counter"})
#: Units a metric may have. A unit that is also a name suffix (``_bytes``, ``_seconds`` …) must end
#: the name (before ``_total``), and a name ending in one must have that unit.
SUFFIX_UNITS = frozenset(
    {"seconds", "bytes", "ratio", "celsius", "hertz", "rpm", "bits_per_second", "volts", "amperes", "watts"}
)
UNITS = SUFFIX_UNITS | {"count", "boolean", "dbm"}

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the file, the line and what was expected."""


class CatalogEntry(NamedTuple):
    name: str
    type: Literal["gauge", "counter"]
    unit: str
    help: str


def load_catalog() -> dict[str, CatalogEntry]:
    """The catalog shipped with the agent package, by metric name."""
    text = resources.files("agent").joinpath(CATALOG_FILE).read_text(encoding="utf-8")
    return parse_catalog(text, f"agent/{CATALOG_FILE}")


def parse_catalog(text: str, where: str = CATALOG_FILE) -> dict[str, CatalogEntry]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != HEADER:
        raise CatalogError(f"{where}:1: expected the header {','.join(HEADER)!r}, got {header!r}")
    catalog: dict[str, CatalogEntry] = {}
    previous = ""
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != len(HEADER):
            raise CatalogError(f"{where}:{line}: expected {len(HEADER)} fields, got {len(row)}")
        name, kind, unit, help_text = (field.strip() for field in row)
        entry = _entry(where, line, name, kind, unit, help_text)
        if name in catalog:
            raise CatalogError(f"{where}:{line}: {name!r} is listed twice")
        if name < previous:
            raise CatalogError(f"{where}:{line}: {name!r} is out of order: keep the rows sorted by name")
        previous = name
        catalog[name] = entry
    return catalog


def _entry(where: str, line: int, name: str, kind: str, unit: str, help_text: str) -> CatalogEntry:
    at = f"{where}:{line}: {name!r}"
    if not _NAME.match(name):
        raise CatalogError(f"{at}: a name is lower-case snake_case ([a-z_][a-z0-9_]*)")
    if kind not in TYPES:
        raise CatalogError(f"{at}: type must be one of {sorted(TYPES)}, got {kind!r}")
    if unit not in UNITS:
        raise CatalogError(f"{at}: unit must be one of {sorted(UNITS)}, got {unit!r}")
    if not help_text:
        raise CatalogError(f"{at}: help text is missing")
    if (kind == "counter") != name.endswith("_total"):
        raise CatalogError(f"{at}: counters, and only counters, end with '_total'")
    base = name.removesuffix("_total")
    if unit in SUFFIX_UNITS and not base.endswith(f"_{unit}"):
        raise CatalogError(f"{at}: a metric in {unit} ends with '_{unit}'")
    suffix = next((u for u in SUFFIX_UNITS if base.endswith(f"_{u}")), None)
    if suffix is not None and suffix != unit:
        raise CatalogError(f"{at}: ends with '_{suffix}' but its unit is {unit!r}")
    return CatalogEntry(name, cast(Literal["gauge", "counter"], kind), unit, help_text)
