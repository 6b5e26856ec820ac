"""Alert rules: YAML files (the shipped defaults plus a site's), typed and validated at load.

A rules file::

    rules:
      - name: disk_nearly_full             # unique across all files; a site file may redefine a
        severity: warning                  # shipped rule by name (or disable it: enabled: false)
        expr:
          metric: host_filesystem_used_ratio
          match: {}                        # label equality
          match_re: {mountpoint: "/|C:\\\\"}  # label regex (full match)
          reduce: last                     # last avg min max sum count rate delta changes absent
          window_s: 0                      # for everything but last
          by: []                           # aggregate series sharing these labels (with agg)
          agg: max                         # max min sum avg count
          op: ">"                          # > >= < <= == !=
          threshold: 0.9
          clear: 0.85                      # hysteresis: a firing alert holds while value op clear
          stale_s: 300                     # `last` ignores a series not updated for this long
        for_s: 600                         # pending this long before firing
        labels: {team: desktop}
        summary: "@rules.disk_nearly_full.summary"     # a catalog key, or {vi: "...", en: "..."}
        description: "@rules.disk_nearly_full.description"
        parents:                           # suppressed while one of these fires on the same labels
          - {rule: uplink_down, equal: [center, uplink]}
        suppresses_below: false            # true: the inventory's devices below this one's `device`
                                           # are suppressed while it fires

``kind: agent_silent`` and ``kind: center_unreachable`` are the topology rules (no ``expr``): an
agent that stopped reporting, and a center whose every agent did. Every alert of a center is
below its ``center_unreachable``; every alert of a host below that host's ``agent_silent``.

Templates are ``str.format`` fields: the alert's labels, ``value`` (and ``value_pct``, ``value_ms``,
``value_min``, ``value_mbps`` for ratios, seconds and bits per second), ``center_name``, and for
center_unreachable ``agents`` and ``cause``. Errors name the file and the key.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from centerwatch.i18n import LANGS, catalog
from centerwatch.yamlfile import YamlError, load_yaml_text
from collector.alerting.model import Severity
from collector.errors import ConfigFileError

Reduce = Literal["last", "avg", "min", "max", "sum", "count", "rate", "delta", "changes", "absent"]
Agg = Literal["max", "min", "sum", "avg", "count"]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
Kind = Literal["expr", "agent_silent", "center_unreachable"]
RuleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=64)]
#: fields every template may use besides the labels
TEMPLATE_FIELDS = frozenset(
    {"value", "value_pct", "value_ms", "value_min", "value_mbps", "center_name", "cause", "rule", "severity"}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expr(_Strict):
    metric: Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    match: dict[LabelName, str] = {}
    match_re: dict[LabelName, str] = {}
    reduce: Reduce = "last"
    window_s: Annotated[float, Field(ge=0, le=86_400)] = 0
    by: tuple[LabelName, ...] | None = None
    agg: Agg = "max"
    op: Op = ">"
    threshold: float = 0.0
    clear: float | None = None
    #: a series whose latest point is older than this says nothing (``last``); None: the engine's
    #: default (5 minutes). Raise it for slow checks (the ARP sweep runs every 15 minutes).
    stale_s: Annotated[float, Field(gt=0, le=86_400)] | None = None

    @field_validator("match_re")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for key, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{key}: not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _window(self) -> Expr:
        if self.reduce != "last" and self.window_s <= 0:
            raise ValueError(f"reduce {self.reduce} needs window_s > 0")
        return self


class Parent(_Strict):
    rule: RuleName
    #: the labels the child and the parent alert must share (Alertmanager inhibit_rules `equal`)
    equal: tuple[LabelName, ...] = ("center",)


Text = str | dict[str, str]


class Rule(_Strict):
    name: RuleName
    kind: Kind = "expr"
    enabled: bool = True
    severity: Severity = "warning"
    expr: Expr | None = None
    for_s: Annotated[float, Field(ge=0, le=7 * 86_400)] = 0
    labels: dict[LabelName, str] = {}
    summary: Text
    description: Text = ""
    parents: tuple[Parent, ...] = ()
    suppresses_below: bool = False

    @model_validator(mode="after")
    def _kind(self) -> Rule:
        if self.kind == "expr" and self.expr is None:
            raise ValueError("expr: required for a rule of kind expr")
        if self.kind != "expr" and self.expr is not None:
            raise ValueError(f"expr: a {self.kind} rule takes no expr")
        return self


class RulesFile(_Strict):
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class LoadedRule:
    rule: Rule
    file: str
    #: compiled label regexes of the expr
    match_re: Mapping[str, re.Pattern[str]]
    #: templates by language: {"vi": {"summary": …, "description": …}, "en": …}
    texts: Mapping[str, Mapping[str, str]]

    @property
    def name(self) -> str:
        return self.rule.name


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[LoadedRule, ...]

    def get(self, name: str) -> LoadedRule | None:
        for r in self.rules:
            if r.name == name:
                return r
        return None

    def of_kind(self, kind: str) -> LoadedRule | None:
        for r in self.rules:
            if r.rule.kind == kind:
                return r
        return None


def _where(loc: Iterable[Any], data: Any) -> str:
    """pydantic's location (('rules', 3, 'expr', 'op')) as 'rules[3](disk_nearly_full).expr.op'."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            name = (
                node[item].get("name")
                if isinstance(node, list) and item < len(node) and isinstance(node[item], dict)
                else None
            )
            parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]" + (f"({name})" if name else "")]
        elif item in ("function-after", "tagged-union") or str(item).startswith(("function-", "str", "dict[")):
            continue
        else:
            parts.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts)


