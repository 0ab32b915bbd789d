"""The demo target over real sockets on 127.0.0.1, against real SQLite and,
when LOADACTION_TEST_DATABASE_URL is set (see .ci/postgres.sh), real PostgreSQL.

Store-dependent behaviour (inventory, scans, idempotency, cleanup) runs on
both stores; HTTP-only behaviour (auth, signatures, faults) on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from loadaction.demo import (
    DemoKeys,
    DemoTarget,
    Faults,
    running_target,
    serve_in_thread,
)
from loadaction.cli import main as loadaction_main
from loadaction.demo.app import make_app
from loadaction.demo.faults import FaultState, parse_flags
from loadaction.demo.idempotency import IdempotencyKeys, Saved, fingerprint
from loadaction.demo.serve import make_store
from loadaction.demo.stripe_signature import compute_signature, verify
from tests.conftest import postgres_url
from tests.stripe_header import sign_header

ROOT = Path(__file__).resolve().parent.parent
class Client:
    """Just enough of a client: status and parsed JSON for each call."""

    def __init__(self, session: aiohttp.ClientSession, target: DemoTarget) -> None:
        self.session = session
        self.target = target
        self.keys = target.keys

    def headers(self, key: str | None = "service", bearer: str | None = None) -> dict[str, str]:
        names = {"service": self.keys.service_role_key, "anon": self.keys.anon_key}
        headers = {}
        if key is not None:
            headers["apikey"] = names.get(key, key)
        if bearer is not None:
            headers["Authorization"] = f"Bearer {names.get(bearer, bearer)}"
        return headers

    async def call(self, method: str, path: str, body: Any = None, *, key: str | None = "service",
                   bearer: str | None = None, data: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        all_headers = {**self.headers(key, bearer), **(headers or {})}
        payload = data if data is not None else None if body is None else json.dumps(body).encode()
        async with self.session.request(method, self.target.url + path, data=payload,
                                        headers=all_headers) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    async def seed(self, **body: Any) -> dict[str, Any]:
        status, doc = await self.call("POST", "/test-data/events", body)
        assert status == 201, doc
        return doc

    async def stats(self, event_id: str) -> dict[str, Any]:
        status, doc = await self.call("GET", f"/test-data/events/{event_id}/stats")
        assert status == 200, doc
        return doc

    async def checkout(self, event_id: str, quantity: int = 1, key: str = "anon") -> tuple[int, Any]:
        return await self.call("POST", "/functions/v1/create-checkout-session",
                               {"event_id": event_id, "quantity": quantity, "email": "a@example.com"},
                               key=key)

    async def scan(self, ticket_id: str, scanner: str = "gate-1") -> str:
        status, doc = await self.call("POST", "/rest/v1/rpc/scan_ticket_atomic",
                                      {"p_ticket_id": ticket_id, "p_scanner_id": scanner})
        assert status == 200, doc
        return doc["result"]

    async def webhook(self, event: dict[str, Any] | bytes, *, timestamp: int | None = None,
                      secret: str | None = None, signature: str | None = "sign") -> tuple[int, Any]:
        raw = event if isinstance(event, bytes) else json.dumps(event).encode()
        headers = {}
        if signature == "sign":
            signature = sign_header(raw, secret or self.keys.webhook_secret,
                                    int(time.time()) if timestamp is None else timestamp)
        if signature is not None:
            headers["Stripe-Signature"] = signature
        return await self.call("POST", "/functions/v1/stripe-webhook", data=raw, headers=headers)

    async def set_faults(self, **faults: Any) -> dict[str, Any]:
        status, doc = await self.call("PUT", "/_control/faults", faults)
        assert status == 200, doc
        return doc


def run(scenario: Callable[[Client], Awaitable[None]], database_url: str | None = None,
        **target_options: Any) -> None:
    async def main() -> None:
        async with running_target(database_url=database_url, **target_options) as target, \
                aiohttp.ClientSession() as session:
            await scenario(Client(session, target))
    asyncio.run(main())


def completed(event_id: str, amount: int = 5000, quantity: str = "2",
              stripe_id: str | None = None) -> dict[str, Any]:
    return {"id": stripe_id or f"evt_{uuid.uuid4().hex}", "type": "checkout.session.completed",
            "data": {"object": {"id": f"cs_test_{uuid.uuid4().hex}", "amount_total": amount,
                                "metadata": {"event_id": event_id, "quantity": quantity}}}}


async def gather(*coros: Awaitable[Any]) -> list[Any]:
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(c) for c in coros]  # type: ignore[arg-type]
    return [t.result() for t in tasks]


# --- checkout -----------------------------------------------------------------------

def test_checkout_decrements_inventory_and_answers_409_when_sold_out(database_url):
    async def scenario(c: Client) -> None:
        event = (await c.seed(tickets=0, inventory=3))["event_id"]
        status, doc = await c.checkout(event, 2)
        assert status == 200
        assert re.fullmatch(r"cs_test_[0-9a-f]+", doc["session_id"])
        assert doc["url"] == f"https://checkout.stripe.com/c/pay/{doc['session_id']}"
        assert (await c.stats(event))["inventory_left"] == 1
        assert await c.checkout(event, 2) == (409, {"error": "insufficient_inventory"})
        assert (await c.checkout(event, 1, key="service"))[0] == 200
        assert (await c.checkout(event, 1))[0] == 409
        stats = await c.stats(event)
        assert (stats["inventory_left"], stats["checkouts"]) == (0, 2)

        # Concurrent buyers never oversell.
        event = (await c.seed(tickets=0, inventory=5))["event_id"]
        statuses = [s for s, _ in await gather(*(c.checkout(event) for _ in range(20)))]
        assert sorted(statuses) == [200] * 5 + [409] * 15
        assert (await c.stats(event))["inventory_left"] == 0
    run(scenario, database_url)


def test_checkout_rejects_bad_input_and_unknown_events():
    async def scenario(c: Client) -> None:
        event = (await c.seed(tickets=0))["event_id"]
        path = "/functions/v1/create-checkout-session"
        good = {"event_id": event, "quantity": 1, "email": "a@example.com"}
        for bad in ({**good, "quantity": 0}, {**good, "quantity": "1"}, {**good, "quantity": True},
                    {k: v for k, v in good.items() if k != "email"}, {**good, "email": "nope"},
                    {**good, "event_id": "not-a-uuid"}, [good]):
            status, doc = await c.call("POST", path, bad, key="anon")
            assert status == 400 and doc["error"], bad
        assert (await c.call("POST", path, data=b"{nope", key="anon"))[0] == 400
        status, doc = await c.call("POST", path, {**good, "event_id": str(uuid.uuid4())}, key="anon")
        assert (status, doc) == (404, {"error": "event_not_found"})
    run(scenario)


async def keyed_checkout(c: Client, key: str, body: dict[str, Any] | bytes
                         ) -> tuple[int, bytes, str | None]:
    """Status, raw body and the replay header of a checkout with an Idempotency-Key."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with c.session.post(c.target.url + "/functions/v1/create-checkout-session", data=raw,
                              headers={**c.headers("anon"), "Idempotency-Key": key}) as resp:
        return resp.status, await resp.read(), resp.headers.get("Idempotent-Replayed")


