"""`tamper`: forge what a signed webhook's receiver must refuse, and the one
thing (a second `v1` during secret rotation) it must accept.

Works on Stripe's `Stripe-Signature` scheme (`t=<unix>,v1=<hex>[,v1=...]`,
HMAC-SHA256 of `f"{t}.{body}"`) under whatever header name the fault names.
Each tampered request's status is judged against the fault's `expect`:
`chaos_tamper_rejected` counts answers as expected (for `rotation` that is
the 200 a correct receiver gives), `chaos_tamper_accepted` the others, so a
`count==0` budget on it catches a system that takes a forged webhook. A request
that got no answer at all (status 0) is judged neither way: a network error
says nothing about the receiver's checks.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Callable

from loadaction.chaos.client_base import Deliver, Delivery, header_name, with_changes
from loadaction.engine.transport import HttpResult, PreparedRequest
from loadaction.plan.model import TamperFault

# How old a `stale` signature is. Stripe's tolerance is 300 s; the extra minute
# keeps a receiver whose clock runs a little behind ours from seeing it as fresh.
STALE_AGE_S = 360
_REPLACEMENTS = b"0123456789abcdefghijklmnopqrstuvwxyz"


def sign(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body,
                    hashlib.sha256).hexdigest()


def _wrong_hex(rng: random.Random, like: str) -> str:
    length = len(like) or 64
    while True:
        candidate = f"{rng.getrandbits(4 * length):0{length}x}"
        if candidate != like:
            return candidate


def _items(value: str) -> list[tuple[str, str]]:
    return [(k.strip(), v) for k, _, v in (item.partition("=") for item in value.split(","))]


def _join(items: list[tuple[str, str]]) -> str:
    return ",".join(f"{k}={v}" for k, v in items)


def _flip_one_byte(body: bytes | None, rng: random.Random) -> bytes:
    """One byte changed to another printable one; an empty body gains one."""
    if not body:
        return b"x"
    pos = rng.randrange(len(body))
    choices = [c for c in _REPLACEMENTS if c != body[pos]]
    return body[:pos] + bytes([rng.choice(choices)]) + body[pos + 1:]


def tamper(req: PreparedRequest, fault: TamperFault, secret: str | None, rng: random.Random,
           now: float) -> PreparedRequest:
    """`req` with `fault.mode` applied. The body is never re-signed except by
    `stale` (which must carry a valid signature, or it would test the wrong
    check) and `rotation` without a signature to keep."""
    key = header_name(req.headers, fault.header)
    current = req.headers.get(key, "") if key is not None else ""
    headers = {k: v for k, v in req.headers.items() if k != key}
    name = key or fault.header
    mode = fault.mode
    if mode == "body":
        return with_changes(req, body=_flip_one_byte(req.body, rng))
    if mode == "missing-header":
        return with_changes(req, headers=headers)
    if mode == "stale":
        if secret is None:
            raise ValueError("tamper mode 'stale' needs the fault's `secret`")
        old = int(now) - STALE_AGE_S
        headers[name] = f"t={old},v1={sign(req.body or b'', secret, old)}"
        return with_changes(req, headers=headers)
    items = _items(current) if current else []
    signatures = [v for k, v in items if k == "v1"]
    if mode == "signature":
        if signatures:
            items = [(k, _wrong_hex(rng, v) if k == "v1" else v) for k, v in items]
        else:
            items = [("t", str(int(now))), ("v1", _wrong_hex(rng, ""))]
    else:  # rotation: a wrong v1 first, so a receiver that reads only the first one fails
        if not signatures:
            stamp = int(now)
            items = [("t", str(stamp))]
            if secret is not None:
                items.append(("v1", sign(req.body or b"", secret, stamp)))
            signatures = [v for k, v in items if k == "v1"]
        at = next((i for i, (k, _) in enumerate(items) if k == "v1"), len(items))
        items.insert(at, ("v1", _wrong_hex(rng, signatures[0] if signatures else "")))
    headers[name] = _join(items)
    return with_changes(req, headers=headers)


class TamperEffect:
    """Tampers a share (`probability`) of the requests and judges the answers."""

    def __init__(self, name: str, fault: TamperFault, secret: str | None, rng: random.Random,
                 clock: Callable[[], float] = time.time) -> None:
        if fault.mode == "stale" and secret is None:
            raise ValueError(f"fault {name!r}: tamper mode 'stale' needs `secret` to sign anew")
        self.name = name
        self.fault = fault
        self._secret = secret
        self._rng = rng
        self._clock = clock

    def wrap(self, inner: Deliver, delivery: Delivery) -> Deliver:
        async def deliver(req: PreparedRequest) -> HttpResult:
            fault = self.fault
            if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                return await inner(req)
            result = await inner(tamper(req, fault, self._secret, self._rng, self._clock()))
            if result.status:
                as_expected = result.status in fault.expect
                delivery.count("chaos_tamper_rejected", self.name, 1.0 if as_expected else 0.0)
                delivery.count("chaos_tamper_accepted", self.name, 0.0 if as_expected else 1.0)
            return result
        return deliver
