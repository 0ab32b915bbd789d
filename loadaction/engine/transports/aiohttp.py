"""The transport port (engine/transport.py) on aiohttp's client.

Timings are taken around the call rather than with aiohttp's TraceConfig
(which costs 15-25% of throughput): a connector subclass notes, into a cell
that `send` sets up for itself (a ContextVar, since aiohttp's connector
cannot be handed one), when a connection was in hand, how long it waited for
a free connection slot, and how long connecting and the TLS handshake took
on a new connection. The cell is private to this module: callers see
timings only in the `HttpResult`.

k6's breakdown, as aiohttp lets it be measured without trace callbacks:
- blocked: only the wait for a free slot under `max_connections` (aiohttp's
  `_wait_for_available_connection`); 0 when a pooled connection was idle or
  a new one could be opened at once. Looking the pool up is not waiting.
- connecting: opening a new connection (name resolution and TCP connect);
  0 on a reused one. tls: the handshake on a new https connection, from the
  moment asyncio has the connected socket (it builds the protocol then) to
  the connection being ready.
- sending: 0. aiohttp writes the request head (and a small body) into the
  socket's buffer without yielding, within the same step that starts
  waiting; there is no cheap point between the two.
- waiting: from the connection in hand until aiohttp hands back the parsed
  response head (time to first byte, plus aiohttp's writing of the request
  and parsing of the head, a few microseconds of CPU).
- receiving: reading the body once the head is in.
So duration = sending + waiting + receiving exactly (each in whole
microseconds), and duration starts once a connection is in hand, as in k6.
"""

from __future__ import annotations

import asyncio
import ssl
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import chain
from time import perf_counter_ns
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from loadaction.engine.transport import (
    EMPTY_HEADERS,
    ErrorKind,
    HttpResult,
    PreparedRequest,
    WsConnectRequest,
    WsFrame,
    WsFrameKind,
    WsHandshake,
)
from loadaction.engine.transports.wire import (
    USER_AGENT, address, send_and_abort, unverified_context,
)


class _ConnectTiming:
    """Written by the connector, read by `send`; one per send, so concurrent
    sends (a batch, a duplicated delivery) never share one."""

    __slots__ = ("ready_ns", "blocked_ns", "connect_ns", "tls_ns")

    def __init__(self) -> None:
        self.ready_ns = 0  # perf_counter_ns() when the connection was in hand; 0: never
        self.blocked_ns = 0
        self.connect_ns = 0  # tls included
        self.tls_ns = 0


_TIMING: ContextVar[_ConnectTiming] = ContextVar("loadaction_connect_timing")


# The base methods, bound once: super() builds a proxy object per call.
_CONNECT = aiohttp.TCPConnector.connect
_CREATE = aiohttp.TCPConnector._create_connection
_WAIT = aiohttp.TCPConnector._wait_for_available_connection
_WRAP = aiohttp.TCPConnector._wrap_create_connection


