"""Faults on the load timeline, each started at its time and always rolled back.

Rollback is guaranteed in every way a run can end: at the fault's end, at the
end of the run, when the run is told to stop (abortOnFail, a safety cap,
SIGINT/SIGTERM — at once, not after the load's graceful stop, because GitHub
kills a cancelled job about 10 s after its SIGINT), and when the engine
crashes (the runner calls `close()` from a `finally`). Rollbacks are retried;
one that still fails is reported loudly, since it leaves staging broken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic
from typing import Any, Protocol

from loadaction.chaos.adapters import AdapterError, FaultAdapter, build_adapter
from loadaction.plan.model import CLIENT_FAULT_KINDS, Fault, Renderable

ROLLBACK_ATTEMPTS = 3
ROLLBACK_BACKOFF_S = 0.5
# All rollbacks finish within this many seconds of a stop: GitHub sends SIGTERM
# 7.5 s after SIGINT and kills 2.5 s later.
ROLLBACK_BUDGET_S = 6.0


class ClientFaultSwitch(Protocol):
    """The engine side of client faults: which are active for which requests."""

    def activate(self, fault: Fault) -> None: ...

    def deactivate(self, fault: Fault) -> None: ...


@dataclass
class FaultRecord:
    """What happened to one fault, in seconds since the run's load started."""

    fault: Fault
    planned_at_s: float | None = None
    started_at_s: float | None = None
    ended_at_s: float | None = None
    start_error: str | None = None
    rollback_error: str | None = None
    rolled_back: bool = False

    @property
    def active(self) -> bool:
        return self.started_at_s is not None and self.ended_at_s is None

    @property
    def rollback_failed(self) -> bool:
        """Started, and still in place after every rollback attempt."""
        return self.rollback_error is not None and not self.rolled_back

    def as_dict(self) -> dict[str, Any]:
        f = self.fault
        return {
            "name": f.name, "kind": f.action.kind, "anchor": f.anchor,
            "at_s": f.at, "duration_s": f.duration, "source": f.source.as_dict(),
            "planned_at_s": _round(self.planned_at_s), "started_at_s": _round(self.started_at_s),
            "ended_at_s": _round(self.ended_at_s), "start_error": self.start_error,
            "rollback": ("not needed" if self.started_at_s is None or self.fault.action.kind in CLIENT_FAULT_KINDS
                         else "ok" if self.rolled_back else f"failed: {self.rollback_error}"),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


class ChaosTimeline:
    """Runs the plan's faults beside the load. The runner calls
    `scenario_started(name)` as each scenario begins (faults `from` it count
    from then); `on_phase` is told the phase tag whenever it changes."""

    def __init__(self, faults: tuple[Fault, ...], *, render: Callable[[Renderable], Any],
                 client: ClientFaultSwitch, stop: asyncio.Event,
                 on_phase: Callable[[str], None],
                 adapter_factory: Callable[..., FaultAdapter] = build_adapter) -> None:
        self.records = [FaultRecord(f) for f in faults]
        self._render = render
        self._client = client
        self._stop = stop
        self._anchors = {f.anchor: asyncio.Event() for f in faults if f.anchor is not None}
        self._anchor_times: dict[str, float] = {}
        self._on_phase = on_phase
        self._factory = adapter_factory
        self._adapters: dict[str, FaultAdapter] = {}
        self._t0 = 0.0
        self._task: asyncio.Task[None] | None = None
        self._last_ended: str | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self, t0: float) -> None:
        """Schedule every fault; `t0` is the monotonic time the load started."""
        self._t0 = t0
        self._on_phase("before")
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

    # ------------------------------------------------------------ scheduling

    def _now(self) -> float:
        return monotonic() - self._t0

    async def _run_all(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for record in self.records:
                tg.create_task(self._one(record))

    async def _wait(self, seconds: float) -> bool:
        """Sleep, or return True early when the run is told to stop."""
        if seconds <= 0:
            return self._stop.is_set()
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
            return True
        except TimeoutError:
            return False

    async def _one(self, record: FaultRecord) -> None:
        fault = record.fault
        anchor_at = 0.0
        if fault.anchor is not None:
            await self._anchors[fault.anchor].wait()  # cancelled by close() if it never starts
            anchor_at = self._anchor_times[fault.anchor]
        record.planned_at_s = anchor_at + fault.at
        if await self._wait(record.planned_at_s - self._now()):
            return
        try:
            await self._start(record)
        except AdapterError as exc:
            record.start_error = str(exc)
            # a half-started fault may still have changed something: undo it
            await self._rollback(record, started_by_error=True)
            return
        await self._wait(fault.duration)
        await self._rollback(record)

    async def _start(self, record: FaultRecord) -> None:
        fault = record.fault
        if fault.action.kind in CLIENT_FAULT_KINDS:
            self._client.activate(fault)
        else:
            adapter = self._factory(fault.action, self._render, fault_name=fault.name,
                                    duration_s=fault.duration)
            self._adapters[fault.name] = adapter
            record.started_at_s = self._now()  # before the call: a timeout may still have started it
            await adapter.start()
        if record.started_at_s is None:
            record.started_at_s = self._now()
        self._on_phase(f"during:{fault.name}")

    # ------------------------------------------------------------ rollback

    async def _rollback(self, record: FaultRecord, started_by_error: bool = False) -> None:
        if record.started_at_s is None or record.rolled_back:
            return
        fault = record.fault
        if fault.action.kind in CLIENT_FAULT_KINDS:
            self._client.deactivate(fault)
            record.rolled_back = True
        else:
            adapter = self._adapters[fault.name]
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
        record.ended_at_s = self._now()
        if not started_by_error:
            self._last_ended = fault.name
        self._on_phase(self._phase())

    def _phase(self) -> str:
        """`during:<f>` for the latest-started active fault, else `after:<last ended>`."""
        active = [r for r in self.records if r.active]
        if active:
            latest = max(active, key=lambda r: r.started_at_s or 0.0)
            return f"during:{latest.fault.name}"
        return f"after:{self._last_ended}" if self._last_ended else "before"

    async def _rollback_active(self) -> None:
        pending = [r for r in self.records if r.started_at_s is not None and not r.rolled_back]
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
