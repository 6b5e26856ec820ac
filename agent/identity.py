"""The agent's identity: enrollment with the collector and the token file it yields."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

from agent.errors import EnrollError
from centerwatch import __version__
from centerwatch.wire import SCHEMA_VERSION, EnrollRequest, EnrollResponse, ErrorBody, encode


class Identity(msgspec.Struct, frozen=True):
    agent_id: str
    agent_token: str
    center: str
    host: str
    collector_url: str


@dataclass(frozen=True)
class IdentityFile:
    path: Path

    def load(self) -> Identity | None:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=Identity)
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as exc:
            raise EnrollError(f"{self.path}: unreadable identity file ({exc}); enroll again") from exc

    def save(self, identity: Identity) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(msgspec.json.encode(identity))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def machine_id() -> str:
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return Path(candidate).read_text().strip()[:128]
        except OSError:
            continue
    return ""


async def enroll(client: httpx.AsyncClient, collector_url: str, token: str, hostname: str | None = None) -> Identity:
    if not token:
        raise EnrollError("no enrollment_token in the configuration; ask IT for the center's token")
    request = EnrollRequest(SCHEMA_VERSION, token, hostname or socket.gethostname(), __version__, machine_id())
    url = collector_url.rstrip("/") + "/api/v1/enroll"
    try:
        response = await client.post(url, content=encode(request), headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        raise EnrollError(f"cannot reach the collector at {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        try:
            err = msgspec.json.decode(response.content, type=ErrorBody)
            reason = f"{err.error}: {err.message}"
        except msgspec.DecodeError:
            reason = response.text[:200]
        raise EnrollError(f"the collector at {url} refused enrollment (HTTP {response.status_code} {reason})")
    answer = msgspec.json.decode(response.content, type=EnrollResponse)
    return Identity(answer.agent_id, answer.agent_token, answer.center, answer.host, collector_url)
