"""The run's one clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic


class RunClock:
    """One clock for the run: seconds since the load started. The series,
    fault windows, attribution and error times all read it."""

    def __init__(self, now: Callable[[], float] = monotonic) -> None:
        self._now = now
        self.t0 = now()

    def start(self, at: float | None = None) -> None:
        """The load starts now: time 0. `at`: the load started at that
        monotonic instant elsewhere (a worker's parent): CLOCK_MONOTONIC is
        one clock for every process on the machine, so both processes' run
        clocks then read the same times."""
        self.t0 = self._now() if at is None else at

    def elapsed(self) -> float:
        return self._now() - self.t0

    def monotonic(self) -> float:
        return self._now()


async def sleep_until(deadline: float, stop: asyncio.Event) -> bool:
    """Sleep until `deadline` (monotonic); True if `stop` was set first (or
    already was)."""
    if stop.is_set():
        return True
    delay = deadline - monotonic()
    if delay <= 0:
        return False
    try:
        await asyncio.wait_for(stop.wait(), delay)
        return True
    except TimeoutError:
        return False


class Heartbeat:
    """Notes each turn of the event loop (at most every 5 ms). Code that may
    run for long without suspending (an iteration of `set` steps, renders
    that each use their whole time budget, a schedule running behind) asks
    `stale()` and yields when the loop has not turned for 20 ms, so signals,
    the ticker and the fault timeline are never kept waiting."""

    INTERVAL_S = 0.005
    STALE_S = 0.02

    def __init__(self) -> None:
        self.mark = monotonic()
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._beat()

    def _beat(self) -> None:
        self.mark = monotonic()
        self._handle = asyncio.get_running_loop().call_later(self.INTERVAL_S, self._beat)

    def stale(self) -> bool:
        return monotonic() - self.mark > self.STALE_S

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
