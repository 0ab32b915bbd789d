"""The chaos section of the Markdown report's context: faults with their
planned and actual windows, recovery budgets, thresholds by phase, and the
fault-marked p95 chart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadaction.report.chaos import (
    actual_window,
    phase_table,
    planned_window,
    recovery_outcome,
    rolled_back_at,
    span,
)
from loadaction.report.chart import fault_chart
from loadaction.report.document import (
    chaos_faults,
    failed_rollbacks,
    is_violation,
    recovery_budgets,
    rollback_failure,
)
from loadaction.report.format import observed_value
from loadaction.report.markdown.fit import Context


def chaos_context(doc: Mapping[str, Any]) -> Context:
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
        "rolled_back_at": rolled_back_at(fault),
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
