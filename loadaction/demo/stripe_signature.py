"""Stripe webhook signatures, checked the way Stripe documents them.

The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`; the signed text is
`f"{t}.{raw_body}"` under HMAC-SHA256 with the endpoint secret. Several `v1`
entries appear while a secret is being rolled, so any one matching passes.
Unlike Stripe's SDKs (which only refuse old timestamps) we also refuse
timestamps too far in the future: a clock-skewed or forged `t` should fail
here exactly as a stale one does, so budgets that test replay protection see
both. Comparison is constant-time (`hmac.compare_digest`) so a load test can
never turn into a timing oracle against the demo target's secret.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

DEFAULT_TOLERANCE_S = 300

Reason = Literal["ok", "missing", "malformed", "mismatch", "too_old", "too_new"]

_MESSAGES: dict[str, str] = {
    "ok": "signature verified",
    "missing": "missing Stripe-Signature header",
    "malformed": "malformed Stripe-Signature header (expected t=<unix>,v1=<hex>)",
    "mismatch": "no v1 signature matches the payload",
    "too_old": "timestamp outside the tolerance zone (too old)",
    "too_new": "timestamp outside the tolerance zone (in the future)",
}


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome as a value: handlers turn a failed one into a 400 body."""

    reason: Reason

    @property
    def ok(self) -> bool:
        return self.reason == "ok"

    @property
    def message(self) -> str:
        return _MESSAGES[self.reason]


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """Hex HMAC-SHA256 of `t.payload`, over bytes so non-UTF-8 bodies still verify."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _parse(header: str) -> tuple[int, list[str]] | None:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if not value.isdigit() or timestamp is not None:
                return None
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
        # Other schemes (v0 is Stripe's test-only scheme) are ignored, as Stripe does.
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify(header: str | None, payload: bytes, secret: str, now: float,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> Verification:
    """Check a Stripe-Signature header against the raw body; never raises."""
    if not header:
        return Verification("missing")
    parsed = _parse(header)
    if parsed is None:
        return Verification("malformed")
    timestamp, candidates = parsed
    expected = compute_signature(payload, secret, timestamp)
    # Check every candidate, not just until the first match, so timing does not
    # depend on which entry matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        return Verification("mismatch")
    if timestamp < now - tolerance_s:
        return Verification("too_old")
    if timestamp > now + tolerance_s:
        return Verification("too_new")
    return Verification("ok")
