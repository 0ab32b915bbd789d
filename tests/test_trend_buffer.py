"""TrendSink buffers samples before they reach the histogram: reading it must
give exactly what recording each sample straight into HdrHistogram gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from loadaction.metrics import sinks
from loadaction.metrics.sinks import HIGHEST_US, TrendSink, new_histogram

samples_us = st.lists(st.integers(min_value=-10, max_value=HIGHEST_US * 2), min_size=1, max_size=300)
PERCENTILES = (0, 0.1, 1, 50, 90, 95, 99, 99.9, 100, 150)


def _direct(samples: list[int]):  # type: ignore[no-untyped-def]
    hist = new_histogram()
    for us in samples:
        hist.record_value(min(max(us, 0), HIGHEST_US))
    return hist


@settings(max_examples=200, deadline=None)
@given(samples_us)
def test_reads_equal_recording_each_sample(samples):
    sink = TrendSink()
    for us in samples:
        sink.add_us(us)
    hist = _direct(samples)
    assert sink.count == hist.total_count
    folded = sink.hist  # the inlined fold: bucket for bucket what record_value gives
    assert bytes(folded.counts) == bytes(hist.counts)
    assert (folded.min_value, folded.max_value) == (hist.min_value, hist.max_value)
    assert sink.percentiles(PERCENTILES) == [hist.get_value_at_percentile(p) / 1000 for p in PERCENTILES]
    assert sink.percentile(95) == hist.get_value_at_percentile(95) / 1000
    assert sink.avg() == hist.get_mean_value() / 1000
    clamped = [min(max(us, 0), HIGHEST_US) for us in samples]  # as the histogram holds them
    assert (sink.min(), sink.max()) == (min(clamped) / 1000, max(clamped) / 1000)  # exact
    assert sink.clamped == sum(us > HIGHEST_US for us in samples)


@settings(max_examples=50, deadline=None)
@given(samples_us, samples_us)
def test_decoded_and_merged_sinks_read_the_same(a, b):
    left, right = TrendSink(), TrendSink()
    for us in a:
        left.add_us(us)
    for us in b:
        right.add_us(us)
    merged = TrendSink()
    merged.merge(TrendSink.from_summary(left.summary(1.0)))
    merged.merge(TrendSink.from_summary(right.summary(1.0)))
    hist = _direct(a + b)
    assert merged.percentiles(PERCENTILES) == [hist.get_value_at_percentile(p) / 1000 for p in PERCENTILES]
    clamped = [min(max(us, 0), HIGHEST_US) for us in a + b]
    assert (merged.min(), merged.max()) == (min(clamped) / 1000, max(clamped) / 1000)


def test_buffer_is_folded_when_full(monkeypatch):
    monkeypatch.setattr(sinks, "PENDING_LIMIT", 8)
    sink = TrendSink()
    for us in range(100):
        sink.add_us(us)
        assert len(sink._pending) <= 8
    assert sink.count == 100


def test_reset_forgets_everything():
    sink = TrendSink()
    sink.add_us(HIGHEST_US + 1)
    sink.reset()
    assert sink.count == 0 and sink.clamped == 0
    sink.add_us(5)
    assert sink.count == 1 and sink.max() == 0.005
