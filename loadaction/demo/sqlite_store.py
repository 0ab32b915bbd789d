"""The default store: stdlib `sqlite3`, in memory unless given a file.

Called synchronously from the handlers, on purpose. Each call takes
microseconds, and because no method awaits anything between its first read and
its last write, the event loop cannot interleave two of them: every method is
atomic with respect to every other request without locks, threads or
aiosqlite. (That is also why the `race` fault has to add its own `await` to
break atomicity.) The price is that a slow query would stall the loop; the
demo's queries are all by primary key or a small index, so it never is.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loadaction.demo.store import (
    SCAN_COUNTED,
    CheckoutRefusal,
    EventStats,
    NewEvent,
    NewOrder,
    NewSession,
    Revenue,
    Scan,
    ScannedTicket,
    ScanResult,
    TicketStatus,
    WebhookDelivery,
    WebhookOutcome,
    iso,
    utc_now,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL,
    inventory_total INTEGER NOT NULL, inventory_left INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY, event_id TEXT NOT NULL, status TEXT NOT NULL,
    scanned_at TEXT, scanned_by TEXT);
CREATE INDEX IF NOT EXISTS tickets_event_id ON tickets (event_id);
CREATE TABLE IF NOT EXISTS checkout_sessions (
    id TEXT PRIMARY KEY, event_id TEXT NOT NULL, quantity INTEGER NOT NULL, email TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS checkout_sessions_event_id ON checkout_sessions (event_id);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, stripe_event_id TEXT NOT NULL,
    session_id TEXT, amount_cents INTEGER NOT NULL, quantity INTEGER NOT NULL,
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_event_id ON orders (event_id);
CREATE TABLE IF NOT EXISTS webhook_events (
    stripe_event_id TEXT PRIMARY KEY, type TEXT NOT NULL, event_id TEXT, payload TEXT NOT NULL,
    received INTEGER NOT NULL, processed INTEGER NOT NULL, first_received_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_events_event_id ON webhook_events (event_id);
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ticket_id TEXT NOT NULL, event_id TEXT NOT NULL,
    scanner_id TEXT, result TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS scans_event_id ON scans (event_id);
"""

_EVENT_COLUMNS = "id, name, price_cents, inventory_total, inventory_left, created_at"
_TICKET_COLUMNS = "id, event_id, status, scanned_at, scanned_by"
_TICKET_JSON = ", ".join(f"'{column}', {column}" for column in _TICKET_COLUMNS.split(", "))


def _now() -> str:
    return iso(utc_now())


