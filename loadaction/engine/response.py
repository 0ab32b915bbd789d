"""What flows and templates see of a response (`response.status`, `.json`, …)."""

from __future__ import annotations

import json
from typing import Any

from loadaction.engine.transport import HttpResult
from loadaction.plan.model import JsonPath, Subject

_UNPARSED = object()


class ResponseView:
    """Parses the body lazily: most iterations never look at it."""

    __slots__ = ("name", "status", "headers", "raw", "duration_ms", "error", "error_kind", "label",
                 "_json", "_text")

    def __init__(self, name: str, result: HttpResult, label: str | None = None) -> None:
        self.name = name
        self.status = result.status
        self.headers = result.headers
        self.raw = result.body
        self.duration_ms = result.duration_us / 1000
        self.error = result.error  # for people; plans compare `error_kind`
        kind = result.error_kind
        self.error_kind = None if kind is None else kind.value
        # the attribution label fixed when the request was sent: checks and
        # records made from this response carry it too
        self.label = label
        self._json: Any = _UNPARSED
        self._text: str | None = None

    @property
    def body(self) -> str:
        if self._text is None:
            self._text = self.raw.decode("utf-8", errors="replace")
        return self._text

    @property
    def json(self) -> Any:
        """The parsed body, or None when it is not JSON."""
        if self._json is _UNPARSED:
            try:
                self._json = json.loads(self.raw) if self.raw else None
            except ValueError:
                self._json = None
        return self._json

    def subject(self, subject: Subject, key: str | JsonPath | None) -> tuple[bool, Any]:
        """(present, value) of one part of the response, for checks, extracts and maps."""
        if subject == "status":
            return True, self.status
        if subject == "body":
            return True, self.body
        if subject == "header":
            value = self.headers.get(key)  # type: ignore[arg-type]
            return value is not None, value
        doc = self.json
        if doc is None:
            return False, None
        return key.first(doc)  # type: ignore[union-attr]
