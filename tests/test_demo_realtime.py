"""The demo target's Supabase Realtime socket, over real sockets on 127.0.0.1,
against real SQLite and (with LOADACTION_TEST_DATABASE_URL) real PostgreSQL.

Frames are checked against fixtures in tests/fixtures/realtime/ whose shapes
come from supabase/realtime's own tests (each names its source). "Nothing
else arrived" is proven without waiting: the socket keeps order, and a
change is queued before the write's HTTP answer goes out, so a heartbeat
sent after the answer comes back behind everything the write produced.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from loadaction.cli import main as loadaction_main
from loadaction.demo import DemoTarget, Faults, running_target
from loadaction.demo.faults import parse_flags
from loadaction.demo.realtime import RealtimeSettings
from loadaction.demo.realtime.changes import TICKETS, Change, ChangeKind
from loadaction.demo.realtime.subscriptions import subscribe
from tests.stripe_header import sign_header

FIXTURES = Path(__file__).parent / "fixtures" / "realtime"
RECEIVE_TIMEOUT_S = 15.0  # only ever reached when something is broken


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# --- a client, as realtime-js speaks ------------------------------------------------------

class Socket:
    """One Realtime socket: frames out, frames in (parsed), refs counted."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ref = 100

    def next_ref(self) -> str:
        self._ref += 1
        return str(self._ref)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def frame(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=RECEIVE_TIMEOUT_S)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg, self.ws.close_code)
        return json.loads(msg.data)

    async def join(self, name: str, *changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Join and wait for the subscription to stand: (reply, system message)."""
        ref = self.next_ref()
        await self.send({"topic": f"realtime:{name}", "event": "phx_join", "ref": ref, "join_ref": ref,
                         "payload": {"config": {"postgres_changes": list(changes)}}})
        reply, system = await self.frame(), await self.frame()
        assert (reply["event"], reply["ref"], reply["payload"]["status"]) == ("phx_reply", ref, "ok"), reply
        assert system["event"] == "system" and system["payload"]["status"] == "ok", system
        return reply, system

    async def flush(self) -> list[dict[str, Any]]:
        """Everything that arrives before the answer to a heartbeat sent now."""
        ref = self.next_ref()
        await self.send({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": ref})
        before = []
        while (frame := await self.frame())["ref"] != ref or frame["topic"] != "phoenix":
            before.append(frame)
        return before

    async def closed(self) -> aiohttp.WSMessage:
        """Read until the server's close; return it."""
        while True:
            msg = await self.ws.receive(timeout=RECEIVE_TIMEOUT_S)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return msg


class Demo:
    """HTTP calls the realtime tests write with."""

    def __init__(self, session: aiohttp.ClientSession, target: DemoTarget) -> None:
        self.session = session
        self.target = target
        self.keys = target.keys
        self.service = {"apikey": target.keys.service_role_key}

    def socket_url(self, **query: str) -> str:
        url = self.target.url.replace("http://", "ws://") + "/realtime/v1/websocket"
        return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")

    @asynccontextmanager
    async def socket(self) -> AsyncIterator[Socket]:
        ws = await self.session.ws_connect(self.socket_url(apikey=self.keys.anon_key, vsn="1.0.0"))
        try:
            yield Socket(ws)
        finally:
            await ws.close()

    async def call(self, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None, data: bytes | None = None
                   ) -> tuple[int, Any]:
        async with self.session.request(method, self.target.url + path, json=body, data=data,
                                        headers=headers or self.service) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    async def seed(self, tickets: int = 2, inventory: int = 100, price_cents: int = 2500
                   ) -> dict[str, Any]:
        status, doc = await self.call("POST", "/test-data/events", {
            "tickets": tickets, "inventory": inventory, "price_cents": price_cents})
        assert status == 201, doc
        return doc

    async def checkout(self, event_id: str, quantity: int = 1) -> tuple[int, Any]:
        return await self.call("POST", "/functions/v1/create-checkout-session",
                               {"event_id": event_id, "quantity": quantity, "email": "a@example.com"},
                               headers={"apikey": self.keys.anon_key})

    async def scan(self, ticket_id: str, scanner: str = "gate-1") -> str:
        status, doc = await self.call("POST", "/rest/v1/rpc/scan_ticket_atomic",
                                      {"p_ticket_id": ticket_id, "p_scanner_id": scanner})
        assert status == 200, doc
        return doc["result"]

    async def webhook(self, event_id: str, session_id: str, amount: int = 5000,
                      stripe_id: str | None = None) -> dict[str, Any]:
        raw = json.dumps({
            "id": stripe_id or f"evt_{uuid.uuid4().hex}", "type": "checkout.session.completed",
            "data": {"object": {"id": session_id, "amount_total": amount,
                                "metadata": {"event_id": event_id, "quantity": "2"}}}}).encode()
        status, doc = await self.call(
            "POST", "/functions/v1/stripe-webhook", data=raw,
            headers={"Stripe-Signature": sign_header(raw, self.keys.webhook_secret, int(time.time()))})
        assert status == 200, doc
        return doc

    async def faults(self, method: str, body: Any = None) -> tuple[int, Any]:
        return await self.call(method, "/_control/faults", body)

    async def health(self) -> dict[str, Any]:
        status, doc = await self.call("GET", "/_control/health")
        assert status == 200, doc
        return doc["realtime"]


def run(scenario: Callable[[Demo], Awaitable[None]], database_url: str | None = None,
        **target_options: Any) -> None:
    async def main() -> None:
        async with running_target(database_url=database_url, **target_options) as target, \
                aiohttp.ClientSession() as session:
            await scenario(Demo(session, target))
    asyncio.run(main())


def for_event(table: str, event_id: str, event: str = "*") -> dict[str, str]:
    return {"event": event, "schema": "public", "table": table, "filter": f"event_id=eq.{event_id}"}


# --- fixture shapes ----------------------------------------------------------------------

def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number",
            type(None): "null"}[type(value)]


