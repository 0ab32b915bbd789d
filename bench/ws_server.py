#!/usr/bin/env python3
"""The WebSocket benchmark's server: Phoenix-style joins and a timed broadcast.

bench/websocket.py starts one of these per client run, in its own process on
its own CPU, so every client meets the same fresh server and its cost is never
billed to the client. It can also be started by hand to run a client against it:

    python bench/ws_server.py --port 8765 --subscribers 1000 --rate 2 --duration 30
    loadaction run bench/ws-plan.yml --target http://127.0.0.1:8765

It speaks just enough of Phoenix Channels (Supabase Realtime's wire protocol)
for a client to behave as it would against the real thing: a `phx_join`
on a topic gets a `phx_reply` with status ok, a `heartbeat` on topic `phoenix`
gets a `phx_reply` with the same ref, and joined connections receive
`postgres_changes` events shaped like Supabase's.

The broadcast waits until `--subscribers` connections have joined (or
`--join-wait` seconds after the first one connected), so every client run
gets the same number of messages however long its connecting took; then it
sends `--rate` messages a second to every joined connection for `--duration`
seconds, on a fixed schedule (a late tick is sent at once, and the lag is
reported), and, after a quiet second, a `bench_done` event, on which the
clients close.
`GET /stats` tells the harness what was sent, to whom and when: its counts
are what the clients' own counts are checked against, and its times (on the
machine's CLOCK_MONOTONIC, shared by all processes) delimit the broadcast
phase, whose client CPU the harness measures apart from start-up and connecting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import resource
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

WS_PATH = "/realtime/v1/websocket"
TOPIC = "realtime:public:tickets"
DONE_EVENT = "bench_done"
QUIET_TAIL_S = 1.0


@dataclass(frozen=True)
class Schedule:
    subscribers: int  # joined connections the broadcast waits for
    rate: float  # messages per second to each connection
    duration_s: float
    join_wait_s: float  # the longest the broadcast waits after the first connection

    @property
    def ticks(self) -> int:
        return round(self.rate * self.duration_s)


@dataclass
class Connection:
    """One client connection's account, kept after it closed."""

    ws: web.WebSocketResponse
    joined: bool = False
    finished: bool = False  # sent bench_done: nothing more goes to it, so its count is final
    frames_sent: int = 0  # every frame the server sent it: replies, changes, done
    changes_sent: int = 0
    heartbeats: int = 0
    heartbeat_replies: int = 0
    received: int = 0


@dataclass
class Broadcast:
    """The run's state; one per server process, owned by the app."""

    schedule: Schedule
    connections: list[Connection] = field(default_factory=list)
    open: int = 0
    peak_open: int = 0
    joined: int = 0
    send_errors: int = 0
    max_lag_ms: float = 0.0
    first_connect: float | None = None
    broadcast_start: float | None = None
    broadcast_end: float | None = None
    joined_at_start: int = 0
    frames_at_start: int = 0  # frames sent by broadcast_start and by broadcast_end: the phase's messages
    frames_at_end: int = 0
    done: bool = False
    all_joined: asyncio.Event = field(default_factory=asyncio.Event)
    first_connected: asyncio.Event = field(default_factory=asyncio.Event)

    def frames_sent(self) -> int:
        return sum(c.frames_sent for c in self.connections)

    def stats(self) -> dict[str, object]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "connections": len(self.connections),
            "open": self.open,
            "peak_open": self.peak_open,
            "joined": self.joined,
            "joined_at_start": self.joined_at_start,
            "ticks": self.schedule.ticks,
            "frames_sent": self.frames_sent(),
            "frames_at_start": self.frames_at_start,
            "frames_at_end": self.frames_at_end,
            "changes_sent": sum(c.changes_sent for c in self.connections),
            "heartbeats": sum(c.heartbeats for c in self.connections),
            "heartbeat_replies": sum(c.heartbeat_replies for c in self.connections),
            "frames_received": sum(c.received for c in self.connections),
            "send_errors": self.send_errors,
            "max_lag_ms": round(self.max_lag_ms, 1),
            "first_connect": self.first_connect,
            "broadcast_start": self.broadcast_start,
            "broadcast_end": self.broadcast_end,
            "done": self.done,
            "server_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        }


async def send(state: Broadcast, conn: Connection, text: str) -> bool:
    """Send one frame and count it; a connection gone meanwhile is not an error
    of the server's, only a frame the client did not get (the harness reports it)."""
    if conn.ws.closed or conn.finished:
        return False
    try:
        await conn.ws.send_str(text)
    except (ConnectionError, RuntimeError):
        state.send_errors += 1
        return False
    conn.frames_sent += 1
    return True


def reply(ref: object, topic: str, response: dict[str, object]) -> str:
    return json.dumps({"topic": topic, "event": "phx_reply", "ref": ref,
                       "payload": {"status": "ok", "response": response}})


