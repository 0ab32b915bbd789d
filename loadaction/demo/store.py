"""What the demo target's handlers need from storage, and nothing else.

SQLite (`sqlite_store`) and PostgreSQL (`postgres_store`) implement this one
protocol, so handlers never know which they talk to. Business outcomes
(sold out, unknown ticket, lock conflict, duplicate webhook) are returned as
values, not raised: they are answers the API gives, not failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, overload

ScanResult = Literal["valid", "already_scanned", "invalid", "locked"]
CheckoutRefusal = Literal["insufficient_inventory", "unknown_event"]
TicketStatus = Literal["issued", "scanned"]


@dataclass(frozen=True, slots=True)
class NewEvent:
    event_id: str
    name: str
    price_cents: int
    inventory: int
    ticket_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewSession:
    """The checkout_sessions row a checkout created. Writes hand back the rows
    they made so the realtime feed can publish them without reading again."""

    session_id: str
    event_id: str
    quantity: int
    amount_cents: int  # the event's price times the quantity
    created_at: str


@dataclass(frozen=True, slots=True)
class ScannedTicket:
    """A ticket row as a scan that admitted it left it."""

    ticket_id: str
    event_id: str
    scanned_at: str
    scanned_by: str | None


@dataclass(frozen=True, slots=True)
class Scan:
    result: ScanResult
    ticket: ScannedTicket | None = None  # the row the scan changed (a `valid` scan only)


@dataclass(frozen=True, slots=True)
class NewOrder:
    """The orders row a processed `checkout.session.completed` created."""

    order_id: int
    event_id: str
    session_id: str | None
    amount_cents: int
    quantity: int
    created_at: str


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A verified Stripe event, reduced to what storage acts on."""

    stripe_event_id: str
    type: str
    event_id: str | None        # data.object.metadata.event_id, when present
    amount_cents: int | None    # data.object.amount_total, when an integer
    quantity: int               # data.object.metadata.quantity, default 1
    session_id: str | None      # data.object.id
    payload: str                # the raw JSON, stored as received

    @property
    def is_order(self) -> bool:
        return (self.type == "checkout.session.completed" and self.event_id is not None
                and self.amount_cents is not None)


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    duplicate: bool
    processed: bool
    order: NewOrder | None = None  # the order it created, if it created one


@dataclass(frozen=True, slots=True)
class Revenue:
    event_id: str
    revenue_cents: int
    tickets_sold: int
    orders: int

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "revenue_cents": self.revenue_cents,
                "tickets_sold": self.tickets_sold, "orders": self.orders}


@dataclass(frozen=True, slots=True)
class EventStats:
    inventory_left: int
    tickets: int
    checkouts: int
    orders: int
    revenue_cents: int
    webhooks_received: int
    webhooks_processed: int
    scans: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"inventory_left": self.inventory_left, "tickets": self.tickets,
                "checkouts": self.checkouts, "orders": self.orders,
                "revenue_cents": self.revenue_cents,
                "webhooks_received": self.webhooks_received,
                "webhooks_processed": self.webhooks_processed, "scans": dict(self.scans)}


SCAN_COUNTED: tuple[ScanResult, ...] = ("valid", "already_scanned", "locked")


def utc_now() -> datetime:
    return datetime.now(UTC)


@overload
def iso(moment: datetime) -> str: ...
@overload
def iso(moment: None) -> None: ...
def iso(moment: datetime | None) -> str | None:
    """One timestamp format for both stores, so clients cannot tell them apart."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


class Store(Protocol):
    """Storage for one target instance.

    `scan_ticket` is the atomic check-and-set (and logs its outcome).
    `list_tickets` answers the JSON array itself, written by the database
    (a dashboard's list of thousands must not become thousands of dicts).
    `peek_ticket`, `force_scan` and `record_scan` exist only so the `race`
    fault can compose the classic read-sleep-write bug out of honest parts.
    """

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def create_event(self, *, name: str, price_cents: int, inventory: int,
                           tickets: int) -> NewEvent: ...
    async def delete_event(self, event_id: str) -> bool: ...
    async def list_events(self, *, event_id: str | None = None, limit: int | None = None,
                          offset: int = 0) -> list[dict[str, Any]]: ...
    async def list_tickets(self, *, event_id: str | None = None, ticket_id: str | None = None,
                           status: str | None = None, limit: int | None = None,
                           offset: int = 0) -> str: ...
    async def checkout(self, *, event_id: str, quantity: int, email: str,
                       session_id: str) -> NewSession | CheckoutRefusal: ...
    async def scan_ticket(self, ticket_id: str, scanner_id: str | None) -> Scan: ...
    async def peek_ticket(self, ticket_id: str) -> TicketStatus | None: ...
    async def force_scan(self, ticket_id: str,
                         scanner_id: str | None) -> ScannedTicket | None: ...
    async def record_scan(self, ticket_id: str, scanner_id: str | None,
                          result: ScanResult) -> None: ...
    async def record_webhook(self, delivery: WebhookDelivery, *,
                             idempotent: bool) -> WebhookOutcome: ...
    async def event_revenue(self, event_id: str) -> Revenue | None: ...
    async def event_stats(self, event_id: str) -> EventStats | None: ...
    async def describe(self) -> str: ...
