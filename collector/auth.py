"""Tokens: random secrets handed out once, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets


def new_token(prefix: str) -> str:
    """``prefix`` tells a reader what a leaked string is (``cwe_`` enrollment, ``cwa_`` agent)."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_agent_id() -> str:
    return secrets.token_hex(8)