def _digits(value: str) -> str:
    return re.sub(r"\d", "9", value)


def shape_problems(ours: Any, theirs: Any, path: str, spec: dict[str, Any]) -> list[str]:
    """How `ours` differs from the upstream frame: same keys, same JSON types,
    same values, except where the fixture says a value varies (`vary`: type
    only), has a format (`formats`: the same digits-and-separators pattern) or
    is a table's row (`rows`: an object, its keys the table's own)."""
    if path in spec.get("rows", ()):
        return [] if isinstance(ours, dict) else [f"{path}: expected an object, got {ours!r}"]
    if path in spec.get("vary", ()):
        return [] if _kind(ours) == _kind(theirs) else [
            f"{path}: expected a {_kind(theirs)}, got {ours!r}"]
    if path in spec.get("formats", ()):
        return [] if isinstance(ours, str) and _digits(ours) == _digits(theirs) else [
            f"{path}: expected the format of {theirs!r}, got {ours!r}"]
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [f"{path}: expected an object, got {ours!r}"]
        if set(ours) != set(theirs):
            return [f"{path}: keys {sorted(ours)} instead of {sorted(theirs)}"]
        return [p for key in theirs for p in shape_problems(ours[key], theirs[key], f"{path}.{key}", spec)]
    if isinstance(theirs, list):
        if not isinstance(ours, list) or bool(ours) != bool(theirs):
            return [f"{path}: expected a {'non-empty' if theirs else 'empty'} array, got {ours!r}"]
        return [p for item in ours for p in shape_problems(item, theirs[0], f"{path}[*]", spec)]
    return [] if (_kind(ours), ours) == (_kind(theirs), theirs) else [
        f"{path}: expected {theirs!r}, got {ours!r}"]


def assert_shape(ours: dict[str, Any], spec: dict[str, Any], index: int = 0) -> None:
    problems = shape_problems(ours, spec["server"][index], f"server[{index}]", spec)
    assert not problems, f"{spec['_source']}\n" + "\n".join(problems)


