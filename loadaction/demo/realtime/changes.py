"""The row changes the demo publishes, in the shape Realtime's Postgres
extension gives them (realtime.apply_rls builds `data`; Realtime.Adapters.Changes
names its keys).

Three tables are in the `supabase_realtime` publication: checkout_sessions,
tickets and orders. A record carries the columns a subscriber may read, and
`columns` lists the same ones with their PostgreSQL type names; the buyer's
email is left out of both, as a column without the SELECT privilege would be,
so no personal data goes out on the feed. An UPDATE's old_record holds the
primary key only: the tables keep PostgreSQL's default replica identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from loadaction.demo.store import NewOrder, NewSession, ScannedTicket

SCHEMA = "public"  # where Supabase keeps them, whatever schema the demo's PostgreSQL uses


class ChangeKind(StrEnum):
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL type name), in table order

    def has_column(self, name: str) -> bool:
        return any(column == name for column, _ in self.columns)


CHECKOUT_SESSIONS = Table("checkout_sessions", (
    ("id", "text"), ("event_id", "text"), ("quantity", "int4"), ("amount_cents", "int4"),
    ("status", "text"), ("created_at", "timestamptz")))
TICKETS = Table("tickets", (
    ("id", "text"), ("event_id", "text"), ("status", "text"), ("scanned_at", "timestamptz"),
    ("scanned_by", "text")))
ORDERS = Table("orders", (
    ("id", "int8"), ("event_id", "text"), ("session_id", "text"), ("amount_cents", "int8"),
    ("quantity", "int4"), ("created_at", "timestamptz")))
PUBLISHED = (CHECKOUT_SESSIONS, TICKETS, ORDERS)


def commit_timestamp(moment: datetime) -> str:
    """Milliseconds and a Z, as apply_rls formats it: 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Change:
    table: Table
    kind: ChangeKind
    committed_at: datetime
    record: Mapping[str, Any] | None = None      # INSERT and UPDATE
    old_record: Mapping[str, Any] | None = None  # UPDATE and DELETE

    @property
    def schema(self) -> str:
        return SCHEMA

    @property
    def row(self) -> Mapping[str, Any]:
        """What filters look at: the new row, or the old one of a DELETE."""
        return self.record if self.record is not None else self.old_record or {}

    def data(self) -> dict[str, Any]:
        """`payload.data` of the postgres_changes message."""
        data: dict[str, Any] = {
            "schema": self.schema, "table": self.table.name,
            "commit_timestamp": commit_timestamp(self.committed_at), "type": self.kind,
            "columns": [{"name": name, "type": kind} for name, kind in self.table.columns],
            "errors": None}
        if self.record is not None:
            data["record"] = dict(self.record)
        if self.old_record is not None:
            data["old_record"] = dict(self.old_record)
        return data


def session_created(session: NewSession, at: datetime) -> Change:
    return Change(CHECKOUT_SESSIONS, ChangeKind.INSERT, at, record={
        "id": session.session_id, "event_id": session.event_id, "quantity": session.quantity,
        "amount_cents": session.amount_cents, "status": "open", "created_at": session.created_at})


def ticket_scanned(ticket: ScannedTicket, at: datetime) -> Change:
    return Change(TICKETS, ChangeKind.UPDATE, at, record={
        "id": ticket.ticket_id, "event_id": ticket.event_id, "status": "scanned",
        "scanned_at": ticket.scanned_at, "scanned_by": ticket.scanned_by},
        old_record={"id": ticket.ticket_id})


def order_created(order: NewOrder, at: datetime) -> Change:
    return Change(ORDERS, ChangeKind.INSERT, at, record={
        "id": order.order_id, "event_id": order.event_id, "session_id": order.session_id,
        "amount_cents": order.amount_cents, "quantity": order.quantity,
        "created_at": order.created_at})
