"""The transport port: a prepared request in; status, headers, body, timings
and a typed error kind out.

The engine talks to the network through this one narrow interface so that a
faster HTTP/1.1 transport can replace aiohttp's without the rest of the
engine, or any plugin, knowing which library is underneath. Timings are the
transport's own (no side channel into a particular library), and what went
wrong is an `ErrorKind` that plans and budgets can compare, with the message
beside it for people.
"""

from __future__ import annotations

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


def failed(kind: ErrorKind, message: str, *, duration_us: int = 0, connecting_us: int = 0,
           sent_bytes: int = 0) -> HttpResult:
    """A result without a response."""
    return HttpResult(0, EMPTY_HEADERS, b"", duration_us, 0, connecting_us, sent_bytes, 0,
                      message, False, kind)


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

    async def close(self) -> None: ...
