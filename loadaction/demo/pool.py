"""The demo target's database connection pool, as its requests see it.

One gate for both backends, so `--fault pool=N` behaves the same on SQLite
and PostgreSQL: a request that touches the store holds one of N slots for
its handler (PostgreSQL's asyncpg pool has exactly N connections behind it,
so asyncpg itself never queues; SQLite has one connection, and the gate is
the pool a real service would have in front of it). A request that cannot
get a slot within `acquire_timeout_s` fails with `PoolExhausted`, which the
app answers 503, as PostgREST does when its pool runs dry.

The counters are what /metrics exports: size, in use, waiting, the peak in
use since the last scrape, acquisitions that had to wait, and timeouts.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

# Sized for the bundled plan's full load: its widest burst is the dashboard's
# 20 viewers each loading 3 reads at once (60), so a healthy target never
# queues; PostgreSQL opens as many connections at start (see postgres_store).
DEFAULT_POOL_SIZE = 64

DEFAULT_ACQUIRE_TIMEOUT_S = 2.0


class PoolExhausted(Exception):
    """No connection became free within the acquire timeout."""


@dataclass(frozen=True, slots=True)
class PoolStats:
    size: int
    in_use: int
    waiting: int
    peak_in_use: int   # since the previous `take_stats`
    waits: int         # acquisitions that had to queue, ever
    timeouts: int      # acquisitions that gave up, ever


class Pool:
    """N slots handed out first come, first served (one instance per target).

    `size` is read on every acquire and release, so the `pool` fault can
    shrink or grow a running pool: slots over a smaller size are retired as
    they come back."""

    def __init__(self, size: Callable[[], int] = lambda: DEFAULT_POOL_SIZE,
                 acquire_timeout_s: float = DEFAULT_ACQUIRE_TIMEOUT_S) -> None:
        self._size = size
        self.acquire_timeout_s = acquire_timeout_s
        self._in_use = 0
        self._peak = 0
        self._queue: deque[asyncio.Future[None]] = deque()
        self._waits = 0
        self._timeouts = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[None]:
        """Hold a slot for the block; raise PoolExhausted after the timeout."""
        if self._in_use < self._size() and not self._queue:
            self._in_use += 1
        else:
            await self._wait()
        self._peak = max(self._peak, self._in_use)
        try:
            yield
        finally:
            self._release()

    async def _wait(self) -> None:
        self._waits += 1
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        try:
            # The releaser hands its slot straight to the first waiter (in_use
            # stays counted), so a newcomer can never overtake the queue.
            await asyncio.wait_for(asyncio.shield(waiter), self.acquire_timeout_s)
        except BaseException as exc:  # timed out or cancelled: leave the queue
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot just as the wait gave up: pass it on
            else:
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                self._timeouts += 1
                raise PoolExhausted from None
            raise
        finally:
            if waiter in self._queue:
                self._queue.remove(waiter)

    def _release(self) -> None:
        if self._in_use > self._size():
            self._in_use -= 1  # the pool shrank: retire this slot
            return
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to it; in_use unchanged
                return
        self._in_use -= 1

    def take_stats(self) -> PoolStats:
        """The counters now; the peak restarts from what is in use, so each
        scrape sees the fullest moment since the one before it."""
        stats = PoolStats(self._size(), self._in_use, sum(not w.done() for w in self._queue),
                          max(self._peak, self._in_use), self._waits, self._timeouts)
        self._peak = self._in_use
        return stats
