"""What every client-side fault shares: the delivery chain, where effects are
counted, and copying a request without touching the original.

Faults are layers around the transport (`Deliver` in, `Deliver` out), so two
faults on the same request compose: a tampered webhook can also be duplicated,
and each copy of a duplicate can be aborted. A request that is sent more than
the flow sees (a duplicate, a retry) is handed to `record_extra`, so every
request on the wire is in `http_reqs`; the one the flow sees the engine records
itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import EllipsisType
from typing import Protocol

from loadaction.engine.layers import Deliver, Outgoing
from loadaction.engine.transport import HttpResult, PreparedRequest, Transport
from loadaction.metrics.registry import Registry, Tags

RecordExtra = Callable[[HttpResult], None]
Admit = Callable[[], Awaitable[None]]


class Delivery:
    """One request's way through the active faults: the tags its effects are
    counted under, and how extra deliveries are admitted and recorded."""

    __slots__ = ("_admit", "_record_extra", "_tagged", "registry", "tags", "transport")

    def __init__(self, registry: Registry, tags: Tags, transport: Transport,
                 record_extra: RecordExtra | None, admit: Admit | None) -> None:
        self.registry = registry
        self.tags = tags
        self.transport = transport
        self._record_extra = record_extra
        self._admit = admit
        self._tagged: dict[str, Tags] = {}

    @classmethod
    def of(cls, outgoing: Outgoing) -> Delivery:
        return cls(outgoing.registry, outgoing.tags, outgoing.transport,
                   outgoing.record_extra, outgoing.admit)

    def count(self, metric: str, fault: str, value: float = 1.0) -> None:
        """Add to a chaos counter. Callers add 0 when they judged and found
        nothing: a `count==0` budget then passes on evidence, not on no data."""
        tags = self._tagged.get(fault)
        if tags is None:
            tags = self._tagged[fault] = tuple(sorted(
                (*((k, v) for k, v in self.tags if k != "fault"), ("fault", fault))))
        self.registry.add(metric, value, tags)

    def extra(self, result: HttpResult) -> None:
        """A request that went out but is not the one the flow sees."""
        if self._record_extra is not None:
            self._record_extra(result)

    async def admit(self) -> None:
        """Before each extra request: the run's safety caps (max-rps,
        max-requests) count what chaos adds too."""
        if self._admit is not None:
            await self._admit()


class Effect(Protocol):
    """One active fault's behaviour, as a layer around the next delivery."""

    def wrap(self, inner: Deliver, delivery: Delivery) -> Deliver: ...


def is_2xx(status: int) -> bool:
    return 200 <= status < 300


def header_name(headers: Mapping[str, str], name: str) -> str | None:
    """The key under which `name` is set, whatever its case (plain dict headers)."""
    lower = name.lower()
    for key in headers:
        if key.lower() == lower:
            return key
    return None


def with_changes(req: PreparedRequest, *, headers: dict[str, str] | None = None,
                 body: bytes | None | EllipsisType = ..., timeout: float | None = None
                 ) -> PreparedRequest:
    """A new request; the original may be one the engine resends every
    iteration, so it is never mutated."""
    return PreparedRequest(
        req.method, req.url, req.headers if headers is None else headers,
        req.body if isinstance(body, EllipsisType) else body,
        req.timeout if timeout is None else timeout, req.parsed_url)
