"""The agent's bootstrap configuration: a small YAML file, typed, validated at start.

Example (``agent.example.yaml``)::

    collector_url: http://127.0.0.1:8080
    enrollment_token: cwe_SAMPLE-NOT-A-REAL-TOKEN
    data_dir: /var/lib/centerwatch-agent
    checks:
      host: {interval_s: 15}

Every error names the file, the key and what was expected.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Annotated, Any

import msgspec

from agent.errors import ConfigError
from centerwatch.yamlfile import YamlError, load_yaml_text

Seconds = Annotated[float, msgspec.Meta(gt=0, le=86_400)]

#: name → module of every check the agent knows; a module is imported only when enabled.
CHECK_MODULES: dict[str, str] = {
    "host": "agent.checks.host",
    "dns": "agent.checks.dns",
    "tcp": "agent.checks.tcp",
    "http": "agent.checks.http",
    "icmp": "agent.checks.icmp",
    "network": "agent.checks.network",
    "throughput": "agent.checks.throughput",
    "traceroute": "agent.checks.traceroute",
    "arp_discovery": "agent.checks.arp_discovery",
    "snmp": "agent.checks.snmp",
    "snmp_traps": "agent.checks.snmp_traps",
}


class SpoolConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_bytes: Annotated[int, msgspec.Meta(ge=1024 * 1024)] = 256 * 1024 * 1024
    max_age_days: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    #: how often the agent reports its spool (waiting, dropped, refused) to the collector
    report_interval_s: Seconds = 60.0


class UploadConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    interval_s: Seconds = 5.0
    max_batch_bytes: Annotated[int, msgspec.Meta(ge=4096, le=8 * 1024 * 1024)] = 1024 * 1024
    timeout_s: Seconds = 30.0
    backoff_min_s: Seconds = 1.0
    backoff_max_s: Seconds = 300.0
    gzip: bool = True
    fresh_share: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.25

    def __post_init__(self) -> None:
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError("backoff_min_s must not exceed backoff_max_s")


class CheckSchedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    interval_s: Seconds = 15.0
    timeout_s: Seconds = 10.0
    enabled: bool = True


class AgentConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    collector_url: str
    data_dir: str
    enrollment_token: str = ""
    metrics_listen: str = "127.0.0.1:9464"
    spool: SpoolConfig = SpoolConfig()
    upload: UploadConfig = UploadConfig()
    #: check name → its settings; validated by ``check_specs`` against each check's own Config
    checks: dict[str, Any] = msgspec.field(default_factory=lambda: {"host": {}})

    def __post_init__(self) -> None:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.collector_url):
            raise ValueError(f"collector_url: expected an http:// or https:// URL, got {self.collector_url!r}")


class CheckSpec(msgspec.Struct, frozen=True):
    name: str
    schedule: CheckSchedule
    config: msgspec.Struct


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def split_msgspec_error(exc: msgspec.ValidationError, meanings: dict[str, str] | None = None) -> tuple[str, str]:
    """'Expected `int`, got `str` - at `$.upload.interval_s`' → ('upload.interval_s', 'expected int, got str').

    ``meanings`` turns a failed regex pattern into words ("a numeric OID such as …")."""
    m = _AT.match(str(exc))
    assert m is not None
    path = (m.group("path") or "").lstrip(".")
    msg = m.group("msg")
    unknown = re.match(r"Object contains unknown field `([^`]*)`", msg)
    if unknown:
        return ".".join(p for p in (path, unknown.group(1)) if p), "unknown key"
    missing = re.match(r"Object missing required field `([^`]*)`", msg)
    if missing:
        return ".".join(p for p in (path, missing.group(1)) if p), "required key is missing"
    regex = re.match(r"Expected `str` matching regex '(.*)'$", msg)
    if regex and meanings is not None:
        pattern = regex.group(1).encode().decode("unicode_escape")
        return path, f"expected {meanings.get(pattern, 'text matching ' + pattern)}"
    msg = msg.replace("`", "")
    return path, msg[:1].lower() + msg[1:]


def _split_msgspec_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    m = _AT.match(str(exc))
    own = re.match(r"(\w+): (.*)", m.group("msg")) if m and not m.group("path") else None
    if own and own.group(1) in AgentConfig.__struct_fields__:  # our __post_init__ checks
        return own.group(1), own.group(2)
    return split_msgspec_error(exc)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from exc
    return parse_yaml(text, str(path))


def parse_yaml(text: str, where: str) -> Any:
    """YAML text as Python data, refusing duplicate keys; errors name ``where`` and the line."""
    try:
        return load_yaml_text(text, where)
    except YamlError as exc:
        raise ConfigError(where, exc.at, exc.message) from None


def parse_config(data: Any, source: str) -> AgentConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, "", "expected a mapping of settings at the top level")
    try:
        return msgspec.convert(data, AgentConfig)
    except msgspec.ValidationError as exc:
        key, msg = _split_msgspec_error(exc)
        raise ConfigError(source, key, msg) from exc


def load_config(path: Path) -> AgentConfig:
    return parse_config(load_yaml(path), str(path))


def check_specs(config: AgentConfig, source: str = "config") -> list[CheckSpec]:
    """Resolve ``checks:`` into schedules and each check's own typed config."""
    specs = []
    schedule_keys = set(CheckSchedule.__struct_fields__)
    for name, raw in config.checks.items():
        where = f"checks.{name}"
        if name not in CHECK_MODULES:
            known = ", ".join(sorted(CHECK_MODULES))
            raise ConfigError(source, where, f"unknown check; known checks: {known}")
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(source, where, "expected a mapping of settings")
        sched_raw = {k: v for k, v in raw.items() if k in schedule_keys}
        own_raw = {k: v for k, v in raw.items() if k not in schedule_keys}
        try:
            schedule = msgspec.convert(sched_raw, CheckSchedule)
        except msgspec.ValidationError as exc:
            key, msg = _split_msgspec_error(exc)
            raise ConfigError(source, f"{where}.{key}".rstrip("."), msg) from exc
        module = importlib.import_module(CHECK_MODULES[name])
        try:
            own = msgspec.convert(own_raw, module.Config)
        except msgspec.ValidationError as exc:
            key, msg = _split_msgspec_error(exc)
            raise ConfigError(source, f"{where}.{key}".rstrip("."), msg) from exc
        if schedule.enabled:
            specs.append(CheckSpec(name, schedule, own))
    return specs