def parse_rules(text: str, where: str) -> RulesFile:
    try:
        data = load_yaml_text(text, where)
    except YamlError as exc:
        raise ConfigFileError(where, exc.at, exc.message) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(where, "", "expected a mapping with a `rules:` list")
    try:
        return RulesFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ConfigFileError(where, _where(err["loc"], data), msg) from None


def _texts(rule: Rule, where: str, key_prefix: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {lang: {} for lang in LANGS}
    for field_name in ("summary", "description"):
        value: Text = getattr(rule, field_name)
        at = f"{key_prefix}.{field_name}"
        if isinstance(value, str) and value.startswith("@"):
            key = value[1:]
            for lang in LANGS:
                text = catalog(lang).get(key)
                if text is None:
                    raise ConfigFileError(where, at, f"no message {key!r} in the {lang} catalog")
                out[lang][field_name] = text
        elif isinstance(value, str):
            for lang in LANGS:
                out[lang][field_name] = value
        else:
            unknown = set(value) - set(LANGS)
            if unknown:
                raise ConfigFileError(where, at, f"unknown language(s) {sorted(unknown)}; expected {', '.join(LANGS)}")
            if not value:
                raise ConfigFileError(where, at, "give the text in at least one language")
            fallback = value.get("vi") or next(iter(value.values()))
            for lang in LANGS:
                out[lang][field_name] = value.get(lang, fallback)
    for lang, texts in out.items():
        for field_name, text in texts.items():
            _check_template(text, rule, where, f"{key_prefix}.{field_name}", lang)
    return out


def _check_template(text: str, rule: Rule, where: str, at: str, lang: str) -> None:
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ConfigFileError(where, at, f"bad template ({lang}): {exc}") from None
    known: set[str] | None = None
    if rule.kind == "agent_silent":
        known = {"center", "host", "agent"}
    elif rule.kind == "center_unreachable":
        known = {"center", "agents", "cause"}
    elif rule.expr is not None and rule.expr.by is not None:
        known = {*rule.expr.by, *rule.expr.match}
    for name in names:
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not base.isidentifier():
            raise ConfigFileError(where, at, f"bad template field {{{name}}} ({lang})")
        if known is not None and base not in known | TEMPLATE_FIELDS | set(rule.labels):
            raise ConfigFileError(
                where,
                at,
                f"template field {{{name}}} ({lang}) is not a label of this rule's alerts ({', '.join(sorted(known))})",
            )


def shipped_rules_text() -> list[tuple[str, str]]:
    folder = resources.files("collector.alerting").joinpath("rules")
    return sorted(
        (entry.read_text(encoding="utf-8"), f"collector/alerting/rules/{entry.name}")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def load_rules(site_dir: Path | None = None, *, shipped: bool = True) -> RuleSet:
    """The shipped rules, then the site's ``*.yaml`` (a site rule replaces a shipped one by name)."""
    sources = shipped_rules_text() if shipped else []
    if site_dir is not None:
        if not site_dir.is_dir():
            raise ConfigFileError(str(site_dir), "", "rules directory does not exist")
        for path in sorted(site_dir.glob("*.yaml")):
            try:
                sources.append((path.read_text(encoding="utf-8"), str(path)))
            except OSError as exc:
                raise ConfigFileError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    return build_rules(sources)


def build_rules(sources: Iterable[tuple[str, str]]) -> RuleSet:
    by_name: dict[str, LoadedRule] = {}
    origin: dict[str, str] = {}
    for text, where in sources:
        parsed = parse_rules(text, where)
        seen_here: set[str] = set()
        for i, rule in enumerate(parsed.rules):
            at = f"rules[{i}]({rule.name})"
            if rule.name in seen_here:
                raise ConfigFileError(where, at, f"rule {rule.name!r} is defined twice in this file")
            seen_here.add(rule.name)
            compiled = {k: re.compile(p) for k, p in (rule.expr.match_re.items() if rule.expr else ())}
            by_name[rule.name] = LoadedRule(rule, where, compiled, _texts(rule, where, at))
            origin[rule.name] = where
    loaded = {n: r for n, r in by_name.items() if r.rule.enabled}
    for rule_name, lr in loaded.items():
        for j, parent in enumerate(lr.rule.parents):
            if parent.rule not in by_name:
                raise ConfigFileError(lr.file, f"{rule_name}.parents[{j}].rule", f"no rule {parent.rule!r}")
            if parent.rule == rule_name:
                raise ConfigFileError(lr.file, f"{rule_name}.parents[{j}].rule", "a rule cannot be its own parent")
    for kind in ("agent_silent", "center_unreachable"):
        of_kind = [n for n, r in loaded.items() if r.rule.kind == kind]
        if len(of_kind) > 1:
            raise ConfigFileError(origin[of_kind[1]], of_kind[1], f"only one rule of kind {kind} (also {of_kind[0]})")
    return RuleSet(tuple(loaded.values()))
