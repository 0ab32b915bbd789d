"""A raw-socket HTTP/1.1 server that plays scripted byte sequences, for the
transport conformance corpus (tests/test_transport_conformance.py).

Why raw: the edge cases a client transport must survive (a chunked body one
byte per TCP segment, trailers, `100 Continue`, a truncated body, an invalid
status line, a server closing an idle keep-alive connection) are exactly what
a well-behaved server library never sends. Each case is a small coroutine
that gets the request (read with llhttp's request parser: no HTTP parsing by
hand here either) and writes whatever bytes it wants.

The request path picks the case, per request, so a keep-alive connection can
run several cases in turn. The server counts connections and requests so a
test can tell reuse from a new connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httptools


@dataclass
class RawRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


class RawConn:
    """One accepted connection: reads requests, writes raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._pending: list[RawRequest] = []
        self.served = 0  # requests answered (or dropped) on this connection before the current one
        self._current: dict = {}
        self._parser = httptools.HttpRequestParser(self)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # one write, one TCP segment: byte-wise writes really split the answer
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._current = {"url": b"", "headers": [], "body": b""}

    def on_url(self, url: bytes) -> None:
        self._current["url"] += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current["headers"].append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._current["body"] += body

    def on_message_complete(self) -> None:
        c = self._current
        self._pending.append(RawRequest(self._parser.get_method().decode(),
                                        c["url"].decode("latin-1"), c["headers"], c["body"]))

    async def request(self) -> RawRequest | None:
        """The next request on this connection, or None once the client closed it."""
        while not self._pending:
            data = await self.reader.read(65536)
            if not data:
                return None
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                pass
        return self._pending.pop(0)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_bytewise(self, data: bytes) -> None:
        """One byte per write and drain (TCP_NODELAY is on): one byte per segment."""
        for i in range(len(data)):
            self.writer.write(data[i:i + 1])
            await self.writer.drain()
            await asyncio.sleep(0)  # let the loop flush before the next byte

    def close(self) -> None:
        self.writer.close()


# a case answers one request; True keeps the connection open for the next one
Case = Callable[[RawConn, RawRequest], Awaitable[bool]]


@dataclass
class RawHttpServer:
    """Serves `cases` (path -> case) on 127.0.0.1; use `async with`."""

    cases: dict[str, Case]
    host: str = "127.0.0.1"
    port: int = 0
    tls: ssl.SSLContext | None = None  # a server-side context: HTTPS
    connections: int = 0
    requests: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # set each time a case closes
    _server: asyncio.Server | None = None
    _conns: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{path}"

    async def __aenter__(self) -> RawHttpServer:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._conns):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._conns.add(writer)
        self.connections += 1
        conn = RawConn(reader, writer)
        try:
            while True:
                req = await conn.request()
                if req is None:
                    break
                self.requests += 1
                case = self.cases.get(req.path.split("?", 1)[0])
                if case is None:
                    await conn.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                keep = await case(conn, req)
                conn.served += 1
                if not keep:
                    break
        except (ConnectionError, httptools.HttpParserError):
            pass
        except asyncio.CancelledError:
            # only __aexit__ cancels: end normally, or asyncio's start_server
            # callback logs the cancelled task as an error
            pass
        finally:
            writer.close()
            self._conns.discard(writer)
            self._tasks.discard(task)
            self.closed.set()
