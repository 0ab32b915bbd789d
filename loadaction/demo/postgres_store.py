"""The PostgreSQL store (asyncpg), for runs that must behave like the real
staging database: row locks, lock conflicts, a connection pool.

Tables live in their own schema (`loadaction_demo` by default), created on
start with `IF NOT EXISTS`, so several targets and test runs can share one
server: every event, ticket and session id is a fresh UUID, and each test
creates (and deletes) its own events. Schema creation takes an advisory lock
because two instances starting at once would otherwise race in
`CREATE ... IF NOT EXISTS` (it is not concurrency-safe in PostgreSQL).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from loadaction.demo.pool import DEFAULT_POOL_SIZE
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
)

DEFAULT_SCHEMA = "loadaction_demo"
APPLICATION_NAME = "loadaction-demo"  # what a postgres probe's application_name filter selects
_SCHEMA_LOCK_KEY = 0x10AD_AC71  # any constant; shared by every instance creating the schema


def _schema_sql(schema: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.events (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL,
    inventory_total INTEGER NOT NULL, inventory_left INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS {schema}.tickets (
    id TEXT PRIMARY KEY, event_id TEXT NOT NULL, status TEXT NOT NULL,
    scanned_at TIMESTAMPTZ, scanned_by TEXT, seq BIGSERIAL);
CREATE INDEX IF NOT EXISTS tickets_event_id ON {schema}.tickets (event_id);
CREATE TABLE IF NOT EXISTS {schema}.checkout_sessions (
    id TEXT PRIMARY KEY, event_id TEXT NOT NULL, quantity INTEGER NOT NULL, email TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS checkout_sessions_event_id ON {schema}.checkout_sessions (event_id);
CREATE TABLE IF NOT EXISTS {schema}.orders (
    id BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL, stripe_event_id TEXT NOT NULL,
    session_id TEXT, amount_cents BIGINT NOT NULL, quantity INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS orders_event_id ON {schema}.orders (event_id);
CREATE TABLE IF NOT EXISTS {schema}.webhook_events (
    stripe_event_id TEXT PRIMARY KEY, type TEXT NOT NULL, event_id TEXT, payload TEXT NOT NULL,
    received INTEGER NOT NULL, processed INTEGER NOT NULL,
    first_received_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS webhook_events_event_id ON {schema}.webhook_events (event_id);
CREATE TABLE IF NOT EXISTS {schema}.scans (
    id BIGSERIAL PRIMARY KEY, ticket_id TEXT NOT NULL, event_id TEXT NOT NULL,
    scanner_id TEXT, result TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS scans_event_id ON {schema}.scans (event_id);
"""


def _event(row: Any) -> dict[str, Any]:
    return {**dict(row), "created_at": iso(row["created_at"])}


# A ticket row as JSON, its scanned_at written as `store.iso` writes it
# (UTC, +00:00, microseconds only when there are any).
_ISO_UTC = ("CASE WHEN scanned_at IS NULL THEN NULL ELSE"
            " to_char(scanned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            " || CASE WHEN extract(microseconds FROM scanned_at)::bigint % 1000000 = 0 THEN ''"
            " ELSE to_char(scanned_at AT TIME ZONE 'UTC', '.US') END || '+00:00' END")
_TICKET_JSON = ("'id', id, 'event_id', event_id, 'status', status,"
                f" 'scanned_at', {_ISO_UTC}, 'scanned_by', scanned_by")


