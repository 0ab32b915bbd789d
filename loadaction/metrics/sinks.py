"""Where samples of one metric (and one tag set) accumulate.

Trends live in HDR histograms (microsecond resolution, 3 significant digits)
so memory stays flat however long a run lasts, and so two runs' histograms
can be merged exactly from their encoded form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

# 1 µs .. 1 h; longer samples are clamped to the top (and counted as such).
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
# Distinct values a trend buffers before folding them into its histogram.
PENDING_LIMIT = 4096


def new_histogram() -> HdrHistogram:
    # 4-byte counters halve the memory; a bucket would need 4e9 samples to wrap.
    return HdrHistogram(1, HIGHEST_US, SIGNIFICANT_DIGITS, word_size=4)


class CounterSink:
    __slots__ = ("count",)
    kind = "counter"

    def __init__(self) -> None:
        self.count: float = 0

    def add(self, value: float) -> None:
        self.count += value

    def rate(self, duration_s: float) -> float:
        return self.count / duration_s if duration_s > 0 else 0.0

    def merge(self, other: CounterSink) -> None:
        self.count += other.count

    def summary(self, duration_s: float) -> dict[str, Any]:
        count = self.count
        if isinstance(count, float) and count.is_integer():
            count = int(count)  # a count of requests is 12, not 12.0
        return {"count": count, "rate": self.rate(duration_s)}

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> CounterSink:
        sink = cls()
        sink.count = float(data["count"])
        return sink


class RateSink:
    __slots__ = ("passes", "total")
    kind = "rate"

    def __init__(self) -> None:
        self.passes = 0
        self.total = 0

    def add(self, value: float | bool) -> None:
        self.total += 1
        if value:
            self.passes += 1

    @property
    def rate(self) -> float | None:
        return self.passes / self.total if self.total else None

    def merge(self, other: RateSink) -> None:
        self.passes += other.passes
        self.total += other.total

    def summary(self, duration_s: float) -> dict[str, Any]:
        return {"passes": self.passes, "fails": self.total - self.passes, "rate": self.rate}

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> RateSink:
        sink = cls()
        sink.passes = int(data["passes"])
        sink.total = sink.passes + int(data["fails"])
        return sink


class GaugeSink:
    __slots__ = ("value", "lo", "hi", "count")
    kind = "gauge"

    def __init__(self) -> None:
        self.value = 0.0
        self.lo = float("inf")
        self.hi = float("-inf")
        self.count = 0

    def add(self, value: float) -> None:
        self.value = value
        self.count += 1
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value

    def merge(self, other: GaugeSink) -> None:
        if other.count:
            self.value = other.value
            self.count += other.count
            self.lo = min(self.lo, other.lo)
            self.hi = max(self.hi, other.hi)

    def summary(self, duration_s: float) -> dict[str, Any]:
        if not self.count:
            return {"value": None, "min": None, "max": None, "count": 0}
        return {"value": self.value, "min": self.lo, "max": self.hi, "count": self.count}

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> GaugeSink:
        sink = cls()
        sink.count = int(data.get("count", 0))
        if sink.count:
            sink.value, sink.lo, sink.hi = float(data["value"]), float(data["min"]), float(data["max"])
        return sink


class TrendSink:
    """Values are milliseconds (or plain numbers for non-time trends), kept as
    integer thousandths in the histogram: microseconds for durations.

    Recording is the engine's hottest path (five samples per request), and
    HdrHistogram.record_value is a dozen pure-Python calls. So samples first
    land in a plain dict of value -> count, one dict update each; the dict is
    folded into the histogram (one record_value per distinct value) whenever
    anything reads the sink, and whenever it holds PENDING_LIMIT distinct
    values. What is read is exactly what recording every sample would give.

    The smallest and largest samples are kept exactly beside the histogram
    (as k6 reports them): a bucket is 0.1% wide, 65 ms at 70 s, and a `min`
    taken from bucket edges would be below every sample, failing a
    `min>=70000` budget that every sample met.
    """

    __slots__ = ("_hist", "_pending", "_clamped", "_lo", "_hi")
    kind = "trend"

    def __init__(self) -> None:
        self._hist = new_histogram()
        self._pending: dict[int, int] = {}
        self._clamped = 0
        self._lo = HIGHEST_US + 1  # exact extremes, in the histogram's units (clamped alike)
        self._hi = -1

    def add(self, value: float) -> None:
        self.add_us(int(value * 1000))

    def add_us(self, us: int) -> None:
        pending = self._pending
        pending[us] = pending.get(us, 0) + 1
        if len(pending) > PENDING_LIMIT:
            self._fold()

    def _fold(self) -> None:
        record = self._hist.record_value
        pending = self._pending
        if pending:  # per fold, not per sample: recording stays one dict update
            self._lo = min(self._lo, min(max(min(pending), 0), HIGHEST_US))
            self._hi = max(self._hi, min(max(max(pending), 0), HIGHEST_US))
        for us, n in pending.items():
            if us < 0:
                us = 0
            elif us > HIGHEST_US:
                us = HIGHEST_US
                self._clamped += n
            record(us, n)
        self._pending.clear()

    @property
    def hist(self) -> HdrHistogram:
        """The histogram with every sample recorded so far."""
        if self._pending:
            self._fold()
        return self._hist

    @property
    def clamped(self) -> int:
        """Samples above HIGHEST_US, recorded as HIGHEST_US."""
        if self._pending:
            self._fold()
        return self._clamped

    def reset(self) -> None:
        """Forget every sample (a fresh histogram: cheaper than zeroing one in Python)."""
        self._hist = new_histogram()
        self._pending.clear()
        self._clamped = 0
        self._lo, self._hi = HIGHEST_US + 1, -1

    @property
    def count(self) -> int:
        return self.hist.total_count

    def avg(self) -> float:
        """HdrHistogram.get_mean_value (each count at the middle of its bucket),
        over the populated counts only: hdrh's own walks every bucket with an
        iterator object, a few hundred milliseconds per call."""
        hist = self.hist
        if not hist.total_count:
            return 0.0
        lo, hi = _populated_range(hist)
        middle = hist._hdr_median_equiv_value
        value_at = hist.get_value_from_index
        total = 0
        for index, n in enumerate(hist.counts[lo:hi], lo):
            if n:
                total += n * middle(value_at(index))
        return float(total) / hist.total_count / 1000

    def min(self) -> float:
        return self._lo / 1000 if self.count else 0.0

    def max(self) -> float:
        return self._hi / 1000 if self.count else 0.0

    def percentile(self, p: float) -> float:
        return self.percentiles((p,))[0]

    def percentiles(self, ps: Sequence[float]) -> list[float]:
        """Like HdrHistogram.get_value_at_percentile for each of `ps`, in one
        pass over the populated part of the counts rather than one full pass each."""
        hist = self.hist
        total = hist.total_count
        if not total:
            return [0.0 for _ in ps]
        targets = sorted((max(int(min(p, 100.0) * total / 100 + 0.5), 1), i) for i, p in enumerate(ps))
        out = [0.0] * len(ps)
        lo, hi = _populated_range(hist)
        seen = 0
        t = 0
        for index, n in enumerate(hist.counts[lo:hi], lo):
            if not n:
                continue
            seen += n
            while t < len(targets) and seen >= targets[t][0]:
                i = targets[t][1]
                value = hist.get_value_from_index(index)
                out[i] = (hist.get_highest_equivalent_value(value) if ps[i]
                          else hist.get_lowest_equivalent_value(value)) / 1000
                t += 1
            if t == len(targets):
                break
        return out

    def merge(self, other: TrendSink) -> None:
        if other.count:
            self.hist.add(other.hist)
            self._lo = min(self._lo, other._lo)
            self._hi = max(self._hi, other._hi)
        self._clamped += other.clamped

    def encode(self) -> str:
        return self.hist.encode().decode("ascii")

    def summary(self, duration_s: float) -> dict[str, Any]:
        if not self.count:
            return {"count": 0, "hdr": None}
        med, p90, p95, p99 = self.percentiles((50, 90, 95, 99))
        return {
            "count": self.count,
            "avg": self.avg(),
            "min": self.min(),
            "med": med,
            "max": self.max(),
            "p90": p90,
            "p95": p95,
            "p99": p99,
            "hdr": self.encode(),
        }

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> TrendSink:
        """Rebuild exactly from the encoded histogram and the exact extremes
        beside it (so runs merge exactly)."""
        sink = cls()
        if data.get("hdr"):
            hist = HdrHistogram.decode(data["hdr"])
            _add_counts(sink._hist, hist)
            # a per-second series point or a phase's part carries the
            # histogram alone: then its bucket edges are the best known
            lo, hi = data.get("min"), data.get("max")
            sink._lo = round(lo * 1000) if lo is not None else hist.get_min_value()
            sink._hi = round(hi * 1000) if hi is not None else hist.get_max_value()
        return sink


def _add_counts(into: HdrHistogram, other: HdrHistogram) -> None:
    """HdrHistogram.add for a decoded histogram. Decoding yields 8-byte
    counters, so hdrh's add takes its slow path and calls a method for each
    of the 23k buckets; this records only the populated ones, the same way."""
    lo, hi = _populated_range(other)
    value_at = other.get_value_from_index
    for index, n in enumerate(other.counts[lo:hi], lo):
        if n:
            into.record_value(value_at(index), n)


def _populated_range(hist: HdrHistogram) -> tuple[int, int]:
    """Indexes of the counts that can be non-zero: from the bucket of the
    smallest recorded value to that of the largest (decoded histograms may
    not track their minimum: then from 0)."""
    hi = min(hist._counts_index_for(hist.max_value) + 1, hist.counts_len)
    lo = hist._counts_index_for(hist.min_value) if hist.min_value <= hist.max_value else 0
    return max(lo, 0), hi


Sink = CounterSink | RateSink | GaugeSink | TrendSink

SINK_TYPES: dict[str, type[Sink]] = {
    "counter": CounterSink,
    "rate": RateSink,
    "gauge": GaugeSink,
    "trend": TrendSink,
}
