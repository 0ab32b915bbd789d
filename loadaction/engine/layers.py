"""The request-layer port: wrappers around "deliver a prepared request".

The engine is handed layers (client-side chaos faults are layers); it never
knows what they do. For each request it asks every layer whether it applies
at the request's send time, and sends through those that do, outermost
first, down to the transport. A layer may deliver more than once (a
duplicate, a retry): each extra delivery goes through `Outgoing.admit` (the
safety caps) and is handed to `Outgoing.record_extra`, so every request on
the wire is counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from loadaction.engine.transport import HttpResult, PreparedRequest, Transport
from loadaction.metrics.registry import Registry, Tags

Deliver = Callable[[PreparedRequest], Awaitable[HttpResult]]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What a layer may know and use about one request besides its bytes."""

    name: str  # the request's name in the plan
    sent_at_s: float  # run-clock time it was sent (after the caps admitted it)
    tags: Tags  # the tags its samples carry, attribution included
    transport: Transport
    registry: Registry
    record_extra: Callable[[HttpResult], None]
    admit: Callable[[], Awaitable[None]]


class RequestLayer(Protocol):
    def applies(self, name: str, sent_at_s: float) -> bool:
        """Cheap: called for every request while the layer is installed."""
        ...

    def wrap(self, inner: Deliver, outgoing: Outgoing) -> Deliver:
        """`inner` with this layer's behaviour around it, for this one request."""
        ...
