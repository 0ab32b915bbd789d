"""Durations and sizes as plans write them."""

from __future__ import annotations

import pytest

from loadaction.plan.durations import format_seconds, parse_duration, parse_size


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5),
    ("30s", 30.0),
    ("2m", 120.0),
    ("1h30m", 5400.0),
    ("1h2m3s", 3723.0),
    ("1m30s500ms", 90.5),
    ("1.5s", 1.5),
    ("0s", 0.0),
    ("30", 30.0),
    (" 10s ", 10.0),
    (45, 45.0),
    (2.5, 2.5),
    (0, 0.0),
])
def test_durations_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [
    "", "s", "abc", "10 s", "10sec", "-5s", "1m1h", "30s30s", "1h 30m", "5x", "1.s",
    "ms", "10S", True, None, [1], -1, float("inf"),
])
def test_garbage_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_duration_errors_say_what_is_accepted() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("10 sec")
    assert str(caught.value) == (
        "invalid duration '10 sec' (expected seconds, or e.g. 500ms, 30s, 2m, 1h30m)")


@pytest.mark.parametrize(("text", "size"), [
    ("1MB", 1 << 20), ("64KB", 64 << 10), ("512kb", 512 << 10), ("2G", 2 << 30),
    ("100", 100), ("100B", 100), (4096, 4096),
])
def test_sizes_parse(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "1 TB", "-1MB", True, -5, 1.5])
def test_garbage_sizes_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


def test_seconds_format_without_trailing_zeros() -> None:
    assert format_seconds(90.0) == "90s"
    assert format_seconds(1.5) == "1.5s"
