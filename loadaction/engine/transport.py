"""The transport port: a prepared request in; status, headers, body, timings
and a typed error kind out. Beside it, a WebSocket-connect port: a handshake
request in; the status, timings and an open socket (or the error) out.

The engine talks to the network through this one narrow interface so that a
faster HTTP/1.1 transport can replace aiohttp's without the rest of the
engine, or any plugin, knowing which library is underneath. Timings are the
transport's own (no side channel into a particular library), and what went
wrong is an `ErrorKind` that plans and budgets can compare, with the message
beside it for people.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL


class ErrorKind(StrEnum):
    """Why a request got no (complete) response. Plans test these values
    (`response.error_kind == 'timeout'`), never the message text."""

    TIMEOUT = "timeout"  # no complete answer within the request's timeout
    CONNECT = "connect"  # no connection: refused, unreachable, DNS
    TLS = "tls"  # the TLS handshake or certificate check failed
    DISCONNECT = "disconnect"  # the peer closed or reset mid-exchange
    PROTOCOL = "protocol"  # the answer was not valid HTTP (or its encoding was broken)
    REFUSED = "refused"  # never sent: the host allowlist refused it
    ABORTED_BY_CHAOS = "aborted_by_chaos"  # sent whole, then hung up on by a chaos fault
    FLOW = "flow"  # not a transport error: a step of the flow failed (template, extract, ...)


@dataclass(slots=True)
class PreparedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout: float  # seconds
    # `url` parsed (the requester keeps both per URL it has built), so a
    # transport need not parse it again.
    parsed_url: URL | None = None
    # data_sent for this request: request line, headers and body, estimated
    # once here rather than on every send of a request that is sent again.
    sent_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        size = len(self.method) + len(self.url) + 12 + (len(self.body) if self.body else 0)
        for k, v in self.headers.items():
            size += len(k) + len(v) + 4
        self.sent_bytes = size


CONNECTION_OWNER: ContextVar[object | None] = ContextVar("loadaction_connection_owner",
                                                        default=None)
"""Who is sending: the engine sets its VU's requester before each send, so a
transport that keeps connections per VU, as k6 does, can key its pool by it.
A context variable, not a PreparedRequest field: the PreparedRequest of a
constant request is built once and sent by every VU."""

EMPTY_HEADERS: CIMultiDict[str] = CIMultiDict()


@dataclass(slots=True)
class HttpResult:
    status: int  # 0 when no response arrived
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    body: bytes
    duration_us: int
    blocked_us: int
    connecting_us: int
    sent_bytes: int
    received_bytes: int
    error: str | None = None
    truncated: bool = False
    error_kind: ErrorKind | None = None
    # k6's breakdown beyond blocked/connecting, microseconds: the TLS
    # handshake (new connections only), writing the request, waiting for the
    # first byte of the answer, and reading the rest of it. duration_us is
    # sending_us + waiting_us + receiving_us when a transport fills them; 0
    # means not measured (or nothing to measure) so that older constructors
    # keep working.
    tls_us: int = 0
    sending_us: int = 0
    waiting_us: int = 0
    receiving_us: int = 0


def failed(kind: ErrorKind, message: str, *, duration_us: int = 0, connecting_us: int = 0,
           sent_bytes: int = 0) -> HttpResult:
    """A result without a response."""
    return HttpResult(0, EMPTY_HEADERS, b"", duration_us, 0, connecting_us, sent_bytes, 0,
                      message, False, kind)


# ---------------------------------------------------------------- WebSocket

class WsFrameKind(StrEnum):
    TEXT = "text"
    BINARY = "binary"
    PING = "ping"
    PONG = "pong"
    CLOSE = "close"  # the peer's close frame (`close_code`, `error` holds its reason)
    CLOSED = "closed"  # the connection is gone: closed by either side, or lost
    ERROR = "error"  # a protocol violation or a message too big; the connection is closed


@dataclass(frozen=True, slots=True)
class WsFrame:
    kind: WsFrameKind
    data: str | bytes = b""
    close_code: int | None = None
    error: str | None = None


@dataclass(slots=True)
class WsConnectRequest:
    url: URL  # ws:// or wss://, credentials taken out (they are an Authorization header)
    headers: dict[str, str]
    protocols: tuple[str, ...]
    timeout: float  # seconds the handshake may take
    max_message_bytes: int  # a bigger message is an error that closes the connection
    # data_sent for the handshake: request line, the caller's headers and the
    # upgrade headers every client sends (key, version, upgrade, connection)
    sent_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        size = len(self.url.raw_path_qs) + 16 + 129  # "GET ... HTTP/1.1", the upgrade headers
        size += sum(len(k) + len(v) + 4 for k, v in self.headers.items())
        if self.protocols:
            size += 28 + sum(len(p) + 2 for p in self.protocols)
        self.sent_bytes = size


class WebSocket(Protocol):
    """One open WebSocket connection. Sends raise ConnectionError when the
    connection is gone; `receive` never raises for network trouble (that is
    a CLOSED or ERROR frame)."""

    protocol: str | None  # the subprotocol the server chose

    async def send_text(self, text: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def ping(self, payload: bytes) -> None: ...

    async def pong(self, payload: bytes) -> None: ...

    async def receive(self) -> WsFrame:
        """The next frame; pings and pongs are the caller's to answer and time."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """The closing handshake, bounded in time (then the connection is dropped)."""
        ...

    def abort(self) -> None:
        """Drop the connection now, without the closing handshake."""
        ...


@dataclass(slots=True)
class WsHandshake:
    status: int  # 101 when upgraded, the refusal's status, or 0 when no answer came
    socket: WebSocket | None  # None when the handshake failed
    duration_us: int  # connecting and the upgrade exchange, as k6's ws_connecting
    sent_bytes: int
    received_bytes: int
    error: str | None = None
    error_kind: ErrorKind | None = None


class Transport(Protocol):
    """What the engine needs of an HTTP client."""

    async def send(self, req: PreparedRequest) -> HttpResult:
        """Send `req` and read the whole answer (bounded); never raises for
        network trouble: that is a result with `error_kind` set."""
        ...

    async def send_and_abort(self, req: PreparedRequest) -> HttpResult:
        """Write `req` whole, then hang up before reading a byte of the answer
        (status 0, `ErrorKind.ABORTED_BY_CHAOS`): the server may act on a
        request whose client never learns the outcome."""
        ...

    async def ws_connect(self, req: WsConnectRequest) -> WsHandshake:
        """Upgrade to a WebSocket; never raises for network trouble or a
        refused upgrade: that is a handshake without a socket."""
        ...

    def first_hop(self, url: URL) -> tuple[str, int]:
        """The host and port a connection for `url` really opens: the target
        itself, or the HTTP(S) proxy in between (the pre-flight check dials
        this, so a target reachable only through a proxy is not refused)."""
        ...

    async def close(self) -> None: ...
