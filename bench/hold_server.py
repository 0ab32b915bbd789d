#!/usr/bin/env python3
"""A target that holds each answer for a known time and reports, per
request, how long it really held it: the reference the added-latency bench
(bench.py's latency section) subtracts from what each client measured.

    python bench/hold_server.py --port 8080 --hold-ms 10

GET /hold: 200 "ok" after --hold-ms. GET /_stats: the holds since the last
/_stats, as JSON {"count", "holds_us": [...]}, and the list starts afresh,
so one server serves every client run in turn.

Why a server of its own rather than nginx: nginx cannot hold an answer for a
fixed time, and its $request_time has millisecond resolution. An asyncio
Protocol with llhttp's request parser does little per request, and what the
server's own loop adds (a timer firing late) is inside the hold it reports:
the difference a client shows over it is the client's and the wire's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from time import perf_counter_ns

import httptools

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class Holds:
    def __init__(self) -> None:
        self.us: list[int] = []


class HoldProtocol(asyncio.Protocol):
    def __init__(self, holds: Holds, hold_s: float) -> None:
        self.holds = holds
        self.hold_s = hold_s
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        url, self.url = self.url, b""
        if url.startswith(b"/_stats"):
            body = json.dumps({"count": len(self.holds.us), "holds_us": self.holds.us}).encode()
            self.holds.us = []
            self._write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                        + str(len(body)).encode() + b"\r\n\r\n" + body)
            return
        start = perf_counter_ns()
        self.loop.call_later(self.hold_s, self._answer, start)

    def _answer(self, start: int) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(OK)
        self.holds.us.append((perf_counter_ns() - start) // 1000)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


async def serve(port: int, hold_ms: float) -> None:
    loop = asyncio.get_running_loop()
    holds = Holds()
    server = await loop.create_server(lambda: HoldProtocol(holds, hold_ms / 1000), "127.0.0.1",
                                      port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--hold-ms", type=float, default=10.0)
    a = p.parse_args()
    asyncio.run(serve(a.port, a.hold_ms))


if __name__ == "__main__":
    main()
