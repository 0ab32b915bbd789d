"""The Markdown report, meant for PR comments and GitHub job summaries.

The document carries strings the report's author does not control: error
messages echo the target's responses, check and scenario names come from
the plan. GitHub renders Markdown and a subset of HTML and notifies anyone
@-mentioned, so every such string goes through `md_escape`; the template is
rendered in Jinja's sandbox because a user may supply their own.

GitHub also caps what it accepts (a comment at 65,536 characters, a job
summary at 1 MiB), and a run with thousands of distinct errors or dozens of
scenarios can exceed that. Cutting the text would leave half a table or an
unclosed <details>, so `render_markdown` shrinks the template's *context*
instead, least important parts first, and renders again until it fits; the
headline and the budgets table go last, with the chaos timeline and the
recovery budgets (budgets too) just before them. A user template that lays
out the same context lists shrinks the same way.

A user template may reuse the bundled one: `{% extends "loadaction/report.md.j2" %}`
and override any of its blocks (headline, budgets, chaos, scenarios, checks,
custom_metrics, charts, scenario_details, errors, notices, truncation, footer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    PrefixLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from loadaction.errors import PlanError, Source
from loadaction.metrics.registry import BUILTIN_METRICS
from loadaction.metrics.sinks import CounterSink, RateSink, TrendSink
from loadaction.metrics.thresholds import format_selector, format_value
from loadaction.report.baseline import (
    baseline_label,
    change,
    point_change,
    threshold_change,
    threshold_key,
    thresholds_by_key,
)
from loadaction.report.chaos import (
    actual_window,
    phase_table,
    planned_window,
    recovery_outcome,
    span,
)
from loadaction.report.chart import fault_chart, scenario_charts
from loadaction.report.results_io import (
    chaos_faults,
    failed_rollbacks,
    is_violation,
    recovery_budgets,
    rollback_failure,
    select_sink,
    tally_budgets,
)
from loadaction.report.text import (
    format_duration,
    format_percent,
    metric_columns,
    observed_value,
    threshold_metric,
)

TEMPLATE_NAME = "report.md.j2"
# Nobody reads past this many kinds of error or request names; results.json has them all.
MAX_ERROR_ROWS = 50
MAX_REQUEST_ROWS = 50
MAX_MESSAGE_CHARS = 300
TRUNCATION_NOTE = "_Details truncated to fit GitHub's limit; the full report is in results.json._"

Context = dict[str, Any]
Renderer = Callable[[Context], str]
Expendable = Callable[[Mapping[str, Any]], bool]


def _rolled_back(row: Mapping[str, Any]) -> bool:
    return row["rollback_error"] is None


def _held(row: Mapping[str, Any]) -> bool:
    return not row["violated"]


# When the report is too long, the <details> blocks and the chaos section's
# per-phase table go first, in this order...
_DETAILS_DROP_ORDER = (
    "errors", "charts", "scenario_details", "fault_charts", "phase_rows", "notices",
)
# ...then table rows, the least important table first. Within a table, rows
# for which the function is true (nothing wrong there) go before the others;
# a step marked True drops only those. The chaos timeline and the recovery
# budgets rank with the budgets, so the rows that show nothing wrong go from
# all three before any row that shows a problem.
_TABLE_SHRINK_ORDER: tuple[tuple[str, Expendable, bool], ...] = (
    ("custom_metrics", lambda row: True, False),
    ("checks", lambda row: bool(row["ok"]), False),
    ("scenarios", lambda row: True, False),
    ("faults", _rolled_back, True),
    ("recoveries", _held, True),
    ("thresholds", _held, True),
    ("faults", _rolled_back, False),
    ("recoveries", _held, False),
    ("thresholds", _held, False),
)

_CONTROL = {chr(c): None for c in (*range(0x20), 0x7F)}
_MD_ESCAPES = str.maketrans(
    {
        **_CONTROL,
        "\t": " ",
        "\n": " ",
        "\r": " ",
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "|": "\\|",
        "~": "\\~",
        "@": "@\u200d",
        "#": "#\u200d",
    }
)
_SAFE_URL = re.compile(r"https://[^\s<>()\[\]\"'`\\]+")


def md_escape(value: object) -> str:
    """Make `value` render as the literal text it is, on one line: HTML
    specials become entities (no raw HTML), Markdown specials are
    backslash-escaped (no links, emphasis or broken table cells), newlines
    become spaces (no new blocks), and `@` and `#` get a zero-width joiner
    so `@user` pings nobody and `#123` or `org/repo#123` does not put a
    cross-reference into someone's issue."""
    return "" if value is None else str(value).translate(_MD_ESCAPES)


