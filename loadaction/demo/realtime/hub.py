"""Fan-out: every committed change to every socket whose channels want it.

`publish` is called by the HTTP handlers after a write has committed, and it
never waits: it encodes the change once, matches it against each socket's
channels and puts a frame in each one's bounded outbox. A socket whose
outbox is full is cut off there and then (see `Outbox`), so a slow
subscriber can neither slow the write nor grow the target's memory.
The `realtime-lag` and `realtime-drop` faults apply here, per delivery.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSCloseCode

from loadaction.demo.faults import FaultState
from loadaction.demo.realtime import protocol
from loadaction.demo.realtime.changes import Change
from loadaction.demo.realtime.channels import Channels


@dataclass(frozen=True, slots=True)
class RealtimeSettings:
    """Per target; tests shorten them."""

    idle_timeout_s: float = 60.0  # Phoenix's websocket timeout: a socket silent this long is closed
    outbox_limit: int = 1000      # frames queued for one socket before it is cut off as too slow
    close_grace_s: float = 5.0    # how long a closing socket may take before its TCP is aborted


class Subscriber(Protocol):
    """What the hub needs of a socket."""

    @property
    def channels(self) -> Channels: ...
    def deliver(self, frame: str, delay_s: float) -> None: ...
    def disconnect(self, code: int, reason: str) -> None: ...


class RealtimeHub:
    """The sockets of one target instance (never module-global: tests run many)."""

    def __init__(self, faults: FaultState, settings: RealtimeSettings, *,
                 draw: Callable[[], float] | None = None) -> None:
        self.faults = faults
        self.settings = settings
        self._draw = draw or random.Random().random  # for realtime-drop
        self._subscribers: set[Subscriber] = set()
        self._cut_off = 0

    @contextmanager
    def attached(self, subscriber: Subscriber) -> Iterator[None]:
        self._subscribers.add(subscriber)
        try:
            yield
        finally:
            self._subscribers.discard(subscriber)

    def cut_off(self, subscriber: Subscriber) -> None:
        """A subscriber too slow to keep: it gets nothing more from here on."""
        if subscriber in self._subscribers:
            self._subscribers.discard(subscriber)
            self._cut_off += 1

    def publish(self, change: Change) -> None:
        if not self._subscribers:
            return
        faults = self.faults.current()
        delay_s, drop_rate = faults.realtime_lag_ms / 1000, faults.realtime_drop_rate
        data = protocol.encode_data(change.data())
        for subscriber in list(self._subscribers):
            for topic, ids in subscriber.channels.matching(change):
                if drop_rate and self._draw() < drop_rate:
                    continue
                subscriber.deliver(protocol.change(topic, ids, data), delay_s)

    def disconnect_all(self) -> None:
        """On shutdown: every socket is closed now instead of when the server gives up on it."""
        for subscriber in list(self._subscribers):
            subscriber.disconnect(WSCloseCode.GOING_AWAY, "server shutting down")

    def counts(self) -> tuple[int, int, int]:
        """(sockets, joined channels, postgres_changes bindings), for /metrics."""
        subscribers = list(self._subscribers)
        return (len(subscribers), sum(s.channels.joined for s in subscribers),
                sum(s.channels.bindings for s in subscribers))

    def describe(self) -> dict[str, Any]:
        return {"connections": len(self._subscribers), "cut_off_too_slow": self._cut_off}
