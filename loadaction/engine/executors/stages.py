"""Piecewise-linear stage curves, shared by the two ramping executors."""

from __future__ import annotations

import math

from loadaction.plan.model import Stage


def total_duration(stages: tuple[Stage, ...]) -> float:
    return sum(s.duration for s in stages)


def value_at(start: float, stages: tuple[Stage, ...], t: float) -> float:
    """The curve's value `t` seconds in; stages ramp linearly from the previous target."""
    level = start
    for stage in stages:
        if t < stage.duration:
            return level + (stage.target - level) * (t / stage.duration)
        t -= stage.duration
        level = stage.target
    return level


def arrival_offsets(start_rate: float, stages: tuple[Stage, ...], time_unit: float):
    """Start offsets (seconds) of successive iterations for a linearly ramping rate.

    The i-th iteration starts when the integral of the rate reaches i; within a
    stage the integral is quadratic in t, so each start time is a root.
    """
    level = start_rate / time_unit
    offset = 0.0
    done = 0.0  # iterations accounted for before this stage (fractional)
    i = 0
    for stage in stages:
        r0, r1, d = level, stage.target / time_unit, stage.duration
        slope = (r1 - r0) / d if d > 0 else 0.0
        stage_total = (r0 + r1) / 2 * d
        while i < done + stage_total - 1e-9:
            need = i - done  # iterations to reach within this stage
            if abs(slope) < 1e-12:
                t = need / r0 if r0 > 0 else d
            else:
                # r0 t + slope t^2 / 2 = need
                disc = r0 * r0 + 2 * slope * need
                t = (-r0 + math.sqrt(max(disc, 0.0))) / slope
            yield offset + t
            i += 1
        done += stage_total
        offset += d
        level = r1
