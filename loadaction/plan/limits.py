"""What one loadaction process can carry out, checked when the plan loads.

A plan asking for a trillion VUs used to pass validation and then spin the
runner at full CPU while memory grew; these limits refuse it at the line that
asks, and say what the process can do. They are about one process on one
machine, measured on a GitHub-hosted runner (2 cores, 7 GB):

- a VU costs about 20 KB (its task, context and connection), so 50,000 VUs
  are about 1 GB before any response is held; past a few thousand busy VUs
  the event loop, not the VU count, is the bottleneck;
- one core sends about 15,000-20,000 requests per second; an iteration is at
  least one request, so 100,000 iterations a second is beyond what a single
  process sends even with every iteration failing fast;
- durations: 7 days. A load test longer than that is a soak test that needs
  its own tooling; anything longer is a typo (`1e29`, `100000000h`).

Values are checked as they will run: after the chosen profile scales them.
A value the profile made too large is reported at the profile's factor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from loadaction.errors import PlanError
from loadaction.plan.model import (
    ConstantArrivalRate, ConstantVUs, ExecutorSpec, PerVUIterations, RampingArrivalRate,
    RampingVUs, Scenario, SharedIterations,
)
from loadaction.plan.source import Map, Seq

MAX_VUS = 50_000
"""VUs one process holds at once (each about 20 KB, all on one event loop)."""
MAX_RATE = 100_000.0
"""Iterations per second one process can start (one core sends ~15-20k requests/s)."""
MAX_ITERATIONS = 1_000_000_000
"""Iterations one scenario may ask for: hours of load at the highest rate."""
MAX_DURATION = 7 * 24 * 3600.0
"""Seconds: the longest duration a plan may write, and the longest a scenario may run."""

SPLIT_HINT = "split the load across processes or machines"

VU_OPTIONS = ("vus", "startVUs", "preAllocatedVUs", "maxVUs")
RATE_OPTIONS = ("rate", "startRate")
DURATION_OPTIONS = ("duration", "maxDuration", "startTime", "gracefulStop", "gracefulRampDown")
_PROFILE_FACTOR = {**{key: "vus" for key in VU_OPTIONS}, **{key: "rate" for key in RATE_OPTIONS},
                   "iterations": "iterations", "duration": "duration",
                   "maxDuration": "duration", "startTime": "duration"}


def duration_problem(seconds: float) -> str | None:
    """Why `seconds` is too long for a plan, or None."""
    if seconds > MAX_DURATION or not math.isfinite(seconds):
        return (f"{_seconds(seconds)} is longer than 7 days ({MAX_DURATION:g}s), "
                "the longest duration a plan may use")
    return None


def check_options(scenario: str, executor: str, options: Mapping[str, Any],
                  raw: Mapping[str, Any], node: Map, scaled_by: Any) -> None:
    """Refuse options (as scaled) beyond what one process can run. `raw` are
    the values as written; `scaled_by` is the profile (None: no profile)."""
    time_unit = options.get("timeUnit", 1.0)
    where = _Where(scenario, node, raw, scaled_by)
    for key, value in options.items():
        if key in VU_OPTIONS:
            _check_vus(where, key, value)
        elif key in RATE_OPTIONS:
            _check_rate(where, key, value, time_unit)
        elif key == "iterations":
            total = value * options.get("vus", 1) if executor == "per-vu-iterations" else value
            if total > MAX_ITERATIONS:
                each = (f" ({options.get('vus', 1):,} VUs x {value:,} each)"
                        if executor == "per-vu-iterations" else "")
                where.fail(key, f"{total:,} iterations{each} are more than one scenario may "
                                f"run (at most {MAX_ITERATIONS:,})")
        elif key in DURATION_OPTIONS:
            problem = duration_problem(value)
            if problem is not None:
                where.fail(key, problem)
        elif key == "stages":
            _check_stages(where, executor, value, time_unit)


def check_scenario_length(scenario: Scenario, length: float) -> None:
    """The scenario's whole schedule (its start plus its executor's length)."""
    end = scenario.start_time + length
    if end > MAX_DURATION or not math.isfinite(end):
        raise PlanError(f"scenario '{scenario.name}' runs until {_seconds(end)}, longer than "
                        f"7 days ({MAX_DURATION:g}s), the longest a scenario may run",
                        scenario.source)


def check_concurrency(scenarios: Sequence[Scenario], length: Any) -> None:
    """Scenarios whose load windows overlap share the process: their VUs (and
    arrival rates) add up. `length(executor)` is an executor's length in s."""
    _check_sum(scenarios, length, _max_vus, MAX_VUS, "VUs", f"{MAX_VUS:,} VUs")
    _check_sum(scenarios, length, _max_rate, MAX_RATE, "iterations/s",
               f"{MAX_RATE:,.0f} iterations/s")


