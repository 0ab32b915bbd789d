"""What every executor shares: VUs, iterations and the graceful stop.

Executors decide *when* iterations start; this module decides what an
iteration is (errors, interruption, metrics) and how a scenario winds down:
no new iterations after its end, `gracefulStop` for those in flight, then
cancellation (those count as interrupted, not as iterations).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from time import monotonic, perf_counter_ns
from typing import Any

from loadaction.engine.clock import sleep_until
from loadaction.engine.data import DataExhausted
from loadaction.engine.safety import CapReached
from loadaction.engine.state import RunState
from loadaction.engine.status import RunStatus
from loadaction.engine.vu import ScenarioShared, StepError, VirtualUser
from loadaction.engine.websocket.scope import SessionScope
from loadaction.plan.model import Scenario
from loadaction.plan.segments import Execution


# VUs are started this many at a time, with the event loop given a turn in
# between, so starting thousands never keeps signals (or the ticker) waiting.
START_BATCH = 256


class VUStopped(Exception):
    """This VU can run no more iterations (its unique data ran out)."""


class ScenarioRun:
    """The live state of one scenario; executors drive it."""

    def __init__(self, state: RunState, scenario: Scenario) -> None:
        self.state = state
        self.scenario = scenario
        self.flow = state.plan.flows[scenario.exec]
        self.bucket = state.series.live[scenario.name]
        self.tags = tuple(sorted({**dict(scenario.tags), "scenario": scenario.name}.items()))
        self.iterations = 0
        self.interrupted = 0
        self.dropped = 0
        self.started = 0  # iterations started (scenario.iteration in templates)
        self.active_vus = 0
        self.vus_max = 0
        self.ended = False  # the executor's own end: no new iterations
        self.start_mono: float | None = None
        self.end_mono: float | None = None
        self.shared = ScenarioShared()  # prepared requests and sinks, for all its VUs
        # where its VUs' WebSocket sessions live (the runner runs the executor in
        # it); None when the flow opens none
        self.websockets = SessionScope(state) if self.flow.sessions else None
        self._iter_count = state.registry.sink("iterations", self.tags)
        self._iter_duration = state.registry.sink("iteration_duration", self.tags)
        self._dropped = state.registry.sink("dropped_iterations", self.tags)
        self._lateness = state.registry.sink("iteration_start_lateness", self.tags)
        self._striped: Execution | None = None
        self.stripe_iterations(state.plan.execution)

    # ------------------------------------------------------------ clock

    def elapsed(self) -> float:
        """Seconds since the scenario started, frozen once it is over."""
        if self.start_mono is None:
            return 0.0
        return (self.end_mono or monotonic()) - self.start_mono

    @property
    def stopping(self) -> asyncio.Event:
        return self.state.control.stop

    @property
    def open(self) -> bool:
        """May a new iteration start?"""
        return not self.ended and not self.state.control.stop.is_set()

    async def sleep_until(self, deadline: float) -> bool:
        """Sleep until `deadline` (monotonic); True if the run was told to stop first."""
        return await sleep_until(deadline, self.stopping)

    def stripe_iterations(self, execution: Execution) -> None:
        """Number this segment's iterations as `execution` stripes the whole
        test's, so `scenario.iteration` is unique across segments (k6's
        iterationInTest); the full run numbers them 0, 1, 2, ..."""
        self._striped = None if execution.is_full else execution

    # ------------------------------------------------------------ VUs & iterations

    def new_vu(self) -> VirtualUser:
        self.vus_max += 1
        vu_id = self.state.next_vu_id()
        vu = VirtualUser(self.state, self.scenario.name, vu_id, self.bucket, self.tags, self.shared)
        if self.websockets is not None:
            vu.sessions = self.websockets.for_vu(vu, self.flow, self.shared.sinks)
        return vu

    def drop(self) -> None:
        self.dropped += 1
        self._dropped.add(1)

    def lateness(self, seconds: float) -> None:
        self._lateness.add_us(int(seconds * 1_000_000))

    async def iterate(self, vu: VirtualUser, n: int) -> None:
        """One iteration; raises VUStopped when the VU must not run another.

        When the event loop has not turned for a while (iterations that never
        suspend, renders that use their whole time budget), it gets a turn
        first, and an iteration due after a stop is not started."""
        if self.state.heartbeat.stale():
            await asyncio.sleep(0)
            if not self.open:
                raise VUStopped()
        self.started += 1
        number = self.started - 1
        if self._striped is not None:
            number = self._striped.global_index(number)
        start = perf_counter_ns()
        try:
            await vu.iteration(self.flow, n, number)
        except asyncio.CancelledError:
            self.interrupted += 1
            raise
        except StepError as exc:
            self.state.errors.add(self.scenario.name, str(exc), exc.kind)
        except DataExhausted as exc:
            self.state.notice(f"{exc}: scenario '{self.scenario.name}' stopped drawing rows")
            raise VUStopped() from None
        except CapReached as exc:
            self.state.control.request_stop(RunStatus.CAPPED, str(exc))
            raise VUStopped() from None
        self.iterations += 1
        self._iter_count.count += 1
        self._iter_duration.add_us((perf_counter_ns() - start) // 1000)
        self.bucket.iterations += 1

    async def wait_until(self, tasks: Iterable[asyncio.Task[None]], deadline: float) -> None:
        """Wait until every task is done, `deadline` (monotonic) passes or the run stops."""
        pending: set[asyncio.Future[object]] = {t for t in tasks if not t.done()}
        stop_waiter = asyncio.ensure_future(self.stopping.wait())
        try:
            while pending and not self.stopping.is_set():
                timeout = deadline - monotonic()
                if timeout <= 0:
                    break
                _, pending = await asyncio.wait(
                    pending | {stop_waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(stop_waiter)
        finally:
            stop_waiter.cancel()

    async def finish(self, tasks: Iterable[asyncio.Task[None]]) -> None:
        """The executor's time is up: no new iterations, then the graceful stop."""
        self.ended = True
        await self.settle(tasks, self.scenario.graceful_stop)

    async def settle(self, tasks: Iterable[asyncio.Task[None]], grace: float) -> None:
        """Give in-flight work `grace` seconds, then cancel what is left."""
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        if grace > 0:
            _, still = await asyncio.wait(pending, timeout=grace)
            pending = list(still)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class Executor:
    """Base class: `run()` returns when the scenario is over, graceful stop included."""

    def __init__(self, run: ScenarioRun) -> None:
        self.run = run
        self.spec = run.scenario.executor
        # this process's share (--execution-segment); the spec is the whole plan's
        self.execution = run.state.plan.execution

    def planned_duration(self) -> float:
        raise NotImplementedError

    async def execute(self) -> None:
        raise NotImplementedError

    async def start_vus(self, tg: asyncio.TaskGroup, count: int,
                        loop: Callable[[VirtualUser], Coroutine[Any, Any, None]]
                        ) -> list[asyncio.Task[None]]:
        """`count` new VUs, each running `loop(vu)` in a task of `tg`, started
        in batches; stops starting more once the run is told to stop."""
        run = self.run
        tasks: list[asyncio.Task[None]] = []
        while len(tasks) < count and not run.stopping.is_set():
            for _ in range(min(START_BATCH, count - len(tasks))):
                tasks.append(tg.create_task(loop(run.new_vu())))
            if len(tasks) < count:
                await asyncio.sleep(0)
        return tasks

    async def vu_loop(self, vu: VirtualUser, may_continue: Callable[[int], bool]) -> None:
        """Iterate while the scenario is open and `may_continue(n)` says so;
        then the VU's WebSocket sessions close (dropped if it is interrupted)."""
        run = self.run
        run.active_vus += 1
        n = 0
        try:
            while run.open and may_continue(n):
                await run.iterate(vu, n)
                n += 1
        except VUStopped:
            pass
        except asyncio.CancelledError:
            if vu.sessions is not None:
                vu.sessions.abort()
            raise
        finally:
            run.active_vus -= 1
        if vu.sessions is not None:
            await vu.sessions.close()
