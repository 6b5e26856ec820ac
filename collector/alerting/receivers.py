"""Where notifications go: the route (grouping and timing) and the receivers, from one YAML file.

::

    route:
      group_by: [center, alertname]     # one notification per center and rule
      group_wait_s: 30                  # first notification of a new group
      group_interval_s: 300             # changes to a group, no sooner than this after the last
      repeat_interval_s: 14400          # an unchanged firing group is sent again
      lang: vi                          # language of summaries, subjects and bodies
      timezone: Asia/Ho_Chi_Minh        # times in e-mail bodies
      retry: {attempts: 5, initial_backoff_s: 1, max_backoff_s: 30}
    receivers:
      - name: ops-webhook
        type: webhook
        url: https://hooks.example.org/centerwatch
        headers: {X-Team: it}           # not for secrets: use bearer_token_env / _file
        bearer_token_env: CW_WEBHOOK_TOKEN
        timeout_s: 10
      - name: it-mail
        type: email
        match: {severity: [warning, critical]}
        host: smtp.example.org
        port: 587
        starttls: true
        username: centerwatch
        password_env: CW_SMTP_PASSWORD  # or password_file: /etc/centerwatch/smtp-password
        from: "CenterWatch <centerwatch@example.org>"
        to: [it@example.org]
      - name: site-alertmanager
        type: alertmanager
        url: http://127.0.0.1:9093

Every receiver may narrow what it gets (``match``: label → value or list of values) and override
``lang`` and the three timings. An Alertmanager receiver defaults to ``group_wait_s: 0``,
``group_interval_s: 0`` and ``repeat_interval_s: 60``: Alertmanager groups by itself and, like
Prometheus, must hear about a firing alert again before its ``endsAt`` runs out.

Secrets (SMTP password, bearer tokens) are read from the environment or a file at load, kept as
``SecretStr`` and never appear in an error, a log line or ``repr``. Errors name the file and key.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from centerwatch.yamlfile import YamlError, load_yaml_text
from collector.alerting.model import AlertView
from collector.errors import ConfigFileError

Lang = Literal["vi", "en"]
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=64)]
ReceiverName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", max_length=64)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
Seconds = Annotated[float, Field(ge=0, le=7 * 86_400)]
HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", max_length=128)]
#: headers a receiver may not set by hand: the notifier owns them, and credentials go through
#: ``bearer_token_env``/``bearer_token_file`` so they never sit in the file
RESERVED_HEADERS = frozenset({"authorization", "content-type", "content-length", "host"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(_Strict):
    attempts: Annotated[int, Field(ge=1, le=20)] = 5
    initial_backoff_s: Annotated[float, Field(gt=0, le=600)] = 1.0
    max_backoff_s: Annotated[float, Field(gt=0, le=3600)] = 30.0

    @model_validator(mode="after")
    def _ordered(self) -> Retry:
        if self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("max_backoff_s must not be below initial_backoff_s")
        return self


class Route(_Strict):
    group_by: tuple[LabelName, ...] = ("center", "alertname")
    group_wait_s: Seconds = 30.0
    group_interval_s: Seconds = 300.0
    repeat_interval_s: Annotated[float, Field(ge=1, le=30 * 86_400)] = 14_400.0
    lang: Lang = "vi"
    timezone: str = "Asia/Ho_Chi_Minh"
    retry: Retry = Retry()

    @field_validator("group_by")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a label is listed twice")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Ho_Chi_Minh)") from None
        return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("no credentials in the URL; use bearer_token_env or bearer_token_file")
    if parts.fragment:
        raise ValueError("no #fragment in the URL")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("bad port in the URL") from None
    return value


class _ReceiverBase(_Strict):
    name: ReceiverName
    #: label → value (or any of a list of values); every listed label must match
    match: dict[LabelName, str | tuple[str, ...]] = {}
    lang: Lang | None = None
    group_wait_s: Seconds | None = None
    group_interval_s: Seconds | None = None
    repeat_interval_s: Annotated[float, Field(ge=1, le=30 * 86_400)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0


class _HttpReceiver(_ReceiverBase):
    url: str
    bearer_token_env: EnvName | None = None
    bearer_token_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @model_validator(mode="after")
    def _one_token_source(self) -> _HttpReceiver:
        if self.bearer_token_env and self.bearer_token_file:
            raise ValueError("give bearer_token_env or bearer_token_file, not both")
        return self


class WebhookSpec(_HttpReceiver):
    type: Literal["webhook"]
    headers: dict[HeaderName, str] = {}

    @field_validator("headers")
    @classmethod
    def _no_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name} is set by CenterWatch (credentials: bearer_token_env/_file)")
        return value


class AlertmanagerSpec(_HttpReceiver):
    type: Literal["alertmanager"]


class EmailSpec(_ReceiverBase):
    type: Literal["email"]
    host: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]_-]+$")]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = True
    #: send credentials over a connection without TLS (a lab relay); refused unless set
    allow_insecure_auth: bool = False
    #: CA bundle to verify the server's certificate (a site CA); the system's by default
    ca_file: Path | None = None
    username: str | None = None
    password_env: EnvName | None = None
    password_file: Path | None = None
    from_: str = Field(alias="from")
    to: Annotated[tuple[str, ...], Field(min_length=1, max_length=50)]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str) -> str:
        _address(value)
        return value

    @field_validator("to")
    @classmethod
    def _to(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            _address(item)
        return value

    @model_validator(mode="after")
    def _credentials(self) -> EmailSpec:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        has_password = bool(self.password_env or self.password_file)
        if has_password and not self.username:
            raise ValueError("a password needs a username")
        if self.username and not has_password:
            raise ValueError("a username needs password_env or password_file")
        if self.username and not self.starttls and not self.allow_insecure_auth:
            raise ValueError(
                "credentials would be sent without TLS: set starttls: true"
                " (or allow_insecure_auth: true for a lab relay)"
            )
        return self


_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _address(value: str) -> str:
    _, addr = parseaddr(value)
    if not _ADDRESS.match(addr):
        raise ValueError(f"not an e-mail address: {value!r}")
    return addr


ReceiverSpec = Annotated[WebhookSpec | EmailSpec | AlertmanagerSpec, Field(discriminator="type")]


class AlertingFile(_Strict):
    route: Route = Route()
    receivers: Annotated[tuple[ReceiverSpec, ...], Field(min_length=1, max_length=100)]

    @field_validator("receivers")
    @classmethod
    def _unique_names(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        seen: set[str] = set()
        for spec in value:
            if spec.name in seen:
                raise ValueError(f"receiver name {spec.name!r} is used twice")
            seen.add(spec.name)
        return value


@dataclass(frozen=True)
class Timing:
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float


#: Alertmanager groups by itself and forgets an alert it has not heard of before its endsAt.
ALERTMANAGER_TIMING = Timing(group_wait_s=0.0, group_interval_s=0.0, repeat_interval_s=60.0)


@dataclass(frozen=True)
class Receiver:
    """One receiver as loaded: its spec, the effective language and timing, and its secret."""

    spec: WebhookSpec | EmailSpec | AlertmanagerSpec
    lang: str
    timing: Timing
    #: SMTP password or bearer token, read at load; never printed
    secret: SecretStr | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def type(self) -> str:
        return self.spec.type

    def matches(self, labels: Mapping[str, str]) -> bool:
        for name, wanted in self.spec.match.items():
            value = labels.get(name)
            if value is None:
                return False
            if isinstance(wanted, str):
                if value != wanted:
                    return False
            elif value not in wanted:
                return False
        return True

    def wants(self, view: AlertView) -> bool:
        return self.matches(view.labels)


@dataclass(frozen=True)
class AlertingConfig:
    route: Route
    receivers: tuple[Receiver, ...]
    source: str = ""

    def receiver(self, name: str) -> Receiver:
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(name)


def load_alerting(path: Path, env: Mapping[str, str] | None = None) -> AlertingConfig:
    """Read and validate ``path``; secrets from ``env`` (default: the process environment)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigFileError(str(path), "", "not UTF-8 text") from None
    return parse_alerting(text, str(path), env=os.environ if env is None else env, base_dir=path.parent)


