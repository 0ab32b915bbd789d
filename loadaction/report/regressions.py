"""What every report says about the regression budgets: the headline
("no regression against main (5 runs)", or the regressions by name) and one
row per budget, failed ones first, with the baseline's value (the median of
its runs), this run's, the change, the verdict and the evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadaction.metrics.regressions import parse_regression
from loadaction.metrics.thresholds import format_value
from loadaction.report.format import format_percent, threshold_metric, value_formatter

@dataclass(frozen=True, slots=True)
class RegressionRow:
    metric: str
    expression: str
    baseline: str | None
    value: str | None
    change: str | None
    change_fraction: float | None  # (value - baseline) / baseline, unformatted
    verdict: str
    failed: bool
    evidence: str  # p-value and interval, or what was missing
    reason: str
    source: Mapping[str, Any]


def regressions(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(doc.get("regressions") or ())


def comparison_label(doc: Mapping[str, Any]) -> str | None:
    """`main (5 runs)`; None when the run was not compared with any."""
    baselines = doc.get("baselines")
    if not baselines:
        return None
    runs = baselines["runs"]
    ref = baselines.get("ref")
    count = f"{runs} run{'s' if runs != 1 else ''}"
    return f"{ref} ({count})" if ref else count


def headline(doc: Mapping[str, Any]) -> str | None:
    """The comparison in a few words, for the report's headline; None
    without baselines or regression budgets."""
    label = comparison_label(doc)
    budgets = regressions(doc)
    if label is None or not budgets:
        return None
    against = f"against {label}" if doc["baselines"].get("ref") else f"against the baseline ({label})"
    regressed = [r for r in budgets if r["verdict"] == "regressed"]
    if regressed:
        names = ", ".join(f"{r['metric']} {_change(r) or ''}".strip() for r in regressed)
        return f"{len(regressed)} regression{'s' if len(regressed) != 1 else ''} {against}: {names}"
    failed = [r for r in budgets if r["failed"]]
    if failed:
        return f"insufficient data for {len(failed)} required regression budget" \
               f"{'s' if len(failed) != 1 else ''} {against}"
    return f"no regression {against}"


def _unit(doc: Mapping[str, Any], row: Mapping[str, Any]) -> Any:
    name, _ = threshold_metric(row["metric"])
    metric = doc["metrics"].get(name)
    if metric is not None and metric["type"] == "rate":
        return format_percent
    return value_formatter(metric)


def _change(row: Mapping[str, Any]) -> str | None:
    change = row.get("change")
    if change is None:
        return None
    return f"{change * 100:+.1f}%"


def _evidence(doc: Mapping[str, Any], row: Mapping[str, Any]) -> str:
    parts = []
    interval = row.get("interval")
    if interval:
        fmt = _unit(doc, row)
        parts.append(f"baseline interval {fmt(interval[0])}–{fmt(interval[1])}")
    if row.get("p_value") is not None:
        parts.append(f"p={format_value(row['p_value'])} over {row.get('windows', 0)} windows")
    if not parts:
        parts.append(row.get("reason") or "")
    return ", ".join(parts)


def regression_rows(doc: Mapping[str, Any]) -> list[RegressionRow]:
    rows = []
    for r in regressions(doc):
        fmt = _unit(doc, r)
        try:
            absolute = parse_regression(r["expression"]).absolute
        except ValueError:
            absolute = False
        change = _change(r)
        if absolute and r.get("value") is not None and r.get("baseline_value") is not None:
            change = f"{fmt(r['value'] - r['baseline_value'])}" if r["value"] >= r["baseline_value"] \
                else f"-{fmt(r['baseline_value'] - r['value'])}"
            change = change if change.startswith("-") else f"+{change}"
        rows.append(RegressionRow(
            metric=r["metric"], expression=r["expression"],
            baseline=fmt(r["baseline_value"]) if r.get("baseline_value") is not None else None,
            value=fmt(r["value"]) if r.get("value") is not None else None,
            change=change, change_fraction=r.get("change"),
            verdict=r["verdict"],
            failed=bool(r.get("failed")), evidence=_evidence(doc, r), reason=r.get("reason", ""),
            source=r.get("source") or {}))
    return sorted(rows, key=lambda row: not row.failed)  # failed first, plan order otherwise
