"""Stripe-style idempotency keys for the demo's checkout, so client-side
timeout-retry chaos has a correct system to pass against (and, with the
`no_idempotency` fault, a broken one to catch).

Stripe's rules, as documented: the first request with a key saves its answer,
and the same key with the same parameters replays that answer exactly (plus an
`Idempotent-Replayed: true` header); the same key with other parameters is
refused; the same key while the first is still running is refused with 409.
Only answers of an endpoint that started its work are saved: bodies that fail
validation are answered without touching the key, so a corrected retry works.

Keys live in the target's memory (never in the store, which is the system
under test's data) for 24 hours, as Stripe keeps them, per route. A load test
can send millions, so at most MAX_KEYS are kept, the oldest dropped first;
retries come within seconds, long before a key would be dropped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

TTL_S = 24 * 3600
MAX_KEYS = 200_000
MAX_KEY_LENGTH = 255  # Stripe's limit


@dataclass(frozen=True, slots=True)
class Saved:
    """An answer to replay byte for byte."""

    status: int
    body: bytes
    content_type: str
    charset: str | None


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    created: float
    saved: Saved | None  # None while the first request runs


Begun = Saved | Literal["new", "reuse", "in_use"]


def fingerprint(body: Any) -> str:
    """Parameters, not bytes: key order and spacing do not make another request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyKeys:
    """One target's keys. Entries are inserted in time order, so expiry pops
    from the front of the dict and costs nothing per request when none is due."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl_s: float = TTL_S,
                 max_keys: int = MAX_KEYS) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_keys = max_keys
        self._entries: dict[tuple[str, str], _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if entries[oldest].created > now - self._ttl_s and len(entries) < self._max_keys:
                return
            del entries[oldest]

    def begin(self, route: str, key: str, print_: str) -> Begun:
        """`new` (the caller does the work, then `finish`es or `abandon`s), a
        `Saved` answer to replay, `reuse` (other parameters) or `in_use`."""
        now = self._clock()
        self._expire(now)
        entry = self._entries.get((route, key))
        if entry is None:
            self._entries[(route, key)] = _Entry(print_, now, None)
            return "new"
        if entry.fingerprint != print_:
            return "reuse"
        return "in_use" if entry.saved is None else entry.saved

    def finish(self, route: str, key: str, saved: Saved) -> None:
        entry = self._entries.get((route, key))
        if entry is not None and entry.saved is None:
            entry.saved = saved

    def abandon(self, route: str, key: str) -> None:
        """The work failed before an answer: the key is free for a retry."""
        entry = self._entries.get((route, key))
        if entry is not None and entry.saved is None:
            del self._entries[(route, key)]
