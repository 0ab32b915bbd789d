"""Runs a plan: preflight, vars, setup, the scenarios on their timeline, teardown.

The run always ends in a `RunOutcome`, whether it completed, was cancelled,
aborted on a threshold, hit a safety cap, or could not start: the caller
writes results and picks the exit code from it, so nothing measured is lost.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import monotonic
from typing import Any, Protocol

from yarl import URL

from loadaction.engine.clock import RunClock, sleep_until
from loadaction.engine.data import Feeder
from loadaction.engine.executors import Executor, ScenarioRun, executor_for
from loadaction.engine.hooks import FinishedLoad, LoadContext, RunPlugin
from loadaction.engine.realtime import UpdateMatcher
from loadaction.engine.safety import Guard
from loadaction.engine.start_at import (
    StartAt,
    StartOutcome,
    StartRecord,
    SystemClock,
    WallClock,
    describe,
    wait_for_start,
)
from loadaction.engine.state import ErrorEntry, ErrorLog, RunControl, RunState
from loadaction.engine.status import RunStatus
from loadaction.engine.transport import Transport
from loadaction.engine import collector
from loadaction.engine.transports import transport_for
from loadaction.engine.vu import ScenarioShared, StepError, VirtualUser, field_text
from loadaction.engine.websocket.scope import SessionScope
from loadaction.masking import Masker
from loadaction.metrics.registry import MetricInfo, Registry
from loadaction.metrics.series import LiveBucket, SeriesRecorder
from loadaction.metrics.sinks import RateSink, TrendSink
from loadaction.metrics.verdict import ThresholdResult, Verdict, judge, judge_all
from loadaction.plan.model import Flow, Plan

PREFLIGHT_TIMEOUT_S = 10.0
TEARDOWN_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class ScenarioProgress:
    name: str
    elapsed_s: float
    planned_s: float
    vus: int
    rps: float
    p95_ms: float | None
    error_rate: float | None
    running: bool


@dataclass(frozen=True, slots=True)
class Progress:
    elapsed_s: float
    scenarios: tuple[ScenarioProgress, ...]
    checks_rate: float | None


@dataclass(frozen=True, slots=True)
class ScenarioSummary:
    name: str
    executor: str
    exec: str
    start_time_s: float
    planned_duration_s: float
    graceful_stop_s: float
    iterations: int
    interrupted_iterations: int
    dropped_iterations: int
    vus_max: int


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    scenario: str
    message: str
    kind: str
    count: int
    first_seen_s: float


@dataclass(frozen=True, slots=True)
class Timing:
    """Setup and teardown are timed apart from the load (None: did not run)."""

    setup_s: float | None
    load_s: float
    teardown_s: float | None


@dataclass(frozen=True)
class RunOutcome:
    """A typed snapshot of a finished run: what the results builder reads
    (never the live engine). `registry` and `series` are metrics, no longer
    written to; `contributions` are the plugins' records, by plugin name."""

    plan: Plan
    started_at: datetime
    ended_at: datetime
    timing: Timing
    status: RunStatus
    reason: str | None
    scenarios: tuple[ScenarioSummary, ...]
    registry: Registry
    series: Mapping[str, Sequence[Mapping[str, Any]]]
    series_interval_s: float
    errors: tuple[ErrorRecord, ...]
    notices: tuple[str, ...]
    thresholds: tuple[ThresholdResult, ...]
    masker: Masker
    crash: Exception | None = None
    contributions: Mapping[str, Any] = field(default_factory=dict)
    start: StartRecord | None = None  # how the --start-at wait went (None: no --start-at)
    workers: int = 1  # the processes the load ran in (--workers)

    @property
    def duration_s(self) -> float:
        """The load's duration: what counter rates are per second of."""
        return self.timing.load_s

    @property
    def violations(self) -> list[ThresholdResult]:
        return [t for t in self.thresholds if t.failed]


