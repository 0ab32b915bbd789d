"""The scenario rows and per-scenario details of the Markdown report's
context: HTTP requests, error rate and latency merged from the tag sets of
the results document, and how each moved against a baseline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadaction.metrics.sinks import CounterSink, RateSink, TrendSink
from loadaction.metrics.thresholds import format_value
from loadaction.report.baseline import change, point_change
from loadaction.report.document import select_sink
from loadaction.report.format import format_duration, format_percent

# Nobody reads past this many request names; results.json has them all.
MAX_REQUEST_ROWS = 50


@dataclass(frozen=True, slots=True)
class _HttpStats:
    """HTTP requests matching some tags, merged across their tag sets."""

    requests: float
    error_rate: float | None
    durations: TrendSink | None  # None when no request was timed


def _http_stats(doc: Mapping[str, Any], tags: Mapping[str, str]) -> _HttpStats:
    reqs = select_sink(doc, "http_reqs", tags)
    failed = select_sink(doc, "http_req_failed", tags)
    trend = select_sink(doc, "http_req_duration", tags)
    return _HttpStats(
        reqs.count if isinstance(reqs, CounterSink) else 0.0,
        failed.rate if isinstance(failed, RateSink) else None,
        trend if isinstance(trend, TrendSink) and trend.count else None,
    )


def _latency_columns(durations: TrendSink | None) -> dict[str, str | None]:
    if durations is None:
        return dict.fromkeys(("p50", "p90", "p95", "p99", "max"))
    quantiles = durations.percentiles((50, 90, 95, 99))
    columns: dict[str, str | None] = {
        f"p{q}": format_duration(v) for q, v in zip((50, 90, 95, 99), quantiles)
    }
    columns["max"] = format_duration(durations.max())
    return columns


def scenario_row(
    doc: Mapping[str, Any], scenario: Mapping[str, Any], baseline: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Per-scenario HTTP stats merged from the tag sets, like a sub-metric
    threshold sees them. req/s is over the whole run, as k6's http_reqs rate."""
    tags = {"scenario": scenario["name"]}
    stats = _http_stats(doc, tags)
    duration_s = doc["duration_s"]
    row: dict[str, Any] = {
        "name": scenario["name"],
        "iterations": format_value(scenario.get("iterations", 0)),
        "requests": format_value(stats.requests),
        "req_per_s": format_value(stats.requests / duration_s) if duration_s > 0 else None,
        "error_rate": format_percent(stats.error_rate) if stats.error_rate is not None else None,
        **_latency_columns(stats.durations),
        "p95_delta": None,
        "error_rate_delta": None,
    }
    if baseline is not None:
        before = _http_stats(baseline, tags)
        if stats.durations is not None and before.durations is not None:
            row["p95_delta"] = change(
                before.durations.percentile(95), stats.durations.percentile(95), format_duration
            )
        if stats.error_rate is not None and before.error_rate is not None:
            row["error_rate_delta"] = point_change(before.error_rate, stats.error_rate)
    return row


def scenario_detail(doc: Mapping[str, Any], scenario: Mapping[str, Any]) -> dict[str, Any]:
    """How the scenario was run, and its requests by `name` tag (the busiest
    first), which is where a slow or failing endpoint shows."""
    name = scenario["name"]
    names = _request_names(doc, name)
    requests = []
    for request_name in names:
        stats = _http_stats(doc, {"scenario": name, "name": request_name})
        requests.append(
            {
                "name": request_name,
                "count": stats.requests,
                "requests": format_value(stats.requests),
                "error_rate": (
                    format_percent(stats.error_rate) if stats.error_rate is not None else None
                ),
                **_latency_columns(stats.durations),
            }
        )
    requests.sort(key=lambda r: -r["count"])

    def seconds(key: str) -> str | None:
        value = scenario.get(key)
        return format_duration(value * 1000) if value is not None else None

    return {
        "name": name,
        "executor": scenario.get("executor") or "",
        "exec": scenario.get("exec") or "",
        "start_time": seconds("start_time_s"),
        "planned_duration": seconds("planned_duration_s"),
        "graceful_stop": seconds("graceful_stop_s"),
        "iterations": format_value(scenario.get("iterations", 0)),
        "interrupted_iterations": format_value(scenario.get("interrupted_iterations", 0)),
        "dropped_iterations": format_value(scenario.get("dropped_iterations", 0)),
        "vus_max": format_value(scenario.get("vus_max", 0)),
        "requests": requests[:MAX_REQUEST_ROWS],
        "requests_omitted": max(len(requests) - MAX_REQUEST_ROWS, 0),
    }


def _request_names(doc: Mapping[str, Any], scenario: str) -> list[str]:
    entry = doc["metrics"].get("http_reqs") or {}
    names: dict[str, None] = {}
    for part in entry.get("by_tags", ()):
        tags = part["tags"]
        if tags.get("scenario") == scenario and "name" in tags:
            names.setdefault(tags["name"])
    return list(names)