def change(tick: int) -> str:
    """A Supabase postgres_changes INSERT on a tickets table (about 500 bytes)."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record = {"id": tick, "event_id": 42, "status": "sold", "seat": f"A-{tick % 500}",
              "price_cents": 4500, "email": f"buyer{tick}@example.com", "updated_at": now}
    return json.dumps({
        "topic": TOPIC, "event": "postgres_changes", "ref": None,
        "payload": {"ids": [7], "data": {
            "schema": "public", "table": "tickets", "commit_timestamp": now, "type": "INSERT",
            "errors": None, "record": record,
            "columns": [{"name": k, "type": "int8" if isinstance(v, int) else "text"}
                        for k, v in record.items()],
        }},
    })


async def finish(state: Broadcast, conn: Connection) -> None:
    """Send bench_done, the client's cue to close, and nothing after it: a
    reply to a heartbeat that crossed it would reach a closing client and
    look like a lost message."""
    text = json.dumps({"topic": TOPIC, "event": DONE_EVENT, "ref": None,
                       "payload": {"ticks": state.schedule.ticks}})
    await send(state, conn, text)
    conn.finished = True


async def handle(request: web.Request) -> web.WebSocketResponse:
    state: Broadcast = request.app[STATE]
    ws = web.WebSocketResponse(protocols=("phoenix",), autoping=True, max_msg_size=1 << 20)
    await ws.prepare(request)
    conn = Connection(ws)
    state.connections.append(conn)
    state.open += 1
    state.peak_open = max(state.peak_open, state.open)
    if state.first_connect is None:
        state.first_connect = time.monotonic()
        state.first_connected.set()
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            conn.received += 1
            try:
                frame = json.loads(msg.data)
                event, topic, ref = frame["event"], frame["topic"], frame.get("ref")
            except (ValueError, KeyError, TypeError):
                continue
            if event == "heartbeat":
                conn.heartbeats += 1
                conn.heartbeat_replies += await send(state, conn, reply(ref, "phoenix", {}))
            elif event == "phx_join":
                await send(state, conn, reply(ref, topic, {"postgres_changes": [
                    {"id": 7, "event": "*", "schema": "public", "table": "tickets"}]}))
                if not conn.joined:
                    conn.joined = True
                    state.joined += 1
                    if state.joined >= state.schedule.subscribers:
                        state.all_joined.set()
                    if state.done:  # a latecomer: nothing more is coming, let it go
                        await finish(state, conn)
            elif event == "phx_leave":
                await send(state, conn, reply(ref, topic, {}))
    finally:
        state.open -= 1
    return ws


async def broadcast(state: Broadcast) -> None:
    s = state.schedule
    await state.first_connected.wait()
    try:
        await asyncio.wait_for(state.all_joined.wait(), s.join_wait_s)
    except TimeoutError:
        pass  # go on with whoever joined; the stats say how many
    loop = asyncio.get_running_loop()
    state.broadcast_start = time.monotonic()
    state.joined_at_start = state.joined
    state.frames_at_start = state.frames_sent()
    start = loop.time()
    for tick in range(s.ticks):
        due = start + tick / s.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            state.max_lag_ms = max(state.max_lag_ms, -delay * 1000)
        text = change(tick)
        joined = [c for c in state.connections if c.joined and not c.ws.closed]
        sent = await asyncio.gather(*(send(state, c, text) for c in joined))
        for conn, ok in zip(joined, sent, strict=True):
            conn.changes_sent += ok
    # The last tick's messages take one interval to "play", as every other tick's did.
    await asyncio.sleep(max(0.0, start + s.ticks / s.rate - loop.time()))
    state.broadcast_end = time.monotonic()
    state.frames_at_end = state.frames_sent()
    # A quiet second before the clients are let go: the harness samples their CPU
    # every 50 ms, and needs samples after broadcast_end to cut the phase there.
    await asyncio.sleep(QUIET_TAIL_S)
    state.done = True
    await asyncio.gather(*(finish(state, c) for c in state.connections if c.joined))


STATE = web.AppKey("state", Broadcast)


def build_app(schedule: Schedule) -> web.Application:
    app = web.Application()
    app[STATE] = Broadcast(schedule)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(request.app[STATE].stats())

    async def run_broadcast(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(broadcast(app[STATE]))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.router.add_get(WS_PATH, handle)
    app.router.add_get("/stats", stats)
    app.cleanup_ctx.append(run_broadcast)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--subscribers", type=int, default=1000, help="joins the broadcast waits for (1000)")
    p.add_argument("--rate", type=float, default=2.0, help="messages per second per connection (2)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of broadcast (30)")
    p.add_argument("--join-wait", type=float, default=120.0,
                   help="longest wait for all joins after the first connection (120)")
    a = p.parse_args()
    schedule = Schedule(a.subscribers, a.rate, a.duration, a.join_wait)
    # A deep accept queue: 1,000 clients connect within milliseconds of each other.
    web.run_app(build_app(schedule), host=a.host, port=a.port, access_log=None, print=None,
                backlog=4096)


if __name__ == "__main__":
    main()
