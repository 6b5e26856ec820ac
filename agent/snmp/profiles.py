"""Device profiles: what to read from a kind of device and how to turn it into metrics, as YAML data.

A profile file (``agent/snmp/profiles/<name>.yaml``, or a site's ``profiles_dir``) says::

    extends: [generic.yaml]              # merged first; the child wins (see ``merge``)
    sysobjectid: [1.3.6.1.4.1.9.1]       # sysObjectID prefixes it is for; "*" matches any device
    description: Cisco Catalyst switches
    metrics:                             # scalars: one GET each run
      - {name: snmp_uptime_seconds, oid: 1.3.6.1.2.1.1.3.0, scale: 0.01}
    facts:                               # scalars reported as facts, not samples
      - {name: sysName, oid: 1.3.6.1.2.1.1.5.0}
    enums:                               # value → name maps, for facts and event messages
      if_status: {1: up, 2: down, 7: lowerLayerDown}
    tables:                              # walked column by column; rows joined on the index
      - name: interfaces
        index: [ifindex]                 # labels taken from the row index (one per index arc)
        tags: [{label: ifname, column: name, fallback: descr}]   # labels taken from columns
        columns:
          - {id: name, oid: 1.3.6.1.2.1.31.1.1.1.1}
          - {id: speed, oid: 1.3.6.1.2.1.31.1.1.1.15, scale: 1e6, metric: snmp_interface_speed_bits_per_second}
          - {id: in_octets, oid: 1.3.6.1.2.1.31.1.1.1.6, type: counter, scale: 8, rate_limit: speed,
             metric: snmp_interface_in_bits_per_second}
        ratios: [{metric: snmp_interface_utilization_ratio, numerator: in_octets, denominator: speed,
                  labels: {direction: in}}]
        events: [{kind: snmp.interface_down, column: oper_status, from: [1], to: [2, 7],
                  unless: {admin_status: [2]}, severity: warning}]
        facts: [alias, speed]            # columns listed in the device's facts, one entry per row

A column's value is ``raw × scale`` (× another column with ``multiply_by``); a ``counter`` becomes a
rate per second (``rates.counter_rate``; ``rate_limit`` names the column bounding it, used to tell a
64-bit wrap from a reset); ``true_values`` turns it into 1/0; a reading below ``valid_min`` is a
special value (RFC 3805's -1 other, -2 unknown, -3 some remaining): no sample, no ratio. A column
without ``metric`` is read only as input (a tag, a factor, a fact). Files whose name starts with
``_`` are building blocks: they can be extended but never match a device. More keys::

    metrics: [{name: snmp_ups_on_battery, oid: …, true_values: [5], id: output_source, enum: src}]
    events:                              # on scalars: ``column`` is a metric's id; ``from``
      - {kind: snmp.ups_on_battery, column: output_source, to: [5], severity: critical}  # omitted: any other value
    tables:
      - name: printer_status
        index: [_, alert]                # ``_``: an index arc that is no label
        where: {class: [3]}              # only rows with these values (ENTITY-MIB chassis rows)
        row_metric: snmp_printer_alert_active   # 1 per row (a table of current conditions)
        refresh_s: 3600                  # walked again only when older (tables read for facts)
        tags:
          - {label: supply_type, column: type, enum: supply_type}     # the enum's name as label
          - {label: colorant, column: value, default: none,           # a column of another table's row:
             lookup: {table: colorants, key: [index.1, colorant_index]}}   # its index = these parts
        columns:
          - {id: errors, oid: …, bits: printer_errors, bit_label: condition, metric: snmp_printer_error}
        events: [{kind: snmp.printer_jam, column: errors, bit: jammed}]   # when that bit gets set

``bits`` reads a BITS value (an OCTET STRING, bit 0 the first octet's high bit) through an enum
of bit number → name: one 1/0 sample per named bit, the name in label ``bit_label``.

``load_profiles`` validates every file with msgspec (unknown keys refused) and then the merged
result (references between columns, tables, enums and bits, unique sysObjectID prefixes); each
error names the file and the key. The device's profile is the one whose ``sysobjectid`` prefix is
the longest match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from agent.config import parse_yaml, split_msgspec_error
from agent.errors import ConfigError
from agent.snmp.errors import ProfileError

_PATTERNS = {
    "oid": r"^[0-2](\.(0|[1-9][0-9]*))+$",
    "prefix": r"^(\*|[0-2](\.(0|[1-9][0-9]*))+)$",
    "metric": r"^snmp_[a-z0-9_]+$",
    "ident": r"^[a-z][a-z0-9_]*$",
    "event": r"^snmp\.[a-z0-9_.]+$",
    "fact": r"^[A-Za-z][A-Za-z0-9_]*$",
    "file": r"^[A-Za-z0-9_.-]+\.yaml$",
    "index": r"^(_|[a-z][a-z0-9_]*)$",
    "key": r"^(index\.[1-9][0-9]*|[a-z][a-z0-9_]*)$",
}
#: what each pattern means, for error messages
_MEANING = {
    _PATTERNS["oid"]: "a numeric OID such as 1.3.6.1.2.1.1.3.0",
    _PATTERNS["prefix"]: "a numeric OID prefix such as 1.3.6.1.4.1.9.1, or *",
    _PATTERNS["metric"]: "a metric name snmp_[a-z0-9_]+",
    _PATTERNS["ident"]: "a name [a-z][a-z0-9_]*",
    _PATTERNS["event"]: "an event kind snmp.[a-z0-9_.]+",
    _PATTERNS["fact"]: "a fact name [A-Za-z][A-Za-z0-9_]*",
    _PATTERNS["file"]: "a profile file name ending in .yaml",
    _PATTERNS["index"]: "a label name [a-z][a-z0-9_]*, or _ for an index arc that is no label",
    _PATTERNS["key"]: "index.N (the row index's Nth arc) or a column id of this table",
}
OidText = Annotated[str, msgspec.Meta(pattern=_PATTERNS["oid"])]
OidPrefix = Annotated[str, msgspec.Meta(pattern=_PATTERNS["prefix"])]
MetricName = Annotated[str, msgspec.Meta(pattern=_PATTERNS["metric"], max_length=100)]
Ident = Annotated[str, msgspec.Meta(pattern=_PATTERNS["ident"], max_length=64)]
LabelName = Annotated[str, msgspec.Meta(pattern=_PATTERNS["ident"], max_length=64)]
EventKind = Annotated[str, msgspec.Meta(pattern=_PATTERNS["event"], max_length=100)]
FactName = Annotated[str, msgspec.Meta(pattern=_PATTERNS["fact"], max_length=64)]
FileName = Annotated[str, msgspec.Meta(pattern=_PATTERNS["file"])]
IndexName = Annotated[str, msgspec.Meta(pattern=_PATTERNS["index"], max_length=64)]
KeyPart = Annotated[str, msgspec.Meta(pattern=_PATTERNS["key"], max_length=64)]
Scale = Annotated[float, msgspec.Meta(gt=0)]
Kind = Literal["gauge", "counter"]
#: label names a profile may not use: the check's own, the collector's, and Observations' arguments
RESERVED_LABELS = frozenset({"device", "center", "host", "name", "value", "kind", "message", "severity"})
Severity = Literal["info", "warning", "critical"]


class Metric(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: MetricName
    oid: OidText
    type: Kind = "gauge"
    scale: Scale = 1.0
    labels: dict[LabelName, str] = {}
    true_values: list[int] | None = None
    #: readings below it are special values (-1 "other", -2 "unknown" …): no sample
    valid_min: float | None = None
    #: names the scalar for the profile's ``events``
    id: Ident | None = None
    #: names the values in event messages
    enum: Ident | None = None


class Fact(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: FactName
    oid: OidText
    enum: Ident | None = None


class Column(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Ident
    oid: OidText
    metric: MetricName | None = None
    type: Kind = "gauge"
    scale: Scale = 1.0
    labels: dict[LabelName, str] = {}
    true_values: list[int] | None = None
    multiply_by: Ident | None = None
    rate_limit: Ident | None = None
    enum: Ident | None = None
    valid_min: float | None = None
    #: a BITS value (OCTET STRING, bit 0 = the first octet's high bit): an enum naming the bits
    #: (bit number → name); the metric is 1/0 per named bit, with the name as label ``bit_label``
    bits: Ident | None = None
    bit_label: LabelName | None = None


class Lookup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The row of another table of the profile whose index is ``key``'s parts joined by dots."""

    table: Ident
    key: list[KeyPart]


