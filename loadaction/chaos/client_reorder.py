"""`reorder`: hold matching requests from every VU and deliver them shuffled,
as webhooks arrive out of order after a provider's retries.

No background task: the first request into a window leads it. It waits until
the window is full, `max_wait` has passed, or the fault ends, then delivers
the window's requests one after another in a shuffled order (one after
another, so the server really sees that order) and hands each caller its own
response as soon as it arrives. The shuffle is never the arrival order when
two or more are held, so every full window shows the effect. A request whose
caller was cancelled is skipped; if the leader itself is cancelled, the
callers it had not served yet send their own requests.

`chaos_reordered` counts requests delivered at another position than the one
they arrived in.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from loadaction.chaos.client_base import Deliver, Delivery
from loadaction.engine.transport import EMPTY_HEADERS, HttpResult, PreparedRequest
from loadaction.plan.model import ReorderFault

# What a caller is handed: its response and whether it moved; None: send it yourself.
Outcome = tuple[HttpResult, bool] | None


@dataclass(slots=True)
class _Held:
    req: PreparedRequest
    deliver: Deliver
    outcome: asyncio.Future[Outcome]


@dataclass(slots=True)
class _Window:
    held: list[_Held] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


def _cancelled(req: PreparedRequest) -> HttpResult:
    return HttpResult(0, EMPTY_HEADERS, b"", 0, 0, 0, req.sent_bytes, 0,
                      "cancelled while held by chaos reorder")


def shuffled(n: int, rng: random.Random) -> list[int]:
    """A permutation of range(n) that is not the identity when n > 1."""
    order = list(range(n))
    rng.shuffle(order)
    if n > 1 and order == sorted(order):
        order = order[1:] + order[:1]
    return order


class ReorderEffect:
    def __init__(self, name: str, fault: ReorderFault, rng: random.Random) -> None:
        self.name = name
        self.fault = fault
        self._rng = rng
        self._open: _Window | None = None

    def flush(self) -> None:
        """Deliver the partly filled window now (the fault is ending)."""
        if self._open is not None:
            self._close(self._open)

    def wrap(self, inner: Deliver, delivery: Delivery) -> Deliver:
        async def deliver(req: PreparedRequest) -> HttpResult:
            result, moved = await self.hold(req, inner)
            delivery.count("chaos_reordered", self.name, 1.0 if moved else 0.0)
            return result
        return deliver

    async def hold(self, req: PreparedRequest, inner: Deliver) -> tuple[HttpResult, bool]:
        if self.fault.window <= 1:
            return await inner(req), False
        window = self._open
        leader = window is None
        if window is None:
            window = self._open = _Window()
        outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        window.held.append(_Held(req, inner, outcome))
        if len(window.held) >= self.fault.window:
            self._close(window)
        if leader:
            await self._lead(window)
        got = await outcome
        if got is None:
            return await inner(req), False
        return got

    def _close(self, window: _Window) -> None:
        window.closed.set()
        if self._open is window:
            self._open = None

    async def _lead(self, window: _Window) -> None:
        sending: _Held | None = None
        try:
            try:
                await asyncio.wait_for(window.closed.wait(), self.fault.max_wait)
            except TimeoutError:
                pass
            self._close(window)
            for position, index in enumerate(shuffled(len(window.held), self._rng)):
                held = window.held[index]
                if held.outcome.done():
                    continue  # its caller was cancelled: do not send it
                sending = held
                try:
                    result = await held.deliver(held.req)
                except Exception as exc:  # noqa: BLE001 - that caller's, not the window's
                    if not held.outcome.done():
                        held.outcome.set_exception(exc)
                    continue
                if not held.outcome.done():
                    held.outcome.set_result((result, position != index))
                sending = None
        finally:
            self._close(window)
            if sending is not None and not sending.outcome.done():
                # cut off mid-send: it may have reached the server, so never send it twice
                sending.outcome.set_result((_cancelled(sending.req), False))
            for held in window.held:
                if not held.outcome.done():
                    held.outcome.set_result(None)
