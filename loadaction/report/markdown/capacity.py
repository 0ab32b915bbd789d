"""The Capacity section of the Markdown report's context (a results document
from `loadaction capacity`): the capacity with its bracket, the step table,
and charts of p95 and error rate against the rate.

xychart-beta has one y-axis (see report/chart.py), and milliseconds and a
share of errors never share a scale, so each is its own chart; the x-axis is
the steps' rates as categories, in rising order, so the knee reads left to
right whatever order the search tried them in. A step without requests has
a bar of 0 (xychart has no gaps); the table has the exact values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadaction.report.chart import mermaid_text
from loadaction.report.format import format_percent
from loadaction.report.markdown.fit import Context

LIMITED_BY = {
    "target": "the target (the bracket is within the precision asked for)",
    "generator": "the load generator: a step was unknown (it could not drive the rate; "
                 "the target's limit is not known past it)",
    "cap": "a safety cap (--max-rate, --max-requests or --max-duration)",
    "steps": "--max-steps (the bracket is wider than the precision asked for)",
}


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{round(value, 1):g}/s"


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _chart(title: str, unit: str, steps: Sequence[Mapping[str, Any]], values: Sequence[float]) -> str:
    top = max(values, default=0.0)
    categories = ", ".join('"' + mermaid_text(format(s["rate"], "g")) + '"' for s in steps)
    return "\n".join([
        "xychart-beta",
        f'    title "{mermaid_text(title)}"',
        f"    x-axis \"rate (iterations/s)\" [{categories}]",
        f'    y-axis "{unit}" 0 --> {_number(top) if top > 0 else "1"}',
        f"    bar [{', '.join(_number(v) for v in values)}]",
    ])


def capacity_charts(section: Mapping[str, Any]) -> list[str]:
    steps = sorted(section.get("steps") or (), key=lambda s: s["rate"])
    if not steps:
        return []
    scenario = section.get("scenario") or ""
    p95 = [s["p95_ms"] or 0.0 for s in steps]
    errors = [(s["error_rate"] or 0.0) * 100 for s in steps]
    return [_chart(f"{scenario}: p95 latency by rate", "ms", steps, p95),
            _chart(f"{scenario}: error rate by rate", "%", steps, errors)]


def _step_row(step: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "rate": _rate(step["rate"]),
        "achieved": _rate(step["achieved_rate"]),
        "p95": "—" if step.get("p95_ms") is None else f"{step['p95_ms']:.1f} ms",
        "error_rate": "—" if step.get("error_rate") is None else format_percent(step["error_rate"]),
        "dropped": step.get("dropped_iterations", 0),
        "verdict": step["verdict"],
        "why": "; ".join(step.get("reasons") or ()),
    }


def capacity_context(doc: Mapping[str, Any]) -> Context:
    section = doc.get("capacity")
    if not isinstance(section, Mapping):
        return {"capacity": None, "capacity_steps": [], "capacity_steps_omitted": 0,
                "capacity_charts": []}
    low, high = section["bracket"]
    return {
        "capacity": {
            "scenario": section.get("scenario") or "",
            "rate": _rate(section["rate"]),
            "found": section["rate"] is not None,
            "bracket": f"[{_rate(low)}, {_rate(high) if high is not None else '—'})",
            # a cancelled or failed search ended before anything limited it
            "limited_by": (LIMITED_BY.get(section["limited_by"], section["limited_by"])
                           if section.get("status", "complete") == "complete"
                           else f"the search being {section['status']}"),
            "generator": section["limited_by"] == "generator",
            "unknown_rate": _rate(section.get("unknown_rate")),
            "status": section.get("status", "complete"),
        },
        "capacity_steps": [_step_row(s) for s in section.get("steps") or ()],
        "capacity_steps_omitted": 0,
        "capacity_charts": capacity_charts(section),
    }
