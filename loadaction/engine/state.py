"""What one run shares across its scenarios and VUs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from loadaction.engine.data import Feeder
from loadaction.engine.http import Transport
from loadaction.engine.safety import Guard
from loadaction.masking import Masker
from loadaction.metrics.registry import Registry
from loadaction.metrics.series import SeriesRecorder
from loadaction.plan.model import Plan


@dataclass(slots=True)
class ErrorEntry:
    count: int
    first_seen_s: float


class ErrorLog:
    """Errors grouped by (scenario, message): a storm of one error stays one line."""

    LIMIT = 1000  # distinct messages kept; a run with more is reporting noise

    def __init__(self, clock: RunClock) -> None:
        self._clock = clock
        self.entries: dict[tuple[str, str], ErrorEntry] = {}
        self.dropped = 0

    def add(self, scenario: str, message: str) -> None:
        key = (scenario, message)
        entry = self.entries.get(key)
        if entry is not None:
            entry.count += 1
        elif len(self.entries) < self.LIMIT:
            self.entries[key] = ErrorEntry(1, self._clock.elapsed())
        else:
            self.dropped += 1


class RunClock:
    def __init__(self) -> None:
        self.t0 = monotonic()

    def elapsed(self) -> float:
        return monotonic() - self.t0


@dataclass
class RunControl:
    """Why and when the run stops early; executors stop starting iterations once set."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    status: str = "complete"
    reason: str | None = None

    def request_stop(self, status: str, reason: str) -> None:
        if not self.stop.is_set():
            self.status, self.reason = status, reason
            self.stop.set()


@dataclass
class RunState:
    plan: Plan
    transport: Transport
    registry: Registry
    series: SeriesRecorder
    guard: Guard
    masker: Masker
    feeders: dict[str, Feeder]
    clock: RunClock
    errors: ErrorLog
    control: RunControl
    notices: list[str] = field(default_factory=list)
    global_vars: dict[str, Any] = field(default_factory=dict)
    vu_seq: int = 0
    # chaos: the `phase` tag of every sample (None without faults), and the
    # client-side faults requests consult (None without faults)
    phase: str | None = None
    client_faults: Any = None

    def next_vu_id(self) -> int:
        """VU numbers are unique across the run, 1-based, like k6's __VU."""
        self.vu_seq += 1
        return self.vu_seq

    def notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)
