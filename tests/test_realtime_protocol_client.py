"""The client half of the realtime protocol test: loadaction runs the bundled
dashboard flow's realtime part against a server that plays Supabase
Realtime's side from tests/fixtures/realtime/ (frames in the shapes of
supabase/realtime's own tests), substituting only topics, the table (a
fixture's `vary` allows it), ids, refs and timestamps. The demo target's half
is tests/test_demo_realtime.py.

The `websocket` step is read from scenarios/dashboard-load.yml
(tests/dashboard_realtime.py) with one change: a heartbeat every 200 ms
instead of 25 s, so several come and go in a second (the 25 s heartbeat is
tests/test_realtime_session_lifetime.py's, against the demo target). The
writes are the bundled writer flow's request, made by the viewer itself
after it subscribed: its response has reached the run's matcher before the
flow goes on, so every change has an expectation waiting for it however busy
the machine is. Nothing waits on a clock: the server ends the session (a
tickets UPDATE the flow waits for) once it has published every write's
change and answered two heartbeats.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from tests.dashboard_realtime import realtime_step, writer_flow
from tests.target import Target
from tests.test_demo_realtime import fixture, shape_problems
from tests.ws_servers import count

SERVICE_KEY = "service-role-key-of-the-protocol-test"
EVENT_ID = "evt-protocol"
TICKET_ID = "ticket-protocol"
WRITES = 3
BEATS = 2  # heartbeats the server answers before it ends the session
HEARTBEAT_EVERY = "200ms"
FIRST_SUBSCRIPTION_ID = 108210364  # join.json's
TOPIC_PREFIX = "realtime:"
SUBSCRIBED_CHECK = "json $.payload.status == ok"  # the bundled on_open's check

# A subscription Realtime cannot serve: join.json's system message with status
# "error" and the message supabase/realtime test/integration/rt_channel_test.exs
# "error subscribing" receives (realtime_channel.ex: push_system_message(
# "postgres_changes", socket, "error", error, channel_name)).
UNSERVED_MESSAGE = ('{:error, "Unable to subscribe to changes with given parameters. Please check '
                    'Realtime is enabled for the given connect parameters: '
                    '[event: INSERT, schema: public]"}')


def _commit_timestamp() -> str:
    """The fixtures' format: 2025-10-13T07:50:28.066Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Channel:
    """A joined topic: its socket, and the id the reply gave each subscription."""

    def __init__(self, ws: web.WebSocketResponse, topic: str,
                 subscriptions: list[dict[str, Any]]) -> None:
        self.ws = ws
        self.topic = topic
        self.ids = {(s.get("event"), s.get("table")): FIRST_SUBSCRIPTION_ID + i
                    for i, s in enumerate(subscriptions)}


