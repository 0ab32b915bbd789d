"""What flows and templates see of a received WebSocket message."""

from __future__ import annotations

import json
from typing import Any

from loadaction.engine.vu import matches
from loadaction.plan.model import Condition, JsonPath, Subject

_UNPARSED = object()


def payload_size(data: str | bytes) -> int:
    """Bytes of a message's payload on the wire (text is UTF-8)."""
    if isinstance(data, str):
        return len(data) if data.isascii() else len(data.encode())
    return len(data)


def frame_size(payload: int, masked: bool) -> int:
    """A frame's bytes: its header (2, 4 or 10 bytes, and the 4-byte mask a
    client adds to what it sends) and the payload."""
    header = 2 if payload < 126 else 4 if payload < 65536 else 10
    return header + (4 if masked else 0) + payload


class MessageView:
    """A text or binary message; JSON is parsed lazily, like a response's
    body. A message has no status and no headers: checks on them find
    nothing, and templates reading them fail."""

    __slots__ = ("_json", "_text", "arrived", "binary", "label", "name", "raw", "size")

    def __init__(self, name: str, data: str | bytes, size: int, label: str | None,
                 arrived: float) -> None:
        self.name = name  # the ws_receive's name, or the session's
        self.raw = data
        self.binary = isinstance(data, bytes)
        self.size = size
        self.label = label  # the attribution label (chaos: the phase) when it arrived
        self.arrived = arrived  # the run's monotonic clock
        self._json: Any = _UNPARSED
        self._text: str | None = None

    @property
    def body(self) -> str:
        if self._text is None:
            raw = self.raw
            self._text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        return self._text

    @property
    def json(self) -> Any:
        """The parsed message, or None when it is not JSON."""
        if self._json is _UNPARSED:
            try:
                self._json = json.loads(self.raw) if self.raw else None
            except ValueError:
                self._json = None
        return self._json

    def shed(self) -> None:
        """Forget the parsed JSON, for a message kept only in case a later
        step asks for it: a parsed 700-byte change is ~5 KB of dicts the
        garbage collector walks again and again, 32 per session (215 MB and
        a quarter of the CPU at 1,000 sessions); the text is parsed again
        if a step takes it."""
        self._json = _UNPARSED
        self._text = None

    def subject(self, subject: Subject, key: str | JsonPath | None) -> tuple[bool, Any]:
        """(present, value), as ResponseView.subject; status and headers are never present."""
        if subject == "body":
            return True, self.body
        if subject == "json":
            doc = self.json
            return (False, None) if doc is None else key.first(doc)  # type: ignore[union-attr]
        return False, None

    def satisfies(self, conditions: tuple[Condition, ...]) -> bool:
        """Every condition (of `until`, `where`) holds."""
        return all(matches(condition.matcher, *self.subject(condition.subject, condition.key))
                   for condition in conditions)

    def about(self) -> str:
        return f"a {'binary' if self.binary else 'text'} message of {self.size} bytes"