class LoadSource(Protocol):
    """Load generated outside this process (worker processes, each running
    one execution segment), for a Run that executes no scenarios of its own:
    its samples are merged into the Run's registry as they arrive, so
    thresholds, abortOnFail, caps, plugins and progress work on the whole
    load; the Run still does preflight, vars, setup, plugins and teardown."""

    processes: int  # how many processes send the load (results: execution.workers)

    async def prepare(self, vars: Mapping[str, Any]) -> None:
        """Before the load clock starts: get the load ready (given setup's vars)."""
        ...

    async def run(self, ctx: LoadContext, registry: Registry) -> None:
        """The load, until it ends; `ctx.stop` set: end it gracefully."""
        ...

    async def discard(self) -> None:
        """Prepared but never run (the run stopped before its start): end the
        load without it sending anything."""
        ...

    def hard_stop(self) -> None:
        """End in-flight iterations at once (a second Ctrl-C)."""
        ...

    def vus(self) -> tuple[int, int] | None:
        """(active VUs, VUs allocated) now, summed; None before any is known."""
        ...

    def duration_s(self) -> float | None:
        """How long the load ran, once it is over (None: unknown)."""
        ...

    def progress(self, since: float, window: int) -> tuple[ScenarioProgress, ...]:
        """Rows for scenarios running, or ended after `since` (load-clock seconds),
        over the last `window` series points."""
        ...

    def series(self) -> Mapping[str, Sequence[Mapping[str, Any]]]: ...

    def summaries(self) -> tuple[ScenarioSummary, ...]: ...

    def errors(self) -> tuple[ErrorRecord, ...]: ...

    def notices(self) -> tuple[str, ...]: ...


def first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) TaskGroup exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def custom_metric_infos(plan: Plan) -> dict[str, MetricInfo]:
    return {name: MetricInfo(d.kind, "time" if d.is_time else "default")
            for name, d in plan.metrics.items()}


