"""How every report words a run's `chaos` section (docs/results-schema.md).

The terminal summary, the Markdown report, JUnit and the GitHub annotations
each show the same faults and recovery budgets; wording them once here keeps
a fault's window or a budget's outcome reading the same wherever one looks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadaction.metrics.thresholds import format_value
from loadaction.report.document import chaos_faults

Window = tuple[float, float]


def run_time(seconds: float) -> str:
    """A moment of the run, `20.0s`: tenths, as precise as faults are scheduled."""
    return f"{seconds:.1f}s"


def span(value: float) -> str:
    """A span in seconds whatever its size (`1.7s`, `30s`), so a time to
    recover compares by eye with the budget's `within`."""
    return f"{format_value(value)}s"


def planned_window(fault: Mapping[str, Any]) -> str:
    """`20.0s–35.0s` in run time: [planned_at_s, planned_end_s), the end
    being the planned start plus the duration in documents that predate
    `planned_end_s`. A fault whose start was never scheduled (its anchor
    scenario never started, or the run ended first) has only its offset,
    from its anchor's start when it has one."""
    at, duration = fault["planned_at_s"], fault["duration_s"]
    if at is not None:
        end = fault.get("planned_end_s")
        return f"{run_time(at)}–{run_time(end if end is not None else at + duration)}"
    offset = fault.get("at_s") or 0.0
    window = f"{run_time(offset)}–{run_time(offset + duration)}"
    return f"{window} after {fault['anchor']} started" if fault.get("anchor") else window


def actual_window(fault: Mapping[str, Any]) -> str | None:
    """When the fault was in force, [started_at_s, ended_at_s): from its start
    action's success to its planned end, or to the stop that ended it early
    (said when the document has the planned end to tell). None when it never
    started; a fault with no end was never rolled back: it is still in force."""
    started, ended = fault["started_at_s"], fault["ended_at_s"]
    if started is None:
        return None
    if ended is None:
        return f"{run_time(started)}–still active"
    window = f"{run_time(started)}–{run_time(ended)}"
    planned_end = fault.get("planned_end_s")
    if planned_end is not None and run_time(ended) != run_time(planned_end) and ended < planned_end:
        window += " (stopped early)"
    return window


def rolled_back_at(fault: Mapping[str, Any]) -> str | None:
    """When the rollback ended, `35.1s`; None when the document does not say
    (no start was attempted, or a document that predates `rolled_back_at_s`)."""
    moment = fault.get("rolled_back_at_s")
    return run_time(moment) if moment is not None else None


def windows_text(fault: Mapping[str, Any]) -> str:
    """`planned 20.0s–35.0s, ran 20.0s–35.0s`: both windows in one phrase."""
    ran = actual_window(fault)
    return f"planned {planned_window(fault)}, {f'ran {ran}' if ran else 'not started'}"


def fault_windows(doc: Mapping[str, Any]) -> list[Window]:
    """The run-time spans faults were in force, to mark on charts; a fault
    that never ended counts as in force to the end of the run."""
    return [
        (f["started_at_s"], f["ended_at_s"] if f["ended_at_s"] is not None else doc["duration_s"])
        for f in chaos_faults(doc)
        if f["started_at_s"] is not None
    ]


def recovery_label(budget: Mapping[str, Any]) -> str:
    """`recovery after slow-target: http_req_duration p(95)<500 within 30s`."""
    return (f"recovery after {budget['fault']}: {budget['metric']} {budget['expression']} "
            f"within {span(budget['within_s'])}")


def recovery_outcome(budget: Mapping[str, Any]) -> str:
    """What happened, worded for a failure message as much as for a pass:
    recovering late is told apart from never recovering."""
    recovered = budget["time_to_recover_s"]
    if recovered is not None:
        text = f"recovered in {span(recovered)}"
        return text if budget["verdict"] == "pass" else f"{text}, too late"
    return "no data" if budget["verdict"] == "no data" else "not recovered"


@dataclass(frozen=True, slots=True)
class PhaseRow:
    """One plan threshold judged in each phase; a cell is the document's
    `chaos.phases` entry (with its verdict and observed value), None when that
    phase was not judged."""

    metric: str
    expression: str
    cells: tuple[Mapping[str, Any] | None, ...]


@dataclass(frozen=True, slots=True)
class PhaseTable:
    phases: tuple[str, ...]
    rows: tuple[PhaseRow, ...]


def phase_table(doc: Mapping[str, Any]) -> PhaseTable:
    """Thresholds by phase, both in the order the document first names them
    (the engine writes `before`, then `during:` and `after:` each fault)."""
    entries = (doc.get("chaos") or {}).get("phases", ())
    phases = tuple(dict.fromkeys(e["phase"] for e in entries))
    by_threshold: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for entry in entries:
        by_threshold.setdefault((entry["metric"], entry["expression"]), {})[entry["phase"]] = entry
    rows = tuple(
        PhaseRow(metric, expression, tuple(cells.get(phase) for phase in phases))
        for (metric, expression), cells in by_threshold.items()
    )
    return PhaseTable(phases, rows)
