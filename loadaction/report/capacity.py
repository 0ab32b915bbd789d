"""The capacity search in plain text, from the results document's `capacity`
object: the step table (printed row by row by `loadaction capacity` as steps
finish, and again by `loadaction report`) and the one-phrase answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_COLUMNS = (("step", 4), ("rate/s", 9), ("achieved/s", 10), ("p95 ms", 9), ("errors", 7),
            ("dropped", 7), ("verdict", 7))


def step_header() -> str:
    return "  ".join(f"{name:>{width}}" for name, width in _COLUMNS) + "  why"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def step_line(number: int, step: Mapping[str, Any]) -> str:
    """One step of the `capacity.steps` list."""
    cells = (str(number), _num(step["rate"], ".1f"), _num(step["achieved_rate"], ".1f"),
             _num(step["p95_ms"], ".1f"), _num(step["error_rate"], ".2%"),
             str(step["dropped_iterations"]), step["verdict"])
    row = "  ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, _COLUMNS))
    reasons = step.get("reasons") or ()
    return row + ("  " + "; ".join(reasons) if reasons else "")


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
    if section["status"] != "complete":  # a signal or a step that could not be carried out
        return found + f" (search {section['status']} after {len(section['steps'])} steps)"
    if limited == "generator":
        found += (f"; generator-limited at {section['unknown_rate']:g}/s: the load generator, "
                  f"not the target, could not go on")
    elif limited == "cap":
        found += "; stopped by a safety cap"
    elif limited == "steps":
        found += "; --max-steps ran out before the bracket was narrow enough"
    return found


def capacity_lines(doc: Mapping[str, Any]) -> list[str]:
    """The text report's Capacity block: nothing for a document of `run`."""
    section = doc.get("capacity")
    if not isinstance(section, Mapping):
        return []
    steps = section.get("steps") or ()
    return [f"capacity of {section['scenario']}: {describe(section)}", step_header(),
            *(step_line(number, step) for number, step in enumerate(steps, 1))]
