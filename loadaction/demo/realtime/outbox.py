"""Frames waiting to go out on one socket.

Bounded, so a subscriber that reads slower than changes arrive costs at most
`limit` frames of memory: `put` answers False when it would go over, and the
socket is then cut off rather than allowed to grow. Changes held back by the
`realtime-lag` fault wait in a second line and move to the first when due,
so replies (heartbeats, joins) never queue behind a delayed change; changes
keep their order among themselves.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Outbox:
    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock  # the event loop's: asyncio.sleep runs on it
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._later: deque[tuple[float, str]] = deque()
        self._later_added = asyncio.Event()

    def __len__(self) -> int:
        return self._ready.qsize() + len(self._later)

    def put(self, frame: str) -> bool:
        """A reply: sent as soon as the frames before it are."""
        if len(self) >= self._limit:
            return False
        self._ready.put_nowait(frame)
        return True

    def put_change(self, frame: str, delay_s: float) -> bool:
        """A change, held back `delay_s` seconds (and behind earlier held ones)."""
        if delay_s <= 0 and not self._later:
            return self.put(frame)
        if len(self) >= self._limit:
            return False
        self._later.append((self._clock() + delay_s, frame))
        self._later_added.set()
        return True

    def clear(self) -> None:
        while not self._ready.empty():
            self._ready.get_nowait()
        self._later.clear()

    async def get(self) -> str:
        return await self._ready.get()

    async def release_due(self) -> None:
        """Runs for the socket's lifetime: moves held changes on when due."""
        while True:
            if not self._later:
                self._later_added.clear()
                await self._later_added.wait()
                continue
            due, frame = self._later[0]
            wait = due - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._later.popleft()
            self._ready.put_nowait(frame)
