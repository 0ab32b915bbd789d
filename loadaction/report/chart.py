"""Mermaid charts of each scenario's per-second series, for the Markdown report.

GitHub renders ```mermaid blocks in comments and job summaries, so a chart
costs no image hosting. `xychart-beta` has a single y-axis, and p95 latency
(ms) and throughput (req/s) rarely share a scale, so each gets its own chart.

A long run has thousands of points, which neither reads well nor fits in a
comment, so buckets are merged down to MAX_POINTS. Their histograms are
merged rather than their p95s averaged: an average of percentiles is not a
percentile, and a spike would be smoothed away.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadaction.metrics.sinks import TrendSink

MAX_POINTS = 60
MAX_TITLE_CHARS = 80
# Everything else is dropped from chart text: quotes and backticks would end
# the Mermaid string or the Markdown code fence, and `%%`, `;`, `#`, `<`
# mean something to Mermaid or to the HTML it produces.
_TEXT_PUNCTUATION = frozenset(" -_.:/()+,=")


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One (possibly merged) bucket: `t` is its end, in seconds since the
    start; `p95_ms` is None when it saw no requests."""

    t: float
    p95_ms: float | None
    req_per_s: float


@dataclass(frozen=True, slots=True)
class ScenarioCharts:
    scenario: str
    latency: str
    throughput: str


def mermaid_text(value: object) -> str:
    """`value` reduced to characters that are inert in a quoted Mermaid
    string inside a Markdown code fence, on one line and bounded."""
    kept = "".join(
        c if c.isalnum() or c in _TEXT_PUNCTUATION else " "
        for c in unicodedata.normalize("NFKC", str(value))
    )
    return " ".join(kept.split())[:MAX_TITLE_CHARS]


def group_size(count: int, max_points: int = MAX_POINTS) -> int:
    """How many consecutive buckets `downsample` merges into one point."""
    return max(math.ceil(count / max_points), 1)


def downsample(
    points: Sequence[Mapping[str, Any]], interval_s: float, max_points: int = MAX_POINTS
) -> list[ChartPoint]:
    """At most `max_points` points, each merging `group_size` consecutive
    buckets. req/s is over the time the merged buckets span (the last bucket
    of a run is often shorter than `interval_s`)."""
    size = group_size(len(points), max_points)
    merged = []
    previous_t = 0.0
    for start in range(0, len(points), size):
        group = points[start : start + size]
        end_t = float(group[-1]["t"])
        span = end_t - previous_t if end_t > previous_t else interval_s * len(group)
        reqs = sum(p.get("reqs") or 0 for p in group)
        merged.append(ChartPoint(end_t, _p95(group), reqs / span))
        previous_t = end_t
    return merged


def _p95(group: Sequence[Mapping[str, Any]]) -> float | None:
    if len(group) == 1:
        return group[0].get("p95")
    sink = TrendSink()
    for point in group:
        if point.get("hdr"):
            sink.merge(TrendSink.from_summary(point))
    return sink.percentile(95) if sink.count else None


def scenario_charts(doc: Mapping[str, Any]) -> list[ScenarioCharts]:
    """Charts for every scenario that has series points, in the document's order."""
    series = doc.get("series") or {}
    interval_s = float(series.get("interval_s") or 1.0)
    by_scenario = series.get("scenarios") or {}
    charts = []
    for scenario in doc["scenarios"]:
        name, points = scenario["name"], by_scenario.get(scenario["name"]) or []
        if not points:
            continue
        merged = downsample(points, interval_s)
        axis = TimeAxis(round(merged[0].t), max(round(group_size(len(points)) * interval_s), 1))
        charts.append(
            ScenarioCharts(
                name, latency_chart(name, axis, merged), throughput_chart(name, axis, merged)
            )
        )
    return charts


@dataclass(frozen=True, slots=True)
class TimeAxis:
    """A numeric x-axis in whole seconds. xychart places the i-th value at
    `first + i * step`, stepping by repeated addition and stopping past the
    end, so a step that floats cannot represent exactly can lose the last
    point; whole seconds are exact (and buckets are a second apart)."""

    first_s: int
    step_s: int

    def line(self, count: int) -> str:
        last = self.first_s + self.step_s * max(count - 1, 0)
        return f'    x-axis "time (s)" {self.first_s} --> {last}'


def latency_chart(scenario: str, axis: TimeAxis, points: Sequence[ChartPoint]) -> str:
    """p95 as a line; seconds without requests read 0 (xychart has no gaps)."""
    values = [p.p95_ms or 0.0 for p in points]
    return _xychart(f"{scenario}: p95 latency", axis, "ms", "line", values)


def throughput_chart(scenario: str, axis: TimeAxis, points: Sequence[ChartPoint]) -> str:
    values = [p.req_per_s for p in points]
    return _xychart(f"{scenario}: throughput", axis, "req/s", "bar", values)


def _xychart(title: str, axis: TimeAxis, unit: str, kind: str, values: Sequence[float]) -> str:
    # Two decimals, never an exponent: xychart's numbers are plain decimals.
    data = ", ".join(f"{v:.2f}".rstrip("0").rstrip(".") for v in values)
    return "\n".join(
        [
            "xychart-beta",
            f'    title "{mermaid_text(title)}"',
            axis.line(len(values)),
            f'    y-axis "{unit}"',
            f"    {kind} [{data}]",
        ]
    )
