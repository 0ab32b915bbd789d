"""The Markdown report, meant for PR comments and GitHub job summaries.

The document carries strings the report's author does not control: error
messages echo the target's responses, check and scenario names come from
the plan. GitHub renders Markdown and a subset of HTML and notifies anyone
@-mentioned, so every such string goes through `md_escape`; the template is
rendered in Jinja's sandbox because a user may supply their own.

A user template may reuse the bundled one: `{% extends "loadaction/report.md.j2" %}`
and override any of its blocks (headline, budgets, scenarios, checks,
custom_metrics, errors, footer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
from loadaction.metrics.thresholds import format_value
from loadaction.report.results_io import is_violation, select_sink, tally_budgets
from loadaction.report.text import (
    format_duration,
    format_percent,
    metric_columns,
    observed_value,
    threshold_metric,
)

TEMPLATE_NAME = "report.md.j2"
# GitHub caps a comment at 65,536 characters; a flood of distinct errors must
# not push the budgets table out of the comment.
MAX_ERROR_ROWS = 50
MAX_MESSAGE_CHARS = 300

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
    }
)
_SAFE_URL = re.compile(r"https://[^\s<>()\[\]\"'`\\]+")


def md_escape(value: object) -> str:
    """Make `value` render as the literal text it is, on one line: HTML
    specials become entities (no raw HTML), Markdown specials are
    backslash-escaped (no links, emphasis or broken table cells), newlines
    become spaces (no new blocks), and `@` gets a zero-width joiner so
    `@user` pings nobody."""
    return "" if value is None else str(value).translate(_MD_ESCAPES)


def render_markdown(doc: Mapping[str, Any], template: Path | None = None) -> str:
    """Render with the bundled template, or the user's `template` file.

    Mistakes in a user template are the user's to fix, so they come back as
    PlanError naming the file; the bundled template's would be our bug and
    propagate as such.
    """
    context = report_context(doc)
    if template is None:
        return _environment(_bundled_loader()).get_template(TEMPLATE_NAME).render(context)
    loader = ChoiceLoader(
        [FileSystemLoader(template.parent), PrefixLoader({"loadaction": _bundled_loader()})]
    )
    try:
        return _environment(loader).get_template(template.name).render(context)
    except TemplateSyntaxError as exc:
        raise PlanError(
            f"invalid template: {exc.message}", Source(exc.filename or str(template), exc.lineno)
        ) from None
    except TemplateNotFound as exc:
        raise PlanError(f"{template}: template not found: {exc.message}") from None
    except (UndefinedError, SecurityError) as exc:
        raise PlanError(f"{template}: {exc}") from None


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


def report_context(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What templates see. Numbers arrive formatted (the same way as in the
    text summary); strings from the document arrive raw, for `md_escape`.
    `doc` is there too, for templates that want something not laid out here."""
    plan = doc["plan"]
    errors = sorted(doc["errors"], key=lambda e: -e["count"])
    run_url = (doc.get("environment") or {}).get("github_run_url")
    return {
        "doc": doc,
        "version": (doc.get("tool") or {}).get("version", ""),
        "plan": {key: plan.get(key) for key in ("name", "file", "profile", "target")},
        "status": doc["status"],
        "status_reason": doc.get("status_reason") if doc["status"] != "complete" else None,
        "duration": format_duration(doc["duration_s"] * 1000),
        "budgets": tally_budgets(doc),
        "thresholds": [_threshold_row(doc, t) for t in doc["thresholds"]],
        "scenarios": [_scenario_row(doc, s) for s in doc["scenarios"]],
        "checks": [_check_row(c) for c in doc["checks"]],
        "check_groups": any(c.get("group") for c in doc["checks"]),
        "custom_metrics": _custom_metric_rows(doc),
        "errors": [_error_row(e) for e in errors[:MAX_ERROR_ROWS]],
        "errors_hidden": max(len(errors) - MAX_ERROR_ROWS, 0),
        "errors_total": format_value(sum(e["count"] for e in errors)),
        "notices": list(doc.get("notices") or []),
        "run_url": run_url if isinstance(run_url, str) and _SAFE_URL.fullmatch(run_url) else None,
    }


def _threshold_row(doc: Mapping[str, Any], threshold: Mapping[str, Any]) -> dict[str, Any]:
    name, tags = threshold_metric(threshold["metric"])
    scenario = tags.pop("scenario", "all")
    if tags:
        name += "{" + ",".join(f"{k}:{v}" for k, v in tags.items()) + "}"
    return {
        "scenario": scenario,
        "metric": name,
        "expression": threshold["expression"],
        "observed": observed_value(doc, threshold),
        "verdict": threshold["verdict"],
        "optional": bool(threshold.get("optional")),
        "violated": is_violation(threshold),
    }


def _scenario_row(doc: Mapping[str, Any], scenario: Mapping[str, Any]) -> dict[str, Any]:
    """Per-scenario HTTP stats merged from the tag sets, like a sub-metric
    threshold sees them. req/s is over the whole run, as k6's http_reqs rate."""
    tags = {"scenario": scenario["name"]}
    reqs = select_sink(doc, "http_reqs", tags)
    failed = select_sink(doc, "http_req_failed", tags)
    trend = select_sink(doc, "http_req_duration", tags)
    count = reqs.count if isinstance(reqs, CounterSink) else 0.0
    duration_s = doc["duration_s"]
    row: dict[str, Any] = {
        "name": scenario["name"],
        "iterations": format_value(scenario.get("iterations", 0)),
        "requests": format_value(count),
        "req_per_s": format_value(count / duration_s) if duration_s > 0 else None,
        "error_rate": (
            format_percent(failed.rate)
            if isinstance(failed, RateSink) and failed.rate is not None
            else None
        ),
    }
    if isinstance(trend, TrendSink) and trend.count:
        row.update({f"p{q}": format_duration(trend.percentile(q)) for q in (50, 90, 95, 99)})
        row["max"] = format_duration(trend.max())
    else:
        row.update(dict.fromkeys(("p50", "p90", "p95", "p99", "max")))
    return row


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
