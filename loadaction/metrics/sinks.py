"""Where samples of one metric (and one tag set) accumulate.

Trends live in HDR histograms (microsecond resolution, 3 significant digits)
so memory stays flat however long a run lasts, and so two runs' histograms
can be merged exactly from their encoded form.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

# 1 µs .. 1 h; longer samples are clamped to the top (and counted as such).
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    # 4-byte counters halve the memory; a bucket would need 4e9 samples to wrap.
    return HdrHistogram(1, HIGHEST_US, SIGNIFICANT_DIGITS, word_size=4)


class CounterSink:
    __slots__ = ("count",)
    kind = "counter"

    def __init__(self) -> None:
        self.count = 0.0

    def add(self, value: float) -> None:
        self.count += value

    def rate(self, duration_s: float) -> float:
        return self.count / duration_s if duration_s > 0 else 0.0

    def merge(self, other: CounterSink) -> None:
        self.count += other.count

    def summary(self, duration_s: float) -> dict[str, Any]:
        return {"count": self.count, "rate": self.rate(duration_s)}

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
    integer thousandths in the histogram: microseconds for durations."""

    __slots__ = ("hist", "clamped")
    kind = "trend"

    def __init__(self) -> None:
        self.hist = new_histogram()
        self.clamped = 0

    def add(self, value: float) -> None:
        self.add_us(int(value * 1000))

    def add_us(self, us: int) -> None:
        if us < 0:
            us = 0
        elif us > HIGHEST_US:
            us = HIGHEST_US
            self.clamped += 1
        self.hist.record_value(us)

    @property
    def count(self) -> int:
        return self.hist.total_count

    def avg(self) -> float:
        return self.hist.get_mean_value() / 1000

    def min(self) -> float:
        return self.hist.get_min_value() / 1000

    def max(self) -> float:
        return self.hist.get_max_value() / 1000

    def percentile(self, p: float) -> float:
        return self.hist.get_value_at_percentile(p) / 1000

    def merge(self, other: TrendSink) -> None:
        if other.count:
            self.hist.add(other.hist)
        self.clamped += other.clamped

    def encode(self) -> str:
        return self.hist.encode().decode("ascii")

    def summary(self, duration_s: float) -> dict[str, Any]:
        if not self.count:
            return {"count": 0, "hdr": None}
        return {
            "count": self.count,
            "avg": self.avg(),
            "min": self.min(),
            "med": self.percentile(50),
            "max": self.max(),
            "p90": self.percentile(90),
            "p95": self.percentile(95),
            "p99": self.percentile(99),
            "hdr": self.encode(),
        }

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> TrendSink:
        """Rebuild exactly from the encoded histogram (so runs merge exactly)."""
        sink = cls()
        if data.get("hdr"):
            sink.hist.decode_and_add(data["hdr"])
        return sink


Sink = CounterSink | RateSink | GaugeSink | TrendSink

SINK_TYPES: dict[str, type[Sink]] = {
    "counter": CounterSink,
    "rate": RateSink,
    "gauge": GaugeSink,
    "trend": TrendSink,
}
