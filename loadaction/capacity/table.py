"""The terminal's step table, printed row by row as steps finish, and the
closing line with the capacity and its bracket."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadaction.capacity.step import StepResult

_COLUMNS = (("step", 4), ("rate/s", 9), ("achieved/s", 10), ("p95 ms", 9), ("errors", 7),
            ("dropped", 7), ("verdict", 7))


def table_header() -> str:
    return "  ".join(f"{name:>{width}}" for name, width in _COLUMNS) + "  why"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def step_row(number: int, step: StepResult) -> str:
    cells = (str(number), _num(step.rate, ".1f"), _num(step.achieved_rate, ".1f"),
             _num(step.p95_ms, ".1f"), _num(step.error_rate, ".2%"), str(step.dropped),
             step.verdict.value)
    row = "  ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, _COLUMNS))
    return row + ("  " + "; ".join(step.reasons) if step.reasons else "")


def describe(section: Mapping[str, Any]) -> str:
    """The capacity in one phrase: rate, bracket and what ended the search."""
    low, high = section["bracket"]
    limited = section["limited_by"]
    rate = section["rate"]
    if rate is None:
        found = "no rate passed"
        if high is not None:
            found += f" (lowest failing {high:g}/s)"
    else:
        found = f"{rate:g}/s, bracket [{low:g}, {'-' if high is None else format(high, 'g')})"
    if section["status"] != "complete":
        pass  # a signal or a step that could not be carried out ended it, said below
    elif limited == "generator":
        found += (f"; generator-limited at {section['unknown_rate']:g}/s: the load generator, "
                  f"not the target, could not go on")
    elif limited == "cap":
        found += "; stopped by a safety cap"
    elif limited == "steps":
        found += "; --max-steps ran out before the bracket was narrow enough"
    if section["status"] != "complete":
        found += f" (search {section['status']} after {len(section['steps'])} steps)"
    return found


def result_line(section: Mapping[str, Any], min_rate: float | None) -> str:
    line = f"capacity of {section['scenario']}: {describe(section)}"
    if min_rate is not None:
        rate = section["rate"]
        held = rate is not None and rate >= min_rate
        line += f"\n--min-rate {min_rate:g}/s: {'held' if held else 'NOT held'}"
    return line
