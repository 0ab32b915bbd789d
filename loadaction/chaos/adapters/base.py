"""What every fault adapter promises, and the small helpers they share.

The timeline (not the adapters) decides when to start and when to roll back;
an adapter only knows how to do each once. Rollback may be called after a
start that failed half-way, after a start that never ran, or twice, so every
adapter's rollback treats "nothing to undo" as success.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from loadaction.plan.model import Renderable

Render = Callable[[Renderable], Any]
"""Renders one template with the run's context (env, secrets, vars)."""

EXCERPT_CHARS = 200


class AdapterError(Exception):
    """A fault could not be started or rolled back.

    The message is one line, meant for the user, and never quotes rendered
    commands, query strings or headers: those are where secrets live.
    """


class FaultAdapter(Protocol):
    async def start(self) -> None:
        """Inject the fault; raises AdapterError."""
        ...

    async def rollback(self) -> None:
        """Undo the fault; undoing what is not there is success. Raises AdapterError."""
        ...


def one_line(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Whitespace collapsed and cut, so a response body or a traceback cannot
    break the one-line contract of AdapterError."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def last_line(text: str) -> str:
    """The last non-empty line: where shells and most tools put the reason."""
    lines = [line for line in text.splitlines() if line.strip()]
    return one_line(lines[-1]) if lines else ""


def display_url(url: str) -> str:
    """The URL without credentials, query string or fragment (tokens hide there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def render_value(render: Render, template: Renderable, what: str) -> Any:
    """Render, turning template failures (an undefined secret, say) into
    AdapterError: the caller handles one error type for one failed fault."""
    try:
        return render(template)
    except AdapterError:
        raise
    except Exception as exc:
        raise AdapterError(f"cannot render {what}: {one_line(str(exc) or type(exc).__name__)}") from exc