def test_frames_have_the_shapes_of_supabase_realtimes_tests(database_url):
    async def scenario(d: Demo) -> None:
        seeded = await d.seed(tickets=1)
        async with d.socket() as s:
            spec = fixture("heartbeat")
            await s.send(spec["client"][0])
            assert_shape(await s.frame(), spec)

            spec = fixture("join")
            await s.send(spec["client"][0])
            reply, system = await s.frame(), await s.frame()
            assert_shape(reply, spec, 0)
            assert_shape(system, spec, 1)
            assert "join_ref" not in reply and "join_ref" not in system  # V1 serializer
            insert_id = reply["payload"]["response"]["postgres_changes"][0]["id"]

            # the same join on a second channel, for UPDATE
            update_spec = fixture("postgres_changes_update")
            await s.send({**update_spec["client"][0], "topic": "realtime:other", "ref": "3"})
            reply = await s.frame()
            assert (reply["payload"]["status"], (await s.frame())["payload"]["status"]) == ("ok", "ok")
            update_id = reply["payload"]["response"]["postgres_changes"][0]["id"]

            status, session = await d.checkout(seeded["event_id"], quantity=2)
            assert status == 200
            insert = await s.frame()
            spec = fixture("postgres_changes_insert")
            assert_shape(insert, spec)
            data = insert["payload"]
            assert data["ids"] == [insert_id]
            assert list(data["data"]["record"]) == [c["name"] for c in data["data"]["columns"]]
            assert data["data"]["record"]["id"] == session["session_id"]

            assert await d.scan(seeded["ticket_ids"][0]) == "valid"
            update = await s.frame()
            assert_shape({**update, "topic": "realtime:any"}, update_spec)
            assert update["topic"] == "realtime:other" and update["payload"]["ids"] == [update_id]
            record = update["payload"]["data"]["record"]
            assert list(record) == [c["name"] for c in update["payload"]["data"]["columns"]]
            assert update["payload"]["data"]["old_record"] == {"id": seeded["ticket_ids"][0]}
            assert await s.flush() == []
    run(scenario, database_url)


# --- the handshake ------------------------------------------------------------------------

def test_socket_needs_a_demo_key_and_vsn_1():
    async def scenario(d: Demo) -> None:
        refused = {
            "no key": ({"vsn": "1.0.0"}, 401, "No API key found in request"),
            "wrong key": ({"apikey": "nope", "vsn": "1.0.0"}, 401, "Invalid API key"),
            "vsn 2": ({"apikey": d.keys.anon_key, "vsn": "2.0.0"}, 400, None),
        }
        for why, (query, status, message) in refused.items():
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await d.session.ws_connect(d.socket_url(**query))
            assert caught.value.status == status, why
            async with d.session.get(d.socket_url(**query)) as resp:  # the body before the upgrade
                doc = await resp.json()
                assert resp.status == status and doc["message"], why
                assert message is None or doc["message"] == message, why
        assert "1.0.0" in doc["message"]
        # Either key opens it; `vsn` may be left out; the key may come as a header.
        for ws in (await d.session.ws_connect(d.socket_url(apikey=d.keys.service_role_key)),
                   await d.session.ws_connect(d.socket_url(), headers={"apikey": d.keys.anon_key})):
            assert await Socket(ws).flush() == []
            await ws.close()
        # A plain GET with a good key is not an upgrade.
        async with d.session.get(d.socket_url(apikey=d.keys.anon_key)) as resp:
            assert resp.status == 400
    run(scenario)


# --- channels -----------------------------------------------------------------------------

