"""Gauges gain last, min, max, avg and slope (least-squares growth per minute),
merge exactly, and rebuild exactly from their results.json summary."""

from __future__ import annotations

import json
import random

import pytest

from loadaction.metrics.sinks import GaugeSink
from loadaction.metrics.thresholds import aggregate, evaluate, parse_threshold


def _gauge(points: list[tuple[float, float]]) -> GaugeSink:
    sink = GaugeSink()
    for t, v in points:
        sink.add(v, t)
    return sink


def test_slope_of_a_line_is_its_growth_per_minute() -> None:
    # 2 units per second = 120 per minute, from t=1000 s (centred sums keep it exact)
    sink = _gauge([(1000 + t * 0.5, 7 + 2 * t * 0.5) for t in range(40)])
    assert sink.slope() == pytest.approx(120.0, rel=1e-9)
    assert (sink.lo, sink.hi, sink.value) == (7, 7 + 2 * 19.5, 7 + 2 * 19.5)
    assert sink.avg() == pytest.approx(7 + 19.5)


def test_slope_needs_two_times() -> None:
    assert _gauge([(1.0, 5.0)]).slope() is None
    assert _gauge([(1.0, 5.0), (1.0, 9.0)]).slope() is None  # no variance in t
    untimed = GaugeSink()
    untimed.add(1.0)
    untimed.add(2.0)
    assert untimed.slope() is None and untimed.value == 2.0 and untimed.avg() == 1.5


def test_last_is_by_time_not_by_arrival() -> None:
    sink = _gauge([(2.0, 20.0), (1.0, 10.0)])
    assert sink.value == 20.0


def test_merge_is_exact_whatever_the_order() -> None:
    rng = random.Random(7)
    points = [(50.0 + i * 0.7, rng.uniform(-5, 5) + 0.3 * i) for i in range(300)]
    whole = _gauge(points)
    a, b = _gauge(points[150:]), _gauge(points[:150])  # b holds the earlier samples
    a.merge(b)
    assert a.slope() == pytest.approx(whole.slope(), rel=1e-9)
    assert a.avg() == pytest.approx(whole.avg(), rel=1e-12)
    assert (a.value, a.lo, a.hi, a.count) == (whole.value, whole.lo, whole.hi, whole.count)


def test_summary_round_trips_through_json() -> None:
    sink = _gauge([(t, 3.0 * t * t) for t in range(1, 20)])
    data = json.loads(json.dumps(sink.summary(10.0)))
    assert data["last"] == data["value"] == 3.0 * 19 * 19
    rebuilt = GaugeSink.from_summary(data)
    assert rebuilt.slope() == pytest.approx(sink.slope(), rel=1e-12)
    other = _gauge([(30.0, 1.0), (31.0, 0.0)])
    rebuilt.merge(other)
    sink.merge(other)
    assert rebuilt.slope() == pytest.approx(sink.slope(), rel=1e-12)
    assert (rebuilt.avg(), rebuilt.value, rebuilt.last_t) == (sink.avg(), sink.value, sink.last_t)
    assert GaugeSink.from_summary(GaugeSink().summary(1.0)).count == 0


@pytest.mark.parametrize(("text", "observed", "passed"), [
    ("slope<130", 120.0, True),
    ("slope<100", 120.0, False),
    ("max<=45", 45.0, True),
    ("min>7", 7.0, False),
    ("last==45", 45.0, True),
    ("value==45", 45.0, True),
    ("avg<26", 26.0, False),
])
def test_gauge_thresholds(text: str, observed: float, passed: bool) -> None:
    sink = _gauge([(t, 7 + 2 * t) for t in range(20)])
    value = aggregate(parse_threshold(text), "gauge", sink, 20.0)
    assert value == pytest.approx(observed)
    assert evaluate(parse_threshold(text), value).passed is passed


def test_gauge_slope_of_one_sample_is_no_data() -> None:
    assert aggregate(parse_threshold("slope<1"), "gauge", _gauge([(0.0, 1.0)]), 1.0) is None
