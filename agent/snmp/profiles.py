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
64-bit wrap from a reset); ``true_values`` turns it into 1/0. A column without ``metric`` is read
only as input (a tag, a factor, a fact). Files whose name starts with ``_`` are building blocks:
they can be extended but never match a device.

``load_profiles`` validates every file with msgspec (unknown keys refused) and then the merged
result (references between columns, unique sysObjectID prefixes); each error names the file and the
key. The device's profile is the one whose ``sysobjectid`` prefix is the longest match.
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
}
OidText = Annotated[str, msgspec.Meta(pattern=_PATTERNS["oid"])]
OidPrefix = Annotated[str, msgspec.Meta(pattern=_PATTERNS["prefix"])]
MetricName = Annotated[str, msgspec.Meta(pattern=_PATTERNS["metric"], max_length=100)]
Ident = Annotated[str, msgspec.Meta(pattern=_PATTERNS["ident"], max_length=64)]
LabelName = Annotated[str, msgspec.Meta(pattern=_PATTERNS["ident"], max_length=64)]
EventKind = Annotated[str, msgspec.Meta(pattern=_PATTERNS["event"], max_length=100)]
FactName = Annotated[str, msgspec.Meta(pattern=_PATTERNS["fact"], max_length=64)]
FileName = Annotated[str, msgspec.Meta(pattern=_PATTERNS["file"])]
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


class Tag(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    label: LabelName
    column: Ident
    fallback: Ident | None = None


class Ratio(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    metric: MetricName
    numerator: Ident
    denominator: Ident
    labels: dict[LabelName, str] = {}


class Transition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kind: EventKind
    column: Ident
    from_: list[int] = msgspec.field(name="from")
    to: list[int]
    unless: dict[Ident, list[int]] = {}
    severity: Severity = "info"


class Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Ident
    index: list[LabelName] | None = None
    tags: list[Tag] = []
    columns: list[Column] = []
    ratios: list[Ratio] = []
    events: list[Transition] = []
    facts: list[Ident] = []


class ProfileFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One YAML file as written; ``Profile`` is the result of merging its ``extends``."""

    extends: list[FileName] = []
    sysobjectid: list[OidPrefix] = []
    description: str = ""
    metrics: list[Metric] = []
    facts: list[Fact] = []
    enums: dict[Ident, dict[int, str]] = {}
    tables: list[Table] = []


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
    )


def merge(parent: Profile, child: Profile) -> Profile:
    """``child`` over ``parent``: scalars, facts and ratios by name, enums by name (a child's map
    replaces the parent's), tables by name and within a table columns by id, tags by label;
    ``sysobjectid`` and ``description`` are the child's own."""
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
    if profile.abstract and raw.sysobjectid:
        raise ProfileError(where, "sysobjectid", "a building block (file name starting with _) never matches a device")
    if not profile.abstract and not profile.sysobjectid:
        raise ProfileError(where, "sysobjectid", "required: the sysObjectID prefixes this profile is for (or '*')")
    for i, fact in enumerate(profile.facts):
        if fact.enum is not None and fact.enum not in profile.enums:
            raise ProfileError(where, f"facts[{i}].enum", f"no enum {fact.enum!r}")
    for table in profile.tables:
        at = f"tables[{table.name}]"
        if table.index is None:
            raise ProfileError(where, f"{at}.index", "required key is missing")
        columns = {c.id: c for c in table.columns}
        _check_labels(where, f"{at}.index", table.index)
        row_labels = [*table.index, *(t.label for t in table.tags)]
        if len(set(row_labels)) != len(row_labels):
            raise ProfileError(where, f"{at}.tags", f"table {table.name!r}: a label is given twice by index and tags")
        _check_labels(where, f"{at}.tags", (t.label for t in table.tags))
        for column in table.columns:
            _check_labels(where, f"{at}.columns[{column.id}].labels", column.labels, row_labels)
        for ratio in table.ratios:
            _check_labels(where, f"{at}.ratios[{ratio.metric}].labels", ratio.labels, row_labels)
        if not columns:
            raise ProfileError(where, f"{at}.columns", f"table {table.name!r} has no columns")

        def need(key: str, ref: str | None, table: Table = table, columns: dict[str, Column] = columns) -> None:
            if ref is not None and ref not in columns:
                raise ProfileError(where, key, f"table {table.name!r} has no column {ref!r}")

        for column in table.columns:
            key = f"{at}.columns[{column.id}]"
            need(f"{key}.multiply_by", column.multiply_by)
            need(f"{key}.rate_limit", column.rate_limit)
            if column.enum is not None and column.enum not in profile.enums:
                raise ProfileError(where, f"{key}.enum", f"no enum {column.enum!r}")
            if column.type == "counter" and column.true_values is not None:
                raise ProfileError(where, f"{key}.true_values", "a counter cannot be a boolean")
        for tag in table.tags:
            need(f"{at}.tags[{tag.label}].column", tag.column)
            need(f"{at}.tags[{tag.label}].fallback", tag.fallback)
        for ratio in table.ratios:
            need(f"{at}.ratios[{ratio.metric}].numerator", ratio.numerator)
            need(f"{at}.ratios[{ratio.metric}].denominator", ratio.denominator)
        for event in table.events:
            need(f"{at}.events[{event.kind}].column", event.column)
            for ref in event.unless:
                need(f"{at}.events[{event.kind}].unless.{ref}", ref)
        for fact_column in table.facts:
            need(f"{at}.facts", fact_column)
        emits = any(c.metric for c in table.columns) or bool(table.ratios)
        if emits and not table.index and not table.tags:
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
