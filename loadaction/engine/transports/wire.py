"""What both transports write on the wire themselves: the request head (the
one piece of HTTP this project serialises by hand; every answer is parsed by
llhttp or aiohttp) and chaos's send-then-hang-up. One serialiser, so the fast
client, the aborted request and aiohttp agree byte for byte on what the
server sees (tests/test_transport_conformance.py compares them)."""

from __future__ import annotations

import asyncio
import ssl
from time import perf_counter_ns

from aiohttp import compression_utils
from yarl import URL

from loadaction.engine.transport import ErrorKind, HttpResult, PreparedRequest, failed

USER_AGENT = "loadaction/0.1"
# aiohttp sends Content-Length: 0 for a bodyless request of any other method
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_POST_METHODS = frozenset({"POST", "PUT", "PATCH"})  # aiohttp labels even their empty bodies
_FRAMING = frozenset({"content-length", "transfer-encoding"})


def _accept_encoding() -> str:
    """What aiohttp's client sends (its _gen_default_accept_encoding)."""
    names = ["gzip", "deflate"]
    if compression_utils.HAS_BROTLI:
        names.append("br")
    if compression_utils.HAS_ZSTD:
        names.append("zstd")
    return ", ".join(names)


ACCEPT_ENCODING = _accept_encoding()


def address(url: URL) -> tuple[str, int]:
    """The host and port a connection for `url` dials: yarl already fills in
    the scheme's default port (80, 443, and ws/wss alike)."""
    return url.host or "", url.port or 80


def unverified_context() -> ssl.SSLContext:
    """k6's insecureSkipTLSVerify: encrypted, but no certificate or name check
    (a staging host with a self-signed certificate)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def request_head(req: PreparedRequest, url: URL) -> tuple[bytes, bool]:
    """The request head aiohttp would write for `req`, and whether the caller
    asked for the connection to close after it. ValueError for a header
    that would split the head (a line break in a name or value)."""
    parts = [req.method, " ", url.raw_path_qs or "/", " HTTP/1.1\r\n"]
    host = user_agent = accept = encoding = content_type = False
    close = False
    for name, value in req.headers.items():
        lname = name.lower()
        if lname in _FRAMING:
            continue  # the framing is the transport's own
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} contains a line break")
        if lname == "host":
            host = True
        elif lname == "user-agent":
            user_agent = True
        elif lname == "accept":
            accept = True
        elif lname == "accept-encoding":
            encoding = True
        elif lname == "content-type":
            content_type = True
        elif lname == "connection" and value.lower() == "close":
            close = True
        parts += (name, ": ", value, "\r\n")
    if not host:
        parts += ("Host: ", url.host_port_subcomponent or "", "\r\n")
    if not accept:
        parts.append("Accept: */*\r\n")
    if not encoding:
        parts += ("Accept-Encoding: ", ACCEPT_ENCODING, "\r\n")
    if not user_agent:
        parts += ("User-Agent: ", USER_AGENT, "\r\n")
    if not content_type and (req.body is not None or req.method in _POST_METHODS):
        parts.append("Content-Type: application/octet-stream\r\n")  # as aiohttp labels bytes
    if req.body is not None:
        parts += ("Content-Length: ", str(len(req.body)), "\r\n")
    elif req.method not in _BODYLESS_METHODS:
        parts.append("Content-Length: 0\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1"), close


async def send_and_abort(req: PreparedRequest, tls: ssl.SSLContext) -> HttpResult:
    """Write `req` whole on a connection of its own, then close it before a byte
    of the answer is read: the server got the request and may act on it, the
    client never learns what happened (status 0, `ErrorKind.ABORTED_BY_CHAOS`).

    A connection of its own, not a pooled one: a pooled connection closed
    mid-exchange would poison the next request sent on it. `tls` is the
    transport's own context, so a plan's insecureSkipTLSVerify holds here too.
    Timings: `connecting` is the connect (and TLS handshake), `duration` the
    writing."""
    url = req.parsed_url if req.parsed_url is not None else URL(req.url)
    secure = url.scheme in ("https", "wss")
    host, port = address(url)
    start = perf_counter_ns()
    try:
        head, _ = request_head(req, url)
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls if secure else None,
                                    server_hostname=host if secure else None),
            req.timeout)
    except ssl.SSLError as exc:  # first: a failed certificate check is a ValueError too
        return failed(ErrorKind.TLS, f"TLS error with {host}:{port}: {exc}",
                      duration_us=(perf_counter_ns() - start) // 1000)
    except ValueError as exc:
        return failed(ErrorKind.PROTOCOL, f"invalid request: {exc}",
                      duration_us=(perf_counter_ns() - start) // 1000)
    except TimeoutError:
        return failed(ErrorKind.TIMEOUT, f"request timeout after {req.timeout:g}s",
                      duration_us=(perf_counter_ns() - start) // 1000)
    except OSError as exc:
        return failed(ErrorKind.CONNECT, f"cannot connect to {host}:{port}: {exc.strerror or exc}",
                      duration_us=(perf_counter_ns() - start) // 1000)
    connected = perf_counter_ns()
    kind, error = ErrorKind.ABORTED_BY_CHAOS, "aborted by chaos"
    try:
        writer.write(head)
        if req.body:
            writer.write(req.body)
        await asyncio.wait_for(writer.drain(), req.timeout)
    except TimeoutError:
        kind, error = ErrorKind.TIMEOUT, f"request timeout after {req.timeout:g}s"
    except OSError as exc:
        kind, error = ErrorKind.DISCONNECT, f"connection lost: {exc.strerror or exc}"
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (OSError, TimeoutError):
            pass  # the request is out; how the close ends does not matter
    end = perf_counter_ns()
    return failed(kind, error, duration_us=(end - connected) // 1000,
                  connecting_us=(connected - start) // 1000, sent_bytes=req.sent_bytes)
