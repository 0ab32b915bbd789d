"""Faults on the load timeline, each started at its time and always rolled back.

Rollback is guaranteed in every way a run can end: at the fault's end, at the
end of the run, when the run is told to stop (abortOnFail, a safety cap,
SIGINT/SIGTERM — at once, not after the load's graceful stop, because GitHub
kills a cancelled job about 10 s after its SIGINT), and when the engine
crashes (the engine closes its plugins from a `finally`). Rollbacks are
retried; one that still fails is reported loudly, since it leaves staging
broken.

Windows. A fault is planned for [planned_at, planned_at + duration) on the run
clock. Its actual window opens when its start action has *succeeded* and
closes at the planned end — not at the actual start plus the duration, so it
never drifts — or earlier, when the run stops. The timeline is also the
run's attribution (engine/hooks.py): `label_at(t)` names the faults whose
window held time t, computed from the windows themselves, so a request's
phase is exact even when the timeline's own task wakes up late.

Across processes (--workers). The parent's timeline runs every fault and
publishes each server-side fault's window as it changes (`on_window`); a
worker's timeline is a follower: it plays the client-side faults itself, on
its own requests (their windows are set by the plan, and the processes share
one run clock), and takes the server-side windows from the parent
(`follow`), so its samples carry the same phases as the parent's record. A
worker learns of a window edge as soon as its event loop reads the parent's
message (typically well under a millisecond; under a saturated loop, as long
as the loop lags); the edge itself is already uncertain by the duration of
the fault's start action.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from loadaction.chaos.adapters import AdapterError, FaultAdapter, build_adapter
from loadaction.engine.clock import RunClock
from loadaction.plan.model import CLIENT_FAULT_KINDS, Fault, Renderable

ROLLBACK_ATTEMPTS = 3
ROLLBACK_BACKOFF_S = 0.5
# All rollbacks finish within this many seconds of a stop: GitHub sends SIGTERM
# 7.5 s after SIGINT and kills 2.5 s later.
ROLLBACK_BUDGET_S = 6.0


class ClientFaultSwitch(Protocol):
    """The client faults' side: which are active for which requests."""

    def activate(self, fault: Fault, *, until_s: float) -> None: ...

    def deactivate(self, fault: Fault) -> None: ...


@dataclass
class FaultRecord:
    """What happened to one fault, in seconds on the run clock."""

    fault: Fault
    planned_at_s: float | None = None
    started_at_s: float | None = None  # the window opened: the start action succeeded
    ended_at_s: float | None = None  # the window closed: planned end, or the stop
    rolled_back_at_s: float | None = None  # the rollback action finished
    start_attempted: bool = False  # a start that failed or timed out may still have acted
    start_error: str | None = None
    rollback_error: str | None = None
    rolled_back: bool = False

    @property
    def planned_end_s(self) -> float | None:
        return None if self.planned_at_s is None else self.planned_at_s + self.fault.duration

    def open_at(self, t: float) -> bool:
        """Was the fault's window open at run-clock time `t`?"""
        start = self.started_at_s
        if start is None or t < start:
            return False
        end = self.planned_end_s
        if self.ended_at_s is not None:
            end = self.ended_at_s
        return end is None or t < end

    @property
    def rollback_failed(self) -> bool:
        """Started, and still in place after every rollback attempt."""
        return self.rollback_error is not None and not self.rolled_back

    @property
    def rollback(self) -> str:
        if not self.start_attempted or self.fault.action.kind in CLIENT_FAULT_KINDS:
            return "not needed"
        return "ok" if self.rolled_back else f"failed: {self.rollback_error}"