def parse_alerting(
    text: str, where: str, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> AlertingConfig:
    try:
        data = load_yaml_text(text, where)
    except YamlError as exc:
        raise ConfigFileError(where, exc.at, exc.message) from None
    if not isinstance(data, dict):
        raise ConfigFileError(where, "", "expected a mapping with `route:` and `receivers:`")
    try:
        parsed = AlertingFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_input=False)[0]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        key = _key(err["loc"], data)
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            msg = "expected one of: webhook, email, alertmanager"
            key += ".type"
        raise ConfigFileError(where, key, msg) from None
    env = os.environ if env is None else env
    receivers = []
    for i, spec in enumerate(parsed.receivers):
        at = f"receivers[{i}]({spec.name})"
        if isinstance(spec, EmailSpec) and spec.ca_file is not None:
            spec = spec.model_copy(update={"ca_file": _ca_file(spec.ca_file, where, f"{at}.ca_file", base_dir)})
        receivers.append(
            Receiver(
                spec=spec,
                lang=spec.lang or parsed.route.lang,
                timing=_timing(parsed.route, spec),
                secret=_secret(spec, where, at, env, base_dir),
            )
        )
    return AlertingConfig(route=parsed.route, receivers=tuple(receivers), source=where)


def _timing(route: Route, spec: WebhookSpec | EmailSpec | AlertmanagerSpec) -> Timing:
    base = (
        ALERTMANAGER_TIMING
        if spec.type == "alertmanager"
        else Timing(route.group_wait_s, route.group_interval_s, route.repeat_interval_s)
    )
    return Timing(
        group_wait_s=base.group_wait_s if spec.group_wait_s is None else spec.group_wait_s,
        group_interval_s=base.group_interval_s if spec.group_interval_s is None else spec.group_interval_s,
        repeat_interval_s=base.repeat_interval_s if spec.repeat_interval_s is None else spec.repeat_interval_s,
    )


