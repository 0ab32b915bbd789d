"""Mermaid charts of each scenario's per-second series, for the Markdown report.

GitHub renders ```mermaid blocks in comments and job summaries, so a chart
costs no image hosting. `xychart-beta` has a single y-axis, and p95 latency
(ms) and throughput (req/s) rarely share a scale, so each gets its own chart.

Each scenario is charted over its own window: from its first to its last
second with samples (requests or iterations), not the run's whole timeline,
so a scenario that starts at 30 s does not open with 30 s of nothing. The
series has a point for every second of the run, whether the scenario was
running or not.

Seconds without samples inside the window are gaps, not 0 ms. xychart has
no null (mermaid-js/mermaid#5293: `line [1, , 3]` and NaN do not parse), and
every series is laid out from the axis's first position by index, so a line
cannot be split into segments that start later; a series shorter than the
axis leaves undefined y values in the SVG path. Bars can have gaps: a bar of
0 has no height. So p95 is drawn as bars, with 0 where nothing was measured,
on a y-axis that starts at 0 (`y-axis "ms" 0 --> top`; without it xychart
starts the axis at the lowest value, whose bar would then vanish like a gap).
A measured p95 never rounds to 0 at two decimals of a millisecond in
practice, and the p95 column of the scenarios table has the exact values.

A long run has thousands of points, which neither reads well nor fits in a
comment, so buckets are merged down to MAX_POINTS. Their histograms are
merged rather than their p95s averaged: an average of percentiles is not a
percentile, and a spike would be smoothed away.

A chaos run's p95 chart marks when faults were in force. xychart cannot
shade a region, and its x-axis is either a numeric range (no labels of our
own) or categories (sixty labels overlap into noise), so the marking is a
second series: a bar as tall as the chart's highest p95 at every point a
fault overlaps, drawn before the p95 bars so they stay in front (bars of
every series stand at the same x, one over the other). Adjacent bars form a
band that reads as shading on GitHub's light and dark themes. xychart draws
no legend, so the title says what the bars are. That chart covers the whole
run: it is about when the faults were, for all scenarios at once.
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


def has_samples(point: Mapping[str, Any]) -> bool:
    """Whether anything was measured in the point's second: a request or an iteration."""
    return bool(point.get("reqs") or point.get("iterations"))


def own_window(points: Sequence[Mapping[str, Any]]) -> tuple[float, list[Mapping[str, Any]]]:
    """A scenario's points from its first to its last second with samples
    (none when it has none), and the run time its window starts at: the end
    of the point before it, or 0."""
    active = [i for i, point in enumerate(points) if has_samples(point)]
    if not active:
        return 0.0, []
    first, last = active[0], active[-1]
    start_t = float(points[first - 1]["t"]) if first > 0 else 0.0
    return start_t, list(points[first : last + 1])


def downsample(
    points: Sequence[Mapping[str, Any]], interval_s: float, max_points: int = MAX_POINTS,
    start_t: float = 0.0,
) -> list[ChartPoint]:
    """At most `max_points` points, each merging `group_size` consecutive
    buckets. req/s is over the time the merged buckets span (the last bucket
    of a run is often shorter than `interval_s`); the first span starts at
    `start_t`."""
    return _downsample([(float(p["t"]), [p]) for p in points], interval_s, max_points, start_t)


def _downsample(
    buckets: Sequence[_Bucket], interval_s: float, max_points: int = MAX_POINTS,
    start_t: float = 0.0,
) -> list[ChartPoint]:
    size = group_size(len(buckets), max_points)
    merged = []
    previous_t = start_t
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
    """Charts for every scenario with samples in its series, in the
    document's order, each over the scenario's own window."""
    series = doc.get("series") or {}
    interval_s = float(series.get("interval_s") or 1.0)
    by_scenario = series.get("scenarios") or {}
    charts = []
    for scenario in doc["scenarios"]:
        name = scenario["name"]
        start_t, points = own_window(by_scenario.get(name) or [])
        if not points:
            continue
        merged = downsample(points, interval_s, start_t=start_t)
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
    """p95 as bars; a point without requests has none (a gap, see the module docstring)."""
    values = [p.p95_ms if p.p95_ms is not None else 0.0 for p in points]
    return _xychart(f"{scenario}: p95 latency", axis, "ms", [("bar", "", values)])


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
    p95 = [p.p95_ms if p.p95_ms is not None else 0.0 for p in merged]
    top = max(p95) or 1.0
    starts = [0.0, *(p.t for p in merged[:-1])]
    active = [top if _overlaps(start, p.t, windows) else 0.0 for start, p in zip(starts, merged)]
    title = "p95 latency, all scenarios (bars: fault active)"
    return _xychart(title, axis, "ms", [("bar", "fault active", active), ("bar", "p95", p95)])


