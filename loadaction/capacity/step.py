"""One capacity step: the plan it runs, the plugin that splits its warm-up
from its judged window, and its verdict.

The warm-up is cut by send time, not by throwing samples away: a plugin
attribution tags every request-derived sample (`http_*`, checks, records)
`capacity_window:warmup` or `capacity_window:judged` by when it was sent, and
the step's budgets are rewritten to select `capacity_window:judged`. The
target's queue built during the warm-up still shows in the judged latencies
(that is the point of warming up); the warm-up's own samples stay in the
results document, under their tag. Counters the executor keeps
(`iterations`, `dropped_iterations`, `iteration_start_lateness`) carry no
attribution, so the plugin snapshots them when the warm-up ends.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from loadaction.capacity.search import LimitedBy, StepVerdict
from loadaction.engine.hooks import Attribution, FinishedLoad, LoadContext
from loadaction.engine.layers import RequestLayer
from loadaction.engine.runner import RunOutcome
from loadaction.engine.status import RunStatus
from loadaction.metrics.registry import MetricInfo, Registry
from loadaction.metrics.sinks import CounterSink, RateSink, TrendSink
from loadaction.metrics.verdict import ThresholdResult, judge_all
from loadaction.plan.model import ConstantArrivalRate, Limits, Plan, Scenario, Threshold

WINDOW_TAG = "capacity_window"
WARMUP, JUDGED = "warmup", "judged"
UNWINDOWED = frozenset({"iterations", "iteration_duration", "iteration_start_lateness",
                        "dropped_iterations", "vus", "vus_max"})
"""Metrics the executor or the ticker records, without the attribution: their
budgets are judged over the whole step."""

STARTED_SHARE = 0.95
"""A step whose generator started (or dropped) fewer of its scheduled
iterations than this share did not offer the rate it was asked for."""

DROPPED_SHARE = 0.001
"""`dropped_iterations` is "about 0" when at most this share of the judged
window's scheduled iterations were dropped (none below 1,000 scheduled)."""

CPU_SHARE = 0.9
"""The generator's own CPU (this process, user + system) over this share of
one core during the step: its numbers measure the generator, not the target."""

MAX_RPS_SHARE = 0.9
"""Sending at this share of --max-rps or more: the cap, not the target, paced it."""


@dataclass(frozen=True, slots=True)
class StepConfig:
    duration_s: float
    warmup_s: float
    max_vus: int
    max_error_rate: float
    max_lateness_ms: float


def applicable(threshold: Threshold, scenario: str) -> bool:
    scenario_tag = dict(threshold.tags).get("scenario")
    return scenario_tag is None or scenario_tag == scenario


def windowed(threshold: Threshold) -> Threshold:
    """The budget on the judged window only (request-derived metrics)."""
    if threshold.metric in UNWINDOWED:
        return threshold
    return replace(threshold, tags=tuple(sorted((*threshold.tags, (WINDOW_TAG, JUDGED)))))


def pre_allocated(rate: float, iteration_s: float, max_vus: int) -> int:
    """Enough VUs for the rate at the iteration time seen so far, with headroom;
    more are started on demand up to `max_vus`."""
    return max(1, min(max_vus, math.ceil(rate * iteration_s * 1.5) + 1))


def step_plan(plan: Plan, scenario: Scenario, rate: float, config: StepConfig, *,
              iteration_s: float, limits: Limits, setup: bool) -> Plan:
    """The plan of one step: the scenario alone as a constant arrival rate,
    its applicable budgets on the judged window; setup only when `setup`
    (the first step), never teardown (the search runs it once at the end)."""
    executor = ConstantArrivalRate(
        rate=rate, duration=config.duration_s, time_unit=1.0,
        pre_allocated_vus=pre_allocated(rate, iteration_s, config.max_vus),
        max_vus=config.max_vus)
    derived = replace(scenario, executor=executor, start_time=0.0,
                      graceful_stop=min(scenario.graceful_stop, max(config.duration_s, 1.0)))
    thresholds = tuple(windowed(t) for t in plan.thresholds if applicable(t, scenario.name))
    return replace(plan, scenarios=(derived,), thresholds=thresholds, limits=limits,
                   setup=plan.setup if setup else None, teardown=None, chaos=(),
                   regressions=(), warnings=())


def teardown_plan(plan: Plan, limits: Limits) -> Plan:
    """The teardown alone, run once after the last step with the setup's vars."""
    return replace(plan, scenarios=(), thresholds=(), limits=limits, setup=None, chaos=(),
                   regressions=(), warnings=())