def test_join_leave_and_refusals_answer_as_phoenix_and_realtime_do():
    async def scenario(d: Demo) -> None:
        async with d.socket() as s:
            async def send(topic: str, event: str, payload: Any = None, ref: str = "9",
                           join_ref: str | None = None) -> dict[str, Any]:
                await s.send({"topic": topic, "event": event, "payload": payload or {}, "ref": ref,
                              "join_ref": join_ref})
                return await s.frame()

            def error(frame: dict[str, Any], ref: str = "9") -> str:
                assert (frame["event"], frame["ref"], frame["payload"]["status"]) == \
                    ("phx_reply", ref, "error"), frame
                return frame["payload"]["response"]["reason"]

            assert error(await send("room:lobby", "phx_join")) == "unmatched topic"
            assert error(await send("realtime:", "phx_join")) == \
                "TopicNameRequired: You must provide a topic name"
            assert error(await send("realtime:x", "phx_join", {"config": {"postgres_changes": "all"}})) \
                .startswith("InvalidJoinPayload: config.postgres_changes")
            assert error(await send("realtime:x", "phx_join", {"config": {"postgres_changes": [
                {"table": 7}]}})).startswith("InvalidJoinPayload")
            assert error(await send("realtime:nowhere", "broadcast")) == "unmatched topic"
            assert error(await send("phoenix", "phx_join")) == "unmatched topic"

            # Joins without postgres_changes: an ok reply and no system message.
            reply = await send("realtime:plain", "phx_join", {"config": {"broadcast": {"self": False}}},
                               ref="20", join_ref="20")
            assert reply["payload"] == {"status": "ok", "response": {"postgres_changes": []}}
            # On a joined topic, access_token and other events are taken without an answer.
            await s.send({"topic": "realtime:plain", "event": "access_token", "ref": "21",
                          "payload": {"access_token": d.keys.anon_key}})
            assert await s.flush() == []

            # A second join of the same topic closes the first (under the first's ref).
            await s.send({"topic": "realtime:plain", "event": "phx_join", "payload": {}, "ref": "22",
                          "join_ref": "22"})
            assert await s.frame() == {"topic": "realtime:plain", "event": "phx_close",
                                       "payload": {}, "ref": "20"}
            assert (await s.frame())["payload"]["status"] == "ok"

            # Leaving: ok, then the channel's close; leaving again is just ok.
            assert await send("realtime:plain", "phx_leave", ref="23") == {
                "topic": "realtime:plain", "event": "phx_reply", "ref": "23",
                "payload": {"status": "ok", "response": {}}}
            assert await s.frame() == {"topic": "realtime:plain", "event": "phx_close",
                                       "payload": {}, "ref": "22"}
            assert (await send("realtime:plain", "phx_leave", ref="24"))["payload"]["status"] == "ok"
            assert error(await send("realtime:plain", "access_token", ref="25"), "25") == \
                "unmatched topic"
            assert await s.flush() == []

            # A subscription Realtime cannot serve still joins; the system message says why.
            cases = {  # name: (subscription, how the message starts)
                "no_table": ({"schema": "public", "table": "events"},
                             "Unable to subscribe to changes with given parameters. Please check"),
                "bad_op": ({"schema": "public", "table": "tickets", "filter": "status=gt.a"},
                           "Error parsing `filter` params"),
                "bad_column": ({"schema": "public", "table": "tickets", "filter": "colour=eq.red"},
                               "Unable to subscribe to changes with given parameters. An exception"),
                "bad_event": ({"event": "inserts", "schema": "public"}, "Error parsing `event`"),
                "nothing": ({"event": "*"}, "No subscription params provided")}
            for name, (params, message) in cases.items():
                ref = s.next_ref()
                await s.send({"topic": f"realtime:{name}", "event": "phx_join", "ref": ref,
                              "payload": {"config": {"postgres_changes": [params]}}})
                reply, system = await s.frame(), await s.frame()
                assert reply["payload"]["status"] == "ok", name
                assert [{k: v for k, v in p.items() if k != "id"}
                        for p in reply["payload"]["response"]["postgres_changes"]] == [params]
                assert system["payload"]["status"] == "error" and system["ref"] is None, name
                assert system["payload"]["extension"] == "postgres_changes", name
                assert system["payload"]["channel"] == name
                assert system["payload"]["message"].startswith(message), system
            assert await s.flush() == []

        # At most 100 channels on one socket, as Realtime's default.
        async with d.socket() as s:
            for i in range(100):
                await s.send({"topic": f"realtime:c{i}", "event": "phx_join", "payload": {},
                              "ref": str(i)})
            assert all([(await s.frame())["payload"]["status"] == "ok" for _ in range(100)])
            await s.send({"topic": "realtime:c100", "event": "phx_join", "payload": {}, "ref": "x"})
            assert (await s.frame())["payload"]["response"]["reason"] == \
                "ChannelRateLimitReached: Too many channels"
    run(scenario)


