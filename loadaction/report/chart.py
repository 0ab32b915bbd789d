"""Mermaid charts of each scenario's per-second series, for the Markdown report.

GitHub renders ```mermaid blocks in comments and job summaries, so a chart
costs no image hosting. `xychart-beta` has a single y-axis, and p95 latency
(ms) and throughput (req/s) rarely share a scale, so each gets its own chart.

A long run has thousands of points, which neither reads well nor fits in a
comment, so buckets are merged down to MAX_POINTS. Their histograms are
merged rather than their p95s averaged: an average of percentiles is not a
percentile, and a spike would be smoothed away.

A chaos run's p95 chart marks when faults were in force. xychart cannot
shade a region, and its x-axis is either a numeric range (no labels of our
own) or categories (sixty labels overlap into noise), so the marking is a
second series: a bar as tall as the chart's highest p95 at every point a
fault overlaps, drawn before the line so the line stays on top. Adjacent
bars form a band that reads as shading on GitHub's light and dark themes.
xychart draws no legend, so the title says what the bars are.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from loadaction.metrics.sinks import TrendSink
from loadaction.report.chaos import Window, fault_windows

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


_Series = tuple[str, str, Sequence[float]]  # (bar | line, title, values)
# One interval of the run: when it ended, and the points of it (one per scenario).
_Bucket = tuple[float, Sequence[Mapping[str, Any]]]


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
    return _downsample([(float(p["t"]), [p]) for p in points], interval_s, max_points)


def _downsample(
    buckets: Sequence[_Bucket], interval_s: float, max_points: int = MAX_POINTS
) -> list[ChartPoint]:
    size = group_size(len(buckets), max_points)
    merged = []
    previous_t = 0.0
    for start in range(0, len(buckets), size):
        group = buckets[start : start + size]
        end_t = group[-1][0]
        span = end_t - previous_t if end_t > previous_t else interval_s * len(group)
        points = [p for _, bucket in group for p in bucket]
        reqs = sum(p.get("reqs") or 0 for p in points)
        merged.append(ChartPoint(end_t, _p95(points), reqs / span))
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
    return _xychart(f"{scenario}: p95 latency", axis, "ms", [("line", "", values)])


def throughput_chart(scenario: str, axis: TimeAxis, points: Sequence[ChartPoint]) -> str:
    values = [p.req_per_s for p in points]
    return _xychart(f"{scenario}: throughput", axis, "req/s", [("bar", "", values)])


def fault_chart(doc: Mapping[str, Any]) -> str | None:
    """p95 over all scenarios with the seconds faults were in force marked
    (see the module docstring); None without series or without a fault that
    started. Scenarios' buckets close together at every tick, so the i-th
    points of all scenarios cover the same interval and merge exactly."""
    windows = fault_windows(doc)
    if not windows:
        return None
    series = doc.get("series") or {}
    by_scenario = (series.get("scenarios") or {}).values()
    buckets: list[_Bucket] = [
        (max(float(p["t"]) for p in tick), tick)
        for tick in ([p for p in column if p is not None] for column in zip_longest(*by_scenario))
    ]
    if not buckets:
        return None
    interval_s = float(series.get("interval_s") or 1.0)
    merged = _downsample(buckets, interval_s)
    axis = TimeAxis(round(merged[0].t), max(round(group_size(len(buckets)) * interval_s), 1))
    p95 = [p.p95_ms or 0.0 for p in merged]
    top = max(p95) or 1.0
    starts = [0.0, *(p.t for p in merged[:-1])]
    active = [top if _overlaps(start, p.t, windows) else 0.0 for start, p in zip(starts, merged)]
    title = "p95 latency, all scenarios (bars: fault active)"
    return _xychart(title, axis, "ms", [("bar", "fault active", active), ("line", "p95", p95)])


def _overlaps(start: float, end: float, windows: Sequence[Window]) -> bool:
    """Whether the interval (start, end] shares any time with a window, so a
    fault shorter than a merged point still shows."""
    return any(w_start < end and w_end > start for w_start, w_end in windows)


def _xychart(title: str, axis: TimeAxis, unit: str, series: Sequence[_Series]) -> str:
    lines = [
        "xychart-beta",
        f'    title "{mermaid_text(title)}"',
        axis.line(len(series[0][2])),
        f'    y-axis "{unit}"',
    ]
    for kind, name, values in series:
        # Two decimals, never an exponent: xychart's numbers are plain decimals.
        data = ", ".join(f"{v:.2f}".rstrip("0").rstrip(".") for v in values)
        label = f' "{mermaid_text(name)}"' if name else ""
        lines.append(f"    {kind}{label} [{data}]")
    return "\n".join(lines)
