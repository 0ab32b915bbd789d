"""Where samples of one metric (and one tag set) accumulate.

Trends live in HDR histograms (microsecond resolution, 3 significant digits)
so memory stays flat however long a run lasts, and so two runs' histograms
can be merged exactly from their encoded form.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

# 1 µs .. 1 h; longer samples are clamped to the top (and counted as such).
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
# Distinct values a trend buffers before folding them into its histogram. A
# full buffer is ~270 KB, filled over a run's first minutes (a soak sees it as
# growth, bench/SOAK.md); 1,024 would fold loopback latencies (a few thousand
# distinct microseconds) over and over, six times the cost per sample.
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
    """The last value (by time), the extremes, the mean and the least-squares
    growth of a gauge: "memory stays stable" is a budget on `slope`.

    The regression is kept as sums (n, Σt, Σv, Σt², Σtv over timed samples,
    t centred on the first timed sample so a long run keeps its precision),
    not as a fitted line, so two sinks (two workers, two tag sets) merge
    exactly and results.json can rebuild the sink from its summary.
    """

    __slots__ = ("value", "lo", "hi", "count", "total", "last_t",
                 "t0", "n", "st", "sv", "stt", "stv")
    kind = "gauge"

    def __init__(self) -> None:
        self.value = 0.0
        self.lo = float("inf")
        self.hi = float("-inf")
        self.count = 0
        self.total = 0.0
        self.last_t: float | None = None  # run-clock time of `value`, when timed
        self.t0: float | None = None  # the first timed sample's t: the centre of the sums
        self.n = 0
        self.st = self.sv = self.stt = self.stv = 0.0

    def add(self, value: float, t: float | None = None) -> None:
        """`t`: run-clock seconds the value was read at; without it the sample
        counts for last, min, max and avg but not for the slope."""
        self.count += 1
        self.total += value
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value
        if t is None:
            self.value = value
            return
        if self.last_t is None or t >= self.last_t:
            self.value, self.last_t = value, t
        if self.t0 is None:
            self.t0 = t
        x = t - self.t0
        self.n += 1
        self.st += x
        self.sv += value
        self.stt += x * x
        self.stv += x * value

    def avg(self) -> float | None:
        return self.total / self.count if self.count else None

    def slope(self) -> float | None:
        """Least-squares growth per minute; None with fewer than two timed
        samples or when they were all read at the same time."""
        n = self.n
        if n < 2:
            return None
        var = self.stt - self.st * self.st / n
        if var <= 1e-12 * max(self.stt, 1e-300):
            return None
        return 60.0 * (self.stv - self.st * self.sv / n) / var

    def merge(self, other: GaugeSink) -> None:
        if not other.count:
            return
        if other.last_t is None or self.last_t is None or other.last_t >= self.last_t:
            self.value = other.value
            self.last_t = other.last_t if other.last_t is not None else self.last_t
        self.count += other.count
        self.total += other.total
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)
        if not other.n:
            return
        assert other.t0 is not None
        if self.t0 is None:
            self.t0 = other.t0
        d = other.t0 - self.t0  # other's sums, re-centred on our t0
        self.n += other.n
        self.stt += other.stt + 2 * d * other.st + other.n * d * d
        self.stv += other.stv + d * other.sv
        self.st += other.st + other.n * d
        self.sv += other.sv

    def summary(self, duration_s: float) -> dict[str, Any]:
        if not self.count:
            return {"value": None, "min": None, "max": None, "avg": None, "last": None,
                    "slope": None, "count": 0}
        return {"value": self.value, "min": self.lo, "max": self.hi, "avg": self.avg(),
                "last": self.value, "slope": self.slope(), "count": self.count,
                "fit": {"sum": self.total, "last_t": self.last_t, "t0": self.t0, "n": self.n,
                        "st": self.st, "sv": self.sv, "stt": self.stt, "stv": self.stv}}

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> GaugeSink:
        """Exact from `fit`; a summary without it (an older document) keeps
        last, min and max, and its mean when it has one."""
        sink = cls()
        sink.count = int(data.get("count", 0))
        if not sink.count:
            return sink
        sink.value, sink.lo, sink.hi = float(data["value"]), float(data["min"]), float(data["max"])
        fit = data.get("fit")
        if fit is None:
            avg = data.get("avg")
            sink.total = float(avg) * sink.count if avg is not None else sink.value * sink.count
            return sink
        sink.total = float(fit["sum"])
        sink.last_t = None if fit.get("last_t") is None else float(fit["last_t"])
        sink.t0 = None if fit.get("t0") is None else float(fit["t0"])
        sink.n = int(fit.get("n", 0))
        sink.st, sink.sv = float(fit.get("st", 0.0)), float(fit.get("sv", 0.0))
        sink.stt, sink.stv = float(fit.get("stt", 0.0)), float(fit.get("stv", 0.0))
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
        """Record every pending (value, count) as HdrHistogram.record_value
        does, with its index arithmetic inlined: record_value is four Python
        calls per value, and at 10,000 VUs a fold holds thousands of distinct
        values (tests/test_trend_buffer.py checks the two agree bucket for
        bucket)."""
        pending = self._pending
        if not pending:
            return
        hist = self._hist
        counts = hist.counts
        mask = hist.sub_bucket_mask
        unit = hist.unit_magnitude
        half_magnitude = hist.sub_bucket_half_count_magnitude
        half = hist.sub_bucket_half_count
        shift = unit + half_magnitude + 1
        total = 0
        clamped = 0
        for us, n in pending.items():
            if us < 0:
                us = 0
            elif us > HIGHEST_US:
                us = HIGHEST_US
                clamped += n
            bucket = (us | mask).bit_length() - shift
            counts[((bucket + 1) << half_magnitude) + (us >> (bucket + unit)) - half] += n
            total += n
        lo = min(max(min(pending), 0), HIGHEST_US)
        hi = min(max(max(pending), 0), HIGHEST_US)
        self._lo = min(self._lo, lo)
        self._hi = max(self._hi, hi)
        hist.total_count += total
        hist.min_value = min(hist.min_value, lo)
        hist.max_value = max(hist.max_value, hi)
        self._clamped += clamped
        pending.clear()

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
        """Forget every sample. The histogram's counts are zeroed in place (one
        memset; hdrh's reset loops in Python): a fresh 94 KB histogram every
        second per scenario churned the C heap, which a soak saw as growth."""
        hist = self._hist
        ctypes.memset(ctypes.addressof(hist.counts), 0, ctypes.sizeof(hist.counts))
        hist.total_count = 0
        hist.min_value = sys.maxsize
        hist.max_value = 0
        hist.start_time_stamp_msec = sys.maxsize
        hist.end_time_stamp_msec = 0
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