def test_frames_that_are_not_phoenixs_close_the_socket():
    async def scenario(d: Demo) -> None:
        for bad in ("not json", "[1, 2]", json.dumps({"topic": "phoenix", "event": "heartbeat"}),
                    json.dumps({"topic": 1, "event": "heartbeat", "payload": {}, "ref": "1"})):
            async with d.socket() as s:
                await s.ws.send_str(bad)
                msg = await s.closed()
                assert (msg.type, s.ws.close_code) == (aiohttp.WSMsgType.CLOSE, 1003), bad
        async with d.socket() as s:
            await s.ws.send_bytes(b"{}")
            await s.closed()
            assert s.ws.close_code == 1003
    run(scenario)


def test_subscriptions_parse_and_match_as_realtime_filters_do():
    def change(**record: Any) -> Change:
        return Change(TICKETS, ChangeKind.UPDATE, datetime.now(UTC), record=record,
                      old_record={"id": record.get("id")})

    row = change(id="t1", event_id="e1", status="scanned", scanned_by=None)
    cases = [  # (subscription, matches the row)
        ({"schema": "public"}, True),  # every table of the schema
        ({"table": "tickets"}, True),  # schema public
        ({"schema": "*", "table": "*", "event": "update"}, True),
        ({"schema": "public", "table": "tickets", "event": "INSERT"}, False),
        ({"schema": "public", "table": "orders"}, False),
        ({"schema": "public", "table": "tickets", "filter": "event_id=eq.e1"}, True),
        ({"schema": "public", "table": "tickets", "filter": "event_id=eq.e2"}, False),
        ({"schema": "public", "table": "tickets", "filter": "event_id=neq.e2"}, True),
        ({"schema": "public", "table": "tickets", "filter": "status=in.(issued,scanned)"}, True),
        ({"schema": "public", "table": "tickets", "filter": 'status=in.("issued")'}, False),
        ({"schema": "public", "table": "tickets", "filter": "event_id=eq.e1,status=eq.issued"}, False),
        ({"schema": "public", "table": "tickets", "filter": "event_id=eq.e1, status=eq.scanned"}, True),
        ({"schema": "public", "table": "tickets", "filter": "scanned_by=eq.None"}, False),  # NULL
        ({"schema": "public", "table": "tickets", "filter": "scanned_by=neq.x"}, False),  # NULL
        ({"schema": "public", "table": "tickets", "filter": " "}, True),  # empty: no filter
    ]
    for params, expected in cases:
        bindings = subscribe([params])
        assert isinstance(bindings, tuple), (params, bindings)
        assert bindings[0].matches(row) is expected, params
        assert subscribe([dict(params)])[0].id == bindings[0].id  # type: ignore[index]
    refused = [{"schema": "public", "filter": "id=eq.1"},  # a filter needs schema and table
               {"schema": "public", "table": "tickets", "filter": "id=like.a%"},
               {"schema": "public", "table": "tickets", "filter": "id=in.a,b"},
               {"schema": "public", "table": "tickets", "filter": "id"},
               {"schema": "private", "table": "tickets"}, {}]
    for params in refused:
        assert not isinstance(subscribe([params]), tuple), params
    assert not isinstance(subscribe([{"schema": "public"}, {"table": "nope"}]), tuple)  # all or none


# --- changes -------------------------------------------------------------------------------

