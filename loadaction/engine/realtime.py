"""End-to-end realtime update latency: a write's response, and the message
each open subscription receives for it.

Run-wide, because the writer and the subscriber are usually different VUs,
often of different scenarios, and with --workers of different processes.
When a watched request's response arrives, every subscription open at that
moment expects one message with the response's key; the message's arrival
closes the expectation with its latency, and a deadline that passes first
counts a miss. The server may publish before it answers, so a message nobody
expects yet is kept (for the deadline) and matched when its write's response
comes, with latency 0 for a local write.

Across worker processes, each matcher's `relay` hands every local watched
response (its keys for every write_key path the plan reads from it, and when
it arrived) to the other processes, whose `remote_responded` expects it in
their open subscriptions just as a local write would be. The time is
time.monotonic(), system-wide on Linux, so latencies and deadlines count from
the write's own answer, not from when the relay delivered it: a message that
arrived before the relay did is matched with its real latency. Expectations
are held in the order they were learned, so a relayed one behind a newer
local one is judged missed up to the relay's lag late.

Only watched request names reach the matcher; plans without `updates` have
no matcher at all. Memory is bounded: at most MAX_OUTSTANDING expectations
and early arrivals are held at once; what does not fit is not tracked (it
counts neither as received nor as missed) and the run says so in a notice.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from time import monotonic
from typing import Any

from loadaction.plan.model import JsonPath, UpdatesSpec

MAX_OUTSTANDING = 100_000
"""Expected updates and early arrivals held at once, across the run."""

KeyText = Callable[[Any], str]
SinkFor = Callable[[str], Any]  # metric name -> the sink its sample goes to now
Relay = Callable[[str, Mapping[str, str], float], None]
"""(write, write_key path text -> key text, monotonic time its response arrived)
to the other worker processes."""


class UpdateWatch:
    """What one open subscription expects from one write: keys whose write
    answered (`pending`, oldest first) and keys that arrived first (`early`).
    Both keep insertion order, which is deadline order (one deadline each)."""

    __slots__ = ("_changed", "_sink", "_timer", "deadline", "early", "matcher", "opened",
                 "pending", "spec")

    def __init__(self, matcher: UpdateMatcher, spec: UpdatesSpec, sink: SinkFor) -> None:
        self.matcher = matcher
        self.spec = spec
        self.deadline = spec.deadline
        self.opened = monotonic()  # writes answered before this are not its to expect
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
            # 0 for a local write (published before its answer came); a relayed
            # write's answer may predate the message though it is learned later
            self._received(max(0, round((arrived - written) * 1_000_000)))
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
    """The run's watched writes and the open subscriptions waiting for them.

    `writes` maps each watched request name to the write_key paths the plan's
    subscriptions read from its response (Plan.realtime_writes): all of them
    are relayed, since another process may watch a path no local
    subscription has open. `relay`, set after construction by a worker
    process, is None in a single process."""

    def __init__(self, writes: Mapping[str, Iterable[JsonPath]], key_text: KeyText,
                 notice: Callable[[str], None], limit: int = MAX_OUTSTANDING) -> None:
        self.writes = frozenset(writes)
        self.key_text = key_text  # how a JSON value compares as a key (42 matches "42")
        self.relay: Relay | None = None
        self._notice = notice
        self._limit = limit
        # write -> write_key path text -> the path
        self._paths: dict[str, dict[str, JsonPath]] = {
            write: {path.text: path for path in paths} for write, paths in writes.items()}
        # write -> write_key path text -> the watches reading it
        self._watches: dict[str, dict[str, dict[UpdateWatch, None]]] = {
            write: {} for write in self.writes}
        self.outstanding = 0
        self.untracked = 0

    def watch(self, spec: UpdatesSpec, sink: SinkFor) -> UpdateWatch:
        """An open subscription starts expecting the updates of `spec.write`."""
        watch = UpdateWatch(self, spec, sink)
        path = spec.write_key
        assert spec.write is not None and path is not None
        self._paths[spec.write].setdefault(path.text, path)
        self._watches[spec.write].setdefault(path.text, {})[watch] = None
        return watch

    def remove(self, watch: UpdateWatch) -> None:
        """No further writes are expected by `watch` (it may still settle)."""
        watches = self._watches[watch.spec.write].get(watch.spec.write_key.text)  # type: ignore[index, union-attr]
        if watches is not None:
            watches.pop(watch, None)

    def responded(self, write: str, doc: Any) -> None:
        """The expected (2xx-3xx) response of a watched write has arrived:
        expected here, and relayed (once, when the doc holds any key)."""
        if doc is None:
            return
        now = monotonic()
        relay = self.relay
        watching = self._watches[write]
        keys: dict[str, str] = {}
        for text, path in self._paths[write].items():
            watches = watching.get(text)
            if not watches and relay is None:
                continue
            found, value = path.first(doc)
            if found:
                keys[text] = key = self.key_text(value)
                for watch in list(watches or ()):
                    watch.expect(key, now)
        if relay is not None and keys:
            relay(write, keys, now)

    def remote_responded(self, write: str, keys: Mapping[str, str], written_at: float) -> None:
        """Another worker process's watched write answered at `written_at`
        (its monotonic time): what a local answer then would have meant for
        the subscriptions open here since then."""
        for text, watches in self._watches.get(write, {}).items():
            key = keys.get(text)
            if key is not None:
                for watch in list(watches):
                    if watch.opened <= written_at:
                        watch.expect(key, written_at)

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