class Run:
    """One run of a plan. `control` lets signal handlers stop it gracefully;
    `hard_stop()` ends in-flight iterations at once (a second Ctrl-C).
    `plugins` take part through the run hooks (engine/hooks.py)."""

    def __init__(self, plan: Plan, *, transport: Transport | None = None,
                 plugins: Sequence[RunPlugin] = (),
                 progress: Callable[[Progress], None] | None = None,
                 progress_interval_s: float = 5.0, seed: int | None = None,
                 vars: Mapping[str, Any] | None = None, start_at: StartAt | None = None,
                 wall_clock: WallClock | None = None, load: LoadSource | None = None) -> None:
        """`vars`: what an earlier run's setup produced (its `setup_vars`); with
        them the plan's setup is skipped, so a series of runs against the same
        target (capacity steps) seeds its test data once. `start_at`: after
        setup, wait for that wall-clock instant (engine/start_at.py) before
        any executor starts; `wall_clock` is the clock it is read from.
        `load`: the load runs there (workers), not in this Run's executors."""
        self._load = load
        self._start_at = start_at
        self._wall_clock = wall_clock or SystemClock()
        self._start: StartRecord | None = None
        self.plan = plan
        self._given_vars = None if vars is None else dict(vars)
        self.setup_vars: dict[str, Any] = {}  # what setup returned, or the vars given
        self.setup_done = False  # vars rendered and setup run (or given): teardown may clean up
        self.control = RunControl()
        self.plugins = tuple(plugins)
        clock = RunClock()
        rng = random.Random(seed)
        metrics = custom_metric_infos(plan)
        for plugin in self.plugins:
            metrics.update(plugin.metrics)
        attributions = [p.attribution for p in self.plugins if p.attribution is not None]
        if len(attributions) > 1:
            raise ValueError("at most one plugin may attribute samples")
        self.state = RunState(
            plan=plan,
            transport=transport or transport_for(plan),
            registry=Registry(metrics),
            series=SeriesRecorder(s.name for s in plan.scenarios),
            guard=Guard(plan.allowed_hosts, plan.limits.max_rps, plan.limits.max_requests),
            masker=Masker(plan.secrets.values()),
            feeders={name: Feeder(src, rng, plan.execution) for name, src in plan.data.items()},
            clock=clock,
            errors=ErrorLog(clock),
            control=self.control,
            layers=tuple(layer for p in self.plugins for layer in p.layers),
            attribution=attributions[0] if attributions else None,
        )
        if plan.realtime_writes:
            self.state.realtime = UpdateMatcher(plan.realtime_writes, field_text,
                                                self.state.notice)
        for plugin in self.plugins:
            plugin.attach(self.state.registry)
        self.progress = progress
        self.progress_interval_s = progress_interval_s
        self.scenarios = [] if load is not None else [
            (r, executor_for(r)) for r in (ScenarioRun(self.state, s) for s in plan.scenarios)]
        self._scenarios_task: asyncio.Task[None] | None = None
        # the load's time 0 as a monotonic instant, when another process (a
        # worker's parent) started the load and this one runs a share of it
        self.origin: float | None = None
        self.crash: Exception | None = None
        self._setup_s: float | None = None
        self._load_s = 0.0
        self._teardown_s: float | None = None

    @property
    def masker(self) -> Masker:
        return self.state.masker

    def hard_stop(self) -> None:
        self.control.request_stop(RunStatus.CANCELLED, "cancelled")
        if self._load is not None:
            self._load.hard_stop()  # its final samples still arrive
        elif self._scenarios_task is not None:
            self._scenarios_task.cancel()

    # ------------------------------------------------------------ the run

    async def execute(self) -> RunOutcome:
        started_at = datetime.now(UTC)
        state = self.state
        state.heartbeat.start()
        try:
            await self._preflight()
            state.global_vars.update(self._render_vars())
            if self._given_vars is not None:
                self.setup_vars = self._given_vars
            elif self.plan.setup is not None:
                began = monotonic()
                try:
                    self.setup_vars = await self._once(self.plan.setup, "setup")
                finally:
                    self._setup_s = monotonic() - began
            state.global_vars.update(self.setup_vars)
            self.setup_done = True
            if self._load is not None:  # before the --start-at wait: workers take a while to start
                await self._load.prepare(self.setup_vars)
            if await self._wait_for_start():
                self._scenarios_task = asyncio.create_task(self._run_scenarios())
                try:
                    await self._scenarios_task
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():  # cancelled, not hard-stopped
                        raise
        except StepError as exc:
            self.control.request_stop(RunStatus.FAILED, str(exc))
        except Exception as exc:  # a bug: still report what was measured, then say so
            self.crash = exc
            root = first_leaf(exc)
            self.control.request_stop(RunStatus.CRASHED,
                                      f"internal error: {type(root).__name__}: {root}")
        finally:
            if self._load_s == 0.0 and self._scenarios_task is not None:
                self._load_s = state.clock.elapsed()
            # the load is prepared right after setup: ready, but never let go
            if self._load is not None and self.setup_done and self._scenarios_task is None:
                await self._load.discard()
            for plugin in self.plugins:
                await plugin.close()  # before teardown: never leave a fault behind
            if self.setup_done and self.plan.teardown is not None:
                began = monotonic()
                await self._teardown()
                self._teardown_s = monotonic() - began
            await state.transport.close()
            state.heartbeat.stop()
            if state.realtime is not None:
                state.realtime.finish()
        return self._outcome(started_at)

    async def _wait_for_start(self) -> bool:
        """The --start-at wait; False when no load may run (stopped while
        waiting, or the instant passed beyond the tolerance)."""
        if self._start_at is None:
            return True
        self._start = await wait_for_start(self._start_at, self._wall_clock, self.control.stop)
        if (notice := describe(self._start)) is not None:
            self.state.notice(notice)
        if self._start.outcome is StartOutcome.TOO_LATE:
            self.control.request_stop(RunStatus.FAILED, notice or "--start-at passed")
        return self._start.begins

    def _render(self, tpl: Any) -> Any:
        """A plan template outside any VU (plugins' templates): env, secrets, vars."""
        return tpl.render({"env": self.plan.env, "secrets": self.plan.secrets,
                           "vars": self.state.global_vars})

    async def _preflight(self) -> None:
        """Fail fast, with a clear message, when the target cannot be reached at all."""
        url = URL(self.plan.target)
        host, port = self.state.transport.first_hop(url)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), PREFLIGHT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                reason = f"no connection within {PREFLIGHT_TIMEOUT_S:g}s"
            elif isinstance(exc, ConnectionRefusedError):
                reason = "connection refused"
            elif isinstance(exc, socket.gaierror):
                reason = f"cannot resolve {host}"
            else:
                reason = exc.strerror or str(exc)
            via = "" if host == url.host else f" (through the proxy at {host}:{port})"
            raise StepError(f"target {self.plan.target} is unreachable{via}: {reason}") from None
        writer.close()

    def _render_vars(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ctx = {"env": self.plan.env, "secrets": self.plan.secrets, "vars": out}
        for name, tpl in self.plan.vars:
            try:
                out[name] = tpl.render(ctx)
            except Exception as exc:
                raise StepError(f"var '{name}' could not be rendered: {exc}") from None
        return out

    async def _once(self, flow: Flow, name: str) -> dict[str, Any]:
        """Run setup or teardown as one iteration of VU 0; any error or failed check fails it."""
        state = self.state
        before = len(state.errors.entries)
        shared = ScenarioShared()
        vu = VirtualUser(state, name, 0, LiveBucket(), (("scenario", name),), shared)
        try:
            if flow.sessions:
                scope = SessionScope(state)
                vu.sessions = scope.for_vu(vu, flow, shared.sinks)
                await scope.run(vu.iteration(flow, 0, 0))
            else:
                await vu.iteration(flow, 0, 0)
        except StepError as exc:
            raise StepError(f"{name} failed: {exc}") from None
        failed_checks = state.registry.select("checks", (("scenario", name),))
        if isinstance(failed_checks, RateSink) and failed_checks.passes < failed_checks.total:
            raise StepError(f"{name} failed: {failed_checks.total - failed_checks.passes} check(s) failed")
        if len(state.errors.entries) > before:
            (scenario, message) = list(state.errors.entries)[-1]
            raise StepError(f"{name} failed: {message}")
        return vu.vars

    async def _teardown(self) -> None:
        self.state.guard.max_requests = None  # cleaning up is never capped
        try:
            await asyncio.wait_for(self._once(self.plan.teardown, "teardown"), TEARDOWN_TIMEOUT_S)
        except StepError as exc:
            self.state.notice(str(exc))
        except TimeoutError:
            self.state.notice(f"teardown did not finish within {TEARDOWN_TIMEOUT_S:g}s")

    async def _run_scenarios(self) -> None:
        with collector.load_phase():
            clock = self.state.clock
            clock.start(self.origin)
            t0 = clock.t0
            ctx = LoadContext(clock, self.control.stop, self.control.request_stop, self._render)
            for plugin in self.plugins:
                plugin.load_started(ctx)
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._scenario(run, ex, t0)) for run, ex in self.scenarios]
                if self._load is not None:
                    tasks.append(tg.create_task(self._load.run(ctx, self.state.registry)))
                    announcer = tg.create_task(self._announce_scenarios(t0))
                ticker = tg.create_task(self._tick(t0))
                if tasks:  # a plan of setup or teardown alone runs no load
                    await asyncio.wait(tasks)
                ticker.cancel()
                if self._load is not None:
                    announcer.cancel()
            self._load_s = clock.elapsed()
            if self._load is not None:  # the load's own length, not the messages' latency
                self._load_s = self._load.duration_s() or self._load_s
        self._roll(self._load_s)

    async def _announce_scenarios(self, t0: float) -> None:
        """The plugins' scenario hooks when the load runs elsewhere: each
        scenario starts at its startTime there (the load source's processes
        share this clock), so a fault `from` a scenario counts from then."""
        started: list[str] = []
        try:
            for scenario in sorted(self.plan.scenarios, key=lambda s: s.start_time):
                if await sleep_until(t0 + scenario.start_time, self.control.stop):
                    return
                started.append(scenario.name)
                for plugin in self.plugins:
                    await plugin.scenario_started(scenario.name)
            await asyncio.Event().wait()  # until the load is over
        finally:
            for name in started:
                for plugin in self.plugins:
                    plugin.scenario_ended(name)

    async def _scenario(self, run: ScenarioRun, executor: Executor, t0: float) -> None:
        if await run.sleep_until(t0 + run.scenario.start_time):
            return
        run.start_mono = monotonic()
        for plugin in self.plugins:
            await plugin.scenario_started(run.scenario.name)
        try:
            if run.websockets is not None:
                await run.websockets.run(executor.execute())
            else:
                await executor.execute()
        finally:
            run.ended = True
            run.end_mono = monotonic()
            for plugin in self.plugins:
                plugin.scenario_ended(run.scenario.name)

    # ------------------------------------------------------------ once a second

    async def _tick(self, t0: float) -> None:
        plan, control = self.plan, self.control
        aborters = [t for t in plan.thresholds if t.abort_on_fail]
        next_progress = self.progress_interval_s
        second = 1
        while True:
            await asyncio.sleep(max(0.0, t0 + second - monotonic()))
            elapsed = monotonic() - t0
            self._roll(elapsed)
            for threshold in aborters:
                if elapsed >= threshold.delay_abort_eval:
                    result = judge(threshold, self.state.registry, elapsed)
                    if result.verdict is Verdict.FAIL:
                        control.request_stop(
                            RunStatus.ABORTED, f"threshold {threshold.selector} {threshold.expr.text} "
                                       f"crossed (abortOnFail)")
            limit = plan.limits.max_duration
            if limit is not None and elapsed >= limit:
                control.request_stop(RunStatus.CAPPED, f"max-duration of {limit:g}s reached")
            if self.progress is not None and elapsed >= next_progress:
                self.progress(self._progress(elapsed, since=t0 + next_progress - self.progress_interval_s))
                next_progress += self.progress_interval_s
            second += 1

    def _roll(self, t: float) -> None:
        state = self.state
        if self._load is not None:  # the workers keep the series; the gauges are their sums
            if (vus := self._load.vus()) is not None:  # None: nothing heard from it yet
                state.registry.add("vus", vus[0], ())
                state.registry.add("vus_max", vus[1], ())
            return
        vus = {run.scenario.name: run.active_vus for run, _ in self.scenarios}
        state.series.roll(t, vus)
        state.registry.add("vus", sum(vus.values()), ())
        state.registry.add("vus_max", sum(run.vus_max for run, _ in self.scenarios), ())

    def _progress(self, elapsed: float, since: float) -> Progress:
        """Scenarios running now, or that ended since the last report (shown once, as done)."""
        window = max(1, round(self.progress_interval_s))
        checks = self.state.registry.select("checks")
        checks_rate = checks.rate if isinstance(checks, RateSink) else None
        if self._load is not None:
            return Progress(elapsed, self._load.progress(since - self.state.clock.t0, window),
                            checks_rate)
        rows = []
        for run, executor in self.scenarios:
            if run.start_mono is None or (run.end_mono is not None and run.end_mono < since):
                continue
            points = self.state.series.last(run.scenario.name, window)
            reqs = sum(p["reqs"] for p in points)
            failed = sum(p["failed"] for p in points)
            merged = TrendSink()
            for p in points:
                if p["hdr"]:
                    merged.hist.decode_and_add(p["hdr"])
            rows.append(ScenarioProgress(
                name=run.scenario.name, elapsed_s=run.elapsed(),
                planned_s=executor.planned_duration(), vus=run.active_vus,
                rps=reqs / max(len(points), 1), p95_ms=merged.percentile(95) if merged.count else None,
                error_rate=failed / reqs if reqs else None,
                running=run.end_mono is None,
            ))
        return Progress(elapsed, tuple(rows), checks_rate)

    # ------------------------------------------------------------ the end

    def _outcome(self, started_at: datetime) -> RunOutcome:
        state = self.state
        load_s = self._load_s
        thresholds = tuple(judge_all(self.plan.thresholds, state.registry, load_s))
        series = state.series.points if self._load is None else self._load.series()
        finished = FinishedLoad(state.registry, series, self.plan.thresholds, load_s)
        contributions = {p.name: p.contribute(finished) for p in self.plugins}
        errors = tuple(
            ErrorRecord(scenario, message, entry.kind.value, entry.count,
                        entry.first_seen - state.clock.t0)  # negative: during setup
            for (scenario, message), entry in _by_count(state.errors.entries))
        notices = list(state.notices)
        if state.errors.dropped:
            notices.append(f"{state.errors.dropped} further errors with other messages were not kept")
        if self._load is not None:
            errors = tuple(sorted(errors + self._load.errors(), key=lambda e: -e.count))
            notices.extend(self._load.notices())
        scenarios = self._load.summaries() if self._load is not None else tuple(
            ScenarioSummary(
                run.scenario.name, run.scenario.executor.kind, run.scenario.exec,
                run.scenario.start_time, ex.planned_duration(), run.scenario.graceful_stop,
                run.iterations, run.interrupted, run.dropped, run.vus_max)
            for run, ex in self.scenarios)
        return RunOutcome(
            plan=self.plan, started_at=started_at, ended_at=datetime.now(UTC),
            timing=Timing(self._setup_s, load_s, self._teardown_s),
            status=self.control.status, reason=self.control.reason, scenarios=scenarios,
            registry=state.registry, series=series,
            series_interval_s=state.series.interval_s, errors=errors, notices=tuple(notices),
            thresholds=thresholds, masker=state.masker, crash=self.crash,
            contributions=contributions, start=self._start,
            workers=1 if self._load is None else self._load.processes,
        )


def _by_count(entries: Mapping[tuple[str, str], ErrorEntry]) -> list[tuple[tuple[str, str], ErrorEntry]]:
    return sorted(entries.items(), key=lambda kv: -kv[1].count)