def _overlaps(start: float, end: float, windows: Sequence[Window]) -> bool:
    """Whether the interval (start, end] shares any time with a window, so a
    fault shorter than a merged point still shows."""
    return any(w_start < end and w_end > start for w_start, w_end in windows)


def _number(value: float) -> str:
    """Two decimals, never an exponent: xychart's numbers are plain decimals."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _xychart(title: str, axis: TimeAxis, unit: str, series: Sequence[_Series]) -> str:
    """The y-axis starts at 0, so the lowest bar still has a height and only
    a point without samples has none."""
    top = _number(max((v for _, _, values in series for v in values), default=0.0))
    lines = [
        "xychart-beta",
        f'    title "{mermaid_text(title)}"',
        axis.line(len(series[0][2])),
        f'    y-axis "{unit}" 0 --> {top if top != "0" else "1"}',
    ]
    for kind, name, values in series:
        data = ", ".join(_number(v) for v in values)
        label = f' "{mermaid_text(name)}"' if name else ""
        lines.append(f"    {kind}{label} [{data}]")
    return "\n".join(lines)


# ------------------------------------------------------------ probe series

MAX_PROBE_CHARTS = 8


@dataclass(frozen=True, slots=True)
class ProbeChart:
    title: str
    chart: str


def probe_charts(doc: Mapping[str, Any], max_charts: int = MAX_PROBE_CHARTS) -> list[ProbeChart]:
    """A line per probe series (up to `max_charts`, in the order first
    sampled) on the run's own time axis, from 0 to its duration, so it lines
    up with the scenarios' charts. Each point is the mean of the samples
    within half a step of it; a point without samples repeats the previous
    value (xychart has no gaps, see the module docstring; a gauge holds its
    value until read again), and points before the first sample take it.
    Per-query series (the postgres probe's top N) are left to the statements table."""
    series = [s for s in (doc.get("probes") or {}).get("series") or []
              if "query" not in (s.get("tags") or {})]
    duration = float(doc.get("duration_s") or 0.0)
    charts = []
    for entry in series[:max_charts]:
        points = entry.get("points") or []
        if not points:
            continue
        end = max(duration, float(points[-1][0]))
        step = max(math.ceil(end / MAX_POINTS), 1)
        count = int(end // step) + 1
        values: list[float | None] = [None] * count
        sums = [0.0] * count
        ns = [0] * count
        for t, v in points:
            i = min(max(round(float(t) / step), 0), count - 1)
            sums[i] += float(v)
            ns[i] += 1
        for i in range(count):
            if ns[i]:
                values[i] = sums[i] / ns[i]
        first = next(v for v in values if v is not None)
        filled, last = [], first
        for v in values:
            last = v if v is not None else last
            filled.append(last)
        tags = sorted((k, str(v)) for k, v in (entry.get("tags") or {}).items())
        name = f"{entry['metric']} " + " ".join(f"{k}={v}" for k, v in tags)
        charts.append(ProbeChart(name, _probe_xychart(name, TimeAxis(0, step), filled)))
    return charts


def _probe_xychart(title: str, axis: TimeAxis, values: Sequence[float]) -> str:
    """A line whose y-axis spans its own values (a line, unlike bars, has no
    height to lose at the bottom of the axis)."""
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    lines = [
        "xychart-beta",
        f'    title "{mermaid_text(title)}"',
        axis.line(len(values)),
        f'    y-axis "value" {_number(lo)} --> {_number(hi)}',
        "    line [" + ", ".join(_number(v) for v in values) + "]",
    ]
    return "\n".join(lines)
