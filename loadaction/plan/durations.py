"""Durations (`500ms`, `1h30m`, bare seconds) and sizes (`1MB`) as plans write them.

Parsing is strict on purpose: `30` means seconds, but `30 sec`, `1m1h` or
`-5s` are mistakes a load test should not guess about.
"""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = ("h", "m", "s", "ms")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?b?)", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """Seconds from a number or a `1h30m`-style string; ValueError otherwise.

    Units must appear largest first and at most once, so a typo such as
    `1m1h` is reported instead of silently meaning 61 minutes.
    """
    if isinstance(value, bool):
        raise ValueError(_duration_problem(value))
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise ValueError(_duration_problem(value))
        return float(value)
    if not isinstance(value, str):
        raise ValueError(_duration_problem(value))
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    total = 0.0
    position = 0
    last_unit = -1
    for match in _PART.finditer(text):
        unit = _UNIT_ORDER.index(match.group(2))
        if match.start() != position or unit <= last_unit:
            raise ValueError(_duration_problem(value))
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
        last_unit = unit
    if position == 0 or position != len(text):
        raise ValueError(_duration_problem(value))
    return total


def parse_size(value: object) -> int:
    """Bytes from a number or `512KB`/`1MB`/`1GB` (binary multiples)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"invalid size {value!r} (expected bytes, or e.g. 512KB, 1MB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower().rstrip("b")])


def format_seconds(seconds: float) -> str:
    """`90s` reads better than `90.0`; used in messages about durations."""
    return f"{seconds:g}s"


def _duration_problem(value: object) -> str:
    return f"invalid duration {value!r} (expected seconds, or e.g. 500ms, 30s, 2m, 1h30m)"
