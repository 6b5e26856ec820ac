"""SNMP credentials by name, from a local file the probe agent keeps: never in inventory, never sent.

Inventory names a device's credential (``snmp: {version: v3, credential: snmp-v3-network-ro}``);
the collector hands the name to the probe agent (``collector/probeconfig.py``) and the agent looks
it up here. The file is a YAML mapping of names to secrets::

    snmp-v2c-ro:
      community: "s3cret-ro"
    snmp-v3-network-ro:
      user: centerwatch
      auth_protocol: SHA-256      # SHA | SHA-256 (default SHA)
      auth_key: "long-auth-passphrase"
      priv_protocol: AES          # AES (128) | AES-256 | AES-256-C (default AES)
      priv_key: "long-priv-passphrase"

It must be a regular file that no other user can read or anyone but its owner write (``chmod 600``,
or 0640 for a service group); otherwise it is refused. Errors name the file and the key, never a
value. What comes out is ``V2c``/``V3`` holding ``Secret`` values, masked in every ``repr``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, get_args

import msgspec

from agent.config import parse_yaml, split_msgspec_error
from agent.errors import ConfigError
from agent.snmp.client import V3, AuthProtocol, Credentials, PrivProtocol, Secret, V2c

#: the same rule as inventory's credential names (``collector/inventory.py``)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: permission bits refused: group write and anything for other users
FORBIDDEN_MODE = stat.S_IWGRP | stat.S_IRWXO


class _Community(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    community: Annotated[str, msgspec.Meta(min_length=1)]


class _UsmUser(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user: Annotated[str, msgspec.Meta(min_length=1)]
    auth_key: Annotated[str, msgspec.Meta(min_length=8)]
    priv_key: Annotated[str, msgspec.Meta(min_length=8)]
    auth_protocol: AuthProtocol = "SHA"
    priv_protocol: PrivProtocol = "AES"


_CHOICES: dict[str, tuple[str, ...]] = {
    "auth_protocol": get_args(AuthProtocol),
    "priv_protocol": get_args(PrivProtocol),
}


def version_of(credentials: Credentials) -> str:
    return "v2c" if isinstance(credentials, V2c) else "v3"


def parse_credentials(data: object, where: str) -> dict[str, Credentials]:
    """The credentials of an already parsed file (``where`` names it in errors)."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(where, "", "expected a mapping of credential names to {community} or {user, auth_key, …}")
    out: dict[str, Credentials] = {}
    for name, entry in data.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfigError(
                where, str(name), "a credential name is letters, digits, '.', '_' and '-', e.g. snmp-v3-network-ro"
            )
        if not isinstance(entry, Mapping):
            raise ConfigError(where, name, "expected {community: …} (v2c) or {user, auth_key, priv_key, …} (v3)")
        kind: type[_Community] | type[_UsmUser] = _Community if "community" in entry else _UsmUser
        try:
            parsed = msgspec.convert(entry, kind)
        except msgspec.ValidationError as exc:
            key, message = split_msgspec_error(exc)
            if message.startswith("invalid enum value"):  # msgspec quotes the value: maybe a misplaced key
                message = f"expected one of {', '.join(_CHOICES.get(key.rsplit('.', 1)[-1], ()))}"
            if kind is _UsmUser and "community" not in entry and key in ("user", "auth_key", "priv_key"):
                message += " (a v2c credential has a community, a v3 one user, auth_key and priv_key)"
            raise ConfigError(where, f"{name}.{key}" if key else name, message) from None
        if isinstance(parsed, _Community):
            out[name] = V2c(Secret(parsed.community))
        else:
            auth, priv = Secret(parsed.auth_key), Secret(parsed.priv_key)
            out[name] = V3(parsed.user, auth, priv, parsed.auth_protocol, parsed.priv_protocol)
    return out


def check_mode(path: Path, st: os.stat_result) -> None:
    """Refuse a file others may read or change (POSIX only: Windows has ACLs, not modes)."""
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(str(path), "", "not a regular file")
    if os.name == "posix" and st.st_mode & FORBIDDEN_MODE:
        mode = stat.S_IMODE(st.st_mode)
        raise ConfigError(
            str(path),
            "",
            f"mode {mode:04o} lets other users read or change these secrets: chmod 600 {path} (0640 at most)",
        )


def load_credentials(path: Path) -> dict[str, Credentials]:
    """Read and check ``path``; ``ConfigError`` naming the file (and key) when it is wrong."""
    try:
        with path.open("rb") as fh:
            check_mode(path, os.fstat(fh.fileno()))
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    return parse_credentials(parse_yaml(text, str(path)), str(path))


@dataclass
class CredentialStore:
    """The file's credentials, read again only when it changed (size, times, inode, mode): a fixed
    file takes effect at the next poll, without a restart. ``get`` raises the file's ``ConfigError``."""

    path: str
    _stamp: tuple[int, ...] | None = None
    _loaded: dict[str, Credentials] | None = None
    _error: ConfigError | None = None

    def get(self) -> dict[str, Credentials]:
        try:
            st = os.stat(self.path)
            stamp: tuple[int, ...] | None = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)
        except OSError:
            stamp = None  # load_credentials says why
        if stamp is None or stamp != self._stamp:
            try:
                self._loaded, self._error = load_credentials(Path(self.path)), None
            except ConfigError as exc:
                self._loaded, self._error = None, exc
            self._stamp = stamp
        if self._error is not None:
            raise self._error
        assert self._loaded is not None
        return self._loaded
