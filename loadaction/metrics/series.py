"""Per-second series per scenario: what the charts and per-phase verdicts read.

The engine bumps plain counters on a live bucket; a once-a-second tick closes
the bucket into a point (with its own encoded histogram) and starts the next,
so the hot path never looks at the clock for the series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from loadaction.metrics.sinks import TrendSink


class LiveBucket:
    __slots__ = ("reqs", "failed", "iterations", "durations")

    def __init__(self) -> None:
        self.reqs = 0
        self.failed = 0
        self.iterations = 0
        self.durations = TrendSink()

    def close(self, t: float, vus: int) -> dict[str, Any]:
        d = self.durations
        has = d.count > 0
        p50, p95, p99 = d.percentiles((50, 95, 99)) if has else (None, None, None)
        point = {
            "t": round(t, 3),
            "reqs": self.reqs,
            "failed": self.failed,
            "iterations": self.iterations,
            "vus": vus,
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "max": d.max() if has else None,
            "hdr": d.encode() if has else None,
        }
        self.reqs = self.failed = self.iterations = 0
        d.reset()
        return point


class SeriesRecorder:
    def __init__(self, scenarios: Iterable[str], interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.live: dict[str, LiveBucket] = {name: LiveBucket() for name in scenarios}
        self.points: dict[str, list[dict[str, Any]]] = {name: [] for name in self.live}

    def roll(self, t: float, vus: Mapping[str, int]) -> None:
        """Close every scenario's bucket at run time `t` (seconds)."""
        for name, bucket in self.live.items():
            self.points[name].append(bucket.close(t, vus.get(name, 0)))

    def last(self, scenario: str, seconds: int) -> list[dict[str, Any]]:
        return self.points[scenario][-seconds:]