def test_each_write_publishes_its_change_to_the_subscribers_of_its_event(database_url):
    async def scenario(d: Demo) -> None:
        mine, other = await d.seed(tickets=2, inventory=3, price_cents=1500), await d.seed(tickets=1)
        event = mine["event_id"]
        async with d.socket() as s, d.socket() as everything:
            reply, _ = await s.join("dashboard", for_event("checkout_sessions", event, "INSERT"),
                                    for_event("tickets", event, "UPDATE"),
                                    for_event("orders", event, "INSERT"))
            ids = [p["id"] for p in reply["payload"]["response"]["postgres_changes"]]
            assert len(set(ids)) == 3
            await everything.join("all", {"event": "*", "schema": "public"})

            # Writes on another event reach only the unfiltered subscriber.
            status, theirs = await d.checkout(other["event_id"])
            assert status == 200
            assert await d.scan(other["ticket_ids"][0]) == "valid"
            await d.webhook(other["event_id"], theirs["session_id"])
            assert [f["payload"]["data"]["table"] for f in await everything.flush()] == \
                ["checkout_sessions", "tickets", "orders"]
            assert await s.flush() == []

            # A checkout: INSERT into checkout_sessions, found by record.id == session_id.
            status, checkout = await d.checkout(event, quantity=2)
            assert status == 200
            frame = await s.frame()
            assert (frame["topic"], frame["event"], frame["ref"]) == \
                ("realtime:dashboard", "postgres_changes", None)
            assert frame["payload"]["ids"] == [ids[0]]
            data = frame["payload"]["data"]
            assert (data["schema"], data["table"], data["type"], data["errors"]) == \
                ("public", "checkout_sessions", "INSERT", None)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["commit_timestamp"])
            record = data["record"]
            assert record["id"] == checkout["session_id"]
            assert {k: record[k] for k in ("event_id", "quantity", "amount_cents", "status")} == \
                {"event_id": event, "quantity": 2, "amount_cents": 3000, "status": "open"}
            assert record["created_at"] and "email" not in record and "old_record" not in data
            assert "email" not in {c["name"] for c in data["columns"]}

            # A sold-out checkout, an already-scanned ticket, a duplicate webhook: nothing.
            assert (await d.checkout(event, quantity=2))[0] == 409
            ticket = mine["ticket_ids"][0]
            assert await d.scan(ticket, "gate-7") == "valid"
            assert await d.scan(ticket) == "already_scanned"
            frames = await s.flush()
            assert [f["payload"]["data"]["type"] for f in frames] == ["UPDATE"]
            data = frames[0]["payload"]["data"]
            assert frames[0]["payload"]["ids"] == [ids[1]] and data["table"] == "tickets"
            assert data["old_record"] == {"id": ticket}
            assert {k: data["record"][k] for k in ("id", "event_id", "status", "scanned_by")} == \
                {"id": ticket, "event_id": event, "status": "scanned", "scanned_by": "gate-7"}
            assert data["record"]["scanned_at"]

            # The webhook that completes the checkout: INSERT into orders (revenue changes).
            stripe_id = f"evt_{uuid.uuid4().hex}"
            assert (await d.webhook(event, checkout["session_id"], 3000, stripe_id))["duplicate"] is False
            assert (await d.webhook(event, checkout["session_id"], 3000, stripe_id))["duplicate"] is True
            frames = await s.flush()
            assert len(frames) == 1 and frames[0]["payload"]["ids"] == [ids[2]]
            record = frames[0]["payload"]["data"]["record"]
            assert isinstance(record.pop("id"), int) and record.pop("created_at")
            assert record == {"event_id": event, "session_id": checkout["session_id"],
                              "amount_cents": 3000, "quantity": 2}
            assert [f["payload"]["data"]["table"] for f in await everything.flush()] == \
                ["checkout_sessions", "tickets", "orders"]
    run(scenario, database_url)


