"""What one run shares across its scenarios and VUs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from loadaction.engine.clock import Heartbeat, RunClock
from loadaction.engine.data import Feeder
from loadaction.engine.hooks import Attribution
from loadaction.engine.layers import RequestLayer
from loadaction.engine.realtime import UpdateMatcher
from loadaction.engine.safety import Guard
from loadaction.engine.status import RunStatus
from loadaction.engine.transport import ErrorKind, Transport
from loadaction.masking import Masker
from loadaction.metrics.registry import Registry
from loadaction.metrics.series import SeriesRecorder
from loadaction.plan.model import Plan


@dataclass(slots=True)
class ErrorEntry:
    kind: ErrorKind
    count: int
    first_seen: float  # the clock's monotonic time


class ErrorLog:
    """Errors grouped by (scenario, message): a storm of one error stays one line."""

    LIMIT = 1000  # distinct messages kept; a run with more is reporting noise

    def __init__(self, clock: RunClock) -> None:
        self._clock = clock
        self.entries: dict[tuple[str, str], ErrorEntry] = {}
        self.dropped = 0

    def add(self, scenario: str, message: str, kind: ErrorKind = ErrorKind.FLOW) -> None:
        key = (scenario, message)
        entry = self.entries.get(key)
        if entry is not None:
            entry.count += 1
        elif len(self.entries) < self.LIMIT:
            self.entries[key] = ErrorEntry(kind, 1, self._clock.monotonic())
        else:
            self.dropped += 1


@dataclass
class RunControl:
    """Why and when the run stops early; executors stop starting iterations once set."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    status: RunStatus = RunStatus.COMPLETE
    reason: str | None = None

    def request_stop(self, status: RunStatus, reason: str) -> None:
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
    # what plugins handed the engine: layers around every delivery, and a tag
    # fixed at each request's send time (chaos: the `phase`)
    layers: tuple[RequestLayer, ...] = ()
    attribution: Attribution | None = None
    notices: list[str] = field(default_factory=list)
    global_vars: dict[str, Any] = field(default_factory=dict)
    vu_seq: int = 0
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    # the writes subscriptions' `updates` wait for (None: the plan has none)
    realtime: UpdateMatcher | None = None

    def label_now(self) -> str | None:
        """The attribution tag value for something sent now (None without one)."""
        attribution = self.attribution
        return None if attribution is None else attribution.label_at(self.clock.elapsed())

    def next_vu_id(self) -> int:
        """VU numbers are unique across the run, 1-based, like k6's __VU; and
        across the whole test when this run is one execution segment (a
        shard or a worker): its n-th VU takes the n-th number its segment owns
        in the striping, so a plan keying accounts on `vu` never sees two
        shards use the same one (k6's exec.vu.idInTest)."""
        self.vu_seq += 1
        return self.plan.execution.global_index(self.vu_seq - 1) + 1

    def notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)
