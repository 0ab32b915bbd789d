"""The transport port (engine/transport.py) on asyncio Protocols and llhttp.

aiohttp's ClientSession spends about 45 us of CPU per request; an asyncio
Protocol feeding httptools' `HttpResponseParser` (llhttp, the parser Node and
aiohttp use) needs a fraction of that. Only the request head is written here;
every response byte is parsed by llhttp.

What it does, and why it matches the aiohttp transport where it matters:
- keep-alive connections pooled per VU (the engine's CONNECTION_OWNER), as
  k6 keeps them, or shared by the run (`per_vu=False`), and per (scheme,
  host, port); each used by one request at a time (LIFO, so a quiet run keeps
  few connections warm);
- Content-Length, chunked (extensions and trailers: llhttp's; trailers are
  dropped, as aiohttp drops them) and bodyless answers (1xx skipped, 204,
  304, HEAD);
- `Connection: close` and servers closing idle connections: an idempotent
  request that finds its reused connection closed before a byte of the answer
  is sent again once on a new connection (as browsers and k6 do), a POST or
  PATCH never;
- TLS through an `ssl.SSLContext` with SNI, verified unless
  `insecure_skip_tls_verify`; the handshake is timed apart from the connect;
- the request's timeout covers getting a connection to the last body byte;
  bodies are bounded as aiohttp's transport bounds them (a Content-Length
  within `max_body_bytes` is read whole, anything else is read up to the
  bound, `truncated=True`, and the connection dropped);
- gzip/deflate decoded exactly when aiohttp decodes them (its Content-Encoding
  test; br and zstd only where aiohttp has their packages, else the same
  error aiohttp gives), and the same `Accept-Encoding`, `Accept` and
  `User-Agent` aiohttp sends, so servers see the same requests.

WebSockets are declined to the aiohttp transport (`ws_connect`): a socket
lives for the whole session, so a faster handshake would buy nothing per
request. `send_and_abort` (chaos) writes the same head on a connection of
its own (wire.py).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from time import perf_counter_ns
from typing import Any

import httptools
from aiohttp import compression_utils
from multidict import CIMultiDict
from yarl import URL

from loadaction.engine.transport import (
    CONNECTION_OWNER,
    EMPTY_HEADERS,
    ErrorKind,
    HttpResult,
    PreparedRequest,
    WsConnectRequest,
    WsHandshake,
)
from loadaction.engine.transports.aiohttp import AiohttpTransport
from loadaction.engine.transports.wire import (
    address, request_head, send_and_abort, unverified_context,
)

_Key = tuple[object, str, str, int]  # (owner, scheme, host, port)
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
# aiohttp's client limits (max_field_size, max_headers), so both refuse the same answers
MAX_FIELD = 8190
MAX_HEADERS = 128
_DECODED = frozenset({"gzip", "deflate", "br", "zstd"})  # aiohttp's test


class _Lost(Exception):
    """The connection ended before the answer was complete."""

    def __init__(self, any_byte: bool, headers_done: bool, exc: BaseException | None) -> None:
        super().__init__(exc)
        self.any_byte = any_byte
        self.headers_done = headers_done
        self.exc = exc


class _Broken(Exception):
    """The answer is not valid HTTP, or its content encoding could not be decoded."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Decoder:
    """Content-Encoding decoding, as aiohttp does it (deflate with or without
    the zlib header, sniffed from the first byte)."""

    __slots__ = ("encoding", "obj", "zlib")

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.zlib = encoding in ("gzip", "deflate")
        self.obj: Any = None
        if encoding == "br":
            if not compression_utils.HAS_BROTLI:
                raise _Broken(ErrorKind.DISCONNECT, "incomplete response body "
                              "(cannot decode content-encoding: br)")
            self.obj = compression_utils.BrotliDecompressor()
        elif encoding == "zstd":
            if not compression_utils.HAS_ZSTD:
                raise _Broken(ErrorKind.DISCONNECT, "incomplete response body "
                              "(cannot decode content-encoding: zstd)")
            self.obj = compression_utils.ZSTDDecompressor()

    def decode(self, chunk: bytes) -> bytes:
        try:
            if self.obj is None:
                wbits = 16 + zlib.MAX_WBITS
                if self.encoding == "deflate":
                    wbits = zlib.MAX_WBITS if chunk and chunk[0] & 0xF == 8 else -zlib.MAX_WBITS
                self.obj = zlib.decompressobj(wbits=wbits)
            if self.zlib:
                return self.obj.decompress(chunk)
            return self.obj.decompress_sync(chunk)
        except Exception:
            raise _Broken(ErrorKind.DISCONNECT, "incomplete response body (cannot decode "
                          f"content-encoding: {self.encoding})") from None


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection and the response being read on it."""

    def __init__(self, key: _Key, max_body: int) -> None:
        self.key = key
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.waiter: asyncio.Future[None] | None = None
        # flow control: set while the kernel's send buffer is full, so that
        # `sending` lasts until a large body is handed to the kernel
        self.drained: asyncio.Future[None] | None = None
        # True once llhttp ended a whole answer: it stands at the next one's
        # start, and a keep-alive connection keeps its parser (one less
        # allocation per request); after a HEAD, whose body llhttp still
        # expects, or anything cut short, a fresh one
        self.at_boundary = False
        self._start_response(False)

    def _start_response(self, head: bool) -> None:
        self.head = head
        if not self.at_boundary:
            self.parser = httptools.HttpResponseParser(self)
            # aiohttp's parser takes a bare LF as a line end (RFC 9112 2.2 allows
            # it) and unfolds obs-fold header lines (5.2); so does this one, or the
            # two would disagree on such a server. "Dangerous" is a server's worry
            # (request smuggling): a load client reads what its target sends.
            self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True,
                                                 lenient_headers=True)
        self.at_boundary = False
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.interim = False
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = self.max_body
        self.truncated = False
        self.decoder: _Decoder | None = None
        self.until_eof = False
        self.keep_alive = True
        self.first_ns = 0
        self.wire = 0
        self.raw_body = 0  # encoded body bytes decoded so far
        self.complete = False

    # ------------------------------------------------------------ asyncio

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.drop()  # bytes nobody asked for: the connection is out of step
            return
        if not self.first_ns:
            self.first_ns = perf_counter_ns()
        self.wire += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(False)  # 101: the answer is the head; the connection is not HTTP now
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Broken):
                self._fail(cause)
            else:
                self._fail(_Broken(ErrorKind.PROTOCOL, f"invalid response: {cause or exc}"))
        except httptools.HttpParserError as exc:
            self._fail(_Broken(ErrorKind.PROTOCOL, f"invalid response: {exc}"))
        else:
            if self.head and self.headers_done and not waiter.done():
                self._finish(self.keep_alive)  # HEAD: llhttp cannot be told to expect no body

    def pause_writing(self) -> None:
        self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost settles the waiter

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.resume_writing()  # a writer waiting for room learns of the loss from `waiter`
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.headers_done and self.until_eof:
                self._finish(False)  # a body delimited by the close is complete now
            else:
                waiter.set_exception(_Lost(self.first_ns != 0, self.headers_done, exc))

    # ------------------------------------------------------------ llhttp callbacks

    def on_message_begin(self) -> None:
        if self.complete:  # a second answer in the same read: never let it overwrite the first
            raise _Broken(ErrorKind.PROTOCOL, "invalid response: data after the answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.headers_done:  # trailers are dropped, as aiohttp drops them
            if len(name) > MAX_FIELD or len(value) > MAX_FIELD:
                raise _Broken(ErrorKind.PROTOCOL, f"invalid response: header longer than "
                              f"{MAX_FIELD} bytes")
            self.raw_headers.append((name, value))
            if len(self.raw_headers) > MAX_HEADERS:
                raise _Broken(ErrorKind.PROTOCOL, "invalid response: too many headers")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # 100 Continue, 103 Early Hints: the answer follows
            self.raw_headers = []
            return
        self.status = status
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()
        length = None
        chunked = False
        for name, value in self.raw_headers:
            lname = name.lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"content-encoding":
                enc = value.decode("latin-1")
                if enc.isascii() and enc.lower() in _DECODED:
                    self.decoder = _Decoder(enc.lower())
        if length is not None and length <= self.max_body:
            self.limit = 1 << 62  # within the bound: read whole (decoded may be larger), as aiohttp
        bodyless = self.head or status in (204, 304)
        self.until_eof = not bodyless and length is None and not chunked
        if bodyless:
            self.decoder = None

    def on_body(self, body: bytes) -> None:
        if self.truncated:
            return
        if self.decoder is not None:
            self.raw_body += len(body)
            body = self.decoder.decode(body)
        self.chunks.append(body)
        self.size += len(body)
        if self.size > self.limit:
            self.truncated = True
            self.chunks = [b"".join(self.chunks)[:self.limit]]
            # data_received: what was read of the answer, not the rest of the
            # last socket read (up to 256 KB) past the bound; the head as the
            # aiohttp transport estimates it, the body up to the bound (or the
            # encoded bytes it came from)
            head = 12 + sum(len(k) + len(v) + 4 for k, v in self.raw_headers)
            self.wire = head + (self.limit if self.decoder is None else self.raw_body)
            self._finish(False)  # drop the connection rather than drain an unbounded body

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.at_boundary = not self.head
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self._finish(self.keep_alive)

    # ------------------------------------------------------------ outcome

    def _finish(self, reusable: bool) -> None:
        self.complete = True
        if not reusable:
            self.keep_alive = False
        self.end_ns = perf_counter_ns()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.keep_alive = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.drop()

    def drop(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class FastTransport:
    """The fast HTTP/1.1 transport: each VU's connections its own (`per_vu`,
    as k6), or one pool for the run; `max_connections` (0: unlimited) bounds
    them in all, and only a request that waits for one of those has a
    non-zero `blocked_us`."""

    def __init__(self, max_body_bytes: int = 1 << 20, max_connections: int = 0,
                 insecure_skip_tls_verify: bool = False, per_vu: bool = True) -> None:
        self.per_vu = per_vu
        self.max_body_bytes = max_body_bytes
        self.max_connections = max_connections
        self.insecure_skip_tls_verify = insecure_skip_tls_verify
        self._idle: dict[_Key, list[_Conn]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ssl: ssl.SSLContext | None = None
        self._ws: AiohttpTransport | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = (unverified_context() if self.insecure_skip_tls_verify
                         else ssl.create_default_context())
        return self._ssl

    # ------------------------------------------------------------ the port

    async def send(self, req: PreparedRequest) -> HttpResult:
        url = req.parsed_url if req.parsed_url is not None else URL(req.url)
        start = perf_counter_ns()
        try:
            head, close = request_head(req, url)
        except ValueError as exc:
            return self._failed(ErrorKind.PROTOCOL, f"invalid request: {exc}", start, 0, 0, 0)
        scheme = url.scheme
        if scheme not in ("http", "https"):
            return await self._aiohttp().send(req)  # declined: aiohttp says what is wrong
        host, port = address(url)
        key = (CONNECTION_OWNER.get() if self.per_vu else None, scheme, host, port)
        blocked = connecting = tls = 0
        try:
            async with asyncio.timeout(req.timeout):
                conn, blocked, connecting, tls = await self._acquire(key)
                try:
                    result = await self._exchange(conn, req, head, close, blocked, connecting, tls)
                except _Lost as lost:
                    if not (conn.reused and not lost.any_byte and req.method in IDEMPOTENT):
                        raise
                    # stale: the server closed it while idle; once more on a new one
                    conn, blocked2, connecting, tls = await self._acquire(key, fresh=True)
                    result = await self._exchange(conn, req, head, close, blocked + blocked2,
                                                  connecting, tls)
                return result
        except TimeoutError:
            return self._failed(ErrorKind.TIMEOUT, f"request timeout after {req.timeout:g}s",
                                start, blocked, connecting, tls, req.sent_bytes)
        except _Lost as lost:
            if lost.headers_done:
                kind, error = ErrorKind.DISCONNECT, "incomplete response body"
            elif isinstance(lost.exc, ConnectionError):
                kind, error = ErrorKind.DISCONNECT, f"connection lost: {lost.exc.strerror or lost.exc}"
            else:
                kind, error = ErrorKind.DISCONNECT, "server disconnected"
            return self._failed(kind, error, start, blocked, connecting, tls, req.sent_bytes)
        except _Broken as broken:
            return self._failed(broken.kind, broken.message, start, blocked, connecting, tls,
                                req.sent_bytes)
        except ssl.SSLError as exc:
            return self._failed(ErrorKind.TLS, f"TLS error with {host}:{port}: {exc}", start,
                                blocked, connecting, tls)
        except ssl.CertificateError as exc:
            return self._failed(ErrorKind.TLS, f"TLS error with {host}:{port}: {exc}", start,
                                blocked, connecting, tls)
        except OSError as exc:
            return self._failed(ErrorKind.CONNECT,
                                f"cannot connect to {host}:{port}: {exc.strerror or exc}", start,
                                blocked, connecting, tls)

    async def _exchange(self, conn: _Conn, req: PreparedRequest, head: bytes, close: bool,
                        blocked: int, connecting: int, tls: int) -> HttpResult:
        """Write `req` on `conn` and read its answer; hands `conn` back to the
        pool (or closes it) when done."""
        loop = asyncio.get_running_loop()
        conn._start_response(req.method == "HEAD")
        waiter = conn.waiter = loop.create_future()
        transport = conn.transport
        assert transport is not None
        sending_start = perf_counter_ns()
        try:
            if conn.closed or transport.is_closing():
                raise _Lost(False, False, None)
            body = req.body
            transport.write(head + body if body and len(body) < 65536 else head)  # one send
            if body and len(body) >= 65536:
                transport.write(body)
            if conn.drained is not None:
                await conn.drained
            sent = perf_counter_ns()
            await waiter
        except BaseException:
            conn.waiter = None
            self._release(conn, False)
            raise
        conn.waiter = None
        end = conn.end_ns
        first = conn.first_ns or end
        raw = conn.raw_headers
        headers: CIMultiDict[str] = CIMultiDict(
            (k.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for k, v in raw)
        body = conn.chunks[0] if len(conn.chunks) == 1 else b"".join(conn.chunks)
        self._release(conn, conn.keep_alive and not close)
        sending = (sent - sending_start) // 1000
        waiting = max(first - sent, 0) // 1000
        receiving = max(end - first, 0) // 1000
        return HttpResult(conn.status, headers, body, sending + waiting + receiving,
                          blocked // 1000, connecting // 1000, req.sent_bytes, conn.wire, None,
                          conn.truncated, None, tls // 1000, sending, waiting, receiving)

    async def _acquire(self, key: _Key,
                       fresh: bool = False) -> tuple[_Conn, int, int, int]:
        """A connection for `key`: an idle one (blocked 0), else a new one
        (connecting and tls timed), waiting first while the limit is reached."""
        blocked = 0
        if not fresh:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                    return conn, 0, 0, 0
                self._open -= 1
        if self.max_connections and self._open >= self.max_connections:
            wait_start = perf_counter_ns()
            while self._open >= self.max_connections:
                idle = self._idle.get(key)
                if idle and not fresh:
                    conn = idle.pop()
                    if not conn.closed:
                        return conn, perf_counter_ns() - wait_start, 0, 0
                    self._open -= 1
                    continue
                if not self._evict_idle():
                    fut = asyncio.get_running_loop().create_future()
                    self._waiters.append(fut)
                    try:
                        await fut
                    finally:
                        if fut in self._waiters:
                            self._waiters.remove(fut)
            blocked = perf_counter_ns() - wait_start
        self._open += 1
        try:
            conn, connecting, tls = await self._connect(key)
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        return conn, blocked, connecting, tls

    def _evict_idle(self) -> bool:
        """Close one idle connection (of another host) to make room; False when none."""
        for idle in self._idle.values():
            if idle:
                idle.pop(0).drop()
                self._open -= 1
                return True
        return False

    async def _connect(self, key: _Key) -> tuple[_Conn, int, int]:
        _owner, scheme, host, port = key
        loop = asyncio.get_running_loop()
        conn = _Conn(key, self.max_body_bytes)
        start = perf_counter_ns()
        transport, _ = await loop.create_connection(lambda: conn, host, port)
        connected = perf_counter_ns()
        tls = 0
        if scheme == "https":
            try:
                tls_transport = await loop.start_tls(transport, conn, self._ssl_context(),
                                                     server_hostname=host)
            except BaseException:
                transport.abort()
                raise
            assert tls_transport is not None
            conn.transport = tls_transport  # type: ignore[assignment]
            tls = perf_counter_ns() - connected
        return conn, connected - start, tls

    def _release(self, conn: _Conn, reusable: bool) -> None:
        if reusable and not conn.closed:
            conn.reused = True
            self._idle.setdefault(conn.key, []).append(conn)
        else:
            if not conn.closed:
                conn.drop()
            self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _failed(self, kind: ErrorKind, error: str, start: int, blocked: int, connecting: int,
                tls: int, sent: int = 0) -> HttpResult:
        duration = max(perf_counter_ns() - start - blocked - connecting - tls, 0)
        return HttpResult(0, EMPTY_HEADERS, b"", duration // 1000, blocked // 1000,
                          connecting // 1000, sent, 0, error, False, kind, tls // 1000)

    async def send_and_abort(self, req: PreparedRequest) -> HttpResult:
        """A connection of its own, written, then closed (wire.send_and_abort)."""
        return await send_and_abort(req, self._ssl_context())

    def _aiohttp(self) -> AiohttpTransport:
        """The aiohttp transport, for what this one declines (WebSockets, other schemes)."""
        if self._ws is None:
            self._ws = AiohttpTransport(max_body_bytes=self.max_body_bytes,
                                        insecure_skip_tls_verify=self.insecure_skip_tls_verify)
        return self._ws

    async def ws_connect(self, req: WsConnectRequest) -> WsHandshake:
        """Delegated to the aiohttp transport for now (its own session)."""
        return await self._aiohttp().ws_connect(req)

    def first_hop(self, url: URL) -> tuple[str, int]:
        return address(url)

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.drop()
        self._idle.clear()
        self._open = 0
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