class SqliteStore:
    """One connection, owned by the event loop's thread."""

    def __init__(self, path: str = ":memory:") -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStore used before start()")
        return self._db

    async def start(self) -> None:
        self._db = sqlite3.connect(self._path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def describe(self) -> str:
        return f"sqlite ({'in memory' if self._path == ':memory:' else self._path})"

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing for multi-statement writes (an error mid-way rolls back)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def create_event(self, *, name: str, price_cents: int, inventory: int,
                           tickets: int) -> NewEvent:
        event_id = str(uuid.uuid4())
        ticket_ids = tuple(str(uuid.uuid4()) for _ in range(tickets))
        with self._tx() as db:
            db.execute(f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                       (event_id, name, price_cents, inventory, inventory, _now()))
            db.executemany("INSERT INTO tickets (id, event_id, status) VALUES (?, ?, 'issued')",
                           [(t, event_id) for t in ticket_ids])
        return NewEvent(event_id, name, price_cents, inventory, ticket_ids)

    async def delete_event(self, event_id: str) -> bool:
        with self._tx() as db:
            found = db.execute("DELETE FROM events WHERE id = ?", (event_id,)).rowcount > 0
            for table in ("tickets", "checkout_sessions", "orders", "webhook_events", "scans"):
                db.execute(f"DELETE FROM {table} WHERE event_id = ?", (event_id,))
        return found

    async def list_events(self, *, event_id: str | None = None, limit: int | None = None,
                          offset: int = 0) -> list[dict[str, Any]]:
        where, params = ("WHERE id = ?", [event_id]) if event_id is not None else ("", [])
        rows = self.db.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events {where} ORDER BY created_at, id LIMIT ? OFFSET ?",
            [*params, -1 if limit is None else limit, offset]).fetchall()
        return [dict(row) for row in rows]

    async def list_tickets(self, *, event_id: str | None = None, ticket_id: str | None = None,
                           status: str | None = None, limit: int | None = None,
                           offset: int = 0) -> str:
        clauses, params = [], []
        for column, value in (("event_id", event_id), ("id", ticket_id), ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        # SQLite aggregates a subquery's rows in the subquery's order
        return self.db.execute(
            f"SELECT json_group_array(json_object({_TICKET_JSON})) FROM"
            f" (SELECT {_TICKET_COLUMNS} FROM tickets {where} ORDER BY rowid LIMIT ? OFFSET ?)",
            [*params, -1 if limit is None else limit, offset]).fetchone()[0]

    async def checkout(self, *, event_id: str, quantity: int, email: str,
                       session_id: str) -> NewSession | CheckoutRefusal:
        with self._tx() as db:
            row = db.execute("SELECT inventory_left, price_cents FROM events WHERE id = ?",
                             (event_id,)).fetchone()
            if row is None:
                return "unknown_event"
            if row["inventory_left"] < quantity:
                return "insufficient_inventory"
            db.execute("UPDATE events SET inventory_left = inventory_left - ? WHERE id = ?",
                       (quantity, event_id))
            created_at = _now()
            db.execute("INSERT INTO checkout_sessions VALUES (?, ?, ?, ?, ?)",
                       (session_id, event_id, quantity, email, created_at))
        return NewSession(session_id, event_id, quantity, row["price_cents"] * quantity, created_at)

    def _log_scan(self, db: sqlite3.Connection, ticket_id: str, event_id: str,
                  scanner_id: str | None, result: ScanResult) -> None:
        db.execute("INSERT INTO scans (ticket_id, event_id, scanner_id, result, at)"
                   " VALUES (?, ?, ?, ?, ?)", (ticket_id, event_id, scanner_id, result, _now()))

    async def scan_ticket(self, ticket_id: str, scanner_id: str | None) -> Scan:
        with self._tx() as db:
            row = db.execute("SELECT event_id, status FROM tickets WHERE id = ?",
                             (ticket_id,)).fetchone()
            if row is None:
                return Scan("invalid")
            if row["status"] == "scanned":
                self._log_scan(db, ticket_id, row["event_id"], scanner_id, "already_scanned")
                return Scan("already_scanned")
            ticket = self._set_scanned(db, ticket_id, row["event_id"], scanner_id)
            self._log_scan(db, ticket_id, row["event_id"], scanner_id, "valid")
        return Scan("valid", ticket)

    def _set_scanned(self, db: sqlite3.Connection, ticket_id: str, event_id: str,
                     scanner_id: str | None) -> ScannedTicket:
        scanned_at = _now()
        db.execute("UPDATE tickets SET status = 'scanned', scanned_at = ?, scanned_by = ?"
                   " WHERE id = ?", (scanned_at, scanner_id, ticket_id))
        return ScannedTicket(ticket_id, event_id, scanned_at, scanner_id)

    async def peek_ticket(self, ticket_id: str) -> TicketStatus | None:
        row = self.db.execute("SELECT status FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        return None if row is None else row["status"]

    async def force_scan(self, ticket_id: str, scanner_id: str | None) -> ScannedTicket | None:
        row = self.db.execute("SELECT event_id FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        if row is None:
            return None
        return self._set_scanned(self.db, ticket_id, row["event_id"], scanner_id)

    async def record_scan(self, ticket_id: str, scanner_id: str | None,
                          result: ScanResult) -> None:
        row = self.db.execute("SELECT event_id FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        if row is not None:
            with self._tx() as db:
                self._log_scan(db, ticket_id, row["event_id"], scanner_id, result)

    async def record_webhook(self, delivery: WebhookDelivery, *,
                             idempotent: bool) -> WebhookOutcome:
        with self._tx() as db:
            seen = db.execute("SELECT 1 FROM webhook_events WHERE stripe_event_id = ?",
                              (delivery.stripe_event_id,)).fetchone() is not None
            if seen and idempotent:
                db.execute("UPDATE webhook_events SET received = received + 1"
                           " WHERE stripe_event_id = ?", (delivery.stripe_event_id,))
                return WebhookOutcome(duplicate=True, processed=False)
            if seen:
                db.execute("UPDATE webhook_events SET received = received + 1,"
                           " processed = processed + 1 WHERE stripe_event_id = ?",
                           (delivery.stripe_event_id,))
            else:
                db.execute("INSERT INTO webhook_events VALUES (?, ?, ?, ?, 1, 1, ?)",
                           (delivery.stripe_event_id, delivery.type, delivery.event_id,
                            delivery.payload, _now()))
            order = None
            if delivery.is_order and db.execute("SELECT 1 FROM events WHERE id = ?",
                                                (delivery.event_id,)).fetchone():
                created_at = _now()
                inserted = db.execute(
                    "INSERT INTO orders (event_id, stripe_event_id, session_id,"
                    " amount_cents, quantity, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (delivery.event_id, delivery.stripe_event_id, delivery.session_id,
                     delivery.amount_cents, delivery.quantity, created_at))
                order = NewOrder(inserted.lastrowid, delivery.event_id,  # type: ignore[arg-type]
                                 delivery.session_id, delivery.amount_cents,  # type: ignore[arg-type]
                                 delivery.quantity, created_at)
        return WebhookOutcome(duplicate=False, processed=True, order=order)

    async def event_revenue(self, event_id: str) -> Revenue | None:
        db = self.db
        if db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is None:
            return None
        row = db.execute("SELECT COALESCE(SUM(amount_cents), 0) AS revenue,"
                         " COALESCE(SUM(quantity), 0) AS sold, COUNT(*) AS orders"
                         " FROM orders WHERE event_id = ?", (event_id,)).fetchone()
        return Revenue(event_id, row["revenue"], row["sold"], row["orders"])

    async def event_stats(self, event_id: str) -> EventStats | None:
        db = self.db
        event = db.execute("SELECT inventory_left FROM events WHERE id = ?", (event_id,)).fetchone()
        if event is None:
            return None

        def count(sql: str) -> int:
            return int(db.execute(sql, (event_id,)).fetchone()[0])

        scans = {result: 0 for result in SCAN_COUNTED}
        for row in db.execute("SELECT result, COUNT(*) FROM scans WHERE event_id = ?"
                              " GROUP BY result", (event_id,)):
            scans[row[0]] = row[1]
        return EventStats(
            inventory_left=event["inventory_left"],
            tickets=count("SELECT COUNT(*) FROM tickets WHERE event_id = ?"),
            checkouts=count("SELECT COUNT(*) FROM checkout_sessions WHERE event_id = ?"),
            orders=count("SELECT COUNT(*) FROM orders WHERE event_id = ?"),
            revenue_cents=count("SELECT COALESCE(SUM(amount_cents), 0) FROM orders WHERE event_id = ?"),
            webhooks_received=count("SELECT COALESCE(SUM(received), 0) FROM webhook_events"
                                    " WHERE event_id = ?"),
            webhooks_processed=count("SELECT COALESCE(SUM(processed), 0) FROM webhook_events"
                                     " WHERE event_id = ?"),
            scans=scans,
        )
