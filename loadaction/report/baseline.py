"""Comparing a run with a baseline run (another results document, typically
the last scheduled run on the main branch), so a PR shows how far it moved
each number, not only whether a budget still holds."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from loadaction.metrics.thresholds import format_value, parse_selector, parse_threshold
from loadaction.report.format import Formatter, observed_value, threshold_metric

ThresholdKey = tuple[object, object]


def threshold_key(threshold: Mapping[str, Any]) -> ThresholdKey:
    """What makes two runs' thresholds the same budget: the metric selector
    and the expression, compared parsed so that `{name:a,scenario:b}` matches
    `{scenario:b, name:a}` and `p(95) < 500` matches `p(95)<500`. A spelling
    this version cannot parse is compared as written."""
    metric, expression = threshold["metric"], threshold["expression"]
    try:
        metric_key: object = parse_selector(metric)
    except ValueError:
        metric_key = metric.strip()
    try:
        parsed = parse_threshold(expression)
        expression_key: object = (parsed.aggregation, parsed.percentile, parsed.op, parsed.value)
    except ValueError:
        expression_key = expression.strip()
    return metric_key, expression_key


def thresholds_by_key(doc: Mapping[str, Any]) -> dict[ThresholdKey, Mapping[str, Any]]:
    """The first threshold per key: a plan that repeats a budget gets one comparison."""
    found: dict[ThresholdKey, Mapping[str, Any]] = {}
    for threshold in doc["thresholds"]:
        found.setdefault(threshold_key(threshold), threshold)
    return found


def change(before: float, after: float, fmt: Formatter) -> str:
    """`+12.3ms (+4.1%)`: the difference in the value's own unit, and
    relative to the baseline when that is not zero."""
    diff = after - before
    if diff == 0:
        return "±0"
    text = f"{'+' if diff > 0 else '-'}{fmt(abs(diff))}"
    return f"{text} ({diff / before * 100:+.1f}%)" if before else text


def point_change(before: float, after: float) -> str:
    """Rates differ in percentage points: 1% → 2% is `+1 pp`; `+100%` would
    overstate a move that small and is undefined from 0%."""
    diff = after - before
    if diff == 0:
        return "±0"
    return f"{'+' if diff > 0 else '-'}{format_value(abs(diff) * 100)} pp"


def threshold_change(
    doc: Mapping[str, Any], threshold: Mapping[str, Any], before: Mapping[str, Any]
) -> str | None:
    """How `threshold`'s observed value moved from the baseline's `before`,
    in the unit its observed value is shown in; None when either lacks data."""
    after_value, before_value = threshold.get("observed"), before.get("observed")
    if after_value is None or before_value is None:
        return None
    name, _ = threshold_metric(threshold["metric"])
    metric = doc["metrics"].get(name)
    if metric is not None and metric["type"] == "rate":
        return point_change(before_value, after_value)

    def fmt(x: float) -> str:
        return observed_value(doc, {**threshold, "observed": x}) or format_value(x)

    return change(before_value, after_value, fmt)


def baseline_label(baseline: Mapping[str, Any]) -> str:
    """When the baseline ran, to the minute and in UTC where the document
    says its zone; an unreadable time is shown as written."""
    started = str(baseline.get("started_at") or "")
    try:
        moment = datetime.fromisoformat(started)
    except ValueError:
        return started
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
