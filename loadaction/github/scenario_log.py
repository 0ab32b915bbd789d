"""Each scenario's log as a collapsible `::group::` of the step's log.

Scenarios may run at the same time, so the live progress lines cannot be
split by scenario while they are printed; this log is rebuilt afterwards
from the results document: the per-second series over the scenario's own
window, from its first to its last second with samples (the series has a
point for every second of the run, running or not), folded into at most
MAX_LINES windows; then the scenario's budgets, checks and errors. Every line
starts with fixed text, so nothing from the target or the plan can begin a
line and be read by the runner as a workflow command.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from loadaction.github import commands
from loadaction.metrics.thresholds import format_value
from loadaction.report.chart import own_window
from loadaction.report.document import is_violation
from loadaction.report.format import (
    FAIL,
    PASS,
    clean,
    format_duration,
    observed_value,
    threshold_metric,
)

MAX_LINES = 60


def scenario_groups(doc: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for scenario in doc["scenarios"]:
        lines.append(commands.group(_title(scenario)))
        lines.extend(_log(doc, scenario["name"]))
        lines.append(commands.endgroup())
    return lines


def _title(s: Mapping[str, Any]) -> str:
    return (f"Scenario {clean(s['name'])}: {clean(s.get('executor', ''))}, "
            f"{format_value(s.get('iterations', 0))} iterations, "
            f"{format_value(s.get('interrupted_iterations', 0))} interrupted, "
            f"{format_value(s.get('dropped_iterations', 0))} dropped, "
            f"{format_value(s.get('vus_max', 0))} max VUs")


def _log(doc: Mapping[str, Any], name: str) -> list[str]:
    series = ((doc.get("series") or {}).get("scenarios") or {}).get(name) or []
    _, window = own_window(series)
    lines = [_window_line(w) for w in fold(window, MAX_LINES)]
    if not lines:
        lines.append("t=-  no per-second samples")
    for t in doc["thresholds"]:
        _, tags = threshold_metric(t["metric"])
        if tags.get("scenario") != name:
            continue
        mark = FAIL if is_violation(t) else PASS
        observed = observed_value(doc, t)
        lines.append(f"budget {mark} {clean(t['metric'])} {clean(t['expression'])}: "
                     f"{'observed ' + observed if observed is not None else 'no data'}")
    for c in doc["checks"]:
        if c.get("scenario") == name:
            mark = PASS if not c["fails"] else FAIL
            lines.append(f"check {mark} {clean(c['name'])}: {format_value(c['passes'])} passed, "
                         f"{format_value(c['fails'])} failed")
    for e in doc["errors"]:
        if e.get("scenario") == name:
            lines.append(f"error {format_value(e['count'])}x {clean(e['message'])}")
    return lines


def fold(points: Sequence[Mapping[str, Any]], max_lines: int) -> list[dict[str, Any]]:
    """Consecutive seconds merged into windows: counts add up, VUs and p95
    keep the window's highest (the worst second shows, not an average)."""
    if not points:
        return []
    size = max(math.ceil(len(points) / max_lines), 1)
    windows = []
    for start in range(0, len(points), size):
        chunk = points[start:start + size]
        p95s = [p["p95"] for p in chunk if p.get("p95") is not None]
        windows.append({
            "t": chunk[-1]["t"],
            "reqs": sum(p.get("reqs", 0) for p in chunk),
            "failed": sum(p.get("failed", 0) for p in chunk),
            "iterations": sum(p.get("iterations", 0) for p in chunk),
            "vus": max(p.get("vus", 0) for p in chunk),
            "p95": max(p95s) if p95s else None,
        })
    return windows


def _window_line(w: Mapping[str, Any]) -> str:
    p95 = format_duration(w["p95"]) if w["p95"] is not None else "-"
    return (f"t={w['t']:g}s  reqs={format_value(w['reqs'])}  failed={format_value(w['failed'])}"
            f"  iterations={format_value(w['iterations'])}  vus={format_value(w['vus'])}"
            f"  p95={p95}")