def test_checkout_idempotency_keys_replay_refuse_and_never_sell_twice(database_url):
    async def scenario(c: Client) -> None:
        event = (await c.seed(tickets=0, inventory=10))["event_id"]
        good = {"event_id": event, "quantity": 2, "email": "a@example.com"}
        status, first, replayed = await keyed_checkout(c, "key-1", good)
        assert (status, replayed) == (200, None)
        # Same key, same parameters (in another key order): the same answer, byte for byte.
        reordered = json.dumps(dict(reversed(list(good.items())))).encode()
        for body in (good, reordered):
            assert await keyed_checkout(c, "key-1", body) == (200, first, "true")
        stats = await c.stats(event)
        assert (stats["checkouts"], stats["inventory_left"]) == (1, 8)

        # Same key, other parameters: refused, nothing sold.
        status, raw, _ = await keyed_checkout(c, "key-1", {**good, "quantity": 1})
        assert (status, json.loads(raw)) == (400, {"error": "idempotency_key_reuse"})
        # Another key is another checkout; a body that fails validation leaves its key unused.
        assert (await keyed_checkout(c, "key-2", {**good, "quantity": 0}))[0] == 400
        status, second, _ = await keyed_checkout(c, "key-2", good)
        assert status == 200 and second != first
        status, raw, _ = await keyed_checkout(c, "k" * 256, good)
        assert (status, json.loads(raw)) == (400, {"error": "idempotency_key_too_long"})
        assert (await c.stats(event))["inventory_left"] == 6

        # The same key five times at once: one checkout; the others wait their turn
        # (409 while it runs) or get the replay.
        answers = await gather(*(keyed_checkout(c, "key-3", good) for _ in range(5)))
        assert (await c.stats(event))["checkouts"] == 3
        created = [raw for status, raw, replayed in answers if status == 200]
        assert created and all(raw == created[0] for raw in created)
        assert all(json.loads(raw) == {"error": "idempotency_key_in_use"}
                   for status, raw, _ in answers if status == 409)

        # The `no_idempotency` fault ignores the key: each retry sells again.
        await c.set_faults(no_idempotency=True)
        one, two = [await keyed_checkout(c, "key-4", good) for _ in range(2)]
        assert one[0] == two[0] == 200 and one[1] != two[1] and two[2] is None
        assert (await c.stats(event))["checkouts"] == 5
    run(scenario, database_url)


