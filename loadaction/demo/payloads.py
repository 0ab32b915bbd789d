"""Request bodies of the demo API, validated into small typed values.

Each parser returns the value or an `Invalid` with the one-line reason the
400 answer carries, so handlers stay a straight line and bad input is never an
exception path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from loadaction.demo.faults import Invalid
from loadaction.demo.store import WebhookDelivery

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MAX_QUANTITY = 1000
MAX_TICKETS = 10_000
MAX_AMOUNT_CENTS = 10**12


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def _int(body: dict[str, Any], key: str, default: int | None, low: int, high: int) -> int | Invalid:
    value = body.get(key, default)
    if value is None:
        return Invalid(f"{key} is required")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return Invalid(f"{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def parse_json(raw: bytes, *, empty: Any = None) -> Any | Invalid:
    if not raw.strip():
        return empty if empty is not None else Invalid("a JSON body is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Invalid("the body is not valid JSON")


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    event_id: str
    quantity: int
    email: str


def parse_checkout(body: Any) -> CheckoutRequest | Invalid:
    if not isinstance(body, dict):
        return Invalid("expected a JSON object {event_id, quantity, email}")
    event_id = body.get("event_id")
    if not is_uuid(event_id):
        return Invalid(f"event_id must be a UUID string, got {event_id!r}")
    quantity = _int(body, "quantity", None, 1, MAX_QUANTITY)
    if isinstance(quantity, Invalid):
        return quantity
    email = body.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        return Invalid(f"email must be an email address, got {email!r}")
    return CheckoutRequest(event_id, quantity, email)


@dataclass(frozen=True, slots=True)
class ScanRequest:
    ticket_id: str
    scanner_id: str | None


def parse_scan(body: Any) -> ScanRequest | Invalid:
    if not isinstance(body, dict):
        return Invalid("expected a JSON object {p_ticket_id, p_scanner_id}")
    ticket_id, scanner_id = body.get("p_ticket_id"), body.get("p_scanner_id")
    if not isinstance(ticket_id, str) or not ticket_id:
        return Invalid(f"p_ticket_id must be a string, got {ticket_id!r}")
    if scanner_id is not None and not isinstance(scanner_id, str):
        return Invalid(f"p_scanner_id must be a string, got {scanner_id!r}")
    return ScanRequest(ticket_id, scanner_id)


def parse_event_ref(body: Any) -> str | Invalid:
    """`{p_event_id}` of the revenue RPC."""
    event_id = body.get("p_event_id") if isinstance(body, dict) else None
    if not isinstance(event_id, str) or not event_id:
        return Invalid(f"p_event_id must be a string, got {event_id!r}")
    return event_id


@dataclass(frozen=True, slots=True)
class SeedRequest:
    tickets: int
    inventory: int
    price_cents: int
    name: str | None


def parse_seed(body: Any) -> SeedRequest | Invalid:
    if not isinstance(body, dict):
        return Invalid("expected a JSON object {tickets, inventory, price_cents, name}")
    tickets = _int(body, "tickets", 100, 0, MAX_TICKETS)
    inventory = _int(body, "inventory", 1000, 0, 10**7)
    price = _int(body, "price_cents", 2500, 0, 10**8)
    for value in (tickets, inventory, price):
        if isinstance(value, Invalid):
            return value
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        return Invalid(f"name must be a string of at most 200 characters, got {name!r}")
    return SeedRequest(tickets, inventory, price, name)  # type: ignore[arg-type]


def _metadata_quantity(value: Any) -> int:
    """Stripe metadata values are always strings; accept ints too. Default 1."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and 1 <= value <= 10**6 else 1


def parse_webhook(raw: bytes) -> WebhookDelivery | Invalid:
    """A verified body, reduced to what storage acts on.

    Only `id` and `type` are required: Stripe sends many event types and an
    endpoint must acknowledge (and store) all of them.
    """
    body = parse_json(raw)
    if isinstance(body, Invalid):
        return body
    if not isinstance(body, dict):
        return Invalid("expected a JSON object (a Stripe event)")
    event_id, kind = body.get("id"), body.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str) or not kind:
        return Invalid("a Stripe event needs string id and type")
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    obj = obj if isinstance(obj, dict) else {}
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    our_event = metadata.get("event_id")
    amount = obj.get("amount_total")
    session = obj.get("id")
    return WebhookDelivery(
        stripe_event_id=event_id, type=kind,
        event_id=our_event if isinstance(our_event, str) and our_event else None,
        amount_cents=amount if (isinstance(amount, int) and not isinstance(amount, bool)
                                and 0 <= amount <= MAX_AMOUNT_CENTS) else None,
        quantity=_metadata_quantity(metadata.get("quantity")),
        session_id=session if isinstance(session, str) else None,
        payload=raw.decode("utf-8", errors="replace"),
    )
