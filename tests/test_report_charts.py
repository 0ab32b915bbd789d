"""The Mermaid charts draw seconds without samples as gaps, not as 0 ms, and
chart each scenario over its own window: from its first to its last second
with samples, not the run's whole timeline."""

from __future__ import annotations

import random
import re
from collections.abc import Set as AbstractSet
from typing import Any

import pytest

from loadaction.metrics.sinks import TrendSink
from loadaction.report.chart import fault_chart, own_window, scenario_charts
from loadaction.report.markdown import render_markdown
from tests.test_report_chaos import _fault, chaos_doc
from tests.test_report_fixtures import make_doc

RUN_S = 60


def _point(t: int, samples: list[float]) -> dict[str, Any]:
    sink = TrendSink()
    for value in samples:
        sink.add(value)
    has = sink.count > 0
    p50, p95, p99 = sink.percentiles((50, 95, 99)) if has else (None, None, None)
    return {"t": float(t), "reqs": len(samples), "failed": 0, "iterations": len(samples),
            "vus": 5 if has else 0, "p50": p50, "p95": p95, "p99": p99,
            "max": sink.max() if has else None, "hdr": sink.encode() if has else None}


def _series(active: range, holes: AbstractSet[int] = frozenset(), seed: int = 1) -> list[dict[str, Any]]:
    """A point for every second of the run, as the engine writes them, with
    samples only in `active` and not in `holes`."""
    rng = random.Random(seed)
    return [_point(t, [rng.uniform(100, 300) for _ in range(10)]
                   if t in active and t not in holes else [])
            for t in range(1, RUN_S + 1)]


def _chart(text: str) -> dict[str, Any]:
    """A chart's axes and series: {"x": (first, last), "y": (low, high), "series": [...]}."""
    lines = text.splitlines()
    assert lines[0] == "xychart-beta"
    x = re.fullmatch(r'    x-axis "time \(s\)" (\d+) --> (\d+)', lines[2])
    y = re.fullmatch(r'    y-axis "[^"]+" (\S+) --> (\S+)', lines[3])
    assert x and y, lines[2:4]
    series = []
    for line in lines[4:]:
        found = re.fullmatch(r'    (bar|line)(?: "[^"]*")? \[(.*)\]', line)
        assert found, line
        series.append((found[1], [float(v) for v in found[2].split(", ")]))
    return {"x": (int(x[1]), int(x[2])), "y": (float(y[1]), float(y[2])), "series": series}