class ChaosTimeline:
    """Runs the plan's faults beside the load. `scenario_started(name)` is
    called as each scenario begins (faults `from` it count from then)."""

    key = "phase"

    def __init__(self, faults: tuple[Fault, ...], *, render: Callable[[Renderable], Any],
                 client: ClientFaultSwitch, clock: RunClock, stop: asyncio.Event,
                 adapter_factory: Callable[..., FaultAdapter] = build_adapter,
                 follower: bool = False,
                 on_window: Callable[[FaultRecord], None] | None = None) -> None:
        """`follower`: server-side faults are not run here; their windows come
        from `follow`. `on_window`: told of every change to a server-side
        fault's window (planned, opened, closed)."""
        self.records = [FaultRecord(f) for f in faults]
        self._follower = follower
        self._on_window = on_window
        self._render = render
        self._client = client
        self._clock = clock
        self._stop = stop
        self._anchors = {f.anchor: asyncio.Event() for f in faults if f.anchor is not None}
        self._anchor_times: dict[str, float] = {}
        self._factory = adapter_factory
        self._adapters: dict[str, FaultAdapter] = {}
        self._task: asyncio.Task[None] | None = None
        # label_at's cache: the label, valid for t in [since, until) while no
        # window has changed (version)
        self._version = 0
        self._cached: tuple[int, float, float, str] = (-1, 0.0, 0.0, "before")

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Schedule every fault; the run clock's 0 is the load's start."""
        self._task = asyncio.create_task(self._run_all())

    async def close(self) -> None:
        """Stop scheduling and roll back whatever is still active. Safe to call
        more than once, and from a `finally` while the run is being cancelled."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self._rollback_active()

    async def scenario_started(self, name: str) -> None:
        """Start the clock of faults anchored to `name`; yields so that client
        faults due at its very start are active before its first request."""
        event = self._anchors.get(name)
        if event is not None:
            self._anchor_times[name] = self._now()
            event.set()
            for _ in range(3):
                await asyncio.sleep(0)

    # ------------------------------------------------------------ attribution

    def label_at(self, t: float) -> str:
        """Every fault whose window held `t`, as `during:<name>` labels joined
        by commas (plan order); else `after:<the fault that ended last>`, or
        `before` when none has ended yet."""
        version, since, until, label = self._cached
        if version == self._version and since <= t < until:
            return label
        active = [r for r in self.records if r.open_at(t)]
        if active:
            label = ",".join(f"during:{r.fault.name}" for r in active)
        else:
            ended = [(self._window_end(r), r) for r in self.records
                     if r.started_at_s is not None and self._window_end(r) <= t]
            label = f"after:{max(ended, key=lambda e: e[0])[1].fault.name}" if ended else "before"
        since, until = self._stable_span(t)
        self._cached = (self._version, since, until, label)
        return label

    def _window_end(self, record: FaultRecord) -> float:
        if record.ended_at_s is not None:
            return record.ended_at_s
        end = record.planned_end_s
        return math.inf if end is None else end

    def _stable_span(self, t: float) -> tuple[float, float]:
        """The span around `t` in which no known window boundary falls."""
        since, until = -math.inf, math.inf
        for r in self.records:
            if r.started_at_s is None:
                continue
            for edge in (r.started_at_s, self._window_end(r)):
                if edge <= t:
                    since = max(since, edge)
                else:
                    until = min(until, edge)
        return since, until

    def _changed(self, record: FaultRecord) -> None:
        self._version += 1
        if self._on_window is not None and record.fault.action.kind not in CLIENT_FAULT_KINDS:
            self._on_window(record)

    def follow(self, name: str, planned_at_s: float | None, started_at_s: float | None,
               ended_at_s: float | None) -> None:
        """A server-side fault's window as the process running it has it."""
        for record in self.records:
            if record.fault.name == name:
                record.planned_at_s = planned_at_s
                record.started_at_s = started_at_s
                record.ended_at_s = ended_at_s
                self._changed(record)

    # ------------------------------------------------------------ scheduling

    def _now(self) -> float:
        return self._clock.elapsed()

    async def _run_all(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for record in self.records:
                tg.create_task(self._one(record))

    async def _wait_until(self, t: float) -> bool:
        """Sleep until run-clock time `t`, or return True early when the run is told to stop."""
        seconds = t - self._now()
        if seconds <= 0:
            return self._stop.is_set()
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
            return True
        except TimeoutError:
            return False

    async def _one(self, record: FaultRecord) -> None:
        fault = record.fault
        if self._follower and fault.action.kind not in CLIENT_FAULT_KINDS:
            return  # run by the parent: its window comes through follow()
        anchor_at = 0.0
        if fault.anchor is not None:
            await self._anchors[fault.anchor].wait()  # cancelled by close() if it never starts
            anchor_at = self._anchor_times[fault.anchor]
        record.planned_at_s = anchor_at + fault.at
        self._changed(record)
        if await self._wait_until(record.planned_at_s):
            return
        try:
            await self._start(record)
        except AdapterError as exc:
            record.start_error = str(exc)
            # a half-started fault may still have changed something: undo it
            await self._rollback(record)
            return
        end = record.planned_end_s
        assert end is not None
        stopped = await self._wait_until(end)
        await self._rollback(record, closes_at=None if stopped else end)

    async def _start(self, record: FaultRecord) -> None:
        fault = record.fault
        until = record.planned_end_s
        assert until is not None
        record.start_attempted = True
        if fault.action.kind in CLIENT_FAULT_KINDS:
            self._client.activate(fault, until_s=until)
        else:
            adapter = self._factory(fault.action, self._render, fault_name=fault.name,
                                    duration_s=fault.duration)
            self._adapters[fault.name] = adapter
            await adapter.start()
        # the window opens once the start has succeeded (and never after its planned end)
        record.started_at_s = min(self._now(), until)
        self._changed(record)

    # ------------------------------------------------------------ rollback

    async def _rollback(self, record: FaultRecord, closes_at: float | None = None) -> None:
        """Close the window (at `closes_at`, the planned end, or now when the
        run stopped early), then undo the fault."""
        if not record.start_attempted or record.rolled_back:
            return
        if record.started_at_s is not None and record.ended_at_s is None:
            end = record.planned_end_s
            now = self._now()
            record.ended_at_s = closes_at if closes_at is not None else (
                now if end is None else min(now, end))
            self._changed(record)
        fault = record.fault
        if fault.action.kind in CLIENT_FAULT_KINDS:
            self._client.deactivate(fault)
            record.rolled_back = True
        else:
            adapter = self._adapters.get(fault.name)
            if adapter is None:
                record.rolled_back = True
            else:
                for attempt in range(ROLLBACK_ATTEMPTS):
                    try:
                        await adapter.rollback()
                        record.rolled_back = True
                        record.rollback_error = None
                        break
                    except AdapterError as exc:
                        record.rollback_error = str(exc)
                        if attempt + 1 < ROLLBACK_ATTEMPTS:
                            await asyncio.sleep(ROLLBACK_BACKOFF_S * (attempt + 1))
        record.rolled_back_at_s = self._now()

    async def _rollback_active(self) -> None:
        pending = [r for r in self.records if r.start_attempted and not r.rolled_back]
        if not pending:
            return
        try:
            async with asyncio.timeout(ROLLBACK_BUDGET_S):
                async with asyncio.TaskGroup() as tg:
                    for record in pending:
                        tg.create_task(self._rollback(record))
        except TimeoutError:
            for record in pending:
                if not record.rolled_back:
                    record.rollback_error = record.rollback_error or (
                        f"rollback did not finish within {ROLLBACK_BUDGET_S:g}s")