class _Window:
    """The attribution: `warmup` until the mark, then `judged`."""

    key = WINDOW_TAG

    def __init__(self, warmup_s: float) -> None:
        self.warmup_s = warmup_s

    def label_at(self, t: float) -> str:
        return WARMUP if t < self.warmup_s else JUDGED


@dataclass(slots=True)
class WindowMarks:
    """Executor counters at the end of the warm-up and at the end of the load,
    and this process's CPU time over the load."""

    started_at_mark: int = 0
    dropped_at_mark: int = 0
    started_at_end: int = 0
    dropped_at_end: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    marked: bool = False


class StepWindow:
    """The run plugin of a step (engine/hooks.py)."""

    name = "capacity"
    metrics: Mapping[str, MetricInfo] = {}
    layers: tuple[RequestLayer, ...] = ()

    def __init__(self, warmup_s: float, scenario: str) -> None:
        self._window = _Window(warmup_s)
        self.attribution: Attribution | None = self._window
        self.scenario = scenario
        self.marks = WindowMarks()
        self._registry: Registry | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._cpu0 = self._wall0 = 0.0

    def attach(self, registry: Registry) -> None:
        self._registry = registry

    def _counts(self) -> tuple[int, int]:
        assert self._registry is not None
        selector = (("scenario", self.scenario),)
        lateness = self._registry.select("iteration_start_lateness", selector)
        dropped = self._registry.select("dropped_iterations", selector)
        return (lateness.count if isinstance(lateness, TrendSink) else 0,
                int(dropped.count) if isinstance(dropped, CounterSink) else 0)

    def _mark(self) -> None:
        self.marks.started_at_mark, self.marks.dropped_at_mark = self._counts()
        self.marks.marked = True

    def load_started(self, ctx: LoadContext) -> None:
        self._cpu0, self._wall0 = time.process_time(), time.monotonic()
        if self._window.warmup_s > 0:
            self._timer = asyncio.get_running_loop().call_later(self._window.warmup_s, self._mark)
        else:
            self._mark()

    async def scenario_started(self, name: str) -> None:
        return None

    def scenario_ended(self, name: str) -> None:
        self.marks.started_at_end, self.marks.dropped_at_end = self._counts()
        self.marks.cpu_s = time.process_time() - self._cpu0
        self.marks.wall_s = time.monotonic() - self._wall0

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def contribute(self, finished: FinishedLoad) -> WindowMarks:
        return self.marks


@dataclass(frozen=True)
class StepResult:
    rate: float
    duration_s: float  # the judged window
    verdict: StepVerdict
    reasons: tuple[str, ...]
    achieved_rate: float | None  # iterations started per second of the judged window
    p95_ms: float | None
    error_rate: float | None
    dropped: int
    lateness_p95_ms: float | None
    cpu_share: float | None
    request_rate: float | None
    iteration_s: float | None  # median iteration time, for sizing the next step's VUs
    fastest_iteration_s: float | None
    thresholds: tuple[ThresholdResult, ...]
    limited_by: LimitedBy | None = None  # why an unknown step is unknown
    outcome: RunOutcome | None = field(default=None, repr=False)


def _judged(scenario: str) -> tuple[tuple[str, str], ...]:
    return (("scenario", scenario), (WINDOW_TAG, JUDGED))


