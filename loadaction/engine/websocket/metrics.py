"""What a session records, and the kinds of WebSocket trouble it counts."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from loadaction.engine.state import RunState
from loadaction.engine.transport import ErrorKind
from loadaction.metrics.registry import Tags


class WsError(StrEnum):
    """The `error` tag of `ws_errors`: what went wrong, for budgets to select."""

    CONNECT = "connect"  # no connection: refused, unreachable, TLS
    HANDSHAKE = "handshake"  # the server answered the upgrade with another status
    HANDSHAKE_TIMEOUT = "handshake_timeout"  # no upgrade within the timeout
    CLOSED = "closed"  # closed by the server or lost, while the flow had it open
    PROTOCOL = "protocol"  # an invalid frame, or a message over maxBodySize
    RECEIVE_TIMEOUT = "receive_timeout"  # no message matched a ws_receive in time
    HEARTBEAT = "heartbeat"  # an application heartbeat got no reply in time


ERROR_KINDS: Mapping[WsError, ErrorKind] = {
    WsError.CONNECT: ErrorKind.CONNECT,
    WsError.HANDSHAKE: ErrorKind.PROTOCOL,
    WsError.HANDSHAKE_TIMEOUT: ErrorKind.TIMEOUT,
    WsError.CLOSED: ErrorKind.DISCONNECT,
    WsError.PROTOCOL: ErrorKind.PROTOCOL,
    WsError.RECEIVE_TIMEOUT: ErrorKind.TIMEOUT,
    WsError.HEARTBEAT: ErrorKind.TIMEOUT,
}
"""How each shows in the run's error log (whose kinds are the transport's)."""


class SampleSinks:
    """The sinks of one session's (or subscription's) samples: its tags and,
    with an attribution (chaos), the label of the moment each is recorded.
    Sinks are cached in the scenario's shared dict under `key`, so the VUs of
    a scenario share them."""

    __slots__ = ("_cache", "_key", "_state", "tags")

    def __init__(self, state: RunState, tags: Tags, cache: dict[Any, Any], key: Any) -> None:
        self._state = state
        self.tags = tags
        self._cache = cache
        self._key = key

    def __call__(self, metric: str, extra: Tags = ()) -> Any:
        state = self._state
        label = None if state.attribution is None else state.label_now()
        key = (self._key, metric, extra, label)
        sink = self._cache.get(key)
        if sink is None:
            tags = [*self.tags, *extra]
            if label is not None:
                tags.append((state.attribution.key, label))  # type: ignore[union-attr]
            sink = self._cache[key] = state.registry.sink(metric, tuple(sorted(tags)))
        return sink
