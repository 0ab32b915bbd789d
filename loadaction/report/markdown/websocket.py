"""The WebSocket and realtime tables of the Markdown report's context.

The terminal summary lists every metric, but a PR comment shows only what
a reviewer acts on: per session, whether it connected, stayed up and kept
its heartbeat; per subscription, how late updates arrived and how many never
did. Both are merged from the document's tag sets, like a sub-metric
threshold sees them (`ws_ping{scenario:a,name:realtime}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadaction.metrics.sinks import CounterSink, TrendSink
from loadaction.metrics.thresholds import format_value
from loadaction.report.document import select_sink
from loadaction.report.format import format_duration, format_percent


def _names(doc: Mapping[str, Any], metric: str) -> list[tuple[str, str]]:
    """(scenario, name) pairs with samples of `metric`, in document order."""
    entry = doc["metrics"].get(metric) or {}
    pairs: dict[tuple[str, str], None] = {}
    for part in entry.get("by_tags", ()):
        tags = part["tags"]
        pairs.setdefault((tags.get("scenario", ""), tags.get("name", "")))
    return list(pairs)


def _count(doc: Mapping[str, Any], metric: str, tags: Mapping[str, str]) -> float:
    sink = select_sink(doc, metric, tags)
    return sink.count if isinstance(sink, CounterSink) else 0.0


def _trend(doc: Mapping[str, Any], metric: str, tags: Mapping[str, str]) -> TrendSink | None:
    sink = select_sink(doc, metric, tags)
    return sink if isinstance(sink, TrendSink) and sink.count else None


def _p95(trend: TrendSink | None) -> str | None:
    return format_duration(trend.percentile(95)) if trend is not None else None


def websocket_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (scenario, session name) that started sessions."""
    rows = []
    for scenario, name in _names(doc, "ws_sessions"):
        tags = {"scenario": scenario, "name": name}
        errors = _count(doc, "ws_errors", tags)
        rows.append({
            "scenario": scenario,
            "name": name,
            "sessions": format_value(_count(doc, "ws_sessions", tags)),
            "errors": format_value(errors),
            "sent": format_value(_count(doc, "ws_msgs_sent", tags)),
            "received": format_value(_count(doc, "ws_msgs_received", tags)),
            "connecting_p95": _p95(_trend(doc, "ws_connecting", tags)),
            "ping_p95": _p95(_trend(doc, "ws_ping", tags)),
            "heartbeat_p95": _p95(_trend(doc, "ws_heartbeat_duration", tags)),
            "ok": errors == 0,
        })
    return rows


def realtime_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (scenario, subscription): updates received and their
    latency, and how many a subscriber never received within its deadline
    (`realtime_updates_missed` counts 1 per miss, 0 per update received)."""
    pairs = dict.fromkeys(_names(doc, "realtime_update_latency")
                          + _names(doc, "realtime_updates_missed"))
    rows = []
    for scenario, name in pairs:
        tags = {"scenario": scenario, "name": name}
        latency = _trend(doc, "realtime_update_latency", tags)
        counted = select_sink(doc, "realtime_updates_missed", tags) is not None
        missed = _count(doc, "realtime_updates_missed", tags)
        received = latency.count if latency is not None else 0
        quantiles = latency.percentiles((50, 95, 99)) if latency is not None else (None,) * 3
        rows.append({
            "scenario": scenario,
            "name": name,
            "received": format_value(received),
            "p50": format_duration(quantiles[0]) if quantiles[0] is not None else None,
            "p95": format_duration(quantiles[1]) if quantiles[1] is not None else None,
            "p99": format_duration(quantiles[2]) if quantiles[2] is not None else None,
            "max": format_duration(latency.max()) if latency is not None else None,
            # timestamp-matched subscriptions (writer outside the run) count no misses
            "missed": format_value(missed) if counted else None,
            "missed_share": (format_percent(missed / (received + missed))
                             if counted and received + missed else None),
            "ok": missed == 0,
        })
    return rows
