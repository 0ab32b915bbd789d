"""Client-side faults: what the network and webhook providers do to requests,
played by the client itself, so no infrastructure is needed.

The chaos timeline calls `activate`/`deactivate` at a fault's start and end;
the engine asks `active_for(name)` on every request (a lookup in a dict that is
empty without chaos) and, when something is active, sends through `send`
instead of the transport:

    faults = client_faults.active_for(spec.name)
    if faults:
        result = await client_faults.send(faults, req, transport, tags,
                                          record_extra=..., admit=guard.admit)
    else:
        result = await transport.send(req)

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
import random
from collections.abc import Callable, Mapping
from typing import Any

from loadaction.chaos.client_base import (
    Admit,
    Deliver,
    Delivery,
    Effect,
    RecordExtra,
    is_2xx,
    isolated,
)
from loadaction.chaos.client_reorder import ReorderEffect
from loadaction.chaos.client_retry import TimeoutRetryEffect
from loadaction.chaos.client_tamper import TamperEffect
from loadaction.engine.http import (
    ABORTED_BY_CHAOS,
    HttpResult,
    PreparedRequest,
    Transport,
    send_and_abort,
)
from loadaction.metrics.registry import CHAOS_METRICS, Metric, MetricInfo, Registry, Tags
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
        transport = delivery.transport
        abort = getattr(transport, "send_and_abort", None) or send_and_abort

        async def deliver(req: PreparedRequest) -> HttpResult:
            p = self.fault.probability
            if p < 1.0 and self._rng.random() >= p:
                return await inner(req)
            result: HttpResult = await abort(req)
            if result.error == ABORTED_BY_CHAOS:  # not when it could not even connect
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
                    first = group.create_task(isolated(inner, req))
                    others = [group.create_task(isolated(inner, req)) for _ in range(fault.copies)]
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
    """The run's client-side faults; one per run, shared by every VU."""

    def __init__(self, registry: Registry, rng: random.Random, *,
                 render: Callable[[Renderable], Any] | None = None) -> None:
        """`render` turns a fault's templates (tamper's `secret`) into values at
        activation: the timeline's own render, so the secret is the run's."""
        self._registry = registry
        self._rng = rng
        self._render = render
        self._effects: dict[str, Effect] = {}
        self._by_request: dict[str, tuple[Fault, ...]] = {}
        self._active: dict[str, Fault] = {}
        for name, info in CHAOS_METRICS.items():  # a registry built without them still works
            if name not in registry.metrics:
                registry.metrics[name] = Metric(name, info)

    @staticmethod
    def metric_infos() -> Mapping[str, MetricInfo]:
        return CHAOS_METRICS

    # ------------------------------------------------------------ timeline side

    def activate(self, fault: Fault, *, secret: str | None = None) -> None:
        """Start applying `fault` to its requests. `secret` overrides rendering
        the fault's own `secret` template. Raises ValueError when a tamper
        `stale` fault has no secret (it could not sign anew)."""
        self._effects[fault.name] = self._effect(fault, secret)
        self._active[fault.name] = fault
        self._index()

    def deactivate(self, fault: Fault) -> None:
        """Stop applying it; a reorder window still held is delivered now."""
        effect = self._effects.pop(fault.name, None)
        self._active.pop(fault.name, None)
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

    def active_for(self, request_name: str) -> tuple[Fault, ...]:
        """The faults on this request now, outermost layer first; () without chaos."""
        return self._by_request.get(request_name, ())

    async def send(self, faults: tuple[Fault, ...], req: PreparedRequest, transport: Transport,
                   tags: Tags, record_extra: RecordExtra | None = None,
                   admit: Admit | None = None) -> HttpResult:
        """Send `req` with `faults` applied; the result is the one the flow sees.

        `record_extra` gets every other request that went out (copies,
        retries), so http_reqs counts them; `admit` is awaited before each of
        those (the run's safety caps). A fault that ended between `active_for`
        and here is skipped.
        """
        delivery = Delivery(self._registry, tags, transport, record_extra, admit)
        deliver: Deliver = transport.send
        for fault in sorted(faults, key=lambda f: LAYER_ORDER[f.action.kind], reverse=True):
            effect = self._effects.get(fault.name)
            if effect is not None:
                deliver = effect.wrap(deliver, delivery)
        return await deliver(req)
