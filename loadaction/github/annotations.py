"""Error annotations for violated budgets, at the plan line that set them.

A pull request shows them on the diff when the plan is in the repository,
and every run's summary lists them either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loadaction.github import commands
from loadaction.report.results_io import is_violation
from loadaction.report.text import observed_value

BUDGET_TITLE = "Budget exceeded"


def budget_errors(doc: Mapping[str, Any], relative: Callable[[str], str]) -> list[str]:
    """One `::error` line per violated threshold; `relative` turns the plan
    file's path into the repository-relative one GitHub wants."""
    lines = []
    for threshold in doc["thresholds"]:
        if not is_violation(threshold):
            continue
        observed = observed_value(doc, threshold)
        seen = f"observed {observed}" if observed is not None else "no data"
        message = f"{threshold['metric']} {threshold['expression']}: {seen}"
        source = threshold.get("source") or {}
        file, line = source.get("file"), source.get("line")
        lines.append(commands.error(
            message,
            file=relative(file) if isinstance(file, str) and file else None,
            line=line if isinstance(line, int) else None,
            title=BUDGET_TITLE,
        ))
    return lines


def run_error(doc: Mapping[str, Any]) -> str | None:
    """An error for a run that was not carried out to the end (exit 3)."""
    if doc["status"] in ("complete", "aborted"):
        return None
    reason = doc.get("status_reason") or "no reason recorded"
    return commands.error(f"run {doc['status']}: {reason}", title="Run not carried out")
