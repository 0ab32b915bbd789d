"""`--start-at`: shards launched at different moments (a CI matrix's legs, a
Kubernetes Job's pods) begin their load at one wall-clock instant.

The wait comes after preflight, vars and setup, so however long each
shard's setup takes, the executors of every shard start together. It reads
the wall clock, not the monotonic one, because the instant is shared across
machines: the hosts are assumed synchronised (NTP), and any skew between
them shifts the shards' starts by that skew. The clock is re-read at least
every `RECHECK_S`, so a clock that NTP steps while we wait is followed.

A start that is already past when the wait begins (setup ran long, a runner
was scheduled late) starts at once when it is at most `tolerance_s` late,
with a notice and the lateness recorded; beyond that (or when a host
suspended mid-wait wakes up that late) it is refused: a shard
whose load runs a minute after the others' is not the test that was planned
(the merged peak would be lower and longer), and the merge reports it
missing instead of averaging it in unseen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

RECHECK_S = 1.0


class WallClock(Protocol):
    def now(self) -> datetime:
        """The wall-clock time, timezone-aware."""
        ...

    async def wait(self, stop: asyncio.Event, seconds: float) -> bool:
        """Wait `seconds`, or less if `stop` is set first; True when it was."""
        ...


class SystemClock:
    """The host's clock; the waiting is asyncio's (monotonic), for at most
    RECHECK_S at a time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def wait(self, stop: asyncio.Event, seconds: float) -> bool:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class StartAt:
    at: datetime  # timezone-aware
    tolerance_s: float


class StartOutcome(StrEnum):
    ON_TIME = "on_time"  # waited, and began at the instant
    LATE = "late"  # already past, within the tolerance: began at once
    TOO_LATE = "too_late"  # past beyond the tolerance: no load ran
    STOPPED = "stopped"  # SIGINT/SIGTERM (or any stop) while waiting: no load ran


@dataclass(frozen=True, slots=True)
class StartRecord:
    at: datetime
    tolerance_s: float
    outcome: StartOutcome
    waited_s: float  # wall-clock seconds spent waiting
    late_s: float | None  # how far past `at` the wait ended; None when stopped while waiting

    @property
    def begins(self) -> bool:
        return self.outcome in (StartOutcome.ON_TIME, StartOutcome.LATE)


async def wait_for_start(start: StartAt, clock: WallClock, stop: asyncio.Event) -> StartRecord:
    """Wait until `start.at`; the record says whether the load may begin."""
    began = clock.now()
    late = (began - start.at).total_seconds()
    if late > start.tolerance_s:
        return StartRecord(start.at, start.tolerance_s, StartOutcome.TOO_LATE, 0.0, late)
    if late >= 0:
        return StartRecord(start.at, start.tolerance_s, StartOutcome.LATE, 0.0, late)
    now = began
    while (remaining := (start.at - now).total_seconds()) > 0:
        if stop.is_set() or await clock.wait(stop, min(remaining, RECHECK_S)):
            return StartRecord(start.at, start.tolerance_s, StartOutcome.STOPPED,
                               (clock.now() - began).total_seconds(), None)
        now = clock.now()
    late = (now - start.at).total_seconds()  # a host frozen mid-wait can overshoot it
    outcome = StartOutcome.ON_TIME if late <= start.tolerance_s else StartOutcome.TOO_LATE
    return StartRecord(start.at, start.tolerance_s, outcome, (now - began).total_seconds(), late)


def describe(record: StartRecord) -> str | None:
    """The notice a late or refused start leaves in the results."""
    at = record.at.isoformat()
    if record.outcome is StartOutcome.LATE:
        return (f"--start-at {at}: the load began {record.late_s:.3f}s late (within the "
                f"{record.tolerance_s:g}s tolerance): this shard's load is that much behind "
                f"the others'")
    if record.outcome is StartOutcome.TOO_LATE:
        return (f"--start-at {at} had passed {record.late_s:.3f}s before the load could "
                f"begin, more than the {record.tolerance_s:g}s tolerance: no load was run")
    return None
