"""What the Markdown report's template sees (`report_context`): numbers
arrive formatted, the same way as in the terminal summary; strings from the
documents arrive raw, for the template's `md_escape`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadaction.metrics.registry import BUILTIN_METRICS
from loadaction.metrics.thresholds import format_selector, format_value
from loadaction.report.baseline import (
    baseline_label,
    threshold_change,
    threshold_key,
    thresholds_by_key,
)
from loadaction.report.chart import scenario_charts
from loadaction.report.document import is_violation, partial_merge, tally_budgets
from loadaction.report.format import (
    format_duration,
    format_percent,
    metric_columns,
    observed_value,
    threshold_metric,
)
from loadaction.report.markdown.capacity import capacity_context
from loadaction.report.markdown.chaos import chaos_context
from loadaction.report.markdown.escape import safe_url
from loadaction.report.markdown.fit import Context
from loadaction.report.markdown.probes import probes_context
from loadaction.report.markdown.scenarios import scenario_detail, scenario_row
from loadaction.report.markdown.websocket import realtime_rows, websocket_rows
from loadaction.report.regressions import (
    RegressionRow,
    comparison_label,
    headline,
    regression_rows,
)
from loadaction.report.shard import processes, shard_label

# Nobody reads past this many kinds of error; results.json has them all.
MAX_ERROR_ROWS = 50
MAX_MESSAGE_CHARS = 300


def report_context(doc: Mapping[str, Any], baseline: Mapping[str, Any] | None = None) -> Context:
    """What templates see. Numbers arrive formatted (the same way as in the
    text summary); strings from the documents arrive raw, for `md_escape`.
    Each table is a list of rows with a `<name>_omitted` count beside it;
    `doc` and `baseline_doc` are there too, for templates that want more."""
    plan = doc["plan"]
    errors = sorted(doc["errors"], key=lambda e: -e["count"])
    return {
        "doc": doc,
        "baseline_doc": baseline,
        "version": (doc.get("tool") or {}).get("version", ""),
        "plan": {key: plan.get(key) for key in ("name", "file", "profile", "target")},
        "status": doc["status"],
        "status_reason": doc.get("status_reason") if doc["status"] != "complete" else None,
        "duration": format_duration(doc["duration_s"] * 1000),
        "shard": shard_label(doc),
        "processes": processes(doc),
        "budgets": tally_budgets(doc),
        "partial_merge": partial_merge(doc),
        "baseline": _baseline_info(baseline) if baseline is not None else None,
        "thresholds": _threshold_rows(doc, baseline),
        "thresholds_omitted": 0,
        "comparison": headline(doc),
        "regressions_against": comparison_label(doc),
        "regressions": [_regression_row(row) for row in regression_rows(doc)],
        "regressions_omitted": 0,
        "scenarios": [scenario_row(doc, s, baseline) for s in doc["scenarios"]],
        "scenarios_omitted": 0,
        "websockets": websocket_rows(doc),
        "websockets_omitted": 0,
        "realtime": realtime_rows(doc),
        "realtime_omitted": 0,
        **chaos_context(doc),
        **probes_context(doc),
        **capacity_context(doc),
        "checks": [_check_row(c) for c in doc["checks"]],
        "checks_omitted": 0,
        "check_groups": any(c.get("group") for c in doc["checks"]),
        "custom_metrics": _custom_metric_rows(doc),
        "custom_metrics_omitted": 0,
        "charts": scenario_charts(doc),
        "scenario_details": [scenario_detail(doc, s) for s in doc["scenarios"]],
        "errors": [_error_row(e) for e in errors[:MAX_ERROR_ROWS]],
        "errors_omitted": max(len(errors) - MAX_ERROR_ROWS, 0),
        "errors_total": format_value(sum(e["count"] for e in errors)),
        "notices": list(doc.get("notices") or []),
        "run_url": _run_url(doc),
        "truncation_note": None,
    }


def _run_url(doc: Mapping[str, Any]) -> str | None:
    return safe_url((doc.get("environment") or {}).get("github_run_url"))


def _baseline_info(baseline: Mapping[str, Any]) -> dict[str, Any]:
    return {"label": baseline_label(baseline), "run_url": _run_url(baseline)}


def _threshold_rows(
    doc: Mapping[str, Any], baseline: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    before = thresholds_by_key(baseline) if baseline is not None else {}
    rows = []
    for threshold in doc["thresholds"]:
        row = _threshold_row(doc, threshold)
        match = before.get(threshold_key(threshold))
        if baseline is not None and match is not None:
            row["baseline"] = observed_value(baseline, match) or "no data"
            row["delta"] = threshold_change(doc, threshold, match)
        rows.append(row)
    return sorted(rows, key=lambda row: not row["violated"])  # violated first, else plan order


def _regression_row(row: RegressionRow) -> dict[str, Any]:
    return {"metric": row.metric, "expression": row.expression, "baseline": row.baseline,
            "value": row.value, "change": row.change, "verdict": row.verdict,
            "violated": row.failed, "evidence": row.evidence}


def _threshold_row(doc: Mapping[str, Any], threshold: Mapping[str, Any]) -> dict[str, Any]:
    name, tags = threshold_metric(threshold["metric"])
    scenario = tags.pop("scenario", "all")
    name = format_selector(name, tags.items())
    return {
        "scenario": scenario,
        "metric": name,
        "expression": threshold["expression"],
        "observed": observed_value(doc, threshold),
        "verdict": threshold["verdict"],
        "optional": bool(threshold.get("optional")),
        "violated": is_violation(threshold),
        "baseline": None,
        "delta": None,
    }


def _check_row(check: Mapping[str, Any]) -> dict[str, Any]:
    passes, fails = check["passes"], check["fails"]
    total = passes + fails
    return {
        "name": check["name"],
        "scenario": check.get("scenario") or "",
        "group": check.get("group") or "",
        "passes": format_value(passes),
        "fails": format_value(fails),
        "pass_rate": format_percent(passes / total) if total else None,
        "ok": fails == 0,
    }


def _custom_metric_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    probes = doc.get("probes") or {}  # probe metrics have their own table in the Probes block
    by_probes = {s["metric"] for s in probes.get("series") or []} | (
        {"probe_errors"} if probes else set())
    rows = []
    for name, metric in doc["metrics"].items():
        if name in BUILTIN_METRICS or name in by_probes:
            continue
        columns = metric_columns(metric, metric["total"], doc["duration_s"])
        value = " ".join(columns) if columns else None
        rows.append({"name": name, "type": metric["type"], "value": value})
    return rows


def _error_row(error: Mapping[str, Any]) -> dict[str, Any]:
    message = error["message"]
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    first_seen = error.get("first_seen_s")
    return {
        "count": format_value(error["count"]),
        "message": message,
        "scenario": error.get("scenario") or "",
        "first_seen": format_duration(first_seen * 1000) if first_seen is not None else None,
    }