class Tag(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    label: LabelName
    column: Ident
    fallback: Ident | None = None
    #: the label is the enum's name for the value (the number when the enum has none)
    enum: Ident | None = None
    #: ``column`` and ``fallback`` are read in this row of another table
    lookup: Lookup | None = None
    #: the label when the row has no value (without it: the row index)
    default: str | None = None


class Ratio(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    metric: MetricName
    numerator: Ident
    denominator: Ident
    labels: dict[LabelName, str] = {}


class Transition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An event when ``column`` goes from a value in ``from`` (any value not in ``to`` when
    omitted) to one in ``to``; or, with ``bit``, when that bit of a ``bits`` column gets set."""

    kind: EventKind
    column: Ident
    from_: list[int] | None = msgspec.field(default=None, name="from")
    to: list[int] = []
    bit: Ident | None = None
    unless: dict[Ident, list[int]] = {}
    severity: Severity = "info"


class Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Ident
    index: list[IndexName] | None = None
    tags: list[Tag] = []
    columns: list[Column] = []
    ratios: list[Ratio] = []
    events: list[Transition] = []
    facts: list[Ident] = []
    #: only rows whose columns have one of these values
    where: dict[Ident, list[int]] = {}
    #: 1 for every row the table has (a table of current conditions: each row is one)
    row_metric: MetricName | None = None
    #: walked again only when its last reading is older than this (tables read for facts)
    refresh_s: Annotated[float, msgspec.Meta(gt=0)] | None = None


class ProfileFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One YAML file as written; ``Profile`` is the result of merging its ``extends``."""

    extends: list[FileName] = []
    sysobjectid: list[OidPrefix] = []
    description: str = ""
    metrics: list[Metric] = []
    facts: list[Fact] = []
    enums: dict[Ident, dict[int, str]] = {}
    tables: list[Table] = []
    #: events on scalars: ``column`` names a metric's ``id``
    events: list[Transition] = []


@dataclass(frozen=True)
class Profile:
    name: str  # the file name without .yaml
    file: str  # where it was read, for messages
    sysobjectid: tuple[str, ...]
    description: str
    metrics: tuple[Metric, ...]
    facts: tuple[Fact, ...]
    enums: Mapping[str, Mapping[int, str]]
    tables: tuple[Table, ...]
    events: tuple[Transition, ...] = ()

    @property
    def abstract(self) -> bool:
        return self.name.startswith("_")


@dataclass(frozen=True)
class ProfileSet:
    profiles: Mapping[str, Profile]

    def get(self, name: str) -> Profile | None:
        profile = self.profiles.get(name.removesuffix(".yaml"))
        return None if profile is None or profile.abstract else profile

    def names(self) -> list[str]:
        return sorted(n for n, p in self.profiles.items() if not p.abstract)

    def match(self, sys_object_id: str) -> Profile | None:
        """The profile with the longest ``sysobjectid`` prefix of ``sys_object_id`` (on whole arcs);
        a ``*`` profile when nothing more specific matches."""
        best: Profile | None = None
        best_len = -1
        oid = sys_object_id.strip().removeprefix(".")
        for profile in self.profiles.values():
            if profile.abstract:
                continue
            for prefix in profile.sysobjectid:
                if prefix == "*":
                    length = 0
                elif oid == prefix or oid.startswith(prefix + "."):
                    length = prefix.count(".") + 1
                else:
                    continue
                if length > best_len:
                    best, best_len = profile, length
        return best


# --- loading ------------------------------------------------------------------------------------------


def _split_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    return split_msgspec_error(exc, _MEANING)


def _duplicates(where: str, raw: ProfileFile) -> None:
    """Two entries with one key in the same list would silently collapse when merged."""
    lists: list[tuple[str, list[Any], str]] = [
        ("metrics", list(raw.metrics), "name"),
        ("facts", list(raw.facts), "name"),
        ("tables", list(raw.tables), "name"),
    ]
    for t_index, table in enumerate(raw.tables):
        lists.append((f"tables[{t_index}].columns", list(table.columns), "id"))
        lists.append((f"tables[{t_index}].tags", list(table.tags), "label"))
        lists.append((f"tables[{t_index}].ratios", list(table.ratios), "metric"))
    for key, items, field in lists:
        seen_keys: set[Any] = set()
        for i, item in enumerate(items):
            value = _key(item, field)
            if value in seen_keys:
                raise ProfileError(where, f"{key}[{i}].{field}", f"{getattr(item, field)!r} is listed twice")
            seen_keys.add(value)


def parse_profile_file(text: str, where: str) -> ProfileFile:
    try:
        data = parse_yaml(text, where)
    except ConfigError as exc:
        raise ProfileError(exc.file, exc.key, exc.message) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(where, "", "expected a mapping at the top level")
    try:
        raw = msgspec.convert(data, ProfileFile, strict=False)
    except msgspec.ValidationError as exc:
        key, msg = _split_error(exc)
        raise ProfileError(where, key, msg) from None
    _duplicates(where, raw)
    return raw


def _shipped() -> dict[str, tuple[str, str]]:
    """name → (text, where) for the profiles shipped in the package."""
    out: dict[str, tuple[str, str]] = {}
    folder = resources.files("agent.snmp").joinpath("profiles")
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name.removesuffix(".yaml")] = (
                entry.read_text(encoding="utf-8"),
                f"agent/snmp/profiles/{entry.name}",
            )
    return out


def load_profiles(extra_dir: str | Path | None = None, *, shipped: bool = True) -> ProfileSet:
    """The shipped profiles, plus (overriding by file name) the ``*.yaml`` files of ``extra_dir``."""
    sources = _shipped() if shipped else {}
    if extra_dir:
        folder = Path(extra_dir)
        if not folder.is_dir():
            raise ProfileError(str(folder), "", "profiles_dir is not a directory")
        try:
            files = sorted(folder.glob("*.yaml"))
        except OSError as exc:
            raise ProfileError(str(folder), "", f"cannot list: {exc.strerror or exc}") from None
        for path in files:
            try:
                sources[path.stem] = (path.read_text(encoding="utf-8"), str(path))
            except OSError as exc:
                raise ProfileError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    return build_profiles(sources)


def build_profiles(sources: Mapping[str, tuple[str, str]]) -> ProfileSet:
    """Profiles from ``name → (yaml text, where)``: parsed, merged along ``extends``, validated."""
    files = {name: (parse_profile_file(text, where), where) for name, (text, where) in sources.items()}
    merged: dict[str, Profile] = {}
    for name in sorted(files):
        _resolve(name, files, merged, ())
    for profile in merged.values():
        _validate(profile, files[profile.name][0])
    _check_prefixes(merged)
    return ProfileSet(merged)


def _resolve(
    name: str, files: Mapping[str, tuple[ProfileFile, str]], merged: dict[str, Profile], chain: tuple[str, ...]
) -> Profile:
    if name in merged:
        return merged[name]
    raw, where = files[name]
    parents: list[Profile] = []
    for i, parent in enumerate(raw.extends):
        parent_name = parent.removesuffix(".yaml")
        if parent_name == name or parent_name in chain:
            cycle = " → ".join((*chain, name, parent_name))
            raise ProfileError(where, f"extends[{i}]", f"extends itself ({cycle})")
        if parent_name not in files:
            raise ProfileError(where, f"extends[{i}]", f"no profile {parent!r} among the shipped ones and profiles_dir")
        parents.append(_resolve(parent_name, files, merged, (*chain, name)))
    own = Profile(
        name=name,
        file=where,
        sysobjectid=tuple(raw.sysobjectid),
        description=raw.description,
        metrics=tuple(raw.metrics),
        facts=tuple(raw.facts),
        enums=dict(raw.enums),
        tables=tuple(raw.tables),
        events=tuple(raw.events),
    )
    result = own
    if parents:
        base = parents[0]
        for more in parents[1:]:
            base = merge(base, more)
        result = merge(base, own)
    merged[name] = result
    return result


def _key(item: Any, field: str) -> Any:
    if isinstance(item, Ratio):  # one metric, told apart by its labels (direction: in / out)
        return (item.metric, tuple(sorted(item.labels.items())))
    if isinstance(item, Metric):  # one name for several scalars, told apart by labels (line: 1 / 2)
        return (item.name, tuple(sorted(item.labels.items())))
    return getattr(item, field)


def _by_key(parent: Iterable[Any], child: Iterable[Any], field: str) -> tuple[Any, ...]:
    """Union keyed by ``field``: the parent's order, a child's entry replacing the parent's in place."""
    out = {_key(item, field): item for item in parent}
    for item in child:
        out[_key(item, field)] = item
    return tuple(out.values())


def _merge_table(parent: Table, child: Table) -> Table:
    return Table(
        name=child.name,
        index=child.index if child.index is not None else parent.index,
        tags=list(_by_key(parent.tags, child.tags, "label")),
        columns=list(_by_key(parent.columns, child.columns, "id")),
        ratios=list(_by_key(parent.ratios, child.ratios, "metric")),
        events=list({(e.kind, e.column): e for e in (*parent.events, *child.events)}.values()),
        facts=list(dict.fromkeys((*parent.facts, *child.facts))),
        where=child.where or parent.where,
        row_metric=child.row_metric if child.row_metric is not None else parent.row_metric,
        refresh_s=child.refresh_s if child.refresh_s is not None else parent.refresh_s,
    )


def merge(parent: Profile, child: Profile) -> Profile:
    """``child`` over ``parent``: scalars and ratios by name and labels, facts by name, enums by
    name (a child's map replaces the parent's), events by kind and column, tables by name and
    within a table columns by id, tags by label (``where``, ``row_metric``, ``refresh_s``: the
    child's when it gives them); ``sysobjectid`` and ``description`` are the child's own."""
    tables = {t.name: t for t in parent.tables}
    for table in child.tables:
        tables[table.name] = _merge_table(tables[table.name], table) if table.name in tables else table
    return Profile(
        name=child.name,
        file=child.file,
        sysobjectid=child.sysobjectid,
        description=child.description or parent.description,
        metrics=_by_key(parent.metrics, child.metrics, "name"),
        facts=_by_key(parent.facts, child.facts, "name"),
        enums={**parent.enums, **child.enums},
        tables=tuple(tables.values()),
        events=tuple({(e.kind, e.column): e for e in (*parent.events, *child.events)}.values()),
    )


def _check_labels(where: str, key: str, names: Iterable[str], taken: Iterable[str] = ()) -> None:
    taken = set(taken)
    for name in names:
        if name in RESERVED_LABELS:
            raise ProfileError(where, key, f"label {name!r} is reserved ({', '.join(sorted(RESERVED_LABELS))})")
        if name in taken:
            raise ProfileError(where, key, f"label {name!r} is already set by the table's index or tags")


def _validate(profile: Profile, raw: ProfileFile) -> None:
    where = profile.file
    for i, metric in enumerate(profile.metrics):
        _check_labels(where, f"metrics[{i}].labels", metric.labels)
        if metric.type == "counter" and metric.true_values is not None:
            raise ProfileError(where, f"metrics[{metric.name}].true_values", "a counter cannot be a boolean")
        if metric.enum is not None and metric.enum not in profile.enums:
            raise ProfileError(where, f"metrics[{metric.name}].enum", f"no enum {metric.enum!r}")
    if profile.abstract and raw.sysobjectid:
        raise ProfileError(where, "sysobjectid", "a building block (file name starting with _) never matches a device")
    if not profile.abstract and not profile.sysobjectid:
        raise ProfileError(where, "sysobjectid", "required: the sysObjectID prefixes this profile is for (or '*')")
    for i, fact in enumerate(profile.facts):
        if fact.enum is not None and fact.enum not in profile.enums:
            raise ProfileError(where, f"facts[{i}].enum", f"no enum {fact.enum!r}")
    scalars: dict[str, Metric] = {}
    for metric in profile.metrics:
        if metric.id is not None:
            if metric.id in scalars:
                raise ProfileError(where, f"metrics[{metric.name}].id", f"{metric.id!r} names another metric too")
            scalars[metric.id] = metric
    for event in profile.events:
        key = f"events[{event.kind}]"
        if event.column not in scalars:
            raise ProfileError(where, f"{key}.column", f"no metric with id {event.column!r}")
        if event.bit is not None:
            raise ProfileError(where, f"{key}.bit", "bit events are for table columns with bits")
        _check_transition(where, key, event)
        for ref in event.unless:
            if ref not in scalars:
                raise ProfileError(where, f"{key}.unless.{ref}", f"no metric with id {ref!r}")
    tables = {t.name: t for t in profile.tables}
    for table in profile.tables:
        _validate_table(where, profile, table, tables)


def row_label_names(table: Table) -> list[str]:
    """The labels every sample of a row carries: index names (not ``_``) and tags."""
    return [*(n for n in table.index or () if n != "_"), *(t.label for t in table.tags)]


def _check_transition(where: str, key: str, event: Transition) -> None:
    if event.bit is None and not event.to:
        raise ProfileError(where, f"{key}.to", "required: the values that fire the event (or bit, for a bits column)")
    if event.bit is not None and (event.to or event.from_ is not None):
        raise ProfileError(where, f"{key}.bit", "a bit event fires when the bit gets set: no from or to")


def _validate_table(where: str, profile: Profile, table: Table, tables: Mapping[str, Table]) -> None:
    at = f"tables[{table.name}]"
    if table.index is None:
        raise ProfileError(where, f"{at}.index", "required key is missing")
    columns = {c.id: c for c in table.columns}
    labels = [n for n in table.index if n != "_"]
    _check_labels(where, f"{at}.index", labels)
    row_labels = row_label_names(table)
    if len(set(row_labels)) != len(row_labels):
        raise ProfileError(where, f"{at}.tags", f"table {table.name!r}: a label is given twice by index and tags")
    _check_labels(where, f"{at}.tags", (t.label for t in table.tags))
    for column in table.columns:
        _check_labels(where, f"{at}.columns[{column.id}].labels", column.labels, row_labels)
        if column.bit_label is not None:
            _check_labels(where, f"{at}.columns[{column.id}].bit_label", [column.bit_label], row_labels)
    for ratio in table.ratios:
        _check_labels(where, f"{at}.ratios[{ratio.metric}].labels", ratio.labels, row_labels)
    if not columns:
        raise ProfileError(where, f"{at}.columns", f"table {table.name!r} has no columns")

    def need(key: str, ref: str | None) -> None:
        if ref is not None and ref not in columns:
            raise ProfileError(where, key, f"table {table.name!r} has no column {ref!r}")

    def enum(key: str, name: str | None) -> None:
        if name is not None and name not in profile.enums:
            raise ProfileError(where, key, f"no enum {name!r}")

    for column in table.columns:
        key = f"{at}.columns[{column.id}]"
        need(f"{key}.multiply_by", column.multiply_by)
        need(f"{key}.rate_limit", column.rate_limit)
        enum(f"{key}.enum", column.enum)
        enum(f"{key}.bits", column.bits)
        if column.type == "counter" and column.true_values is not None:
            raise ProfileError(where, f"{key}.true_values", "a counter cannot be a boolean")
        if column.bits is not None:
            if column.type == "counter" or column.true_values is not None or column.multiply_by is not None:
                raise ProfileError(where, f"{key}.bits", "a bits column is no counter, boolean or product")
            if column.metric is not None and column.bit_label is None:
                raise ProfileError(where, f"{key}.bit_label", "required: the label naming each bit's sample")
        elif column.bit_label is not None:
            raise ProfileError(where, f"{key}.bit_label", "only for a column with bits")
    for tag in table.tags:
        key = f"{at}.tags[{tag.label}]"
        enum(f"{key}.enum", tag.enum)
        if tag.lookup is None:
            need(f"{key}.column", tag.column)
            need(f"{key}.fallback", tag.fallback)
            continue
        other = tables.get(tag.lookup.table)
        if other is None or other.name == table.name:
            raise ProfileError(where, f"{key}.lookup.table", f"no other table {tag.lookup.table!r} in this profile")
        theirs = {c.id for c in other.columns}
        for ref, sub in ((tag.column, "column"), (tag.fallback, "fallback")):
            if ref is not None and ref not in theirs:
                raise ProfileError(where, f"{key}.{sub}", f"table {other.name!r} has no column {ref!r}")
        if not tag.lookup.key:
            raise ProfileError(where, f"{key}.lookup.key", "required: the parts of the other table's row index")
        for part in tag.lookup.key:
            if not part.startswith("index."):
                need(f"{key}.lookup.key", part)
    for ratio in table.ratios:
        need(f"{at}.ratios[{ratio.metric}].numerator", ratio.numerator)
        need(f"{at}.ratios[{ratio.metric}].denominator", ratio.denominator)
    for event in table.events:
        key = f"{at}.events[{event.kind}]"
        need(f"{key}.column", event.column)
        _check_transition(where, key, event)
        if event.bit is not None:
            names = profile.enums.get(columns[event.column].bits or "")
            if names is None:
                raise ProfileError(where, f"{key}.bit", f"column {event.column!r} has no bits")
            if event.bit not in names.values():
                raise ProfileError(where, f"{key}.bit", f"no bit {event.bit!r} in enum {columns[event.column].bits!r}")
        for ref in event.unless:
            need(f"{key}.unless.{ref}", ref)
    for fact_column in table.facts:
        need(f"{at}.facts", fact_column)
    for ref in table.where:
        need(f"{at}.where.{ref}", ref)
    if table.refresh_s is not None and any(c.type == "counter" for c in table.columns):
        raise ProfileError(where, f"{at}.refresh_s", "a table with counters is read on every poll")
    emits = any(c.metric for c in table.columns) or bool(table.ratios) or table.row_metric is not None
    if emits and not row_labels:
        raise ProfileError(
            where,
            f"{at}.index",
            f"table {table.name!r} emits metrics: give index labels or tags to tell rows apart",
        )


def _check_prefixes(profiles: Mapping[str, Profile]) -> None:
    claimed: dict[str, str] = {}
    for name in sorted(profiles):
        profile = profiles[name]
        if profile.abstract:
            continue
        for i, prefix in enumerate(profile.sysobjectid):
            other = claimed.get(prefix)
            if other is not None:
                raise ProfileError(profile.file, f"sysobjectid[{i}]", f"{prefix} is also claimed by {other}.yaml")
            claimed[prefix] = name