class _TimedConnector(aiohttp.TCPConnector):
    """Notes the send's timings in its cell. Only `connect` runs on every
    request (one clock read); the other hooks run only when there is
    something to time: a wait for a slot, a new connection, a handshake."""

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        conn = await _CONNECT(self, req, traces, timeout)
        cell = _TIMING.get(None)
        if cell is not None:
            cell.ready_ns = perf_counter_ns()
        return conn

    async def _wait_for_available_connection(self, key: Any, traces: Any) -> None:
        start = perf_counter_ns()
        try:
            await _WAIT(self, key, traces)
        finally:  # a wait that ends in the connect timeout was waiting too
            cell = _TIMING.get(None)
            if cell is not None:
                cell.blocked_ns += perf_counter_ns() - start

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:
        start = perf_counter_ns()
        proto = await _CREATE(self, req, traces, timeout)
        cell = _TIMING.get(None)
        if cell is not None:
            cell.connect_ns = perf_counter_ns() - start
        return proto

    async def _wrap_create_connection(self, factory: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("ssl"):
            return await _WRAP(self, factory, *args, **kwargs)
        # asyncio's create_connection builds the protocol once the socket is
        # connected and returns once the handshake is done: the factory's
        # call is the handshake's start.
        began = 0

        def timed_factory() -> Any:
            nonlocal began
            began = perf_counter_ns()
            return factory()

        made = await _WRAP(self, timed_factory, *args, **kwargs)
        cell = _TIMING.get(None)
        if cell is not None and began:
            cell.tls_ns = perf_counter_ns() - began
        return made


def describe_error(exc: BaseException, req: PreparedRequest) -> tuple[ErrorKind, str]:
    """The kind and a short, user-facing reason (k6 reports these in the `error` tag)."""
    if isinstance(exc, asyncio.TimeoutError):
        return ErrorKind.TIMEOUT, f"request timeout after {req.timeout:g}s"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return ErrorKind.TLS, f"TLS error with {exc.host}:{exc.port}: {exc.os_error or exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (ErrorKind.CONNECT,
                f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ErrorKind.DISCONNECT, "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ErrorKind.DISCONNECT, "incomplete response body"
    if isinstance(exc, aiohttp.ClientResponseError):
        return ErrorKind.PROTOCOL, f"invalid response: {exc.message or type(exc).__name__}"
    if isinstance(exc, ConnectionError):
        return ErrorKind.DISCONNECT, f"connection lost: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return ErrorKind.CONNECT, f"network error: {exc.strerror or exc}"
    if isinstance(exc, ValueError):
        return ErrorKind.PROTOCOL, f"invalid request: {exc}"
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return ErrorKind.PROTOCOL, text


@dataclass
class AiohttpTransport:
    """One shared session for the run; VUs share its connection pool like k6's
    default (connections are reused, not per-VU)."""

    max_body_bytes: int = 1 << 20
    max_connections: int = 0  # 0: unlimited
    # the context https connections are verified with; None: aiohttp's default
    # (the system's CAs), a test's own for a self-signed server
    ssl_context: ssl.SSLContext | None = None
    # True only when the run goes through an HTTP(S) proxy from the environment
    trust_env: bool = False
    insecure_skip_tls_verify: bool = False  # ssl=False: no certificate or name check
    _session: aiohttp.ClientSession | None = field(default=None, init=False)
    # One ClientTimeout per distinct timeout: building one is an attrs
    # __init__ with validation, per request otherwise.
    _timeouts: dict[float, aiohttp.ClientTimeout] = field(default_factory=dict, init=False)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = _TimedConnector(
                limit=self.max_connections, ttl_dns_cache=300,
                ssl=False if self.insecure_skip_tls_verify
                else self.ssl_context if self.ssl_context is not None else True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                # A default User-Agent header already keeps aiohttp's own out;
                # skip_auto_headers would cost a CIMultiDict build per request.
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=self.trust_env,
            )
        return self._session

    async def send(self, req: PreparedRequest) -> HttpResult:
        session = self._session if self._session is not None else self._get_session()
        cell = _ConnectTiming()
        _TIMING.set(cell)
        timeout = self._timeouts.get(req.timeout)
        if timeout is None:
            timeout = self._timeouts[req.timeout] = aiohttp.ClientTimeout(total=req.timeout)
        url = req.parsed_url if req.parsed_url is not None else req.url
        head = 0  # perf_counter_ns() when the response head was in
        start = perf_counter_ns()
        try:
            async with session.request(
                req.method, url, headers=req.headers, data=req.body,
                allow_redirects=False, timeout=timeout,
            ) as resp:
                head = perf_counter_ns()
                length = resp.content_length
                if length is not None and length <= self.max_body_bytes:
                    body, truncated = await resp.read(), False  # the common case, inline
                else:
                    body, truncated = await self._read_capped(resp)
                end = perf_counter_ns()
                raw = resp.raw_headers  # ((name, value), ...): ": " and CRLF make the 4
                received = len(body) + 12 + 4 * len(raw) + sum(map(len, chain.from_iterable(raw)))
                status, headers = resp.status, resp.headers
                error = kind = None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            # ValueError: aiohttp refusing the request itself (a header with a
            # line break, say): the request's fault, not the engine's
            end = perf_counter_ns()
            status, headers, body, truncated, received = 0, EMPTY_HEADERS, b"", False, 0
            kind, error = describe_error(exc, req)
        ready = cell.ready_ns
        if ready:
            # whole microseconds of waiting, the rest of the duration receiving,
            # so that duration == sending (0) + waiting + receiving exactly
            duration = (end - ready) // 1000
            waiting = (head - ready) // 1000 if head else duration
        else:  # no connection: the attempt is the duration, nothing was waited for
            duration = (end - start) // 1000
            waiting = 0
        tls = cell.tls_ns
        # Positional: keyword arguments make this __init__ three times as dear.
        return HttpResult(
            status, headers, body, duration,
            cell.blocked_ns // 1000,  # blocked_us
            (cell.connect_ns - tls) // 1000,  # connecting_us
            req.sent_bytes, received, error, truncated, kind,
            tls // 1000, 0, waiting,  # tls_us, sending_us, waiting_us
            duration - waiting if ready else 0,  # receiving_us
        )

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        """A body of unknown or excessive length, read up to max_body_bytes."""
        limit = self.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                resp.close()  # drop the connection rather than drain an unbounded body
                return b"".join(chunks)[:limit], True
        return b"".join(chunks), False

    async def send_and_abort(self, req: PreparedRequest) -> HttpResult:
        """See the Transport port and wire.send_and_abort."""
        return await send_and_abort(req, self._tls())

    def _tls(self) -> ssl.SSLContext:
        """The context of connections made outside aiohttp's connector,
        checked as the connector checks its own."""
        if self.insecure_skip_tls_verify:
            return unverified_context()
        return self.ssl_context if self.ssl_context is not None else ssl.create_default_context()

    async def ws_connect(self, req: WsConnectRequest) -> WsHandshake:
        """The upgrade on the run's session and connector; the handshake's
        timeout bounds connecting and the exchange together."""
        session = self._session if self._session is not None else self._get_session()
        start = perf_counter_ns()
        try:
            async with asyncio.timeout(req.timeout):
                ws = await session.ws_connect(
                    req.url, protocols=req.protocols, headers=req.headers, autoping=False,
                    max_msg_size=req.max_message_bytes)
        except aiohttp.WSServerHandshakeError as exc:
            end = perf_counter_ns()
            if exc.status == 101:
                error = f"invalid upgrade: {exc.message}"
            else:
                error = f"the server answered the upgrade with HTTP {exc.status}"
            headers = exc.headers or {}
            received = 17 + sum(len(k) + len(v) + 4 for k, v in headers.items())
            return WsHandshake(exc.status, None, (end - start) // 1000, req.sent_bytes, received,
                               error, ErrorKind.PROTOCOL)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            end = perf_counter_ns()
            if isinstance(exc, TimeoutError):
                kind, error = ErrorKind.TIMEOUT, f"no upgrade within {req.timeout:g}s"
            else:
                kind, error = describe_error(exc, PreparedRequest("GET", str(req.url), {}, None,
                                                                  req.timeout))
            return WsHandshake(0, None, (end - start) // 1000, req.sent_bytes, 0, error, kind)
        end = perf_counter_ns()
        # the 101 status line and the upgrade headers (aiohttp keeps the rest to itself)
        received = 129 + (len(ws.protocol) + 28 if ws.protocol else 0)
        return WsHandshake(101, _AiohttpWebSocket(ws), (end - start) // 1000, req.sent_bytes,
                           received)

    def first_hop(self, url: URL) -> tuple[str, int]:
        if self.trust_env:
            try:
                proxy, _ = get_env_proxy_for_url(url)
            except LookupError:  # no proxy for this URL, or NO_PROXY names it
                pass
            else:
                return address(proxy)
        return address(url)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# ---------------------------------------------------------------- WebSocket

CLOSE_TIMEOUT_S = 2.0
"""How long the closing handshake may take before the connection is dropped."""

_FRAME_KINDS = {
    aiohttp.WSMsgType.TEXT: WsFrameKind.TEXT,
    aiohttp.WSMsgType.BINARY: WsFrameKind.BINARY,
    aiohttp.WSMsgType.PING: WsFrameKind.PING,
    aiohttp.WSMsgType.PONG: WsFrameKind.PONG,
}


class _AiohttpWebSocket:
    """The WebSocket port on aiohttp's client (autoping off: the session
    answers pings and times its own)."""

    __slots__ = ("_ws",)

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    @property
    def protocol(self) -> str | None:
        return self._ws.protocol

    async def send_text(self, text: str) -> None:
        await self._send(self._ws.send_str(text))

    async def send_bytes(self, data: bytes) -> None:
        await self._send(self._ws.send_bytes(data))

    async def ping(self, payload: bytes) -> None:
        await self._send(self._ws.ping(payload))

    async def pong(self, payload: bytes) -> None:
        await self._send(self._ws.pong(payload))

    @staticmethod
    async def _send(sending: Any) -> None:
        try:
            await sending
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            raise ConnectionError(f"connection lost: {exc or type(exc).__name__}") from None

    async def receive(self) -> WsFrame:
        msg = await self._ws.receive()
        kind = _FRAME_KINDS.get(msg.type)
        if kind is not None:
            return WsFrame(kind, msg.data)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return WsFrame(WsFrameKind.CLOSE, close_code=msg.data, error=msg.extra or None)
        if msg.type is aiohttp.WSMsgType.ERROR:
            exc = msg.data
            return WsFrame(WsFrameKind.ERROR, close_code=self._ws.close_code,
                           error=str(exc) or type(exc).__name__)
        return WsFrame(WsFrameKind.CLOSED, close_code=self._ws.close_code)  # CLOSING, CLOSED

    async def close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._ws.close(code=code, message=reason.encode())
        except (TimeoutError, aiohttp.ClientError, OSError):
            self.abort()

    def abort(self) -> None:
        # aiohttp has no public abort: closing the response drops the connection
        self._ws._response.close()
