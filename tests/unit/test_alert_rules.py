"""Alert rule files: every mistake is refused at load with the file and the key; reductions are exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.alerting.evaluate import reduce_series
from collector.alerting.head import Series
from collector.alerting.rules import Expr, build_rules, load_rules
from collector.errors import ConfigFileError

GOOD = """
rules:
  - name: hot
    expr: {metric: cpu, op: ">", threshold: 0.9}
    summary: "{host} hot"
"""


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (
            "rules:\n  - name: a\n    expr: {metric: m}\n    summary: s\n    colour: red\n",
            "rules[0](a).colour",
            "unknown key",
        ),
        (
            "rules:\n  - name: a\n    expr: {metric: m, op: '=>'}\n    summary: s\n",
            "rules[0](a).expr.op",
            "Input should be",
        ),
        (
            "rules:\n  - name: a\n    expr: {metric: m, match_re: {x: '('}}\n    summary: s\n",
            "rules[0](a).expr.match_re",
            "not a regular expression",
        ),
        (
            "rules:\n  - name: a\n    expr: {metric: m, reduce: avg}\n    summary: s\n",
            "rules[0](a).expr",
            "window_s > 0",
        ),
        ("rules:\n  - name: a\n    summary: s\n", "rules[0](a)", "expr: required"),
        ("rules:\n  - name: A-b\n    expr: {metric: m}\n    summary: s\n", "rules[0](A-b).name", "pattern"),
        (
            "rules:\n  - name: a\n    expr: {metric: m}\n    summary: '@rules.nope.summary'\n",
            "rules[0](a).summary",
            "no message 'rules.nope.summary'",
        ),
        (
            "rules:\n  - name: a\n    expr: {metric: m, by: [center]}\n    summary: '{host}'\n",
            "rules[0](a).summary",
            "not a label",
        ),
        (
            "rules:\n  - name: a\n    expr: {metric: m}\n    summary: {fr: x}\n",
            "rules[0](a).summary",
            "unknown language",
        ),
        (
            "rules:\n  - name: a\n    expr: {metric: m}\n    summary: s\n"
            "  - name: a\n    expr: {metric: m}\n    summary: s\n",
            "rules[1](a)",
            "defined twice",
        ),
        (
            "rules:\n  - name: a\n    expr: {metric: m}\n    summary: s\n    parents: [{rule: ghost}]\n",
            "a.parents[0].rule",
            "no rule 'ghost'",
        ),
        (
            "rules:\n  - name: a\n    expr: {metric: m}\n    summary: s\n    summary: t\n",
            "line 5, column 5",
            "duplicate key 'summary'",
        ),
        ("rules: [\n", "", ""),
    ],
)
def test_a_bad_rule_file_names_file_and_key(text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        build_rules([(text, "site/rules.yaml")])
    err = caught.value
    assert err.file == "site/rules.yaml"
    assert err.key.startswith(key) if key else True, err
    assert message in err.message, err


def test_a_site_rule_replaces_a_shipped_one_and_can_disable_another(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        "rules:\n"
        "  - name: disk_nearly_full\n"
        "    expr: {metric: host_filesystem_used_ratio, op: '>', threshold: 0.95}\n"
        "    summary: '{host} {value_pct}%'\n"
        "  - name: unknown_device\n    enabled: false\n    expr: {metric: m}\n    summary: s\n"
    )
    rules = load_rules(tmp_path)
    disk = rules.get("disk_nearly_full")
    assert disk is not None and disk.rule.expr is not None and disk.rule.expr.threshold == 0.95
    assert disk.file.endswith("site.yaml")
    assert rules.get("unknown_device") is None
    assert rules.get("uplink_down") is not None


def test_a_missing_rules_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="does not exist"):
        load_rules(tmp_path / "nope")


def series(points: list[tuple[int, float]]) -> Series:
    s = Series(1, "m", {"center": "c", "host": "h"})
    for ts, v in points:
        s.add(ts, v)
    return s


def test_reductions() -> None:
    s = series([(0, 1.0), (10_000, 3.0), (20_000, 2.0), (30_000, 5.0)])
    now = 30_000
    r = lambda **kw: reduce_series(s, Expr(metric="m", **kw), now, 60_000)  # noqa: E731
    assert r() == 5.0
    assert r(reduce="avg", window_s=60) == 2.75
    assert r(reduce="max", window_s=15) == 5.0  # 15 s back: the points at 20 s and 30 s
    assert r(reduce="changes", window_s=60) == 3.0
    assert r(reduce="delta", window_s=60) == 4.0
    # a counter reset (3 → 2) counts the new value from zero: 2 + 2 + 3 = 7 over 30 s
    assert r(reduce="rate", window_s=60) == pytest.approx(7 / 30)
    assert r(reduce="absent", window_s=60) == 0.0
    assert reduce_series(s, Expr(metric="m"), 400_000, 60_000) is None  # stale
    assert reduce_series(s, Expr(metric="m", reduce="absent", window_s=10), 400_000, 60_000) == 1.0


def test_a_backfilled_point_lands_in_time_order() -> None:
    s = series([(0, 1.0), (20_000, 3.0)])
    s.add(10_000, 2.0)
    s.add(20_000, 3.0)  # a replay: one point
    assert s.ts == [0, 10_000, 20_000] and s.vals == [1.0, 2.0, 3.0]
