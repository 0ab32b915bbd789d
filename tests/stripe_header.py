"""A valid `Stripe-Signature` header, as Stripe builds it, for tests that play Stripe."""

from __future__ import annotations

from loadaction.demo.stripe_signature import compute_signature


def sign_header(payload: bytes, secret: str, timestamp: int) -> str:
    return f"t={timestamp},v1={compute_signature(payload, secret, timestamp)}"
