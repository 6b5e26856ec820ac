"""An expression rule over the head: one value per series (``reduce`` over the window), then one
per group of series sharing the ``by`` labels (``agg``). Pure: no I/O, no state.

Each ``Instance`` carries the hosts whose series made it, so the engine can tell "the condition
went away" from "the data stopped coming" (a silent host, an unreachable center).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise

from collector.alerting.head import Head, Series
from collector.alerting.rules import Expr, LoadedRule

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Instance:
    labels: dict[str, str]
    value: float
    hosts: frozenset[tuple[str, str]]  # (center, host) pairs whose series contributed
    #: the series id (a rule without ``by``) or the group's label values
    key: object = None


def holds(op: str, value: float, threshold: float) -> bool:
    return OPS[op](value, threshold)


def reduce_series(s: Series, expr: Expr, now_ms: int, stale_ms: int) -> float | None:
    """The series' value for the rule at ``now_ms``; None when it has nothing to say."""
    kind = expr.reduce
    if kind == "last":
        point = s.last(now_ms)
        if point is None or point[0] < now_ms - stale_ms:
            return None
        return point[1]
    start = now_ms - int(expr.window_s * 1000)
    ts, vals = s.window(start, now_ms)
    if kind == "absent":
        return 0.0 if ts else 1.0
    if not vals:
        return None
    if kind == "avg":
        return sum(vals) / len(vals)
    if kind == "min":
        return min(vals)
    if kind == "max":
        return max(vals)
    if kind == "sum":
        return sum(vals)
    if kind == "count":
        return float(len(vals))
    if kind == "delta":
        return vals[-1] - vals[0]
    if kind == "changes":
        return float(sum(1 for a, b in pairwise(vals) if a != b))
    # rate: a counter's increase per second, a reset counted from zero (as Prometheus does)
    if len(vals) < 2 or ts[-1] <= ts[0]:
        return None
    increase = 0.0
    for a, b in pairwise(vals):
        increase += b - a if b >= a else b
    return increase / ((ts[-1] - ts[0]) / 1000)


def _aggregate(agg: str, values: list[float]) -> float:
    if agg == "max":
        return max(values)
    if agg == "min":
        return min(values)
    if agg == "sum":
        return sum(values)
    if agg == "avg":
        return sum(values) / len(values)
    return float(len(values))


Want = Callable[[float, Mapping[str, str]], bool]


def evaluate(
    rule: LoadedRule,
    head: Head,
    now_ms: int,
    stale_ms: int,
    want: Want | None = None,
    among: Iterable[Series] | None = None,
) -> list[Instance]:
    """The instances of an expression rule with their values; with ``want``, only those it accepts
    (the engine passes its threshold test, so the many healthy series cost no object); with
    ``among``, over those series only (a rule without ``by``: the series that changed)."""
    expr = rule.rule.expr
    assert expr is not None
    selected: Iterable[Series] = head.select(expr.metric, expr.match, dict(rule.match_re), among)
    if expr.by is None:
        out = []
        for s in selected:
            value = reduce_series(s, expr, now_ms, stale_ms)
            if value is not None and (want is None or want(value, s.labels)):
                out.append(Instance(dict(s.labels), value, frozenset({(s.center, s.host)}), s.id))
        return out
    groups: dict[tuple[str, ...], tuple[list[float], set[tuple[str, str]]]] = {}
    for s in selected:
        value = reduce_series(s, expr, now_ms, stale_ms)
        if value is None:
            continue
        key = tuple(s.labels.get(b, "") for b in expr.by)
        values, hosts = groups.setdefault(key, ([], set()))
        values.append(value)
        hosts.add((s.center, s.host))
    out = []
    for key, (values, hosts) in groups.items():
        labels = dict(zip(expr.by, key, strict=True))
        value = _aggregate(expr.agg, values)
        if want is None or want(value, labels):
            out.append(Instance(labels, value, frozenset(hosts), key))
    return out