class FixtureRealtime:
    """Realtime's side, from the fixtures: join reply and system message,
    heartbeat replies, and a postgres_changes INSERT per checkout. It runs
    on the target's loop; the test reads what it recorded after the run."""

    def __init__(self, system_status: str = "ok") -> None:
        self.system_status = system_status
        self.handshakes: list[dict[str, str]] = []
        self.joins: list[dict[str, Any]] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.others: list[dict[str, Any]] = []
        self.answered = 0
        self.published: list[str] = []  # the record ids of the INSERTs, decoy first
        self.ended = False
        self._channel: Channel | None = None

    def install(self, app: web.Application) -> None:
        app.router.add_get("/realtime/v1/websocket", self._socket)
        app.router.add_post("/functions/v1/create-checkout-session", self._checkout)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        self.handshakes.append(dict(request.query))
        if request.query.get("apikey") != SERVICE_KEY or request.query.get("vsn") != "1.0.0":
            return web.json_response({"message": "Invalid API key"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame.get("event") == "phx_join":
                await self._join(ws, frame)
            elif (frame.get("topic"), frame.get("event")) == ("phoenix", "heartbeat"):
                await self._heartbeat(ws, frame)
            else:
                self.others.append(frame)
        return ws

    async def _join(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        self.joins.append(frame)
        reply, system = copy.deepcopy(fixture("join")["server"])
        subscriptions = frame["payload"]["config"]["postgres_changes"]
        channel = self._channel = Channel(ws, frame["topic"], subscriptions)
        reply["topic"] = system["topic"] = channel.topic
        reply["ref"] = frame["ref"]
        # the subscriptions as sent, each with its id (realtime_channel.ex add_id_to_postgres_changes)
        reply["payload"]["response"]["postgres_changes"] = [
            {**s, "id": channel.ids[(s.get("event"), s.get("table"))]} for s in subscriptions]
        system["payload"]["channel"] = channel.topic.removeprefix(TOPIC_PREFIX)
        if self.system_status == "error":
            system["payload"].update(status="error", message=UNSERVED_MESSAGE)
        await ws.send_json(reply)
        await ws.send_json(system)

    async def _heartbeat(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        self.heartbeats.append(frame)
        [reply] = copy.deepcopy(fixture("heartbeat")["server"])
        reply["ref"] = frame["ref"]
        await ws.send_json(reply)
        self.answered += 1
        await self._maybe_end()

    async def _checkout(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        assert body["event_id"] == EVENT_ID, body
        if not self.published:  # someone else's checkout first: its id is no write's key
            await self._publish("postgres_changes_insert", "checkout_sessions", "cs_test_decoy")
        session_id = f"cs_test_{uuid.uuid4().hex}"
        response = web.json_response({"session_id": session_id,
                                      "url": f"https://checkout.stripe.com/c/pay/{session_id}"})
        await response.prepare(request)
        await response.write_eof()  # committed and answered, then published
        await self._publish("postgres_changes_insert", "checkout_sessions", session_id)
        await self._maybe_end()
        return response

    async def _publish(self, name: str, table: str, row_id: str) -> None:
        channel = self._channel
        assert channel is not None, "a change before any join"
        [frame] = copy.deepcopy(fixture(name)["server"])
        data = frame["payload"]["data"]
        frame["topic"] = channel.topic
        frame["payload"]["ids"] = [channel.ids[(data["type"], table)]]
        data["table"] = table
        data["record"]["id"] = row_id
        if "old_record" in data:
            data["old_record"]["id"] = row_id
        data["commit_timestamp"] = _commit_timestamp()
        await channel.ws.send_json(frame)
        if data["type"] == "INSERT":
            self.published.append(row_id)

    async def _maybe_end(self) -> None:
        """Every write's change is out and two heartbeats were answered: a
        ticket's UPDATE, which the flow waits for, lets it end."""
        if not self.ended and len(self.published) == 1 + WRITES and self.answered >= BEATS:
            self.ended = True
            await self._publish("postgres_changes_update", "tickets", TICKET_ID)


@pytest.fixture
def realtime(request: pytest.FixtureRequest,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FixtureRealtime, str]]:
    """The fixture server on a target of its own; the bundled step's secret set."""
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY)
    script = FixtureRealtime(getattr(request, "param", "ok"))
    target = Target()
    script.install(target.app)
    target.start()
    try:
        yield script, target.url
    finally:
        target.stop()


def viewer_plan(url: str, *, writes: int) -> str:
    """JSON is YAML: the bundled step and writer steps go in as read."""
    step = realtime_step()
    step["heartbeat"]["every"] = HEARTBEAT_EVERY
    steps: list[dict[str, Any]] = [{"websocket": step}]
    if writes:
        steps += [
            {"ws_subscribe": {"name": "scans",
                              "where": {"$.event": "postgres_changes",
                                        "$.payload.data.table": "tickets"},
                              "steps": [{"check": {"name": "scan", "json": {
                                  "$.payload.data.type": "UPDATE",
                                  "$.payload.data.old_record.id": TICKET_ID}}}]}},
            *[s for _ in range(writes) for s in writer_flow()],
            {"ws_receive": {"name": "ended", "until": {"$.payload.data.table": "tickets"},
                            "timeout": "30s"}},
        ]
    return json.dumps({
        "target": url,
        "secrets": ["SUPABASE_SERVICE_ROLE_KEY"],
        "vars": {"event_id": EVENT_ID},
        "thresholds": {"checks": ["rate==1"]},
        "scenarios": {"viewer": {"executor": "per-vu-iterations", "exec": "viewer"}},
        # the bundled step's `updates.write` names the writer flow's request
        "flows": {"viewer": steps, "writer": writer_flow()},
    }, indent=1)


def write_plan_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yml"
    path.write_text(text, encoding="utf-8")
    return path


def checks_of(doc: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {c["name"]: (c["passes"], c["fails"]) for c in doc["checks"]}


def test_the_bundled_flow_speaks_the_protocol_of_the_fixtures(realtime, tmp_path, run_plan):
    server, url = realtime
    code, doc = run_plan(write_plan_file(tmp_path, viewer_plan(url, writes=WRITES)))
    assert doc["errors"] == [] and code == 0, doc["errors"]

    # The handshake as realtime-js makes it: the key in the query, vsn 1.0.0.
    [query] = server.handshakes
    assert query == {"apikey": SERVICE_KEY, "vsn": "1.0.0"}

    # The join has the fixture's shape: the same keys, a realtime: topic,
    # postgres_changes entries with at least the fixture's keys, digit refs.
    [join] = server.joins
    theirs = fixture("join")["client"][0]
    assert set(join) == set(theirs)
    assert join["event"] == theirs["event"] == "phx_join"
    assert join["topic"].startswith(TOPIC_PREFIX) and len(join["topic"]) > len(TOPIC_PREFIX)
    assert set(join["payload"]) == set(theirs["payload"])
    assert set(join["payload"]["config"]) == set(theirs["payload"]["config"])
    [their_entry] = theirs["payload"]["config"]["postgres_changes"]
    entries = join["payload"]["config"]["postgres_changes"]
    assert entries
    for entry in entries:
        assert set(their_entry) <= set(entry), entry
        assert entry["event"] in ("INSERT", "UPDATE", "DELETE", "*") and entry["schema"] == "public"
        assert all(isinstance(value, str) for value in entry.values()), entry
        assert re.fullmatch(r"\w+=(eq|neq|in)\..+", entry.get("filter", "id=eq.1")), entry
    # the subscription the writes' changes come on
    assert ("INSERT", "checkout_sessions") in {(e["event"], e.get("table")) for e in entries}
    assert re.fullmatch(r"\d+", join["ref"]) and join["join_ref"] == join["ref"]

    # `subscribed` took the fixture's system message and its check passed.
    checks = checks_of(doc)
    assert checks[SUBSCRIBED_CHECK] == (1, 0)
    assert [t["verdict"] for t in doc["thresholds"]] == ["pass"]

    # Heartbeats have the fixture's shape, each with a ref of its own, and the
    # replies (the fixture's, under the same ref) were matched to them.
    [their_beat] = fixture("heartbeat")["client"]
    for beat in server.heartbeats:
        assert not shape_problems(beat, their_beat, "heartbeat", {"vary": ["heartbeat.ref"]}), beat
    refs = [beat["ref"] for beat in server.heartbeats]
    assert all(re.fullmatch(r"\d+", ref) for ref in refs)
    assert len(set(refs)) == len(refs) and join["ref"] not in refs
    replies = count(doc, "ws_heartbeat_duration", name="realtime")
    # the first BEATS were answered before the end; one more may have been on its way
    assert BEATS <= replies <= server.answered
    assert count(doc, "ws_errors", error="heartbeat") == 0
    assert server.others == []  # nothing but the join and heartbeats was sent

    # Each write's change (record.id == its session_id) was an update with a
    # latency; the decoy, whose id no write returned, was not.
    assert len(server.published) == 1 + WRITES and server.published[0] == "cs_test_decoy"
    tags = {"scenario": "viewer", "name": "sales", "write": "dashboard_sale"}
    assert count(doc, "realtime_update_latency", **tags) == WRITES
    assert count(doc, "realtime_updates_missed", **tags) == 0
    # The UPDATE's shape reached the flow's own subscription and its check.
    assert checks["scan: json $.payload.data.type == UPDATE"] == (1, 0)
    assert checks[f"scan: json $.payload.data.old_record.id == {TICKET_ID}"] == (1, 0)
    assert checks["status == 200"] == (WRITES, 0)

    assert count(doc, "ws_errors") == 0
    assert count(doc, "ws_sessions", status="101") == count(doc, "ws_session_duration") == 1


@pytest.mark.parametrize("realtime", ["error"], indirect=True)
def test_a_subscription_realtime_cannot_serve_fails_the_subscribed_check(realtime, tmp_path,
                                                                           run_plan):
    server, url = realtime
    code, doc = run_plan(write_plan_file(tmp_path, viewer_plan(url, writes=0)))
    assert code == 99, doc["errors"]
    assert len(server.joins) == 1
    assert checks_of(doc)[SUBSCRIBED_CHECK] == (0, 1)
    [threshold] = doc["thresholds"]
    assert (threshold["metric"], threshold["verdict"]) == ("checks", "fail")
    assert doc["metrics"]["checks"]["total"]["rate"] < 1
    # the session itself was fine: joined, then closed with the VU
    assert count(doc, "ws_errors") == 0
    assert count(doc, "ws_session_duration") == 1
