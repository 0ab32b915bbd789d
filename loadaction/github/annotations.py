"""Error annotations for violated budgets, failed recoveries and faults left
in place, at the plan line that set them.

A pull request shows them on the diff when the plan is in the repository,
and every run's summary lists them either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loadaction.github import commands
from loadaction.report.chaos import recovery_label, recovery_outcome
from loadaction.report.document import (
    failed_rollbacks,
    is_violation,
    recovery_budgets,
    rollback_failure,
)
from loadaction.report.format import observed_value

BUDGET_TITLE = "Budget exceeded"
RECOVERY_TITLE = "Recovery budget exceeded"
ROLLBACK_TITLE = "Fault not rolled back"


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
        lines.append(_error_at(threshold, message, BUDGET_TITLE, relative))
    return lines


def chaos_errors(doc: Mapping[str, Any], relative: Callable[[str], str]) -> list[str]:
    """One `::error` line per violated recovery budget and per fault whose
    rollback failed, each at the plan line of the budget or the fault."""
    lines = [
        _error_at(budget, f"{recovery_label(budget)}: {recovery_outcome(budget)}",
                  RECOVERY_TITLE, relative)
        for budget in recovery_budgets(doc) if is_violation(budget)
    ]
    lines += [
        _error_at(fault, f"fault {fault['name']} ({fault['kind']}) was not rolled back: "
                  f"{rollback_failure(fault)}; the target may still be degraded",
                  ROLLBACK_TITLE, relative)
        for fault in failed_rollbacks(doc)
    ]
    return lines


def _error_at(item: Mapping[str, Any], message: str, title: str,
              relative: Callable[[str], str]) -> str:
    """An error at `item`'s plan line; without a usable source it is still
    an error in the run's summary, just not on the diff."""
    source = item.get("source") or {}
    file, line = source.get("file"), source.get("line")
    return commands.error(
        message,
        file=relative(file) if isinstance(file, str) and file else None,
        line=line if isinstance(line, int) else None,
        title=title,
    )


def run_error(doc: Mapping[str, Any]) -> str | None:
    """An error for a run that was not carried out to the end (exit 3)."""
    if doc["status"] in ("complete", "aborted"):
        return None
    reason = doc.get("status_reason") or "no reason recorded"
    return commands.error(f"run {doc['status']}: {reason}", title="Run not carried out")
