"""Differential conformance: the same corpus of responses through every HTTP
transport behind the engine's port (issue 13, "How it is checked").

Each transport that exists is tested (aiohttp's always; the fast httptools
one once loadaction/engine/transports/fast.py is there), through the port
only: a PreparedRequest in, an HttpResult out. Every case asserts the same
outcome for every transport: status, headers (case-insensitive, minus the
ones listed in VARYING), body, truncated flag and error kind. The expected
outcome is what the aiohttp transport does; where that is wrong by RFC 9112
a comment says so and the RFC's answer is asserted instead.

Servers: tests/raw_http_server.py (scripted bytes: the edge cases),
aiohttp's own web server, and nginx from Debian (tests/nginx_server.py)
over HTTP and HTTPS.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib
import importlib.util
import inspect
import json
import os
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from aiohttp import connector as aiohttp_connector
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from loadaction.engine.transport import (
    ErrorKind,
    HttpResult,
    PreparedRequest,
    Transport,
)
from loadaction.engine.transports.aiohttp import AiohttpTransport
from tests import nginx_server
from tests.raw_http_server import RawConn, RawHttpServer, RawRequest

# Headers whose value differs from one response to the next, so no two
# transports can be compared on them. Everything else must match exactly.
VARYING = frozenset({"date"})

MAX_BODY = 4096  # the transports' max_body_bytes in this corpus: small, so "too big" is cheap
TIMEOUT = 5.0  # a request's timeout where the case is not about timing out


# ---------------------------------------------------------------- the transports

def _fast_factory() -> Callable[[int], Transport] | None:
    """The fast transport's class, when its module exists: the one class
    defined there with the port's methods (its name is the other helper's)."""
    if importlib.util.find_spec("loadaction.engine.transports.fast") is None:
        return None
    module = importlib.import_module("loadaction.engine.transports.fast")
    named = getattr(module, "FastTransport", None)
    if named is not None:
        return lambda max_body: named(max_body_bytes=max_body)
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ == module.__name__ and all(
                hasattr(cls, m) for m in ("send", "send_and_abort", "close")):
            return lambda max_body: cls(max_body_bytes=max_body)
    raise AssertionError("transports/fast.py defines no class with the transport port's methods")


def _factories() -> dict[str, Callable[[int], Transport]]:
    out: dict[str, Callable[[int], Transport]] = {
        "aiohttp": lambda max_body: AiohttpTransport(max_body_bytes=max_body)}
    fast = _fast_factory()
    if fast is not None:
        out["fast"] = fast
    return out


FACTORIES = _factories()


@pytest.fixture(params=sorted(FACTORIES))
def make_transport(request: pytest.FixtureRequest) -> Callable[[int], Transport]:
    return FACTORIES[request.param]


# ---------------------------------------------------------------- outcomes

@dataclass(frozen=True)
class Outcome:
    """What is compared: everything a plan can see of an answer but timings."""

    status: int
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), sorted: a CI multidict
    body: bytes
    truncated: bool
    error_kind: ErrorKind | None


def outcome(r: HttpResult) -> Outcome:
    # the port's promise: a case-insensitive multidict, whatever the transport
    assert isinstance(r.headers, CIMultiDict | CIMultiDictProxy), type(r.headers)
    headers = tuple(sorted((k.lower(), v) for k, v in r.headers.items() if k.lower() not in VARYING))
    return Outcome(r.status, headers, r.body, r.truncated, r.error_kind)


def ok(status: int, headers: dict[str, str] | list[tuple[str, str]], body: bytes = b"",
       truncated: bool = False) -> Outcome:
    items = headers.items() if isinstance(headers, dict) else headers
    return Outcome(status, tuple(sorted((k.lower(), v) for k, v in items)), body, truncated, None)


def err(kind: ErrorKind) -> Outcome:
    return Outcome(0, (), b"", False, kind)


def req(url: str, method: str = "GET", *, timeout: float = TIMEOUT, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> PreparedRequest:
    return PreparedRequest(method, url, dict(headers or {}), body, timeout, URL(url))


async def send_all(transport: Transport, reqs: list[PreparedRequest]) -> list[Outcome]:
    """Send one after the other on one transport (so keep-alive is exercised)."""
    try:
        return [outcome(await transport.send(r)) for r in reqs]
    finally:
        await transport.close()


# ---------------------------------------------------------------- raw-socket cases

def answer(data: bytes, *, keep: bool = True, bytewise: bool = False
           ) -> Callable[[RawConn, RawRequest], Awaitable[bool]]:
    """A case that writes `data` (one byte per segment when `bytewise`)."""
    async def case(conn: RawConn, _req: RawRequest) -> bool:
        await (conn.send_bytewise(data) if bytewise else conn.send(data))
        return keep
    return case


CHUNKED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
CHUNKED_HEADERS = {"Content-Type": "text/plain", "Transfer-Encoding": "chunked"}
KA = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nka"
KA_OUT = ok(200, {"Content-Length": "2"}, b"ka")
GZ = gzip.compress(b"gzip body " * 50)
ZLIB = zlib.compress(b"deflate body " * 20)  # what RFC 9110 calls deflate: zlib-wrapped
_raw = zlib.compressobj(wbits=-15)
RAW_DEFLATE = _raw.compress(b"raw deflate " * 20) + _raw.flush()  # what some servers send instead


async def split_head_body(conn: RawConn, _req: RawRequest) -> bool:
    """The head, cut in the middle of a header line, then the body: three segments."""
    await conn.send(b"HTTP/1.1 200 OK\r\nContent-Le")
    await asyncio.sleep(0.01)
    await conn.send(b"ngth: 4\r\n\r\n")
    await asyncio.sleep(0.01)
    await conn.send(b"body")
    return True


async def truncated(conn: RawConn, _req: RawRequest) -> bool:
    await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    return False


async def hang_up(conn: RawConn, _req: RawRequest) -> bool:
    return False  # the request read, no answer, the connection closed


async def never(conn: RawConn, _req: RawRequest) -> bool:
    await asyncio.Event().wait()  # cancelled at the server's teardown
    return False


def stall_after(data: bytes) -> Callable[[RawConn, RawRequest], Awaitable[bool]]:
    """Writes `data`, then nothing more (the connection stays open)."""
    async def case(conn: RawConn, req: RawRequest) -> bool:
        await conn.send(data)
        return await never(conn, req)
    return case


async def idle_close(conn: RawConn, _req: RawRequest) -> bool:
    """Keep-alive promised (no `Connection: close`), then closed while idle."""
    await conn.send(KA)
    return False


async def stale(conn: RawConn, _req: RawRequest) -> bool:
    """Answers a connection's first request with keep-alive; a later one on
    the same connection finds it closed with no answer, as when the server's
    idle timeout and the client's next request cross on the wire."""
    if conn.served:
        return False
    await conn.send(KA)
    return True