def render_markdown(
    doc: Mapping[str, Any],
    *,
    template: Path | None = None,
    baseline: Mapping[str, Any] | None = None,
    max_chars: int | None = None,
) -> str:
    """Render with the bundled template, or the user's `template` file;
    `baseline` (an earlier run's results document) adds how each budget and
    scenario moved; the result is never longer than `max_chars`.

    Mistakes in a user template are the user's to fix, so they come back as
    PlanError naming the file; the bundled template's would be our bug and
    propagate as such.
    """
    return _fit(_renderer(template), report_context(doc, baseline), max_chars)


def _fit(render: Renderer, context: Context, max_chars: int | None) -> str:
    """Render `context`, dropping and shortening its parts in priority order
    until the text is at most `max_chars` long (see the module docstring)."""
    text = render(context)
    if max_chars is None or len(text) <= max_chars:
        return text
    context = {**context, "truncation_note": TRUNCATION_NOTE}
    for key in _DETAILS_DROP_ORDER:
        context = {**context, key: []}
        text = render(context)
        if len(text) <= max_chars:
            return text
    for key, expendable, spare_problems in _TABLE_SHRINK_ORDER:
        context, text = _shrink_table(render, context, key, expendable, spare_problems, max_chars)
        if len(text) <= max_chars:
            return text
    return _cut_lines(text, max_chars)


def _shrink_table(
    render: Renderer,
    context: Context,
    key: str,
    expendable: Expendable,
    spare_problems: bool,
    max_chars: int,
) -> tuple[Context, str]:
    """The most rows of table `key` that fit (by bisection: the text grows
    with the rows), keeping the rows that show a problem longest and the
    kept ones in their order; with no rows at all when even that is too long,
    or with just the rows that show a problem when `spare_problems`."""
    rows: list[Mapping[str, Any]] = context[key]
    ranked = sorted(range(len(rows)), key=lambda i: (expendable(rows[i]), i))
    floor = sum(1 for row in rows if not expendable(row)) if spare_problems else 0
    omitted_before = context.get(f"{key}_omitted", 0)

    def attempt(keep: int) -> tuple[Context, str]:
        kept = [rows[i] for i in sorted(ranked[:keep])]
        shrunk = {**context, key: kept, f"{key}_omitted": omitted_before + len(rows) - keep}
        return shrunk, render(shrunk)

    best = attempt(floor)
    if len(best[1]) > max_chars:
        return best
    fits, too_many = floor, len(rows)  # the caller found all rows too long
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        candidate = attempt(middle)
        if len(candidate[1]) <= max_chars:
            fits, best = middle, candidate
        else:
            too_many = middle
    return best


def _cut_lines(text: str, max_chars: int) -> str:
    """The last resort, for a headline that alone is too long (a tiny limit,
    a huge plan name) or a user template that ignores the shrunk context:
    whole lines while they fit, then the note."""
    note = f"\n{TRUNCATION_NOTE}\n"
    budget = max_chars - len(note)
    if budget <= 0:
        return text[:max_chars]
    kept, used = [], 0
    for line in text.splitlines(keepends=True):
        if used + len(line) > budget:
            break
        kept.append(line)
        used += len(line)
    return "".join(kept) + note


def _renderer(template: Path | None) -> Renderer:
    if template is None:
        return _environment(_bundled_loader()).get_template(TEMPLATE_NAME).render
    env = _environment(
        ChoiceLoader(
            [FileSystemLoader(template.parent), PrefixLoader({"loadaction": _bundled_loader()})]
        )
    )

    def render(context: Context) -> str:
        # Inheritance and includes resolve while rendering, so their errors surface here too.
        try:
            return env.get_template(template.name).render(context)
        except TemplateSyntaxError as exc:
            raise PlanError(
                f"invalid template: {exc.message}",
                Source(exc.filename or str(template), exc.lineno),
            ) from None
        except TemplateNotFound as exc:
            raise PlanError(f"{template}: template not found: {exc.message}") from None
        except (UndefinedError, SecurityError) as exc:
            raise PlanError(f"{template}: {exc}") from None

    return render


