"""A bounded store of one probe series' points, for charts and results.json.

A 30-minute soak sampled every 100 ms would be 18,000 points per series;
charts need a few dozen and the gauge's sink has the exact statistics. So
the store holds at most `cap` points: when full, neighbours are merged by
averaging (time and value), and later points are averaged in groups of the
same width, so the spacing stays even over the whole run.
"""

from __future__ import annotations

MAX_POINTS = 2000


class PointStore:
    __slots__ = ("cap", "points", "_stride", "_pending")

    def __init__(self, cap: int = MAX_POINTS) -> None:
        if cap < 2:
            raise ValueError("a point store holds at least 2 points")
        self.cap = cap
        self.points: list[tuple[float, float]] = []
        self._stride = 1  # raw samples per stored point
        self._pending: list[tuple[float, float]] = []

    def add(self, t: float, value: float) -> None:
        self._pending.append((t, value))
        if len(self._pending) < self._stride:
            return
        self.points.append(_mean(self._pending))
        self._pending = []
        if len(self.points) >= self.cap:
            pts = self.points
            self.points = [_mean(pts[i:i + 2]) for i in range(0, len(pts), 2)]
            self._stride *= 2

    def snapshot(self) -> tuple[tuple[float, float], ...]:
        """The stored points, and the partly filled last group (averaged)."""
        tail = [_mean(self._pending)] if self._pending else []
        return tuple(self.points + tail)


def _mean(group: list[tuple[float, float]]) -> tuple[float, float]:
    n = len(group)
    return sum(t for t, _ in group) / n, sum(v for _, v in group) / n