RAW_CASES: dict[str, Callable[[RawConn, RawRequest], Awaitable[bool]]] = {
    "/stale": stale,
    "/ka": answer(KA),
    "/chunked-bytewise": answer(CHUNKED, bytewise=True),
    "/chunk-ext": answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n"),
    "/trailers": answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                        b"3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n"),
    "/continue": answer(b"HTTP/1.1 100 Continue\r\n\r\n"
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "/early-hints": answer(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                           b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "/head": answer(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
    "/204": answer(b"HTTP/1.1 204 No Content\r\n\r\n"),
    "/304": answer(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 10\r\n\r\n"),
    "/close": answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye",
                     keep=False),
    "/until-close": answer(b"HTTP/1.1 200 OK\r\n\r\nread until the server closes", keep=False),
    "/idle-close": idle_close,
    "/truncated": truncated,
    "/bad-status": answer(b"HTTP/1.1 abc Nonsense\r\nContent-Length: 0\r\n\r\n", keep=False),
    "/not-http": answer(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", keep=False),
    "/huge-headers": answer(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000
                            + b"\r\nContent-Length: 0\r\n\r\n", keep=False),
    "/too-big": answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + b"x" * 10_000),
    "/too-big-chunked": answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               + b"%x\r\n" % 10_000 + b"y" * 10_000 + b"\r\n0\r\n\r\n"),
    "/gzip": answer(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
                    % len(GZ) + GZ),
    "/split": split_head_body,
    "/hang-up": hang_up,
    "/never": never,
    "/stall-head": stall_after(b"HTTP/1.1 200 OK\r\nContent-Le"),
    "/stall-body": stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
    "/duplicates": answer(b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n"
                          b"Content-Length: 0\r\n\r\n"),
    "/http10": answer(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "/te-and-cl": answer(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n0\r\n\r\n", keep=False),
    "/two-cl": answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
                      keep=False),
    "/bad-cl": answer(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", keep=False),
    "/bad-chunk-size": answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"zz\r\nabc\r\n0\r\n\r\n", keep=False),
    "/space-in-name": answer(b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 0\r\n\r\n", keep=False),
    "/many-headers": answer(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
                            + b"Content-Length: 0\r\n\r\n", keep=False),
    "/big-head-short-lines": answer(b"HTTP/1.1 200 OK\r\n" + b"".join(
        b"X-H%d: %s\r\n" % (i, b"v" * 8000) for i in range(13)) + b"Content-Length: 0\r\n\r\n"),
    "/deflate": answer(b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n"
                       % len(ZLIB) + ZLIB),
    "/raw-deflate": answer(b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(RAW_DEFLATE) + RAW_DEFLATE),
    "/bad-gzip": answer(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\n"
                        b"not gzip!!"),
    "/unknown-encoding": answer(b"HTTP/1.1 200 OK\r\nContent-Encoding: x-custom\r\n"
                                b"Content-Length: 3\r\n\r\nabc"),
    "/no-reason": answer(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"),
    "/status-999": answer(b"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n"),
    "/obs-fold": answer(b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n"),
    "/lf-only": answer(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
}


def raw_corpus(s: RawHttpServer
               ) -> list[tuple[str, list[PreparedRequest], list[Outcome], int | set[int]]]:
    """(case, requests sent in turn on one transport, expected outcomes,
    connections the server saw: a number, or the numbers allowed)."""
    u = s.url
    return [
        ("chunked one byte per segment", [req(u("/chunked-bytewise"))],
         [ok(200, CHUNKED_HEADERS, b"hello world")], 1),
        ("chunk extensions", [req(u("/chunk-ext"))],
         [ok(200, {"Transfer-Encoding": "chunked"}, b"hello")], 1),
        # trailers are not headers: neither transport shows them (as k6 does not)
        ("trailers", [req(u("/trailers"))],
         [ok(200, {"Transfer-Encoding": "chunked", "Trailer": "X-Sum"}, b"abc")], 1),
        ("100 Continue before the answer", [req(u("/continue"))],
         [ok(200, {"Content-Length": "2"}, b"ok")], 1),
        ("103 Early Hints before the answer", [req(u("/early-hints"))],
         [ok(200, {"Content-Length": "2"}, b"ok")], 1),
        # HEAD: Content-Length describes the GET's body; none follows, and the
        # connection stays usable (the next request reuses it)
        ("HEAD with Content-Length", [req(u("/head"), "HEAD"), req(u("/ka"))],
         [ok(200, {"Content-Length": "1234"}), KA_OUT], 1),
        ("204 then reuse", [req(u("/204")), req(u("/ka"))], [ok(204, {}), KA_OUT], 1),
        ("304 with Content-Length then reuse", [req(u("/304")), req(u("/ka"))],
         [ok(304, {"ETag": '"v1"', "Content-Length": "10"}), KA_OUT], 1),
        ("keep-alive, then Connection: close",
         [req(u("/ka")), req(u("/ka")), req(u("/close")), req(u("/ka"))],
         [KA_OUT, KA_OUT, ok(200, {"Connection": "close", "Content-Length": "3"}, b"bye"), KA_OUT],
         2),
        ("body delimited by the close", [req(u("/until-close")), req(u("/ka"))],
         [ok(200, {}, b"read until the server closes"), KA_OUT], 2),
        ("truncated body", [req(u("/truncated"))], [err(ErrorKind.DISCONNECT)], 1),
        ("invalid status line", [req(u("/bad-status"))], [err(ErrorKind.PROTOCOL)], 1),
        ("not HTTP at all", [req(u("/not-http"))], [err(ErrorKind.PROTOCOL)], 1),
        # aiohttp refuses a header line over 8,190 bytes (its max_field_size)
        ("100 KB header block", [req(u("/huge-headers"))], [err(ErrorKind.PROTOCOL)], 1),
        ("bigger than max_body_bytes", [req(u("/too-big"))],
         [ok(200, {"Content-Length": "10000"}, b"x" * MAX_BODY, truncated=True)], 1),
        ("chunked, bigger than max_body_bytes", [req(u("/too-big-chunked"))],
         [ok(200, {"Transfer-Encoding": "chunked"}, b"y" * MAX_BODY, truncated=True)], 1),
        # decoded, as aiohttp's auto_decompress does; the headers stay as sent
        ("gzip body", [req(u("/gzip"))],
         [ok(200, {"Content-Encoding": "gzip", "Content-Length": str(len(GZ))}, b"gzip body " * 50)],
         1),
        ("head and body split across segments", [req(u("/split")), req(u("/ka"))],
         [ok(200, {"Content-Length": "4"}, b"body"), KA_OUT], 1),
        # aiohttp (3.14) sends an idempotent request again, once, on a new
        # connection when the first closed with no answer, even a fresh one;
        # the issue asks a retry only of a stale reused connection: one or two
        ("no answer to a GET, then close", [req(u("/hang-up"))], [err(ErrorKind.DISCONNECT)],
         {1, 2}),
        ("no answer to a POST, then close", [req(u("/hang-up"), "POST", body=b"once")],
         [err(ErrorKind.DISCONNECT)], 1),  # never sent twice
        ("never answers", [req(u("/never"), timeout=0.3)], [err(ErrorKind.TIMEOUT)], 1),
        # a reused connection closed before any byte of the answer: an
        # idempotent request goes again, once, on a new connection ...
        ("stale keep-alive connection, GET retried", [req(u("/stale")), req(u("/stale"))],
         [KA_OUT, KA_OUT], 2),
        # ... a POST never does: the server may have acted on it
        ("stale keep-alive connection, POST not retried",
         [req(u("/stale")), req(u("/stale"), "POST", body=b"once")],
         [KA_OUT, err(ErrorKind.DISCONNECT)], 1),
        # the request's timeout covers the whole answer, not only its first byte
        ("stalls in the middle of the head", [req(u("/stall-head"), timeout=0.3)],
         [err(ErrorKind.TIMEOUT)], 1),
        ("stalls in the middle of the body", [req(u("/stall-body"), timeout=0.3)],
         [err(ErrorKind.TIMEOUT)], 1),
        ("repeated header kept twice", [req(u("/duplicates"))],
         [ok(200, [("Content-Length", "0"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")])], 1),
        ("HTTP/1.0 answer with Content-Length", [req(u("/http10"))],
         [ok(200, {"Content-Length": "2"}, b"ok")], 1),
        # RFC 9112 6.3: Transfer-Encoding overrides Content-Length, and such a
        # message "ought to be handled as an error" (smuggling): both refuse it
        ("Transfer-Encoding and Content-Length", [req(u("/te-and-cl"))],
         [err(ErrorKind.PROTOCOL)], 1),
        ("two different Content-Lengths", [req(u("/two-cl"))], [err(ErrorKind.PROTOCOL)], 1),
        ("Content-Length not a number", [req(u("/bad-cl"))], [err(ErrorKind.PROTOCOL)], 1),
        ("chunk size not hex", [req(u("/bad-chunk-size"))], [err(ErrorKind.PROTOCOL)], 1),
        ("space in a header name", [req(u("/space-in-name"))], [err(ErrorKind.PROTOCOL)], 1),
        # aiohttp's limit of 128 header lines
        ("200 header lines", [req(u("/many-headers"))], [err(ErrorKind.PROTOCOL)], 1),
        # the limit is per line (8,190 bytes), not on the whole head
        ("104 KB head in lines under 8 KB", [req(u("/big-head-short-lines")), req(u("/ka"))],
         [ok(200, [("Content-Length", "0")] + [(f"X-H{i}", "v" * 8000) for i in range(13)]),
          KA_OUT], 1),
        ("deflate (zlib) body", [req(u("/deflate"))],
         [ok(200, {"Content-Encoding": "deflate", "Content-Length": str(len(ZLIB))},
             b"deflate body " * 20)], 1),
        ("raw deflate body", [req(u("/raw-deflate"))],
         [ok(200, {"Content-Encoding": "deflate", "Content-Length": str(len(RAW_DEFLATE))},
             b"raw deflate " * 20)], 1),
        # aiohttp raises ClientPayloadError for a broken encoding, which the
        # transport's describe_error reads as DISCONNECT, although ErrorKind's
        # own comment files "its encoding was broken" under PROTOCOL: recorded
        # as aiohttp does; changing it means changing both transports at once
        ("gzip that is not", [req(u("/bad-gzip"))], [err(ErrorKind.DISCONNECT)], 1),
        ("unknown Content-Encoding left as is", [req(u("/unknown-encoding"))],
         [ok(200, {"Content-Encoding": "x-custom", "Content-Length": "3"}, b"abc")], 1),
        ("empty reason phrase", [req(u("/no-reason"))], [ok(200, {"Content-Length": "0"})], 1),
        ("status 999", [req(u("/status-999"))], [ok(999, {"Content-Length": "0"})], 1),
        # RFC 9112 5.2: a user agent MUST replace a response's obs-fold with SP
        ("obsolete line folding", [req(u("/obs-fold"))],
         [ok(200, {"X-A": "one two", "Content-Length": "0"})], 1),
        # RFC 9112 2.2: a recipient MAY take a bare LF as a line end; aiohttp does
        ("bare LF line ends", [req(u("/lf-only"))], [ok(200, {"Content-Length": "2"}, b"ok")], 1),
    ]


RAW_CASE_NAMES = [c[0] for c in raw_corpus(RawHttpServer({}))]

# (transport, case): where a transport is known to differ from the corpus.
# Not strict, so a fix does not turn CI red before its author drops the mark:
# an XPASS in the summary says the mark can go.
def _params(names: list[str]) -> list[Any]:
    """(transport, case) for every transport: each must give the same answer."""
    return [pytest.param(t, c, id=f"{t}-{c}") for t in sorted(FACTORIES) for c in names]


@pytest.mark.parametrize(("transport", "case"), _params(RAW_CASE_NAMES))
def test_raw_socket_case(transport: str, case: str) -> None:
    async def main() -> None:
        async with RawHttpServer(RAW_CASES) as server:
            _, reqs, expected, connections = next(c for c in raw_corpus(server) if c[0] == case)
            got = await send_all(FACTORIES[transport](MAX_BODY), reqs)
            assert got == expected
            allowed = connections if isinstance(connections, set) else {connections}
            assert server.connections in allowed
    asyncio.run(main())


# ---------------------------------------------------------------- the request, as the server reads it

async def _echo_request(conn: RawConn, r: RawRequest) -> bool:
    """The request as llhttp read it, as JSON: what the server saw."""
    seen = json.dumps([r.method, r.path, sorted([k.lower(), v] for k, v in r.headers),
                       r.body.decode("latin-1")]).encode()
    await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(seen) + seen)
    return True


_DEFAULTS = [["accept", "*/*"], ["accept-encoding", "gzip, deflate"], ["user-agent", "loadaction/0.1"]]
_OCTETS = ["content-type", "application/octet-stream"]

# name, (method, query, headers, body), the headers the server reads (Host
# aside), as aiohttp writes them
REQUEST_CASES: list[tuple[str, tuple[str, str, dict[str, str], bytes | None], list[list[str]]]] = [
    ("GET with a query", ("GET", "?a=1&b=%20x", {}, None), _DEFAULTS),
    ("GET, the plan's own User-Agent, Accept and Accept-Encoding",
     ("GET", "", {"User-Agent": "mine", "Accept": "text/html", "accept-encoding": "identity"}, None),
     [["accept", "text/html"], ["accept-encoding", "identity"], ["user-agent", "mine"]]),
    ("POST with a Content-Type", ("POST", "", {"Content-Type": "application/json", "X-Custom": "v"},
                                  b'{"a":1}'),
     [*_DEFAULTS, ["content-length", "7"], ["content-type", "application/json"], ["x-custom", "v"]]),
    ("PATCH with a body", ("PATCH", "", {"Content-Type": "text/plain"}, b"{}"),
     [*_DEFAULTS, ["content-length", "2"], ["content-type", "text/plain"]]),
    # RFC 9110 8.3: content SHOULD come with a Content-Type; aiohttp writes
    # application/octet-stream for bytes without one
    ("POST bytes without a Content-Type", ("POST", "", {}, b"hi"),
     [*_DEFAULTS, ["content-length", "2"], _OCTETS]),
    ("POST without a body", ("POST", "", {}, None), [*_DEFAULTS, ["content-length", "0"], _OCTETS]),
    ("PUT with an empty body", ("PUT", "", {}, b""), [*_DEFAULTS, ["content-length", "0"], _OCTETS]),
    ("DELETE without a body", ("DELETE", "", {}, None), [*_DEFAULTS, ["content-length", "0"]]),
    ("OPTIONS", ("OPTIONS", "", {}, None), _DEFAULTS),
]



@pytest.mark.parametrize(("transport", "case"), _params([c[0] for c in REQUEST_CASES]))
def test_request_as_the_server_reads_it(transport: str, case: str) -> None:
    """Request serialisation is ours in the fast transport: the server must
    read the same request line, headers and body from every transport."""
    (method, query, headers, body), expected = next(c[1:] for c in REQUEST_CASES if c[0] == case)

    async def main() -> None:
        async with RawHttpServer({"/echo": _echo_request}) as server:
            got = await send_all(FACTORIES[transport](MAX_BODY),
                                 [req(server.url("/echo" + query), method, headers=headers, body=body)])
            assert got[0].status == 200, got
            seen = json.loads(got[0].body)
            host = ["host", f"127.0.0.1:{server.port}"]
            assert seen == [method, "/echo" + query, sorted([*expected, host]),
                            (body or b"").decode("latin-1")]
    asyncio.run(main())


def test_server_closing_an_idle_connection(make_transport: Callable[[int], Transport]) -> None:
    """The server closes a keep-alive connection while it is idle: the next
    GET gets its answer (on a new connection), whether the transport saw the
    close before reusing or found the connection stale and retried."""
    async def main() -> None:
        async with RawHttpServer(RAW_CASES) as server:
            transport = make_transport(MAX_BODY)
            try:
                first = outcome(await transport.send(req(server.url("/idle-close"))))
                await asyncio.wait_for(server.closed.wait(), TIMEOUT)  # the close is out
                second = outcome(await transport.send(req(server.url("/ka"))))
            finally:
                await transport.close()
            assert (first, second) == (KA_OUT, KA_OUT)
            assert server.connections == 2
    asyncio.run(main())


# ---------------------------------------------------------------- aiohttp's own server

async def _json(_r: web.Request) -> web.Response:
    return web.json_response({"ok": True, "n": [1, 2, 3]})


async def _streamed(r: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(r)
    for i in range(5):
        await resp.write(b"part %d;" % i)
    await resp.write_eof()
    return resp


async def _streamed_big(r: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(r)
    for _ in range(10):
        await resp.write(b"q" * 1000)  # 10,000 bytes in all: over MAX_BODY
    await resp.write_eof()
    return resp


async def _redirect(_r: web.Request) -> web.Response:
    raise web.HTTPFound("/json")


async def _echo(r: web.Request) -> web.Response:
    return web.Response(body=await r.read(), headers={"X-Method": r.method})


def aiohttp_corpus(base: str) -> list[tuple[str, PreparedRequest, Any]]:
    srv = "Python/3 aiohttp"  # checked by prefix: the versions are the environment's
    return [
        ("json", req(base + "/json"),
         ok(200, {"Content-Type": "application/json; charset=utf-8", "Content-Length": "28",
                  "Server": srv}, b'{"ok": true, "n": [1, 2, 3]}')),
        ("streamed chunked", req(base + "/streamed"),
         ok(200, {"Content-Type": "text/plain", "Transfer-Encoding": "chunked", "Server": srv},
            b"".join(b"part %d;" % i for i in range(5)))),
        # redirects are the engine's to follow (engine/requests.py), never the transport's
        ("redirect not followed", req(base + "/redirect"),
         ok(302, {"Location": "/json", "Content-Type": "text/plain; charset=utf-8",
                  "Content-Length": "10", "Server": srv}, b"302: Found")),
        ("POST body echoed", req(base + "/echo", "POST", body=b"payload"),
         ok(200, {"X-Method": "POST", "Content-Type": "application/octet-stream",
                  "Content-Length": "7", "Server": srv}, b"payload")),
        ("HEAD of the JSON", req(base + "/json", "HEAD"),
         ok(200, {"Content-Type": "application/json; charset=utf-8", "Content-Length": "28",
                  "Server": srv})),
        ("streamed, bigger than max_body_bytes", req(base + "/streamed-big"),
         ok(200, {"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked",
                  "Server": srv}, b"q" * MAX_BODY, truncated=True)),
        ("after the truncated one", req(base + "/json"),
         ok(200, {"Content-Type": "application/json; charset=utf-8", "Content-Length": "28",
                  "Server": srv}, b'{"ok": true, "n": [1, 2, 3]}')),
        ("404", req(base + "/missing"),
         ok(404, {"Content-Type": "text/plain; charset=utf-8", "Content-Length": "14",
                  "Server": srv}, b"404: Not Found")),
    ]


def _server_prefixed(o: Outcome) -> Outcome:
    """The Server header cut to its product names (versions vary by environment)."""
    headers = tuple(sorted(
        (k, "Python/3 aiohttp" if k == "server" and v.startswith("Python/3") and "aiohttp" in v else v)
        for k, v in o.headers))
    return Outcome(o.status, headers, o.body, o.truncated, o.error_kind)


def test_aiohttp_server_corpus(make_transport: Callable[[int], Transport]) -> None:
    async def main() -> None:
        app = web.Application()
        app.router.add_get("/json", _json)
        app.router.add_get("/streamed", _streamed)
        app.router.add_get("/streamed-big", _streamed_big)
        app.router.add_get("/redirect", _redirect)
        app.router.add_post("/echo", _echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            corpus = aiohttp_corpus(f"http://127.0.0.1:{port}")
            got = await send_all(make_transport(MAX_BODY), [r for _, r, _ in corpus])
            for (name, _, expected), o in zip(corpus, got, strict=True):
                assert _server_prefixed(o) == expected, name
        finally:
            await runner.cleanup()
    asyncio.run(main())


# ---------------------------------------------------------------- nginx

def _nginx_requests(n: Any, tls: bool) -> list[PreparedRequest]:
    def u(path: str) -> str:
        return n.url(path, tls=tls)
    since = {"If-Modified-Since": formatdate(nginx_server.MTIME, usegmt=True)}
    return [
        req(u("/small.txt")), req(u("/empty.txt")), req(u("/64k.bin")),  # the 3rd closes
        req(u("/big.bin")), req(u("/gz/text.txt")), req(u("/small.txt"), headers=since),
        req(u("/204")), req(u("/64k.bin"), "HEAD"), req(u("/redirect")), req(u("/missing")),
        req(u("/small.txt"), "POST", body=b"x"),
    ]


# status, body (None: not checked here), truncated, nginx's request number on its connection
_NGINX_EXPECTED: list[tuple[int, bytes | None, bool, str]] = [
    (200, nginx_server.FILES["small.txt"], False, "1"),
    (200, b"", False, "2"),
    (200, nginx_server.FILES["64k.bin"], False, "3"),  # Connection: close (keepalive_requests)
    (200, b"z" * (1 << 20), True, "1"),  # cut at max_body_bytes; the connection is dropped
    (200, nginx_server.FILES["gz/text.txt"], False, "1"),  # decoded
    (304, b"", False, "2"),
    (204, b"", False, "3"),
    (200, b"", False, "1"),  # HEAD
    (302, None, False, "2"),  # not followed
    (404, None, False, "3"),
    (405, None, False, "1"),
]


def _conn_ordinals(outcomes: list[Outcome]) -> list[Outcome]:
    """nginx's connection serial numbers (X-Conn) as 0, 1, 2, ... in order of
    first appearance: which requests shared a connection, comparable across runs."""
    seen: dict[str, str] = {}
    out = []
    for o in outcomes:
        headers = tuple(sorted((k, seen.setdefault(v, str(len(seen))) if k == "x-conn" else v)
                               for k, v in o.headers))
        out.append(Outcome(o.status, headers, o.body, o.truncated, o.error_kind))
    return out


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if nginx_server.nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but nginx is not installed (.ci/run installs nginx-light as root)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    with nginx_server.serve_nginx(tmp_path_factory.mktemp("nginx")) as n:
        yield n


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_nginx_corpus(nginx: Any, tls: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every transport reads nginx's answers alike, and as expected: static
    files of several sizes, gzip on the fly, 204, 304, HEAD, a redirect left
    alone, keep-alive until nginx's keepalive_requests closes the connection."""
    if tls:
        _trust(nginx.cert, monkeypatch)

    async def run(factory: Callable[[int], Transport]) -> list[Outcome]:
        return _conn_ordinals(await send_all(factory(1 << 20), _nginx_requests(nginx, tls)))

    results = {name: asyncio.run(run(f)) for name, f in sorted(FACTORIES.items())}
    reference = results["aiohttp"]
    for name, got in results.items():
        summary = [(o.status, o.body if body is not None else None, o.truncated,
                    dict(o.headers).get("x-conn-requests"))
                   for o, (_, body, _, _) in zip(got, _NGINX_EXPECTED, strict=True)]
        assert summary == _NGINX_EXPECTED, name
        assert all(o.error_kind is None for o in got), name
        assert got == reference, f"{name} differs from aiohttp"
    headers = dict(reference[4].headers)
    assert headers["content-encoding"] == "gzip" and "content-length" not in headers
    assert ("connection", "close") in reference[2].headers
    assert dict(reference[7].headers)["content-length"] == str(len(nginx_server.FILES["64k.bin"]))


# ---------------------------------------------------------------- TLS and connecting

def _server_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    cert, key = nginx_server.make_certificate(directory)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx, cert


def _trust(cert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust a test certificate: OpenSSL's default paths (read when a transport
    builds its default context) and aiohttp's verifying context, built once
    at its import (the certificate's key lives only in the test's tmp_path)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    aiohttp_connector._SSL_CONTEXT_VERIFIED.load_verify_locations(cafile=str(cert))


TLS_CASES = [
    ("chunked one byte per TLS record", [req("/chunked-bytewise")],
     [ok(200, CHUNKED_HEADERS, b"hello world")], 1),
    ("keep-alive, then Connection: close", [req("/ka"), req("/close"), req("/ka")],
     [KA_OUT, ok(200, {"Connection": "close", "Content-Length": "3"}, b"bye"), KA_OUT], 2),
    ("truncated body", [req("/truncated")], [err(ErrorKind.DISCONNECT)], 1),
    ("body delimited by the close", [req("/until-close")],
     [ok(200, {}, b"read until the server closes")], 1),
    ("gzip body", [req("/gzip")],
     [ok(200, {"Content-Encoding": "gzip", "Content-Length": str(len(GZ))}, b"gzip body " * 50)], 1),
]


@pytest.mark.parametrize("case", [c[0] for c in TLS_CASES])
def test_raw_case_over_tls(make_transport: Callable[[int], Transport], case: str,
                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Framing over TLS: what the raw cases send, read through the TLS layer
    (segments become records; the close comes with or without close_notify)."""
    tls, cert = _server_tls(tmp_path)
    _trust(cert, monkeypatch)
    _, paths, expected, connections = next(c for c in TLS_CASES if c[0] == case)

    async def main() -> None:
        async with RawHttpServer(RAW_CASES, tls=tls) as server:
            reqs = [req(server.url(r.url), r.method) for r in paths]
            assert await send_all(make_transport(MAX_BODY), reqs) == expected
            assert server.connections == connections
    asyncio.run(main())


def test_untrusted_certificate(make_transport: Callable[[int], Transport], tmp_path: Path) -> None:
    """A certificate nobody trusts (made here, never added): TLS, no answer."""
    tls, _ = _server_tls(tmp_path)

    async def main() -> None:
        async with RawHttpServer(RAW_CASES, tls=tls) as server:
            got = await send_all(make_transport(MAX_BODY), [req(server.url("/ka"))])
            assert got == [err(ErrorKind.TLS)]
            assert server.requests == 0
    asyncio.run(main())


def test_certificate_for_another_name(make_transport: Callable[[int], Transport], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A trusted certificate that names another host: TLS, no request served."""
    cert, key = nginx_server.make_certificate(tmp_path, "DNS:other.example", stem="other-")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    _trust(cert, monkeypatch)

    async def main() -> None:
        async with RawHttpServer(RAW_CASES, tls=tls) as server:
            got = await send_all(make_transport(MAX_BODY), [req(server.url("/ka"))])
            assert got == [err(ErrorKind.TLS)]
            assert server.requests == 0
    asyncio.run(main())


def test_connection_refused(make_transport: Callable[[int], Transport]) -> None:
    with socket.socket() as s:  # a port just free: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        got = await send_all(make_transport(MAX_BODY), [req(f"http://127.0.0.1:{port}/")])
        assert got == [err(ErrorKind.CONNECT)]
    asyncio.run(main())


def test_nginx_tls_sends_sni(nginx: Any, make_transport: Callable[[int], Transport],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """By name, the TLS handshake names the host (SNI, which nginx reports
    back) and the certificate is checked against that name; by IP address
    there is no SNI (RFC 6066 allows host names only)."""
    _trust(nginx.cert, monkeypatch)
    by_name = req(nginx.url("/small.txt", tls=True, host="localhost"))
    by_ip = req(nginx.url("/small.txt", tls=True))
    got = asyncio.run(send_all(make_transport(1 << 20), [by_name, by_ip]))
    assert [(o.status, o.body, o.error_kind) for o in got] == [
        (200, nginx_server.FILES["small.txt"], None)] * 2
    assert dict(got[0].headers).get("x-sni") == "localhost"
    assert "x-sni" not in dict(got[1].headers)