def judge_step(outcome: RunOutcome, rate: float, config: StepConfig, *,
               baseline_iteration_s: float | None) -> StepResult:
    """Unknown first (the generator or a cap is the limit), then fail (a
    budget, the error rate or dropped iterations), else pass.
    `baseline_iteration_s`: the fastest iteration earlier steps saw."""
    registry = outcome.registry
    scenario = outcome.plan.scenarios[0].name
    marks = outcome.contributions.get("capacity")
    assert isinstance(marks, WindowMarks)
    judged_s = max(config.duration_s - config.warmup_s, 1e-9)
    thresholds = tuple(judge_all(outcome.plan.thresholds, registry, judged_s))
    started = marks.started_at_end - marks.started_at_mark
    dropped = marks.dropped_at_end - marks.dropped_at_mark
    scheduled = rate * judged_s

    duration = registry.select("http_req_duration", _judged(scenario))
    p95 = duration.percentile(95) if isinstance(duration, TrendSink) and duration.count else None
    failed = registry.select("http_req_failed", _judged(scenario))
    error_rate = failed.rate if isinstance(failed, RateSink) else None
    reqs = registry.select("http_reqs", _judged(scenario))
    request_rate = reqs.count / judged_s if isinstance(reqs, CounterSink) else None
    lateness = registry.select("iteration_start_lateness", (("scenario", scenario),))
    lateness_p95 = (lateness.percentile(95)
                    if isinstance(lateness, TrendSink) and lateness.count else None)
    iterations = registry.select("iteration_duration", (("scenario", scenario),))
    timed = isinstance(iterations, TrendSink) and iterations.count > 0
    iteration_s = iterations.percentile(50) / 1000 if timed else None  # type: ignore[union-attr]
    # the fastest iteration: the target's service time without a queue, the
    # VUs' need that is the generator's to meet (a queue is the target's)
    fastest_s = iterations.min() / 1000 if timed else None  # type: ignore[union-attr]
    cpu_share = marks.cpu_s / marks.wall_s if marks.wall_s > 0 else None

    unknown: list[str] = []
    limited_by = LimitedBy.GENERATOR
    if outcome.status is RunStatus.CAPPED:
        unknown.append(f"stopped by a safety cap: {outcome.reason}")
        limited_by = LimitedBy.CAP
    elif outcome.status is RunStatus.CANCELLED:
        unknown.append("cancelled")
    elif outcome.status not in (RunStatus.COMPLETE, RunStatus.ABORTED):
        unknown.append(f"run {outcome.status}: {outcome.reason}")
    if not unknown:
        max_rps = outcome.plan.limits.max_rps
        if max_rps is not None and request_rate is not None and request_rate >= MAX_RPS_SHARE * max_rps:
            unknown.append(f"paced by --max-rps {max_rps:g} ({request_rate:.1f} req/s sent)")
        if started + dropped < STARTED_SHARE * scheduled:
            unknown.append(f"generator started {started + dropped} of {scheduled:.0f} "
                           f"scheduled iterations")
        if lateness_p95 is not None and lateness_p95 > config.max_lateness_ms:
            unknown.append(f"iteration start lateness p(95) {lateness_p95:.1f} ms "
                           f"> {config.max_lateness_ms:g} ms")
        if cpu_share is not None and cpu_share > CPU_SHARE:
            unknown.append(f"generator CPU {cpu_share:.0%} of a core")
        base = min((t for t in (baseline_iteration_s, fastest_s) if t is not None), default=None)
        if dropped and base is not None and rate * base >= 0.9 * config.max_vus:
            unknown.append(f"--max-vus {config.max_vus} too few for {rate:g}/s at "
                           f"{base * 1000:.0f} ms per iteration")

    failures: list[str] = []
    for result in thresholds:
        if result.failed:
            observed = "no data" if result.observed is None else f"{result.observed:g}"
            failures.append(f"{_plain(result.threshold)} {result.threshold.expr.text} "
                            f"({result.verdict.value}: {observed})")
    budgets_errors = any(t.threshold.metric == "http_req_failed" for t in thresholds)
    if not budgets_errors:
        if error_rate is None:
            failures.append("no requests in the judged window")
        elif error_rate > config.max_error_rate:
            failures.append(f"error rate {error_rate:.2%} > {config.max_error_rate:.2%}")
    allowed_drops = math.floor(DROPPED_SHARE * scheduled)
    if dropped > allowed_drops:
        failures.append(f"{dropped} dropped iterations (allowed {allowed_drops})")
    if outcome.status is RunStatus.ABORTED and not failures:
        failures.append(f"aborted: {outcome.reason}")

    limited: LimitedBy | None = None
    if unknown:
        verdict, reasons, limited = StepVerdict.UNKNOWN, tuple(unknown), limited_by
    elif failures:
        verdict, reasons = StepVerdict.FAIL, tuple(failures)
    else:
        verdict, reasons = StepVerdict.PASS, ()
    return StepResult(
        rate=rate, duration_s=judged_s, verdict=verdict, reasons=reasons,
        achieved_rate=started / judged_s, p95_ms=p95, error_rate=error_rate, dropped=dropped,
        lateness_p95_ms=lateness_p95, cpu_share=cpu_share, request_rate=request_rate,
        iteration_s=iteration_s, fastest_iteration_s=fastest_s, thresholds=thresholds,
        limited_by=limited,
        outcome=replace(outcome, thresholds=thresholds))


def _plain(threshold: Threshold) -> str:
    """The selector as the plan wrote it (without the window tag)."""
    tags = tuple(pair for pair in threshold.tags if pair[0] != WINDOW_TAG)
    return replace(threshold, tags=tags).selector


def observed_budgets(result: StepResult) -> list[dict[str, Any]]:
    return [{"metric": _plain(t.threshold), "expression": t.threshold.expr.text,
             "verdict": t.verdict.value, "observed": t.observed} for t in result.thresholds]
