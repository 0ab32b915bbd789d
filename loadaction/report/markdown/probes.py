"""The Probes block of the Markdown report's context: each probe's samples
and errors, a table of the probe metrics (last, min, max, avg, slope per
minute), the postgres probes' top statements, and a chart per probe series.

A reviewer asks "did the server hold up?" without opening results.json:
a probe that only failed shows as errors, never as an empty table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadaction.metrics.thresholds import format_selector, format_value
from loadaction.report.chart import probe_charts
from loadaction.report.format import format_duration

MAX_METRIC_ROWS = 40
MAX_STATEMENT_ROWS = 10


def _number(value: float | None) -> str | None:
    return None if value is None else format_value(value)


def probes_context(doc: Mapping[str, Any]) -> dict[str, Any]:
    section = doc.get("probes") or {}
    probes = section.get("probes") or []
    return {
        "probes": [_probe_row(p) for p in probes],
        "probes_omitted": 0,
        "probe_metrics": _metric_rows(doc, section)[:MAX_METRIC_ROWS],
        "probe_metrics_omitted": 0,
        "probe_statements": [_statement_row(s) for s in
                             (section.get("statements") or [])[:MAX_STATEMENT_ROWS]],
        "probe_statements_omitted": 0,
        "probe_charts": probe_charts(doc),
    }


def _probe_row(probe: Mapping[str, Any]) -> dict[str, Any]:
    kinds = ", ".join(f"{kind} {format_value(n)}"
                      for kind, n in sorted((probe.get("errors_by_kind") or {}).items()))
    return {
        "name": probe["name"],
        "kind": probe["kind"],
        "interval": format_duration(probe["interval_s"] * 1000),
        "enabled": bool(probe.get("enabled", True)),
        "samples": format_value(probe["samples"]),
        "errors": format_value(probe["errors"]),
        "errors_by_kind": kinds,
        "last_error": probe.get("last_error"),
        "ok": not probe["errors"] and (probe["samples"] or not probe.get("enabled", True)),
    }


def _metric_rows(doc: Mapping[str, Any], section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per probe series (metric and tag set), in the order first
    sampled; per-query series are the statements table's, not rows here (the
    top N changes over a run, so there are many)."""
    seen = dict.fromkeys(s["metric"] for s in section.get("series") or [])
    rows = []
    for metric in seen:
        entry = doc["metrics"].get(metric) or {}
        for part in entry.get("by_tags") or []:
            sink = part["sink"]
            if not sink.get("count") or "query" in part["tags"]:
                continue
            rows.append({
                "metric": format_selector(metric, sorted(part["tags"].items())),
                "last": _number(sink.get("last", sink.get("value"))),
                "min": _number(sink.get("min")),
                "max": _number(sink.get("max")),
                "avg": _number(sink.get("avg")),
                "slope": _number(sink.get("slope")),
            })
    return rows


def _statement_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "probe": row["probe"],
        "queryid": row["queryid"],
        "query": row["query"],
        "calls": format_value(row["calls"]),
        "total": format_duration(row["total_ms"]),
        "mean": format_duration(row["mean_ms"]) if row.get("mean_ms") is not None else None,
        "max": format_duration(row["max_ms"]) if row.get("max_ms") is not None else None,
    }
