"""End-to-end realtime update latency: a write's response, and the message
each open subscription receives for it.

Run-wide, because the writer and the subscriber are usually different VUs,
often of different scenarios. When a watched request's response arrives,
every subscription open at that moment expects one message with the
response's key; the message's arrival closes the expectation with its
latency, and a deadline that passes first counts a miss. The server may
publish before it answers, so a message nobody expects yet is kept (for the
deadline) and matched with latency 0 when its write's response comes.

Only watched request names reach the matcher; plans without `updates` have
no matcher at all. Memory is bounded: at most MAX_OUTSTANDING expectations
and early arrivals are held at once; what does not fit is not tracked (it
counts neither as received nor as missed) and the run says so in a notice.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from time import monotonic
from typing import Any

from loadaction.plan.model import JsonPath, UpdatesSpec

MAX_OUTSTANDING = 100_000
"""Expected updates and early arrivals held at once, across the run."""

KeyText = Callable[[Any], str]
SinkFor = Callable[[str], Any]  # metric name -> the sink its sample goes to now


class UpdateWatch:
    """What one open subscription expects from one write: keys whose write
    answered (`pending`, oldest first) and keys that arrived first (`early`).
    Both keep insertion order, which is deadline order (one deadline each)."""

    __slots__ = ("_changed", "_sink", "_timer", "deadline", "early", "matcher", "pending",
                 "spec")

    def __init__(self, matcher: UpdateMatcher, spec: UpdatesSpec, sink: SinkFor) -> None:
        self.matcher = matcher
        self.spec = spec
        self.deadline = spec.deadline
        self.pending: dict[str, float] = {}  # key -> when its write's response arrived
        self.early: dict[str, float] = {}  # key -> when its message arrived
        self._sink = sink
        self._timer: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()

    # ------------------------------------------------------------ matching

    def expect(self, key: str, written: float) -> None:
        arrived = self.early.pop(key, None)
        if arrived is not None:
            self.matcher.release(1)
            self._received(0)  # published before the write's answer came: no wait at all
            return
        if key in self.pending or not self.matcher.reserve():
            return
        self.pending[key] = written
        self._arm()

    def arrived(self, value: Any, at: float) -> None:
        key = self.matcher.key_text(value)
        written = self.pending.pop(key, None)
        if written is not None:
            self.matcher.release(1)
            self._received(max(0, round((at - written) * 1_000_000)))
            self._changed.set()
            return
        if self.early.pop(key, None) is None and not self.matcher.reserve():
            return
        self.early[key] = at  # (again) at the end: the newest arrival
        self._arm()

    def _received(self, latency_us: int) -> None:
        self._sink("realtime_update_latency").add_us(latency_us)
        self._sink("realtime_updates_missed").add(0)

    # ------------------------------------------------------------ deadlines

    def expire(self, now: float) -> None:
        """Count every expected update past its deadline as missed; forget
        early arrivals no write claimed in time."""
        deadline, pending, early = self.deadline, self.pending, self.early
        missed = 0
        while pending:
            key, written = next(iter(pending.items()))
            if written + deadline > now:
                break
            del pending[key]
            missed += 1
        if missed:
            self._sink("realtime_updates_missed").add(missed)
        forgotten = 0
        while early:
            key, arrived = next(iter(early.items()))
            if arrived + deadline > now:
                break
            del early[key]
            forgotten += 1
        if missed or forgotten:
            self.matcher.release(missed + forgotten)
            self._changed.set()

    def _next_due(self) -> float | None:
        oldest = [next(iter(held.values())) for held in (self.pending, self.early) if held]
        return min(oldest) + self.deadline if oldest else None

    def _arm(self) -> None:
        if self._timer is None:
            due = self._next_due()
            if due is not None:
                self._timer = asyncio.get_running_loop().call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.expire(monotonic())
        self._arm()

    async def settle(self, stop: asyncio.Event) -> None:
        """Wait until every expected update arrived or passed its deadline,
        or the run is told to stop."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while self.pending and not stop.is_set():
                self._changed.clear()
                changed = asyncio.ensure_future(self._changed.wait())
                due = next(iter(self.pending.values())) + self.deadline
                await asyncio.wait({changed, stopping}, timeout=max(0.0, due - monotonic()),
                                   return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                self.expire(monotonic())
        finally:
            stopping.cancel()

    # ------------------------------------------------------------ the end

    def end(self, count_missed: bool) -> None:
        """The subscription is gone: its outstanding updates count as missed
        (the session dropped) or are dropped uncounted (the run is stopping)."""
        self.matcher.remove(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if count_missed and self.pending:
            self._sink("realtime_updates_missed").add(len(self.pending))
        self.matcher.release(len(self.pending) + len(self.early))
        self.pending.clear()
        self.early.clear()
        self._changed.set()


class UpdateMatcher:
    """The run's watched writes and the open subscriptions waiting for them."""

    def __init__(self, writes: Iterable[str], key_text: KeyText,
                 notice: Callable[[str], None], limit: int = MAX_OUTSTANDING) -> None:
        self.writes = frozenset(writes)
        self.key_text = key_text  # how a JSON value compares as a key (42 matches "42")
        self._notice = notice
        self._limit = limit
        # write -> write_key path text -> (path, the watches reading it)
        self._watches: dict[str, dict[str, tuple[JsonPath, dict[UpdateWatch, None]]]] = {
            write: {} for write in self.writes}
        self.outstanding = 0
        self.untracked = 0

    def watch(self, spec: UpdatesSpec, sink: SinkFor) -> UpdateWatch:
        """An open subscription starts expecting the updates of `spec.write`."""
        watch = UpdateWatch(self, spec, sink)
        path = spec.write_key
        assert spec.write is not None and path is not None
        entry = self._watches[spec.write].setdefault(path.text, (path, {}))
        entry[1][watch] = None
        return watch

    def remove(self, watch: UpdateWatch) -> None:
        """No further writes are expected by `watch` (it may still settle)."""
        entry = self._watches[watch.spec.write].get(watch.spec.write_key.text)  # type: ignore[index, union-attr]
        if entry is not None:
            entry[1].pop(watch, None)

    def responded(self, write: str, doc: Any) -> None:
        """The expected (2xx-3xx) response of a watched write has arrived."""
        if doc is None:
            return
        now = monotonic()
        for path, watches in self._watches[write].values():
            if not watches:
                continue
            found, value = path.first(doc)
            if found:
                key = self.key_text(value)
                for watch in list(watches):
                    watch.expect(key, now)

    def reserve(self) -> bool:
        if self.outstanding >= self._limit:
            self.untracked += 1
            return False
        self.outstanding += 1
        return True

    def release(self, count: int) -> None:
        self.outstanding -= count

    def finish(self) -> None:
        """Say so when the bound on held updates was reached."""
        if self.untracked:
            self._notice(f"realtime updates: {self.untracked} were not tracked, because "
                         f"{self._limit:,} expected updates and early arrivals were held at "
                         "once; they count neither as received nor as missed")


def timestamp_seconds(value: Any) -> float | None:
    """Epoch seconds of a message's server timestamp: ISO 8601 (naive means
    UTC), or a number of epoch seconds, or of milliseconds when it is too
    large to be seconds. None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                stamp = datetime.fromisoformat(value.strip())
            except ValueError:
                return None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            return stamp.timestamp()
    if isinstance(value, int | float) and math.isfinite(value):
        return value / 1000 if value > 1e11 else float(value)  # 1e11 s is the year 5138
    return None

