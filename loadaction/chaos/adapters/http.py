"""The `http` adapter: one HTTP call starts the fault, another stops it.

What it can guarantee: the start and stop calls are made, with the plan's
templates rendered at call time, and a refused or unexpected answer is an
AdapterError. What it cannot: that the fault expires by itself if the runner
dies before the stop call. Only the endpoint can do that, so plans should ask
for it in the start call (the demo target's `expires_in_s`, set a little
longer than the fault's duration). Rollback is exactly as idempotent as the
stop endpoint; it is always called, even when start failed, because a start
that timed out may still have been applied.
"""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any

import aiohttp

from loadaction.chaos.adapters.base import (
    AdapterError,
    Render,
    display_url,
    one_line,
    render_value,
)
from loadaction.plan.model import HttpCall, HttpFault


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    text: str

    def json(self) -> Any:
        """The parsed body, or None when it is not JSON."""
        try:
            return jsonlib.loads(self.text)
        except ValueError:
            return None


async def send(method: str, url: str, *, timeout: float, headers: dict[str, str] | None = None,
               json: Any = None, body: str | bytes | None = None) -> Response:
    """One request on a session of its own.

    Faults start and stop a few times per run, so a pooled session would save
    nothing and would need closing by someone: the adapter protocol has no
    close(). Redirects are not followed: a control endpoint that redirects is
    misconfigured, and following would resend its keys to another host.
    """
    where = f"{method} {display_url(url)}"
    kwargs: dict[str, Any] = {"headers": headers or {}, "allow_redirects": False}
    if json is not None:
        kwargs["json"] = json
    elif body is not None:
        kwargs["data"] = body
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                session.request(method, url, **kwargs) as response:
            return Response(response.status, await response.text(errors="replace"))
    except TimeoutError:
        raise AdapterError(f"{where}: no answer within {timeout:g} s") from None
    except aiohttp.InvalidURL:
        raise AdapterError(f"{where}: invalid URL") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        # Connection errors name host and port, never the path or query; the
        # full URL is scrubbed anyway in case some other error quotes it.
        reason = one_line(str(exc) or type(exc).__name__).replace(url, display_url(url))
        raise AdapterError(f"{where}: {reason}") from None


def describe_failure(method: str, url: str, response: Response, expected: str) -> str:
    excerpt = one_line(response.text)
    tail = f": {excerpt}" if excerpt else ""
    return f"{method} {display_url(url)}: HTTP {response.status} (expected {expected}){tail}"


class HttpAdapter:
    """Starts and stops a fault with one templated HTTP call each."""

    def __init__(self, fault: HttpFault, render: Render) -> None:
        self._fault = fault
        self._render = render

    async def start(self) -> None:
        await self._call(self._fault.start, "start")

    async def rollback(self) -> None:
        await self._call(self._fault.stop, "stop")

    async def _call(self, call: HttpCall, phase: str) -> None:
        url = render_value(self._render, call.url, f"{phase} url")
        if not isinstance(url, str) or not url:
            raise AdapterError(f"{phase} url rendered to {type(url).__name__}, expected a URL")
        method = call.method.upper()
        headers = {name: str(render_value(self._render, value, f"{phase} header {name}"))
                   for name, value in call.headers}
        json = render_value(self._render, call.json, f"{phase} json") if call.json is not None else None
        body = render_value(self._render, call.body, f"{phase} body") if call.body is not None else None
        if body is not None and not isinstance(body, (str, bytes)):
            body = str(body)
        response = await send(method, url, timeout=call.timeout, headers=headers, json=json, body=body)
        if call.expect is None:
            ok, expected = 200 <= response.status < 300, "2xx"
        else:
            ok, expected = response.status in call.expect, "/".join(map(str, call.expect))
        if not ok:
            raise AdapterError(describe_failure(method, url, response, expected))