def test_race_fault_publishes_every_scan_it_let_through(database_url):
    async def scenario(d: Demo) -> None:
        seeded = await d.seed(tickets=1)
        async with d.socket() as s:
            await s.join("gate", for_event("tickets", seeded["event_id"]))
            async with asyncio.TaskGroup() as group:
                scans = [group.create_task(d.scan(seeded["ticket_ids"][0], f"gate-{i}"))
                         for i in range(10)]
            valid = [t.result() for t in scans].count("valid")
            frames = await s.flush()
            assert valid > 1 and len(frames) == valid
    run(scenario, database_url, faults=Faults(race=True))


# --- faults ---------------------------------------------------------------------------------

def test_realtime_lag_delays_changes_but_not_replies(database_url):
    lag_ms = 800  # long beside a heartbeat's round trip, even on a busy machine

    async def scenario(d: Demo) -> None:
        event = (await d.seed(tickets=0))["event_id"]
        async with d.socket() as s:
            await s.join("lagged", for_event("checkout_sessions", event))
            started = time.monotonic()
            status, checkout = await d.checkout(event)
            answered = time.monotonic()
            assert status == 200
            heartbeat_ref = s.next_ref()
            await s.send({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": heartbeat_ref})
            first = await s.frame()
            change = await s.frame()
            arrived = time.monotonic()
        # The heartbeat's answer overtakes the held change: no head-of-line blocking.
        assert (first["event"], first["ref"]) == ("phx_reply", heartbeat_ref)
        assert change["payload"]["data"]["record"]["id"] == checkout["session_id"]
        # The change was published while the write ran (after `started`), so from the
        # write's answer it arrives at least the lag less the write's own measured time.
        assert arrived - answered >= lag_ms / 1000 - (answered - started)
    run(scenario, database_url, faults=Faults(realtime_lag_ms=lag_ms))


def test_realtime_drop_and_lag_via_the_control_endpoint_and_flags(database_url):
    async def scenario(d: Demo) -> None:
        event = (await d.seed(tickets=0))["event_id"]
        async with d.socket() as s:
            await s.join("lossy", for_event("checkout_sessions", event))
            status, doc = await d.faults("PUT", {"realtime_drop_rate": 1.0, "realtime_lag_ms": 20})
            assert status == 200
            assert (doc["realtime_drop_rate"], doc["realtime_lag_ms"]) == (1.0, 20)
            for _ in range(5):
                assert (await d.checkout(event))[0] == 200
            assert await s.flush() == []  # all lost

            status, doc = await d.faults("DELETE")
            assert (status, doc["realtime_drop_rate"], doc["realtime_lag_ms"]) == (200, 0.0, 0)
            sessions = [(await d.checkout(event))[1]["session_id"] for _ in range(5)]
            assert [f["payload"]["data"]["record"]["id"] for f in await s.flush()] == sessions

            await d.faults("PUT", {"realtime_drop_rate": 0.0})
            assert (await d.checkout(event))[0] == 200
            assert len(await s.flush()) == 1

            for bad in ({"realtime_drop_rate": 1.5}, {"realtime_drop_rate": True},
                        {"realtime_lag_ms": -1}, {"realtime_lag_ms": 0.5},
                        {"realtime_lag_ms": 60_001}, {"realtime_lag": 5}):
                status, doc = await d.faults("PUT", bad)
                assert status == 400 and doc["message"], bad
    run(scenario, database_url)

    assert parse_flags(["realtime-lag=250", "realtime-drop=0.5"]) == \
        Faults(realtime_lag_ms=250, realtime_drop_rate=0.5)
    for bad in ("realtime-lag=abc", "realtime-lag=-5", "realtime-drop=1.5", "realtime-drop"):
        assert not isinstance(parse_flags([bad]), Faults), bad


def test_demo_target_cli_rejects_bad_realtime_faults(capsys):
    for bad in (["--fault", "realtime-drop=2"], ["--fault", "realtime-lag=x"]):
        assert loadaction_main(["demo-target", *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "realtime-" in err, err


def test_realtime_drop_at_start_loses_every_delivery():
    async def scenario(d: Demo) -> None:
        event = (await d.seed(tickets=0))["event_id"]
        async with d.socket() as s:
            await s.join("lossy", for_event("checkout_sessions", event))
            for _ in range(3):
                assert (await d.checkout(event))[0] == 200
            assert await s.flush() == []
    run(scenario, faults=Faults(realtime_drop_rate=1.0))


# --- socket lifetime -------------------------------------------------------------------------

def test_a_socket_that_sends_nothing_is_closed_and_heartbeats_keep_one_open():
    idle_s = 1.5

    async def scenario(d: Demo) -> None:
        opened = time.monotonic()  # before the server can start counting
        async with d.socket() as quiet, d.socket() as lively:

            async def heartbeats() -> float:
                """Until the quiet one is closed; returns the longest gap between heartbeats."""
                longest, last = 0.0, time.monotonic()
                while not quiet.ws.closed:
                    assert await lively.flush() == []
                    await asyncio.sleep(idle_s / 15)
                    now = time.monotonic()
                    longest, last = max(longest, now - last), now
                return longest

            async with asyncio.TaskGroup() as group:
                gaps = group.create_task(heartbeats())
                msg = await quiet.closed()
                closed_after = time.monotonic() - opened
            assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1000, "idle timeout")
            assert closed_after >= idle_s - 0.005  # timers may fire a clock tick early
            assert gaps.result() < idle_s  # so the lively socket must still be open:
            assert not lively.ws.closed and await lively.flush() == []
            assert (await d.health())["connections"] == 1
    run(scenario, realtime=RealtimeSettings(idle_timeout_s=idle_s))


def test_stopping_the_target_closes_its_sockets_as_going_away():
    """Closed by the app's on_shutdown with a close frame; without it the
    runner would cancel the handler and the client would see no close code."""
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            async with running_target() as target:
                s = Socket(await session.ws_connect(Demo(session, target).socket_url(
                    apikey=target.keys.anon_key)))
                assert await s.flush() == []
                closing = asyncio.create_task(s.closed())  # reading, as a live client is
            msg = await closing
            assert (msg.type, msg.data, msg.extra) == \
                (aiohttp.WSMsgType.CLOSE, 1001, "server shutting down")
    asyncio.run(main())


def test_a_subscriber_that_stops_reading_is_cut_off_and_the_others_keep_up():
    limit, channels, max_writes = 60, 20, 3000

    async def scenario(d: Demo) -> None:
        event = (await d.seed(tickets=0, inventory=max_writes + 20))["event_id"]
        async with d.socket() as slow, d.socket() as fast:
            for i in range(channels):  # every write: one message per channel to the slow one
                await slow.join(f"c{i}", for_event("checkout_sessions", event))
            await fast.join("fast", for_event("checkout_sessions", event))
            assert (await d.health())["connections"] == 2
            writes = 0
            while (await d.health())["cut_off_too_slow"] == 0:
                assert writes < max_writes, "the slow subscriber was never cut off"
                for _ in range(10):
                    status, checkout = await d.checkout(event)
                    assert status == 200
                    writes += 1
                    frame = await fast.frame()
                    assert frame["payload"]["data"]["record"]["id"] == checkout["session_id"]
            # Cut off at once: the hub holds nothing more for it.
            assert (await d.health())["connections"] == 1
            assert await fast.flush() == []
            status, checkout = await d.checkout(event)
            assert (await fast.frame())["payload"]["data"]["record"]["id"] == checkout["session_id"]

            received = 0
            while (msg := await slow.ws.receive(timeout=RECEIVE_TIMEOUT_S)).type is aiohttp.WSMsgType.TEXT:
                received += 1
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1008)
            assert msg.extra == f"too slow: {limit} messages waiting"
            assert received < (writes + 1) * channels  # it missed what came after the cut
    run(scenario, realtime=RealtimeSettings(outbox_limit=limit, close_grace_s=60.0))
