"""Safety caps that hold however the plan is written: load only goes where it
was allowed to, no faster and no more than the caps say."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from time import monotonic

from yarl import URL


class RequestRefused(Exception):
    """A request to a host outside the allowlist; it was never sent."""


class CapReached(Exception):
    """The max-requests cap is spent; the run stops."""


def host_allowed(allowed: frozenset[str], host: str | None, port: int | None) -> bool:
    """The allowlist's one test: the host alone, or host:port, is listed
    (entries lower-cased). Requests and probes both go through it."""
    host = (host or "").lower()
    return host in allowed or f"{host}:{port}" in allowed


class Guard:
    """Checked before every request, so no plan (nor a redirect) escapes it."""

    def __init__(self, allowed_hosts: Iterable[str], max_rps: float | None, max_requests: int | None):
        self.allowed = frozenset(h.lower() for h in allowed_hosts)
        self.max_requests = max_requests
        self.sent = 0
        self._interval = 1.0 / max_rps if max_rps else 0.0
        self._next_slot = 0.0

    def allows(self, url: URL) -> bool:
        return host_allowed(self.allowed, url.host, url.port)

    def check_host(self, url: URL) -> None:
        if not self.allows(url):
            raise RequestRefused(
                f"request to {url.host} refused: not in the allowed hosts "
                f"({', '.join(sorted(self.allowed))}); add it with allowedHosts or --allow-host"
            )

    async def admit(self) -> None:
        """Count the request against the caps, pacing it when max-rps is set."""
        if self.max_requests is not None:
            if self.sent >= self.max_requests:
                raise CapReached(f"max-requests cap of {self.max_requests} reached")
        self.sent += 1
        if self._interval:
            now = monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
            if slot > now:
                await asyncio.sleep(slot - now)