class _Where:
    """Where a value too large is reported: at its key, or at the profile
    factor that made it too large."""

    def __init__(self, scenario: str, node: Map, raw: Mapping[str, Any], profile: Any):
        self.scenario, self.node, self.raw, self.profile = scenario, node, raw, profile

    def fail(self, key: str, problem: str, raw_ok: bool | None = None) -> None:
        factor = _PROFILE_FACTOR.get(key)
        profile = self.profile
        scaled = (profile is not None and factor is not None
                  and getattr(profile, factor, 1.0) != 1.0)
        if raw_ok is None:
            raw_ok = scaled and self._raw_ok(key)
        if scaled and raw_ok:
            source = profile.factor_sources.get(factor, profile.source)
            raise PlanError(f"profile '{profile.name}' scales {key} of scenario "
                            f"'{self.scenario}' (x{getattr(profile, factor):g}): {problem}",
                            source, _hint(key))
        raise PlanError(f"{key}: {problem}", self.node.key_source(key), _hint(key))

    def _raw_ok(self, key: str) -> bool:
        """Whether the value as written is within the limit (then the profile
        made it too large)."""
        value = self.raw.get(key)
        if value is None:
            return False
        if key in VU_OPTIONS:
            return value <= MAX_VUS
        if key in RATE_OPTIONS:
            return value / self.raw.get("timeUnit", 1.0) <= MAX_RATE
        if key == "iterations":
            return value * self.raw.get("vus", 1) <= MAX_ITERATIONS
        return duration_problem(value) is None


def _check_vus(where: _Where, key: str, value: int) -> None:
    if value > MAX_VUS:
        where.fail(key, f"{value:,} VUs are more than one process runs (at most {MAX_VUS:,}; "
                        "each VU takes about 20 KB and a share of one event loop)")


def _check_rate(where: _Where, key: str, value: float, time_unit: float) -> None:
    per_second = value / time_unit if time_unit > 0 else math.inf
    if per_second > MAX_RATE or not math.isfinite(per_second):
        per = "" if time_unit == 1.0 else f" per {_seconds(time_unit)}, {per_second:,.0f}/s,"
        where.fail(key, f"{value:g} iterations{per} is more than one process starts (at most "
                        f"{MAX_RATE:,.0f} iterations/s; one core sends about 15,000-20,000 "
                        "requests/s)")


def _check_stages(where: _Where, executor: str, stages: Any, time_unit: float) -> None:
    node = where.node.get("stages")
    items = node.items if isinstance(node, Seq) else ()
    raw_stages = where.raw.get("stages", ())
    for index, stage in enumerate(stages):
        source = items[index].source if index < len(items) else where.node.key_source("stages")
        raw = raw_stages[index] if index < len(raw_stages) else stage
        problem = duration_problem(stage.duration)
        if problem is None and executor == "ramping-vus" and stage.target > MAX_VUS:
            problem = (f"a target of {stage.target:,.0f} VUs is more than one process runs "
                       f"(at most {MAX_VUS:,})")
            raw_ok = raw.target <= MAX_VUS
        elif problem is None and executor != "ramping-vus" \
                and stage.target / time_unit > MAX_RATE:
            problem = (f"a target of {stage.target / time_unit:,.0f} iterations/s is more than "
                       f"one process starts (at most {MAX_RATE:,.0f} iterations/s)")
            raw_ok = raw.target / time_unit <= MAX_RATE
        else:
            raw_ok = duration_problem(raw.duration) is None
        if problem is None:
            continue
        hint = None if duration_problem(stage.duration) else SPLIT_HINT
        profile = where.profile
        if profile is not None and raw_ok and raw is not stage:
            factor = "duration" if duration_problem(stage.duration) else (
                "vus" if executor == "ramping-vus" else "rate")
            raise PlanError(f"profile '{profile.name}' scales stage {index + 1} of scenario "
                            f"'{where.scenario}' (x{getattr(profile, factor):g}): {problem}",
                            profile.factor_sources.get(factor, profile.source), hint)
        raise PlanError(f"stage {index + 1}: {problem}", source, hint)


def _check_sum(scenarios: Sequence[Scenario], length: Any, amount: Any, limit: float,
               unit: str, limit_text: str) -> None:
    events: list[tuple[float, int, Scenario]] = []
    for scenario in scenarios:
        if amount(scenario.executor) <= 0:
            continue
        events.append((scenario.start_time, 1, scenario))
        events.append((scenario.start_time + length(scenario.executor), 0, scenario))
    active: dict[str, Scenario] = {}
    for _, starts, scenario in sorted(events, key=lambda event: (event[0], event[1])):
        if not starts:
            active.pop(scenario.name, None)
            continue
        active[scenario.name] = scenario
        total = sum(amount(other.executor) for other in active.values())
        if total > limit and len(active) > 1:
            names = ", ".join(f"'{other.name}' ({amount(other.executor):,.0f})"
                              for other in active.values())
            raise PlanError(f"scenarios running at the same time need {total:,.0f} {unit} in "
                            f"all: {names}; one process runs at most {limit_text}",
                            scenario.source, f"stagger them with startTime, or {SPLIT_HINT}")


def _max_vus(spec: ExecutorSpec) -> float:
    if isinstance(spec, ConstantVUs | PerVUIterations | SharedIterations):
        return spec.vus
    if isinstance(spec, RampingVUs):
        return max([spec.start_vus, *(stage.target for stage in spec.stages)])
    return spec.max_vus


def _max_rate(spec: ExecutorSpec) -> float:
    if isinstance(spec, ConstantArrivalRate):
        return spec.rate / spec.time_unit
    if isinstance(spec, RampingArrivalRate):
        return max([spec.start_rate, *(stage.target for stage in spec.stages)]) / spec.time_unit
    return 0.0


def _hint(key: str) -> str | None:
    return None if key in DURATION_OPTIONS else SPLIT_HINT


def _seconds(seconds: float) -> str:
    return f"{seconds:g}s"