def _bundled_loader() -> BaseLoader:
    return PackageLoader("loadaction.report", "templates")


def _environment(loader: BaseLoader) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=loader,
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_escape"] = md_escape
    return env


# ------------------------------------------------------------------ context


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
        "budgets": tally_budgets(doc),
        "baseline": _baseline_info(baseline) if baseline is not None else None,
        "thresholds": _threshold_rows(doc, baseline),
        "thresholds_omitted": 0,
        "scenarios": [_scenario_row(doc, s, baseline) for s in doc["scenarios"]],
        "scenarios_omitted": 0,
        **_chaos_context(doc),
        "checks": [_check_row(c) for c in doc["checks"]],
        "checks_omitted": 0,
        "check_groups": any(c.get("group") for c in doc["checks"]),
        "custom_metrics": _custom_metric_rows(doc),
        "custom_metrics_omitted": 0,
        "charts": scenario_charts(doc),
        "scenario_details": [_scenario_detail(doc, s) for s in doc["scenarios"]],
        "errors": [_error_row(e) for e in errors[:MAX_ERROR_ROWS]],
        "errors_omitted": max(len(errors) - MAX_ERROR_ROWS, 0),
        "errors_total": format_value(sum(e["count"] for e in errors)),
        "notices": list(doc.get("notices") or []),
        "run_url": _run_url(doc),
        "truncation_note": None,
    }


def _run_url(doc: Mapping[str, Any]) -> str | None:
    """Only a plain https URL becomes a link: the document may come from anywhere."""
    url = (doc.get("environment") or {}).get("github_run_url")
    return url if isinstance(url, str) and _SAFE_URL.fullmatch(url) else None


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
    return rows


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


def _chaos_context(doc: Mapping[str, Any]) -> Context:
    """The chaos section's tables; `chaos` says whether the run had faults,
    so the section stays (with its omitted counts) when its rows are shrunk."""
    table = phase_table(doc)
    chart = fault_chart(doc)
    return {
        "chaos": doc.get("chaos") is not None,
        "rollbacks_failed": len(failed_rollbacks(doc)),
        "faults": [_fault_row(f) for f in chaos_faults(doc)],
        "faults_omitted": 0,
        "recoveries": [_recovery_row(r) for r in recovery_budgets(doc)],
        "recoveries_omitted": 0,
        "phase_columns": list(table.phases),
        "phase_rows": [
            {"metric": row.metric, "expression": row.expression,
             "cells": [_phase_cell(doc, cell) for cell in row.cells]}
            for row in table.rows
        ],
        "fault_charts": [chart] if chart is not None else [],
    }


def _fault_row(fault: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": fault["name"],
        "kind": fault["kind"],
        "planned": planned_window(fault),
        "ran": actual_window(fault),
        "start_error": fault.get("start_error"),
        "rollback": fault["rollback"],
        "rollback_error": rollback_failure(fault),
    }


def _recovery_row(budget: Mapping[str, Any]) -> dict[str, Any]:
    recovered = budget["time_to_recover_s"]
    return {
        "fault": budget["fault"],
        "metric": budget["metric"],
        "expression": budget["expression"],
        "within": span(budget["within_s"]),
        "recovered_in": span(recovered) if recovered is not None else None,
        "outcome": recovery_outcome(budget),
        "verdict": budget["verdict"],
        "violated": is_violation(budget),
    }


def _phase_cell(doc: Mapping[str, Any], cell: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """None when the phase got no samples: there is nothing to judge there."""
    if cell is None or cell["verdict"] == "no data":
        return None
    return {"verdict": cell["verdict"], "observed": observed_value(doc, cell)}


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


def _scenario_row(
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


def _scenario_detail(doc: Mapping[str, Any], scenario: Mapping[str, Any]) -> dict[str, Any]:
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
    rows = []
    for name, metric in doc["metrics"].items():
        if name in BUILTIN_METRICS:
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