class GatedStore:
    """A store whose checkouts wait for `gate`: holds a request in flight at will."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.gate = asyncio.Event()
        self.reached = asyncio.Event()  # a checkout is waiting at the gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def checkout(self, **kwargs: Any) -> Any:
        self.reached.set()
        await self.gate.wait()
        return await self._inner.checkout(**kwargs)


def test_checkout_409s_tell_a_sell_out_from_a_key_in_use(database_url):
    """Both are 409; only the body says which, and the purchase scenario counts
    only `insufficient_inventory` as sold out."""
    async def main() -> None:
        store = GatedStore(make_store(database_url))
        await store.start()
        keys = DemoKeys.generate()
        runner = web.AppRunner(make_app(store, keys), access_log=None)  # type: ignore[arg-type]
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            async with aiohttp.ClientSession() as session:
                c = Client(session, DemoTarget(url, keys, "gated", FaultState()))
                event = (await c.seed(tickets=0, inventory=1))["event_id"]
                good = {"event_id": event, "quantity": 1, "email": "a@example.com"}
                first = asyncio.create_task(keyed_checkout(c, "key-1", good))
                await asyncio.wait_for(store.reached.wait(), 10)  # key-1 is in flight
                status, in_use, _ = await keyed_checkout(c, "key-1", good)
                store.gate.set()
                assert (await first)[0] == 200
                # the last ticket is gone: a new checkout is sold out, a replay is not
                status_sold, sold_out = await c.checkout(event)
                replay = await keyed_checkout(c, "key-1", good)
                stats = await c.stats(event)
        finally:
            await runner.cleanup()
            await store.close()
        assert (status, json.loads(in_use)) == (409, {"error": "idempotency_key_in_use"})
        assert (status_sold, sold_out) == (409, {"error": "insufficient_inventory"})
        assert json.loads(in_use) != sold_out
        assert (replay[0], replay[2]) == (200, "true")
        assert (stats["checkouts"], stats["inventory_left"]) == (1, 0)
    asyncio.run(main())


def test_idempotency_keys_in_flight_expiry_and_cap():
    now = [0.0]
    keys = IdempotencyKeys(clock=lambda: now[0], ttl_s=100, max_keys=3)
    print_ = fingerprint({"a": 1})
    assert keys.begin("/r", "k", print_) == "new"
    assert keys.begin("/r", "k", print_) == "in_use"
    assert keys.begin("/r", "k", fingerprint({"a": 2})) == "reuse"
    assert keys.begin("/other", "k", print_) == "new"  # keys are per route
    keys.abandon("/other", "k")
    assert keys.begin("/other", "k", print_) == "new"
    saved = Saved(200, b"{}", "application/json", "utf-8")
    keys.finish("/r", "k", saved)
    assert keys.begin("/r", "k", print_) == saved
    now[0] = 99.0
    assert keys.begin("/r", "k", print_) == saved
    now[0] = 100.5  # 24 h in the target; 100 s here
    assert keys.begin("/r", "k", print_) == "new"
    for i in range(5):
        keys.begin("/r", f"n{i}", print_)
    assert len(keys) <= 3  # the oldest are dropped first
    assert keys.begin("/r", "n4", print_) == "in_use"
    assert parse_flags(["no-idempotency"]) == Faults(no_idempotency=True)


# --- scanning -----------------------------------------------------------------------

def test_scan_valid_then_already_scanned_and_unknown_tickets_invalid(database_url):
    async def scenario(c: Client) -> None:
        seeded = await c.seed(tickets=2)
        ticket = seeded["ticket_ids"][0]
        assert await c.scan(ticket) == "valid"
        assert await c.scan(ticket, "gate-2") == "already_scanned"
        assert await c.scan(str(uuid.uuid4())) == "invalid"
        assert await c.scan("garbage from a QR code") == "invalid"
        status, tickets = await c.call("GET", f"/rest/v1/tickets?event_id=eq.{seeded['event_id']}")
        assert status == 200
        by_id = {t["id"]: t for t in tickets}
        assert set(by_id) == set(seeded["ticket_ids"])
        assert by_id[ticket]["status"] == "scanned" and by_id[ticket]["scanned_at"]
        other = by_id[seeded["ticket_ids"][1]]
        assert other["status"] != "scanned" and other["scanned_at"] is None
        assert other["event_id"] == seeded["event_id"]
        scans = (await c.stats(seeded["event_id"]))["scans"]
        assert (scans["valid"], scans["already_scanned"]) == (1, 1)
        assert (await c.call("POST", "/rest/v1/rpc/scan_ticket_atomic", {"p_scanner_id": "x"}))[0] == 400
    run(scenario, database_url)


def test_ten_concurrent_scans_of_one_ticket_admit_exactly_one(database_url):
    async def scenario(c: Client) -> None:
        seeded = await c.seed(tickets=1)
        ticket = seeded["ticket_ids"][0]
        results = await gather(*(c.scan(ticket, f"gate-{i}") for i in range(10)))
        assert results.count("valid") == 1, results
        assert set(results) <= {"valid", "already_scanned", "locked"}
        assert (await c.stats(seeded["event_id"]))["scans"]["valid"] == 1
    run(scenario, database_url)


def test_race_fault_lets_concurrent_scans_all_pass(database_url):
    async def scenario(c: Client) -> None:
        seeded = await c.seed(tickets=1)
        results = await gather(*(c.scan(seeded["ticket_ids"][0]) for _ in range(10)))
        assert results.count("valid") > 1, results
        assert (await c.stats(seeded["event_id"]))["scans"]["valid"] > 1
    run(scenario, database_url, faults=Faults(race=True))


def test_postgres_scan_answers_locked_while_another_session_holds_the_row():
    url = postgres_url()
    import asyncpg

    from loadaction.demo.postgres_store import DEFAULT_SCHEMA

    async def scenario(c: Client) -> None:
        seeded = await c.seed(tickets=1)
        ticket = seeded["ticket_ids"][0]
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                await conn.execute(f"SELECT 1 FROM {DEFAULT_SCHEMA}.tickets WHERE id = $1 FOR UPDATE",
                                   ticket)
                assert await c.scan(ticket) == "locked"
        finally:
            await conn.close()
        assert await c.scan(ticket) == "valid"
        scans = (await c.stats(seeded["event_id"]))["scans"]
        assert (scans["locked"], scans["valid"]) == (1, 1)
    run(scenario, url)


# --- Stripe webhooks -----------------------------------------------------------------

def test_webhook_signature_rules():
    async def scenario(c: Client) -> None:
        event = {"id": f"evt_{uuid.uuid4().hex}", "type": "invoice.paid", "data": {"object": {}}}
        raw = json.dumps(event).encode()
        now = int(time.time())
        secret = c.keys.webhook_secret
        good_sig = compute_signature(raw, secret, now)

        async def answer(**kwargs: Any) -> tuple[int, Any]:
            return await c.webhook(raw, **kwargs)

        assert await answer() == (200, {"received": True, "duplicate": False})
        rejected = {
            "wrong secret": {"secret": "whsec_other"},
            "stale": {"timestamp": now - 301},
            "future": {"timestamp": now + 301},
            "missing header": {"signature": None},
            "malformed": {"signature": "v1=abc"},
            "no v1": {"signature": f"t={now},v0={good_sig}"},
            "bad hex": {"signature": f"t={now},v1=zz"},
        }
        for why, kwargs in rejected.items():
            status, doc = await answer(**kwargs)
            assert status == 400 and isinstance(doc["error"], str), why
        # Rotation: several v1 entries, any one valid passes.
        assert (await answer(signature=f"t={now},v1={'0' * 64},v1={good_sig}"))[0] == 200
        assert (await answer(timestamp=now - 290))[0] == 200
        # The signature covers the exact bytes.
        status, _ = await c.call("POST", "/functions/v1/stripe-webhook", data=raw + b" ",
                                 headers={"Stripe-Signature": f"t={now},v1={good_sig}"})
        assert status == 400
        # A valid signature over something that is not a Stripe event.
        for body in (b"{not json", b"[1, 2]", b'{"type": "x"}'):
            status, doc = await c.webhook(body)
            assert status == 400 and doc["error"], body
    run(scenario)


def test_signature_verifier_unit_cases():
    raw, secret, now = b'{"id": "evt_1"}', "whsec_test", 1_700_000_000
    header = sign_header(raw, secret, now)
    assert verify(header, raw, secret, now=now).ok
    assert verify(header, raw, secret, now=now + 300).ok
    assert verify(header, raw, secret, now=now + 301).reason == "too_old"
    assert verify(header, raw, secret, now=now - 301).reason == "too_new"
    assert verify(header, raw + b"x", secret, now=now).reason == "mismatch"
    assert verify("", raw, secret, now=now).reason == "missing"
    assert verify("t=abc,v1=00", raw, secret, now=now).reason == "malformed"
    assert verify(f"t={now},t={now},v1=00", raw, secret, now=now).reason == "malformed"
    assert verify(f"t={now},v1=\u00e9", raw, secret, now=now).reason == "mismatch"


def test_signature_agrees_with_stripes_own_library():
    stripe = pytest.importorskip("stripe", reason="cross-check needs the stripe package")
    raw, secret = b'{"id": "evt_1", "object": "event"}', "whsec_test"
    now = int(time.time())
    header = sign_header(raw, secret, now)
    assert stripe.WebhookSignature.verify_header(raw.decode(), header, secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(raw.decode(), sign_header(raw, "whsec_x", now),
                                              secret, tolerance=300)


def test_webhooks_are_idempotent_by_event_id(database_url):
    async def scenario(c: Client) -> None:
        event = (await c.seed(tickets=0))["event_id"]
        delivery = completed(event, amount=5000, quantity="2")
        assert await c.webhook(delivery) == (200, {"received": True, "duplicate": False})
        assert await c.webhook(delivery) == (200, {"received": True, "duplicate": True})
        stats = await c.stats(event)
        assert (stats["webhooks_received"], stats["webhooks_processed"], stats["orders"]) == (2, 1, 1)
        status, revenue = await c.call("POST", "/rest/v1/rpc/event_revenue", {"p_event_id": event})
        assert (status, revenue) == (200, {"event_id": event, "revenue_cents": 5000,
                                           "tickets_sold": 2, "orders": 1})

        # The same event delivered five times at once is still processed once.
        burst = completed(event, amount=100)
        answers = await gather(*(c.webhook(burst) for _ in range(5)))
        assert sorted(doc["duplicate"] for _, doc in answers) == [False] + [True] * 4
        assert (await c.stats(event))["webhooks_processed"] == 2

        # Other event types are acknowledged and stored, but are not orders.
        other = {"id": f"evt_{uuid.uuid4().hex}", "type": "payment_intent.succeeded",
                 "data": {"object": {"metadata": {"event_id": event}}}}
        assert (await c.webhook(other))[1] == {"received": True, "duplicate": False}
        stats = await c.stats(event)
        assert (stats["webhooks_processed"], stats["orders"], stats["revenue_cents"]) == (3, 2, 5100)
    run(scenario, database_url)


def test_double_webhook_fault_processes_duplicates_again(database_url):
    async def scenario(c: Client) -> None:
        event = (await c.seed(tickets=0))["event_id"]
        await c.set_faults(double_webhook=True)
        delivery = completed(event)
        for _ in range(2):
            assert await c.webhook(delivery) == (200, {"received": True, "duplicate": False})
        stats = await c.stats(event)
        assert (stats["webhooks_received"], stats["webhooks_processed"], stats["orders"]) == (2, 2, 2)
    run(scenario, database_url)


# --- dashboard reads and test data ----------------------------------------------------

def test_dashboard_reads_and_cleanup(database_url):
    async def scenario(c: Client) -> None:
        seeded = await c.seed(tickets=3, inventory=10, price_cents=1234, name="Gala")
        event = seeded["event_id"]
        status, rows = await c.call("GET", f"/rest/v1/events?id=eq.{event}&select=*")
        assert status == 200 and len(rows) == 1
        assert {k: rows[0][k] for k in ("id", "name", "price_cents", "inventory_left")} == \
            {"id": event, "name": "Gala", "price_cents": 1234, "inventory_left": 10}
        status, rows = await c.call("GET", "/rest/v1/events")
        assert status == 200 and event in {r["id"] for r in rows}
        status, rows = await c.call("GET", f"/rest/v1/tickets?event_id=eq.{event}&limit=2")
        assert status == 200 and len(rows) == 2
        assert set(rows[0]) >= {"id", "event_id", "status", "scanned_at"}
        for bad in ("/rest/v1/tickets?event_id=gt.1", "/rest/v1/tickets?colour=eq.red",
                    "/rest/v1/events?limit=-1"):
            status, doc = await c.call("GET", bad)
            assert status == 400 and doc["message"], bad
        assert (await c.call("POST", "/rest/v1/rpc/event_revenue",
                             {"p_event_id": str(uuid.uuid4())}))[0] == 404

        # Cleanup removes the event and everything hanging off it.
        await c.checkout(event)
        await c.scan(seeded["ticket_ids"][0])
        await c.webhook(completed(event))
        assert await c.call("DELETE", f"/test-data/events/{event}") == (200, {"deleted": True})
        assert (await c.call("GET", f"/test-data/events/{event}/stats"))[0] == 404
        assert await c.call("GET", f"/rest/v1/tickets?event_id=eq.{event}") == (200, [])
        assert await c.scan(seeded["ticket_ids"][0]) == "invalid"
        assert (await c.call("DELETE", f"/test-data/events/{event}"))[0] == 404
        assert (await c.call("POST", "/test-data/events", {"tickets": -1}))[0] == 400
    run(scenario, database_url)


# --- auth -------------------------------------------------------------------------------

def test_auth_requires_known_keys_and_service_role_where_supabase_does():
    async def scenario(c: Client) -> None:
        event = (await c.seed(tickets=1))["event_id"]
        for kwargs in ({"key": None}, {"key": "wrong"}, {"key": "anon", "bearer": "wrong"},
                       {"key": "service", "bearer": "wrong"}):
            status, doc = await c.call("GET", "/rest/v1/events", **kwargs)
            assert status == 401 and doc["message"], kwargs
        service_only = [("POST", "/rest/v1/rpc/scan_ticket_atomic", {"p_ticket_id": "x"}),
                        ("GET", "/rest/v1/events", None),
                        ("GET", f"/rest/v1/tickets?event_id=eq.{event}", None),
                        ("POST", "/rest/v1/rpc/event_revenue", {"p_event_id": event}),
                        ("POST", "/test-data/events", {}),
                        ("GET", f"/test-data/events/{event}/stats", None),
                        ("DELETE", f"/test-data/events/{event}", None),
                        ("GET", "/_control/faults", None),
                        ("PUT", "/_control/faults", {"race": True}),
                        ("DELETE", "/_control/faults", None)]
        for method, path, body in service_only:
            status, doc = await c.call(method, path, body, key="anon")
            assert status == 401 and doc["message"], path
            # A service role Bearer token lifts an anon apikey, as in Supabase.
            if method == "GET":
                assert (await c.call(method, path, key="anon", bearer="service"))[0] == 200, path
        # The anon key may check out, with or without a Bearer of its own.
        assert (await c.checkout(event))[0] == 200
        assert (await c.call("POST", "/functions/v1/create-checkout-session",
                             {"event_id": event, "quantity": 1, "email": "a@b.c"},
                             key="anon", bearer="anon"))[0] == 200
        assert (await c.call("POST", "/functions/v1/create-checkout-session",
                             {"event_id": event, "quantity": 1, "email": "a@b.c"}, key=None))[0] == 401
        assert (await c.webhook(completed(event)))[0] == 200
        # Stripe sends no Supabase key: the webhook is guarded by its signature alone.
        assert (await c.call("POST", "/functions/v1/stripe-webhook", {}, key=None))[0] == 400
    run(scenario)


# --- faults -------------------------------------------------------------------------------

def test_latency_and_error_rate_faults_via_the_control_endpoint():
    async def scenario(c: Client) -> None:
        doc = await c.set_faults(latency_ms=150)
        assert doc["latency_ms"] == 150
        started = time.monotonic()
        assert (await c.call("GET", "/rest/v1/events"))[0] == 200
        assert time.monotonic() - started >= 0.15
        started = time.monotonic()
        await c.call("GET", "/_control/faults")
        control_s = time.monotonic() - started
        assert control_s < 0.15  # control routes are never slowed down

        await c.set_faults(latency_ms=0, error_rate=0.25)
        answers = [await c.call("GET", "/rest/v1/events") for _ in range(8)]
        failures = [doc for status, doc in answers if status == 500]
        assert failures == [{"message": "injected fault"}] * 2
        # Control routes never fail, so faults can always be turned off.
        assert all([(await c.call("GET", "/_control/faults"))[0] == 200 for _ in range(8)])
        status, doc = await c.call("DELETE", "/_control/faults")
        assert status == 200
        assert {k: doc[k] for k in ("latency_ms", "error_rate", "race", "double_webhook",
                                    "no_idempotency")} == \
            {"latency_ms": 0, "error_rate": 0.0, "race": False, "double_webhook": False,
             "no_idempotency": False}
        assert all([(await c.call("GET", "/rest/v1/events"))[0] == 200 for _ in range(8)])

        for bad in ({"latency": 5}, {"latency_ms": -1}, {"error_rate": 2}, {"race": "yes"},
                    {"expires_in_s": 3}, {"race": True, "expires_in_s": 0}, [1]):
            status, doc = await c.call("PUT", "/_control/faults", bad)
            assert status == 400 and doc["message"], bad
    run(scenario)


def test_faults_with_expiry_revert_by_themselves():
    async def scenario(c: Client) -> None:
        doc = await c.set_faults(error_rate=1.0, expires_in_s=0.3)
        assert 0 < doc["expires_in_s"]["error_rate"] <= 0.3
        await c.set_faults(race=True)  # no expiry: stays
        assert (await c.call("GET", "/rest/v1/events"))[0] == 500
        await asyncio.sleep(0.35)
        assert (await c.call("GET", "/rest/v1/events"))[0] == 200
        _status, doc = await c.call("GET", "/_control/faults")
        assert (doc["error_rate"], doc["race"], doc["expires_in_s"]) == (0.0, True, {})
    run(scenario)


def test_faults_given_at_start_are_in_force():
    async def scenario(c: Client) -> None:
        assert (await c.call("GET", "/rest/v1/events"))[0] == 500
        assert (await c.call("GET", "/_control/faults"))[1]["error_rate"] == 1.0
    run(scenario, faults=Faults(error_rate=1.0))


# --- serving --------------------------------------------------------------------------------

def test_refuses_non_loopback_hosts_unless_allowed():
    async def start() -> None:
        async with running_target(host="0.0.0.0"):
            pass
    with pytest.raises(ValueError, match="non-loopback"):
        asyncio.run(start())


def test_serve_in_thread_for_synchronous_callers():
    keys = DemoKeys("anon-k", "service-k", "whsec_k")
    with serve_in_thread(keys=keys) as target:
        assert target.env["SUPABASE_SERVICE_ROLE_KEY"] == "service-k"
        request = urllib.request.Request(target.url + "/_control/health", headers={"apikey": "anon-k"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.load(resp)["ok"] is True


def test_cli_rejects_bad_faults_in_one_line(capsys):
    for bad in (["--fault", "latency=abc"], ["--fault", "errors=1.5"], ["--fault", "chaos"]):
        assert loadaction_main(["demo-target", *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--fault" in err, err


def test_cli_prints_exports_serves_and_stops_on_sigint():
    async def scenario() -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SUPABASE_ANON_KEY": "cli-anon",
               "SUPABASE_SERVICE_ROLE_KEY": "cli-service"}
        env.pop("STRIPE_WEBHOOK_SECRET", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "loadaction", "demo-target", "--fault", "latency=1",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            exports: dict[str, str] = {}
            while len(exports) < 4:
                line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()  # type: ignore[union-attr]
                assert line, "demo-target exited before printing its exports"
                match = re.fullmatch(r"export (\w+)=(\S+)\n", line)
                assert match, line
                exports[match[1]] = match[2]
            assert exports["SUPABASE_ANON_KEY"] == "cli-anon"
            assert exports["SUPABASE_SERVICE_ROLE_KEY"] == "cli-service"
            assert exports["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", exports["SUPABASE_URL"])
            async with aiohttp.ClientSession() as session, session.post(
                    exports["SUPABASE_URL"] + "/test-data/events", json={"tickets": 1},
                    headers={"apikey": "cli-service"}) as resp:
                assert resp.status == 201
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(proc.wait(), 5) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    asyncio.run(scenario())
