"""The run's one clock."""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic


class RunClock:
    """One clock for the run: seconds since the load started. The series,
    fault windows, attribution and error times all read it."""

    def __init__(self, now: Callable[[], float] = monotonic) -> None:
        self._now = now
        self.t0 = now()

    def start(self) -> None:
        """The load starts now: time 0."""
        self.t0 = self._now()

    def elapsed(self) -> float:
        return self._now() - self.t0

    def monotonic(self) -> float:
        return self._now()
