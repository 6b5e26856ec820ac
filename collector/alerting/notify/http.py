"""POST JSON with httpx and translate what happens into ``NotifyError`` (retryable or not).

A webhook URL often carries a secret in its path (chat services' incoming hooks), so errors name
only the scheme, host and port of the URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from centerwatch import __version__
from collector.alerting.notify.base import NotifyError

#: worth trying again: the server is overloaded, restarting or asked us to slow down
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = f"CenterWatch/{__version__}"


def origin(url: str) -> str:
    """``https://hooks.example.org:8443/secret/path`` → ``https://hooks.example.org:8443``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def make_client(
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    token: SecretStr | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        headers=all_headers,
        follow_redirects=False,
        transport=transport,
        trust_env=False,  # no proxy from the environment: receivers are configured explicitly
    )


async def post_json(
    client: httpx.AsyncClient, receiver: str, url: str, body: Any, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """POST ``body`` as UTF-8 JSON; return the 2xx response or raise ``NotifyError``."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    where = origin(url)
    try:
        response = await client.post(
            url, content=content, headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        )
    except httpx.TimeoutException as exc:
        raise NotifyError(receiver, f"{where}: timed out ({type(exc).__name__})", retryable=True) from None
    except httpx.TransportError as exc:
        reason = str(exc).replace(url, where) or "no detail"
        raise NotifyError(
            receiver, f"{where}: cannot deliver ({type(exc).__name__}: {reason})", retryable=True
        ) from None
    if response.is_success:
        return response
    excerpt = response.text[:200].replace("\n", " ").strip()
    detail = f"{where}: HTTP {response.status_code}" + (f": {excerpt}" if excerpt else "")
    if response.status_code in RETRYABLE_STATUS:
        raise NotifyError(receiver, detail, retryable=True, status=response.status_code)
    raise NotifyError(
        receiver,
        f"{detail} (refused: check the receiver's configuration)",
        retryable=False,
        status=response.status_code,
    )
