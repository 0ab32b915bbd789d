"""Trend sinks against the exact percentiles of the raw samples."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from loadaction.metrics.sinks import HIGHEST_US, TrendSink

# 3 significant digits: a recorded value is known to within 1/1024 of itself
# (HDR sub-buckets of 2048, half of them per power of two), plus 1 µs of integer rounding.
def _close(hdr: float, exact: float) -> bool:
    return abs(hdr - exact) <= exact / 1024 + 0.001


def _exact_percentile(samples: list[int], p: float) -> int:
    """The sample at rank round(p/100 x n), at least 1: HdrHistogram's definition."""
    ordered = sorted(samples)
    rank = max(1, int(p / 100 * len(ordered) + 0.5))
    return ordered[rank - 1]


samples_us = st.lists(st.integers(min_value=0, max_value=HIGHEST_US), min_size=1, max_size=400)
percentiles = st.floats(min_value=0.1, max_value=100.0)


@settings(max_examples=300, deadline=None)
@given(samples_us, percentiles)
def test_percentiles_are_within_hdr_precision(samples, p):
    sink = TrendSink()
    for us in samples:
        sink.add_us(us)
    exact_ms = _exact_percentile(samples, p) / 1000
    assert _close(sink.percentile(p), exact_ms)
    assert sink.count == len(samples)
    assert _close(sink.max(), max(samples) / 1000)
    assert _close(sink.min(), min(samples) / 1000)


@settings(max_examples=100, deadline=None)
@given(samples_us, samples_us, percentiles)
def test_merging_encoded_histograms_is_exact(a, b, p):
    """Runs merge exactly: decoding two encoded sinks gives the sink of all samples."""
    left, right, both = TrendSink(), TrendSink(), TrendSink()
    for us in a:
        left.add_us(us)
        both.add_us(us)
    for us in b:
        right.add_us(us)
        both.add_us(us)
    merged = TrendSink.from_summary(left.summary(1.0))
    merged.merge(TrendSink.from_summary(right.summary(1.0)))
    assert merged.count == both.count
    assert merged.percentile(p) == both.percentile(p)


def test_values_beyond_the_range_are_clamped_and_counted():
    sink = TrendSink()
    sink.add_us(HIGHEST_US * 10)
    sink.add_us(-5)
    assert sink.count == 2 and sink.clamped == 1
    assert _close(sink.max(), HIGHEST_US / 1000)


def test_min_and_max_are_the_samples_not_their_bucket_edges():
    """A bucket is 0.1% wide (65 ms at 70 s): a `min>=70000` budget holds when
    every session lasted 70 s, and min and max survive the results document
    and merging exactly."""
    from loadaction.metrics.thresholds import aggregate, evaluate, parse_threshold

    session = TrendSink()
    session.add_us(70_030_000)
    session.add_us(71_500_000)
    budget = parse_threshold("min>=70030")
    assert evaluate(budget, aggregate(budget, "trend", session, 70.0)).passed
    assert (session.min(), session.max()) == (70_030.0, 71_500.0)
    summary = session.summary(70.0)
    assert (summary["min"], summary["max"]) == (70_030.0, 71_500.0)
    other = TrendSink()
    other.add_us(69_999_999)
    merged = TrendSink.from_summary(summary)
    merged.merge(TrendSink.from_summary(other.summary(70.0)))
    assert (merged.min(), merged.max(), merged.count) == (69_999.999, 71_500.0, 3)
    assert TrendSink().summary(1.0) == {"count": 0, "hdr": None}