def _doc(series: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    doc = make_doc()
    doc["series"]["scenarios"] = series
    return doc


def test_a_scenario_that_starts_at_30s_is_charted_from_30s() -> None:
    doc = _doc({"purchase": _series(range(1, 61)), "scanner": _series(range(31, 61))})
    by_name = {c.scenario: c for c in scenario_charts(doc)}
    latency, throughput = _chart(by_name["scanner"].latency), _chart(by_name["scanner"].throughput)
    assert latency["x"] == throughput["x"] == (31, 60)
    [(kind, p95)] = latency["series"]
    assert kind == "bar" and len(p95) == 30 and all(v > 0 for v in p95)
    [(_, req_per_s)] = throughput["series"]
    # The first point's second is 30–31 s: 10 requests in 1 s, not in 31 s.
    assert req_per_s == [10.0] * 30
    assert _chart(by_name["purchase"].latency)["x"] == (1, 60)


def test_a_scenario_is_charted_to_its_last_second_with_samples() -> None:
    doc = _doc({"purchase": _series(range(1, 21)), "scanner": _series(range(11, 41))})
    by_name = {c.scenario: c for c in scenario_charts(doc)}
    assert _chart(by_name["purchase"].latency)["x"] == (1, 20)
    assert _chart(by_name["scanner"].throughput)["x"] == (11, 40)


def test_seconds_without_samples_are_gaps_not_zero_ms() -> None:
    holes = {40, 41, 42}
    doc = _doc({"purchase": _series(range(31, 61), holes)})
    [charts] = scenario_charts(doc)
    latency = _chart(charts.latency)
    [(kind, p95)] = latency["series"]
    # Bars: a bar of 0 has no height, so the three seconds are a gap in the
    # chart (a line would have to dive to 0 ms and back: xychart has no null).
    assert kind == "bar"
    seconds = range(31, 61)
    assert [t for t, v in zip(seconds, p95) if v == 0] == sorted(holes)
    assert all(v > 0 for t, v in zip(seconds, p95) if t not in holes)
    # The axis starts at 0, so the lowest measured bar is not mistaken for a gap.
    assert latency["y"] == (0.0, max(p95))
    throughput = _chart(charts.throughput)
    assert throughput["y"][0] == 0.0
    [(_, req_per_s)] = throughput["series"]
    assert [t for t, v in zip(seconds, req_per_s) if v == 0] == sorted(holes)


def test_a_hole_at_the_edge_of_the_window_is_not_trimmed_inside_it() -> None:
    """Only the seconds before the first and after the last sample are left
    out; a hole between samples stays, as a gap."""
    points = _series(range(31, 61), {32})
    start_t, window = own_window(points)
    assert start_t == 30.0
    assert [p["t"] for p in window] == [float(t) for t in range(31, 61)]
    assert window[1]["reqs"] == 0


def test_a_long_run_merges_only_the_scenarios_window() -> None:
    """600 s of run, the scenario active 300–420 s: 120 seconds, merged in
    pairs to 60 points starting at 302 s, a hole of 4 s is 2 merged gaps."""
    rng = random.Random(3)
    holes = {351, 352, 353, 354}
    points = [_point(t, [rng.uniform(100, 300) for _ in range(4)]
                     if 300 < t <= 420 and t not in holes else [])
              for t in range(1, 601)]
    doc = _doc({"purchase": points})
    [charts] = scenario_charts(doc)
    latency = _chart(charts.latency)
    assert latency["x"] == (302, 420)
    [(_, p95)] = latency["series"]
    assert len(p95) == 60
    gaps = [302 + 2 * i for i, v in enumerate(p95) if v == 0]
    assert gaps == [352, 354]


def test_a_scenario_without_samples_gets_no_chart() -> None:
    doc = _doc({"purchase": _series(range(1, 61)), "scanner": _series(range(0))})
    assert [c.scenario for c in scenario_charts(doc)] == ["purchase"]
    text = render_markdown(doc)
    assert "Charts: purchase" in text and "Charts: scanner" not in text


def test_the_fault_chart_shows_a_second_without_requests_as_a_gap() -> None:
    doc = chaos_doc()
    for points in doc["series"]["scenarios"].values():
        hole = points[39]  # t = 40, between the faults
        hole.update(reqs=0, iterations=0, p50=None, p95=None, p99=None, max=None, hdr=None)
    chart = fault_chart(doc)
    assert chart is not None
    parsed = _chart(chart)
    [(fault_kind, bars), (p95_kind, p95)] = parsed["series"]
    assert (fault_kind, p95_kind) == ("bar", "bar")
    assert p95[39] == 0 and all(v > 0 for i, v in enumerate(p95) if i != 39)
    assert parsed["y"] == (0.0, max(p95))
    assert bars[39] == 0 and bars[29] > 0  # t = 30 was during slow-target


@pytest.mark.parametrize("seconds", [1, 2, 60])
def test_every_chart_line_is_what_xychart_parses(seconds: int) -> None:
    doc = _doc({"purchase": _series(range(RUN_S - seconds + 1, RUN_S + 1))})
    doc["series"]["scenarios"]["scanner"] = _series(range(0))
    for charts in scenario_charts(doc):
        for text in (charts.latency, charts.throughput):
            parsed = _chart(text)
            first, last = parsed["x"]
            assert first <= last
            assert all(len(values) >= 1 for _, values in parsed["series"])
    # one point: the axis is a single second
    if seconds == 1:
        assert _chart(scenario_charts(doc)[0].latency)["x"] == (60, 60)


def test_a_fault_shortly_after_the_start_still_shows() -> None:
    doc = chaos_doc()
    doc["chaos"]["faults"] = [_fault("blip", "http", 2.0, 1.0, 2.1, 2.6, "ok")]
    chart = fault_chart(doc)
    assert chart is not None
    [(_, bars), _] = _chart(chart)["series"]
    assert [i + 1 for i, v in enumerate(bars) if v] == [3]
