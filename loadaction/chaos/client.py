"""Client-side faults: what the network and webhook providers do to requests,
played by the client itself, so no infrastructure is needed.

`ClientFaults` is a request layer (engine/layers.py) the engine is handed.
The chaos timeline calls `activate`/`deactivate` at a fault's start and end;
the engine asks `applies(name, sent_at)` on every request (a dict lookup), and
when a fault is active on that request at its send time, sends through
`wrap`. A fault applies from its activation until its planned end, measured on
the run clock, so a timeline woken late by a busy event loop never lets a
fault outlive its window.

Several faults on one request compose as layers, outermost first: tamper
(the request is forged once), reorder (held with the others), timeout-retry,
duplicate, abort (each delivery on the wire may be cut). Each effect is counted
in its own counter, tagged with the request's tags plus `fault:<name>`.

- `abort`: with `probability`, the request is written on a connection of its
  own and the connection closed before the answer is read; the flow sees
  status 0, "aborted by chaos". `chaos_aborted` counts them.
- `duplicate`: with `probability`, `copies` more deliveries of the same
  request, all at once with the original (`delay` None) or one after another,
  each `delay` seconds after the previous answer (a provider redelivering; the
  VU waits for them). The flow sees the original's answer. `chaos_duplicates`
  counts the copies; `chaos_duplicate_mismatch` counts copies answered non-2xx
  when the original got a 2xx, which an idempotent receiver never does (it
  acknowledges a duplicate). A copy without an answer (status 0) is not
  judged; an original that failed is not either (the copy may rightly succeed).
- `reorder`, `tamper`, `timeout-retry`: see client_reorder, client_tamper,
  client_retry.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

from loadaction.chaos.client_base import Deliver, Delivery, Effect, is_2xx
from loadaction.chaos.client_reorder import ReorderEffect
from loadaction.chaos.client_retry import TimeoutRetryEffect
from loadaction.chaos.client_tamper import TamperEffect
from loadaction.engine.layers import Outgoing
from loadaction.engine.transport import ErrorKind, HttpResult, PreparedRequest
from loadaction.metrics.registry import CHAOS_METRICS, Metric, Registry
from loadaction.plan.model import (
    AbortFault,
    DuplicateFault,
    Fault,
    Renderable,
    ReorderFault,
    TamperFault,
    TimeoutRetryFault,
)

# Outermost first: a request is forged once, then held, retried, copied, cut.
LAYER_ORDER: Mapping[str, int] = {
    "tamper": 0, "reorder": 1, "timeout-retry": 2, "duplicate": 3, "abort": 4,
}


class AbortEffect:
    def __init__(self, name: str, fault: AbortFault, rng: random.Random) -> None:
        self.name = name
        self.fault = fault
        self._rng = rng

    def wrap(self, inner: Deliver, delivery: Delivery) -> Deliver:
        abort = delivery.transport.send_and_abort

        async def deliver(req: PreparedRequest) -> HttpResult:
            p = self.fault.probability
            if p < 1.0 and self._rng.random() >= p:
                return await inner(req)
            result: HttpResult = await abort(req)
            if result.error_kind is ErrorKind.ABORTED_BY_CHAOS:  # not when it could not even connect
                delivery.count("chaos_aborted", self.name)
            return result
        return deliver


class DuplicateEffect:
    def __init__(self, name: str, fault: DuplicateFault, rng: random.Random) -> None:
        self.name = name
        self.fault = fault
        self._rng = rng

    def wrap(self, inner: Deliver, delivery: Delivery) -> Deliver:
        async def deliver(req: PreparedRequest) -> HttpResult:
            fault = self.fault
            if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                return await inner(req)
            if fault.delay is None:
                for _ in range(fault.copies):  # outside the task group: a cap stops the run plainly
                    await delivery.admit()
                async with asyncio.TaskGroup() as group:
                    first = group.create_task(inner(req))
                    others = [group.create_task(inner(req)) for _ in range(fault.copies)]
                original = first.result()
                copies = [task.result() for task in others]
            else:
                original = await inner(req)
                copies = []
                for _ in range(fault.copies):
                    await asyncio.sleep(fault.delay)
                    await delivery.admit()
                    copies.append(await inner(req))
            for copy in copies:
                delivery.extra(copy)
                delivery.count("chaos_duplicates", self.name)
                if is_2xx(original.status) and copy.status:
                    delivery.count("chaos_duplicate_mismatch", self.name,
                                   0.0 if is_2xx(copy.status) else 1.0)
            return original
        return deliver


class ClientFaults:
    """The run's client-side faults, as one request layer shared by every VU."""

    def __init__(self, rng: random.Random, *,
                 render: Callable[[Renderable], Any] | None = None) -> None:
        """`render` turns a fault's templates (tamper's `secret`) into values at
        activation: the timeline's own render, so the secret is the run's."""
        self._rng = rng
        self._render = render
        self._effects: dict[str, Effect] = {}
        self._by_request: dict[str, tuple[Fault, ...]] = {}
        self._active: dict[str, Fault] = {}
        self._until: dict[str, float] = {}  # fault -> end of its window (run clock)

    @staticmethod
    def ensure_metrics(registry: Registry) -> None:
        """A registry built without the chaos metrics still works."""
        for name, info in CHAOS_METRICS.items():
            if name not in registry.metrics:
                registry.metrics[name] = Metric(name, info)

    # ------------------------------------------------------------ timeline side

    def activate(self, fault: Fault, *, secret: str | None = None, until_s: float = math.inf) -> None:
        """Start applying `fault` to its requests sent before `until_s` (run
        clock). `secret` overrides rendering the fault's own `secret`
        template. Raises ValueError when a tamper `stale` fault has no secret
        (it could not sign anew)."""
        self._effects[fault.name] = self._effect(fault, secret)
        self._active[fault.name] = fault
        self._until[fault.name] = until_s
        self._index()

    def deactivate(self, fault: Fault) -> None:
        """Stop applying it; a reorder window still held is delivered now."""
        effect = self._effects.pop(fault.name, None)
        self._active.pop(fault.name, None)
        self._until.pop(fault.name, None)
        self._index()
        if isinstance(effect, ReorderEffect):
            effect.flush()

    def _index(self) -> None:
        by_request: dict[str, list[Fault]] = {}
        for fault in self._active.values():
            for name in fault.action.requests:  # type: ignore[union-attr]
                by_request.setdefault(name, []).append(fault)
        self._by_request = {
            name: tuple(sorted(faults, key=lambda f: LAYER_ORDER[f.action.kind]))
            for name, faults in by_request.items()
        }

    def _effect(self, fault: Fault, secret: str | None) -> Effect:
        action = fault.action
        if isinstance(action, AbortFault):
            return AbortEffect(fault.name, action, self._rng)
        if isinstance(action, DuplicateFault):
            return DuplicateEffect(fault.name, action, self._rng)
        if isinstance(action, ReorderFault):
            return ReorderEffect(fault.name, action, self._rng)
        if isinstance(action, TamperFault):
            if secret is None and action.secret is not None and self._render is not None:
                rendered = self._render(action.secret)
                secret = None if rendered is None else str(rendered)
            return TamperEffect(fault.name, action, secret, self._rng)
        if isinstance(action, TimeoutRetryFault):
            return TimeoutRetryEffect(fault.name, action)
        raise ValueError(f"fault {fault.name!r}: {action.kind} is not a client-side fault")

    # ------------------------------------------------------------ engine side

    def active_for(self, request_name: str, sent_at_s: float = -math.inf) -> tuple[Fault, ...]:
        """The faults on this request at its send time, outermost layer first."""
        faults = self._by_request.get(request_name, ())
        if faults:
            until = self._until
            faults = tuple(f for f in faults if sent_at_s < until.get(f.name, -math.inf))
        return faults

    def applies(self, name: str, sent_at_s: float) -> bool:
        """The request-layer port: is a fault active on `name` at `sent_at_s`?"""
        return bool(self._by_request) and bool(self.active_for(name, sent_at_s))

    def wrap(self, inner: Deliver, outgoing: Outgoing) -> Deliver:
        """`inner` with every fault active on this request around it (the
        faults are chosen at the request's send time)."""
        delivery = Delivery.of(outgoing)
        deliver = inner
        faults = self.active_for(outgoing.name, outgoing.sent_at_s)
        for fault in sorted(faults, key=lambda f: LAYER_ORDER[f.action.kind], reverse=True):
            effect = self._effects.get(fault.name)
            if effect is not None:
                deliver = effect.wrap(deliver, delivery)
        return deliver