class PostgresStore:
    """An asyncpg pool over one schema; opened by `start()`, closed by `close()`.

    The app's pool gate (see `pool`) lets no more than `pool_size` requests
    work at once, so asyncpg, with as many connections, never queues itself.
    The `pool` fault changed at run time changes the gate, not this pool."""

    def __init__(self, database_url: str, *, schema: str = DEFAULT_SCHEMA,
                 pool_size: int = DEFAULT_POOL_SIZE) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(f"schema name must be a plain lower-case identifier, got {schema!r}")
        self._url = database_url
        self._schema = schema
        self._pool_size = pool_size
        self._pool: Any = None
        s = schema
        self._event_cols = "id, name, price_cents, inventory_total, inventory_left, created_at"
        self._t = {name: f"{s}.{name}" for name in
                   ("events", "tickets", "checkout_sessions", "orders", "webhook_events", "scans")}

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("PostgresStore used before start()")
        return self._pool

    async def start(self) -> None:
        import asyncpg  # optional dependency: only needed when a database URL is given

        # Warm from the start, as Supabase's pooler is: a burst of scans must not
        # pay for opening PostgreSQL connections (a backend fork each) in its
        # first second, which a staging behind a pooler never does; and the
        # target's memory must not grow by the connections a burst opens.
        self._pool = await asyncpg.create_pool(
            self._url, min_size=self._pool_size, max_size=self._pool_size,
            server_settings={"application_name": APPLICATION_NAME})
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY)
                await conn.execute(_schema_sql(self._schema))
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def describe(self) -> str:
        return f"postgresql (schema {self._schema})"

    async def create_event(self, *, name: str, price_cents: int, inventory: int,
                           tickets: int) -> NewEvent:
        t = self._t
        event_id = str(uuid.uuid4())
        ticket_ids = tuple(str(uuid.uuid4()) for _ in range(tickets))
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO {t['events']} (id, name, price_cents, inventory_total, inventory_left)"
                " VALUES ($1, $2, $3, $4, $4)", event_id, name, price_cents, inventory)
            await conn.execute(
                f"INSERT INTO {t['tickets']} (id, event_id, status)"
                " SELECT unnest($1::text[]), $2, 'issued'", list(ticket_ids), event_id)
        return NewEvent(event_id, name, price_cents, inventory, ticket_ids)

    async def delete_event(self, event_id: str) -> bool:
        t = self._t
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.execute(f"DELETE FROM {t['events']} WHERE id = $1", event_id)
            for table in ("tickets", "checkout_sessions", "orders", "webhook_events", "scans"):
                await conn.execute(f"DELETE FROM {t[table]} WHERE event_id = $1", event_id)
        return found != "DELETE 0"

    async def list_events(self, *, event_id: str | None = None, limit: int | None = None,
                          offset: int = 0) -> list[dict[str, Any]]:
        where = "WHERE id = $3" if event_id is not None else "WHERE $3::text IS NULL"
        rows = await self.pool.fetch(
            f"SELECT {self._event_cols} FROM {self._t['events']} {where}"
            " ORDER BY created_at, id LIMIT $1 OFFSET $2", limit, offset, event_id)
        return [_event(row) for row in rows]

    async def list_tickets(self, *, event_id: str | None = None, ticket_id: str | None = None,
                           status: str | None = None, limit: int | None = None,
                           offset: int = 0) -> str:
        return await self.pool.fetchval(
            f"SELECT COALESCE(json_agg(json_build_object({_TICKET_JSON}) ORDER BY seq), '[]')::text"
            " FROM (SELECT id, event_id, status, scanned_at, scanned_by, seq"
            f" FROM {self._t['tickets']}"
            " WHERE ($3::text IS NULL OR event_id = $3) AND ($4::text IS NULL OR id = $4)"
            " AND ($5::text IS NULL OR status = $5)"
            " ORDER BY seq LIMIT $1 OFFSET $2) t", limit, offset, event_id, ticket_id, status)

    async def checkout(self, *, event_id: str, quantity: int, email: str,
                       session_id: str) -> NewSession | CheckoutRefusal:
        t = self._t
        async with self.pool.acquire() as conn, conn.transaction():
            # One conditional UPDATE: the row lock makes concurrent checkouts queue,
            # and the WHERE clause makes overselling impossible.
            price = await conn.fetchval(
                f"UPDATE {t['events']} SET inventory_left = inventory_left - $2"
                " WHERE id = $1 AND inventory_left >= $2 RETURNING price_cents",
                event_id, quantity)
            if price is None:
                exists = await conn.fetchval(f"SELECT 1 FROM {t['events']} WHERE id = $1", event_id)
                return "insufficient_inventory" if exists else "unknown_event"
            created_at = await conn.fetchval(
                f"INSERT INTO {t['checkout_sessions']} (id, event_id, quantity, email)"
                " VALUES ($1, $2, $3, $4) RETURNING created_at",
                session_id, event_id, quantity, email)
        return NewSession(session_id, event_id, quantity, price * quantity, iso(created_at))

    async def scan_ticket(self, ticket_id: str, scanner_id: str | None) -> Scan:
        import asyncpg

        t = self._t
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    # NOWAIT, as the seed's scan_ticket_atomic: a second scanner at the
                    # same gate gets an immediate answer instead of queueing.
                    row = await conn.fetchrow(
                        f"SELECT event_id, status FROM {t['tickets']} WHERE id = $1"
                        " FOR UPDATE NOWAIT", ticket_id)
                    if row is None:
                        return Scan("invalid")
                    if row["status"] == "scanned":
                        await self._log_scan(conn, ticket_id, row["event_id"], scanner_id,
                                             "already_scanned")
                        return Scan("already_scanned")
                    ticket = await self._set_scanned(conn, ticket_id, scanner_id)
                    await self._log_scan(conn, ticket_id, row["event_id"], scanner_id, "valid")
                    return Scan("valid", ticket)
            except asyncpg.exceptions.LockNotAvailableError:  # SQLSTATE 55P03
                pass
            event_id = await conn.fetchval(f"SELECT event_id FROM {t['tickets']} WHERE id = $1",
                                           ticket_id)
            if event_id is not None:
                await self._log_scan(conn, ticket_id, event_id, scanner_id, "locked")
            return Scan("locked")

    async def _set_scanned(self, conn: Any, ticket_id: str,
                           scanner_id: str | None) -> ScannedTicket | None:
        row = await conn.fetchrow(
            f"UPDATE {self._t['tickets']} SET status = 'scanned', scanned_at = now(),"
            " scanned_by = $2 WHERE id = $1 RETURNING event_id, scanned_at", ticket_id, scanner_id)
        if row is None:
            return None
        return ScannedTicket(ticket_id, row["event_id"], iso(row["scanned_at"]), scanner_id)

    async def _log_scan(self, conn: Any, ticket_id: str, event_id: str, scanner_id: str | None,
                        result: ScanResult) -> None:
        await conn.execute(
            f"INSERT INTO {self._t['scans']} (ticket_id, event_id, scanner_id, result)"
            " VALUES ($1, $2, $3, $4)", ticket_id, event_id, scanner_id, result)

    async def peek_ticket(self, ticket_id: str) -> TicketStatus | None:
        return await self.pool.fetchval(
            f"SELECT status FROM {self._t['tickets']} WHERE id = $1", ticket_id)

    async def force_scan(self, ticket_id: str, scanner_id: str | None) -> ScannedTicket | None:
        async with self.pool.acquire() as conn:
            return await self._set_scanned(conn, ticket_id, scanner_id)

    async def record_scan(self, ticket_id: str, scanner_id: str | None,
                          result: ScanResult) -> None:
        async with self.pool.acquire() as conn:
            event_id = await conn.fetchval(
                f"SELECT event_id FROM {self._t['tickets']} WHERE id = $1", ticket_id)
            if event_id is not None:
                await self._log_scan(conn, ticket_id, event_id, scanner_id, result)

    async def record_webhook(self, delivery: WebhookDelivery, *,
                             idempotent: bool) -> WebhookOutcome:
        t = self._t
        async with self.pool.acquire() as conn, conn.transaction():
            # The insert either claims the event id or finds it taken; concurrent
            # deliveries of one event serialise on the primary key.
            inserted = await conn.fetchval(
                f"INSERT INTO {t['webhook_events']}"
                " (stripe_event_id, type, event_id, payload, received, processed)"
                " VALUES ($1, $2, $3, $4, 1, 1) ON CONFLICT (stripe_event_id) DO NOTHING"
                " RETURNING true", delivery.stripe_event_id, delivery.type, delivery.event_id,
                delivery.payload)
            if not inserted:
                processed = 0 if idempotent else 1
                await conn.execute(
                    f"UPDATE {t['webhook_events']} SET received = received + 1,"
                    " processed = processed + $2 WHERE stripe_event_id = $1",
                    delivery.stripe_event_id, processed)
                if idempotent:
                    return WebhookOutcome(duplicate=True, processed=False)
            order = None
            if delivery.is_order:
                row = await conn.fetchrow(
                    f"INSERT INTO {t['orders']}"
                    " (event_id, stripe_event_id, session_id, amount_cents, quantity)"
                    f" SELECT $1, $2, $3, $4, $5 WHERE EXISTS"
                    f" (SELECT 1 FROM {t['events']} WHERE id = $1) RETURNING id, created_at",
                    delivery.event_id, delivery.stripe_event_id, delivery.session_id,
                    delivery.amount_cents, delivery.quantity)
                if row is not None:
                    order = NewOrder(row["id"], delivery.event_id,  # type: ignore[arg-type]
                                     delivery.session_id, delivery.amount_cents,  # type: ignore[arg-type]
                                     delivery.quantity, iso(row["created_at"]))
        return WebhookOutcome(duplicate=False, processed=True, order=order)

    async def event_revenue(self, event_id: str) -> Revenue | None:
        t = self._t
        row = await self.pool.fetchrow(
            f"SELECT e.id, COALESCE(SUM(o.amount_cents), 0) AS revenue,"
            f" COALESCE(SUM(o.quantity), 0) AS sold, COUNT(o.id) AS orders"
            f" FROM {t['events']} e LEFT JOIN {t['orders']} o ON o.event_id = e.id"
            " WHERE e.id = $1 GROUP BY e.id", event_id)
        if row is None:
            return None
        return Revenue(event_id, int(row["revenue"]), int(row["sold"]), int(row["orders"]))

    async def event_stats(self, event_id: str) -> EventStats | None:
        t = self._t
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"""SELECT e.inventory_left,
                  (SELECT COUNT(*) FROM {t['tickets']} WHERE event_id = e.id) AS tickets,
                  (SELECT COUNT(*) FROM {t['checkout_sessions']} WHERE event_id = e.id) AS checkouts,
                  (SELECT COUNT(*) FROM {t['orders']} WHERE event_id = e.id) AS orders,
                  (SELECT COALESCE(SUM(amount_cents), 0) FROM {t['orders']}
                     WHERE event_id = e.id) AS revenue,
                  (SELECT COALESCE(SUM(received), 0) FROM {t['webhook_events']}
                     WHERE event_id = e.id) AS received,
                  (SELECT COALESCE(SUM(processed), 0) FROM {t['webhook_events']}
                     WHERE event_id = e.id) AS processed
                FROM {t['events']} e WHERE e.id = $1""", event_id)
            if row is None:
                return None
            scans = {result: 0 for result in SCAN_COUNTED}
            for r in await conn.fetch(f"SELECT result, COUNT(*) AS n FROM {t['scans']}"
                                      " WHERE event_id = $1 GROUP BY result", event_id):
                scans[r["result"]] = int(r["n"])
        return EventStats(
            inventory_left=row["inventory_left"], tickets=int(row["tickets"]),
            checkouts=int(row["checkouts"]), orders=int(row["orders"]),
            revenue_cents=int(row["revenue"]), webhooks_received=int(row["received"]),
            webhooks_processed=int(row["processed"]), scans=scans)
