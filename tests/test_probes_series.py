"""A probe series stays bounded however long the run: neighbours are averaged
when the store is full, and the spacing stays even over the whole run."""

from __future__ import annotations

import pytest

from loadaction.probes.series import PointStore


def test_a_long_series_is_bounded_and_evenly_spaced() -> None:
    store = PointStore(cap=100)
    for i in range(18_000):  # 30 minutes every 100 ms
        store.add(i * 0.1, float(i % 7))
    points = store.snapshot()
    assert 50 <= len(points) <= 101
    gaps = [b[0] - a[0] for a, b in zip(points, points[1:-1])]
    assert max(gaps) == pytest.approx(min(gaps))
    assert points[0][0] < points[1][0] and points[-1][0] <= 1799.9
    # averaging keeps the mean
    assert sum(v for _, v in points[:-1]) / (len(points) - 1) == pytest.approx(3.0, abs=0.05)


def test_a_short_series_is_kept_as_is() -> None:
    store = PointStore(cap=100)
    for i in range(10):
        store.add(float(i), float(i * i))
    assert store.snapshot() == tuple((float(i), float(i * i)) for i in range(10))
