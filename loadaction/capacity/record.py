"""The `capacity` object of results.json (docs/results-schema.md): what the
search established and every step's observed values. results/build.py puts
it into the document it builds for the chosen step, so masking and the
schema apply to it like to everything else."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadaction.capacity.search import SearchResult
from loadaction.capacity.step import StepResult, observed_budgets


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def step_record(step: StepResult) -> dict[str, Any]:
    return {
        "rate": _round(step.rate),
        "achieved_rate": _round(step.achieved_rate),
        "duration_s": _round(step.duration_s),
        "verdict": step.verdict.value,
        "reasons": list(step.reasons),
        "p95_ms": _round(step.p95_ms),
        "error_rate": _round(step.error_rate, 5),
        "dropped_iterations": step.dropped,
        "request_rate": _round(step.request_rate),
        "start_lateness_p95_ms": _round(step.lateness_p95_ms),
        "cpu_share": _round(step.cpu_share),
        "budgets": observed_budgets(step),
    }


def capacity_section(result: SearchResult, steps: Sequence[StepResult], *, scenario: str,
                     status: str, unknown_rate: float | None) -> dict[str, Any]:
    """`status`: complete, cancelled (SIGINT/SIGTERM: the steps so far) or
    failed (a step could not be carried out)."""
    return {
        "scenario": scenario,
        "rate": _round(result.rate),
        "bracket": [_round(result.passed), _round(result.failed)],
        "limited_by": result.limited_by.value,
        "unknown_rate": _round(unknown_rate),
        "status": status,
        "steps": [step_record(step) for step in steps],
    }
