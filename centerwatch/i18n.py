"""The one message catalog for every user-facing string. Vietnamese is the default.

Catalogs are TOML files in ``centerwatch/locales/`` (``vi.toml``, ``en.toml``) with identical keys
(a test enforces it). Messages use ``str.format`` fields: ``t("ingest.bad_version", got=2)``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from functools import cache
from importlib import resources

DEFAULT_LANG = "vi"
LANGS = ("vi", "en")


@cache
def catalog(lang: str) -> dict[str, str]:
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; expected one of {', '.join(LANGS)}")
    text = resources.files("centerwatch").joinpath("locales", f"{lang}.toml").read_text("utf-8")
    flat: dict[str, str] = {}

    def walk(prefix: str, node: dict[str, object]) -> None:
        for key, value in node.items():
            full = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(full + ".", value)
            else:
                flat[full] = str(value)

    walk("", tomllib.loads(text))
    return flat


def t(key: str, lang: str = DEFAULT_LANG, /, **fields: object) -> str:
    """Translate ``key``; a missing key is a bug, so it raises rather than showing the key."""
    template = catalog(lang if lang in LANGS else DEFAULT_LANG)[key]
    return template.format(**fields) if fields else template


def pick_lang(accept_language: str | None, explicit: str | None = None, default: str = DEFAULT_LANG) -> str:
    """Choose a language from an explicit choice (``?lang=``, cookie) or an Accept-Language header."""
    if explicit in LANGS:
        return explicit
    for token in _accept_tokens(accept_language or ""):
        primary = token.split("-", 1)[0].lower()
        if primary in LANGS:
            return primary
    return default if default in LANGS else DEFAULT_LANG


def _accept_tokens(header: str) -> Iterable[str]:
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")):
        lang, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if lang and quality > 0:  # q=0 means "not acceptable" (RFC 9110 §12.4.2)
            weighted.append((-quality, index, lang))
    return [lang for _, _, lang in sorted(weighted)]
