"""The message catalogs: same keys and fields in every language, Vietnamese by default, every API code present."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from centerwatch.i18n import DEFAULT_LANG, LANGS, catalog, pick_lang, t

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "collector"
#: ``Rejected("code"`` / ``ApiError("code"``: the codes the collector answers with.
RAISED_CODE = re.compile(r"\b(?:Rejected|ApiError)\(\s*\"([^\"]+)\"")


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_default_language_is_vietnamese() -> None:
    assert DEFAULT_LANG == "vi"
    assert set(LANGS) == {"vi", "en"}


def test_catalogs_have_exactly_the_same_keys() -> None:
    vi, en = catalog("vi"), catalog("en")
    assert sorted(set(vi) - set(en)) == []
    assert sorted(set(en) - set(vi)) == []
    assert len(vi) >= 20


@pytest.mark.parametrize("key", sorted(catalog("vi")))
def test_every_key_has_the_same_fields_in_both_languages(key: str) -> None:
    assert fields(catalog("vi")[key]) == fields(catalog("en")[key])


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_is_non_empty_and_formats_with_its_fields(lang: str) -> None:
    for key, template in catalog(lang).items():
        assert template.strip(), key
        template.format(**dict.fromkeys(fields(template), "x"))  # no stray braces


def test_nested_tables_flatten_to_dotted_keys() -> None:
    assert t("page.col.center", "en") == "Center"
    assert t("center_state.ok", "en") == "OK"


def test_t_defaults_to_vietnamese_and_fills_fields() -> None:
    assert t("api.bad_version", got=2, supported=1) == catalog("vi")["api.bad_version"].format(got=2, supported=1)
    assert t("api.bad_version", got=2, supported=1) == ("Phiên bản lược đồ 2 không được hỗ trợ; collector nhận: 1.")
    assert t("api.bad_version", "en", got=2, supported=1) == (
        "Schema version 2 is not supported; this collector accepts: 1."
    )
    assert t("page.col.host") == "Máy"


def test_t_with_unknown_language_falls_back_to_vietnamese() -> None:
    assert t("page.col.host", "fr") == "Máy"


def test_missing_key_raises() -> None:
    with pytest.raises(KeyError):
        t("api.no_such_code")


def test_catalog_refuses_unknown_language() -> None:
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        catalog("fr")


@pytest.mark.parametrize(
    ("header", "explicit", "expected"),
    [
        (None, None, "vi"),
        ("", None, "vi"),
        ("en-US,en;q=0.9,vi;q=0.8", None, "en"),
        ("fr, vi;q=0.5", None, "vi"),
        ("vi;q=0.2, en;q=0.9", None, "en"),
        ("en;q=0.5, vi", None, "vi"),
        ("EN-gb", None, "en"),
        ("vi-VN,vi;q=0.9,en-US;q=0.8", None, "vi"),
        ("*", None, "vi"),
        ("garbage;;;q=x, ,,", None, "vi"),
        ("\x00\xff\u200b", None, "vi"),
        ("fr-FR, de;q=0.9", None, "vi"),
        ("en;q=bogus, vi;q=0.1", None, "vi"),  # an unreadable weight counts as 0
        ("vi", "en", "en"),  # an explicit choice wins over the header
        ("en", "vi", "vi"),
        ("en", "fr", "en"),  # an unknown explicit choice is ignored
        (None, "", "vi"),
    ],
)
def test_pick_lang(header: str | None, explicit: str | None, expected: str) -> None:
    assert pick_lang(header, explicit) == expected


def test_pick_lang_default_is_used_only_when_known() -> None:
    assert pick_lang("fr", default="en") == "en"
    assert pick_lang("fr", default="de") == "vi"


def test_pick_lang_never_picks_a_language_with_q_zero() -> None:
    assert pick_lang("en;q=0") == "vi"


def collector_codes() -> set[str]:
    codes: set[str] = set()
    for path in COLLECTOR.rglob("*.py"):
        codes.update(RAISED_CODE.findall(path.read_text(encoding="utf-8")))
    return codes


def test_the_collector_scan_finds_codes() -> None:
    codes = collector_codes()
    assert {"unauthorized", "too_large", "bad_version"} <= codes  # the scan itself works


@pytest.mark.parametrize("code", sorted(collector_codes()))
def test_every_api_code_raised_by_the_collector_is_in_the_catalog(code: str) -> None:
    for lang in LANGS:
        assert f"api.{code}" in catalog(lang), f"api.{code} missing from {lang}.toml"


@pytest.mark.parametrize("code", ["unauthorized", "revoked", "wrong_agent"])
def test_codes_the_uploader_treats_as_auth_are_in_the_catalog(code: str) -> None:
    assert f"api.{code}" in catalog("vi")