def _secret(
    spec: WebhookSpec | EmailSpec | AlertmanagerSpec,
    where: str,
    at: str,
    env: Mapping[str, str],
    base_dir: Path | None,
) -> SecretStr | None:
    if isinstance(spec, EmailSpec):
        env_key, file_key = "password_env", "password_file"
        env_name, file_path = spec.password_env, spec.password_file
    else:
        env_key, file_key = "bearer_token_env", "bearer_token_file"
        env_name, file_path = spec.bearer_token_env, spec.bearer_token_file
    if env_name:
        value = env.get(env_name)
        if not value:
            raise ConfigFileError(where, f"{at}.{env_key}", f"environment variable {env_name} is not set or empty")
        return SecretStr(value)
    if file_path is not None:
        path = file_path if file_path.is_absolute() or base_dir is None else base_dir / file_path
        try:
            value = path.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ConfigFileError(where, f"{at}.{file_key}", f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigFileError(where, f"{at}.{file_key}", f"{path} is not UTF-8 text") from None
        if not value:
            raise ConfigFileError(where, f"{at}.{file_key}", f"{path} is empty")
        return SecretStr(value)
    return None


def _ca_file(path: Path, where: str, at: str, base_dir: Path | None) -> Path:
    """The CA bundle, relative to the alerting file, checked to load as PEM certificates."""
    full = path if path.is_absolute() or base_dir is None else base_dir / path
    try:
        ssl.create_default_context(cafile=str(full))
    except FileNotFoundError:
        raise ConfigFileError(where, at, f"cannot read {full}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigFileError(where, at, f"{full} is not a PEM CA bundle ({exc.strerror or exc})") from None
    return full


def _key(loc: Iterable[Any], data: Any) -> str:
    """pydantic's location (('receivers', 1, 'email', 'port')) as 'receivers[1](it-mail).port'."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            name = None
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                name = node[item].get("name")
            label = f"[{item}]" + (f"({name})" if isinstance(name, str) else "")
            parts[-1:] = [(parts[-1] if parts else "") + label]
        elif isinstance(node, list) or (isinstance(node, dict) and item not in node and item in _TAGS):
            continue  # the discriminated union's tag (e.g. 'email'): not a key of the file
        else:
            parts.append("from" if item == "from_" else str(item))
        try:
            node = node["from" if item == "from_" else item]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts)


_TAGS = frozenset({"webhook", "email", "alertmanager"})

__all__ = [
    "AlertingConfig",
    "AlertmanagerSpec",
    "EmailSpec",
    "Receiver",
    "Route",
    "Timing",
    "WebhookSpec",
    "load_alerting",
    "parse_alerting",
]
