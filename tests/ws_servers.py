"""WebSocket servers for the engine's tests: real sockets on 127.0.0.1, an
aiohttp app served from a thread with its own loop (like tests/target.py),
so the CLI can run its own event loop in the test's thread.

Routes:
- `/echo` (WS): every text and binary message comes back; pings are answered,
  and the second one is followed by the text `two pings`.
- `/hello?n=N` (WS): N text messages on connect, then like /echo.
- `/phoenix?silent=1` (WS): answers Phoenix heartbeats (`{topic: phoenix,
  event: heartbeat, ref}`) with a `phx_reply` of the same ref, unless silent,
  and after the third sends `{"event": "three_beats"}`; a `phx_join` gets an
  ok reply; `close <code>` makes the server close.
- `/reject` (HTTP): 401 to the upgrade.
- `/updates` (WS): subscribers of the write endpoint; a subscriber says
  `ready` once it has subscribed. `/acks` (WS): where a writer says
  `ack <key>` once it has the write's response (see `/write`).
- `POST /write?...` (HTTP): returns `{"id": key}` and publishes
  `{"event": "change", "record": {"id": key}, "ts": <ISO 8601>}` to every
  subscriber. Knobs: `delay_ms` (publish that long after the writer's `ack`),
  `drop` (`none`, `all` or `every2`: the 2nd, 4th, ... are never published),
  `early=1` (publish first, and answer only once every subscriber has read
  it: a ping after the update, answered with a pong, proves it), `subs=N`
  (answer only once N subscribers said `ready`), `total=N` (once N writes
  were acknowledged and published or dropped, every subscriber gets
  `{"done": true}`, or with `close_on_done=1` is closed with 1001), `skew_s`
  (the timestamp is that many seconds off). Writers acknowledge every write.
- `GET /ok` (HTTP): 200.
`stats` counts what the server saw, for exact assertions.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class Stats:
    handshakes: list[dict[str, Any]] = field(default_factory=list)
    received: collections.Counter[str] = field(default_factory=collections.Counter)
    messages: list[tuple[str, Any]] = field(default_factory=list)  # (path, data)
    writes: int = 0
    published: int = 0


class UpdatesHub:
    """The subscribers of /updates and what the write endpoint publishes to them."""

    def __init__(self) -> None:
        self.subscribers: set[web.WebSocketResponse] = set()
        self.ready = 0
        self.ready_changed = asyncio.Condition()
        self.pongs: dict[web.WebSocketResponse, asyncio.Event] = {}
        self.pending_acks: dict[str, tuple[float, bool]] = {}
        self.settled = 0  # writes published or dropped
        self.acked = 0
        self.total: int | None = None
        self.close_on_done = False
        self.tasks: set[asyncio.Task[None]] = set()

    async def publish(self, key: str, drop: bool, skew_s: float, stats: Stats,
                      after: float = 0.0) -> None:
        await asyncio.sleep(after)
        if not drop:
            stamp = (datetime.now(UTC) + timedelta(seconds=skew_s)).isoformat()
            message = {"event": "change", "record": {"id": key}, "ts": stamp}
            for ws in list(self.subscribers):
                await ws.send_json(message)
            stats.published += 1
        self.settled += 1
        await self.maybe_done()

    async def acknowledged(self) -> None:
        self.acked += 1
        await self.maybe_done()

    async def maybe_done(self) -> None:
        """Every write was answered, acknowledged (so the writer has counted
        its response) and published or dropped: subscribers may go."""
        if self.total is not None and self.settled == self.acked == self.total:
            for ws in list(self.subscribers):
                if self.close_on_done:
                    await ws.close(code=1001, message=b"going away")
                else:
                    await ws.send_json({"done": True})

    async def barrier(self) -> None:
        """Every subscriber has read what was sent before: a ping behind it came back."""
        waits = []
        for ws in list(self.subscribers):
            event = self.pongs[ws] = asyncio.Event()
            await ws.ping(b"barrier")
            waits.append(event.wait())
        await asyncio.wait_for(asyncio.gather(*waits), 10)


def make_app(stats: Stats) -> web.Application:
    app = web.Application()
    hub = UpdatesHub()

    def handshake(request: web.Request, ws: web.WebSocketResponse) -> None:
        stats.handshakes.append({"path": request.path, "query": dict(request.query),
                                 "headers": dict(request.headers), "protocol": ws.ws_protocol})

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("phoenix", "echo"), autoping=False)
        await ws.prepare(request)
        handshake(request, ws)
        pings = 0
        for i in range(int(request.query.get("n", "0"))):
            await ws.send_str(f"hello {i}")
        async for msg in ws:
            if msg.type is WSMsgType.PING:
                await ws.pong(msg.data)
                pings += 1
                if pings == 2:
                    await ws.send_str("two pings")
                continue
            stats.received[request.path] += 1
            stats.messages.append((request.path, msg.data))
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def phoenix(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        handshake(request, ws)
        silent = request.query.get("silent") == "1"
        beats = 0
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            stats.received[request.path] += 1
            if msg.data.startswith("close "):
                await ws.close(code=int(msg.data.split()[1]), message=b"asked to")
                break
            envelope = msg.json()
            stats.messages.append((request.path, envelope))
            if envelope.get("event") == "heartbeat":
                beats += 1
                if not silent:
                    await ws.send_json({"topic": "phoenix", "event": "phx_reply",
                                        "ref": envelope["ref"],
                                        "payload": {"status": "ok", "response": {}}})
                if beats == 3:
                    await ws.send_json({"event": "three_beats"})
            elif envelope.get("event") == "phx_join":
                await ws.send_json({"topic": envelope["topic"], "event": "phx_reply",
                                    "ref": envelope["ref"], "join_ref": envelope.get("join_ref"),
                                    "payload": {"status": "ok", "response": {}}})
        return ws

    async def reject(request: web.Request) -> web.Response:
        return web.json_response({"message": "no api key"}, status=401)

    async def updates(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        handshake(request, ws)
        if request.path == "/updates":
            hub.subscribers.add(ws)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.PONG:
                    event = hub.pongs.pop(ws, None)
                    if event is not None:
                        event.set()
                elif msg.type is WSMsgType.TEXT:
                    stats.received[request.path] += 1
                    if msg.data == "ready":
                        async with hub.ready_changed:
                            hub.ready += 1
                            hub.ready_changed.notify_all()
                    elif msg.data.startswith("ack "):
                        key = msg.data.split()[1]
                        delayed = hub.pending_acks.pop(key, None)
                        if delayed is not None:
                            task = asyncio.get_running_loop().create_task(
                                hub.publish(key, delayed[1], 0.0, stats, after=delayed[0]))
                            hub.tasks.add(task)
                            task.add_done_callback(hub.tasks.discard)
                        await hub.acknowledged()
        finally:
            hub.subscribers.discard(ws)
        return ws

    async def write(request: web.Request) -> web.StreamResponse:
        query = request.query
        hub.total = int(query["total"]) if "total" in query else None
        hub.close_on_done = query.get("close_on_done") == "1"
        subs = int(query.get("subs", "0"))
        async with hub.ready_changed:
            await asyncio.wait_for(hub.ready_changed.wait_for(lambda: hub.ready >= subs), 10)
        stats.writes += 1
        n = stats.writes
        key = f"key-{n}"
        mode = query.get("drop", "none")
        drop = mode == "all" or (mode == "every2" and n % 2 == 0)
        skew = float(query.get("skew_s", "0"))
        delay = int(query.get("delay_ms", "0")) / 1000
        if query.get("early") == "1":
            await hub.publish(key, drop, skew, stats)
            await hub.barrier()
            return web.json_response({"id": key})
        if delay:
            hub.pending_acks[key] = (delay, drop)  # published `delay` after the writer's ack
            return web.json_response({"id": key})
        response = web.json_response({"id": key})
        await response.prepare(request)
        await response.write_eof()
        await hub.publish(key, drop, skew, stats)  # right after the answer is out
        return response

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/echo", echo)
    app.router.add_get("/hello", echo)
    app.router.add_get("/phoenix", phoenix)
    app.router.add_get("/reject", reject)
    app.router.add_get("/updates", updates)
    app.router.add_get("/acks", updates)
    app.router.add_post("/write", write)
    app.router.add_get("/ok", ok)
    return app


class WsServer:
    def __init__(self) -> None:
        self.stats = Stats()
        self.app = make_app(self.stats)
        self.url = ""
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> WsServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextmanager
def serve() -> Iterator[WsServer]:
    server = WsServer().start()
    try:
        yield server
    finally:
        server.stop()


def sinks(doc: dict[str, Any], metric: str, **tags: str) -> list[dict[str, Any]]:
    """The results' sinks of `metric` whose tags include `tags`."""
    entries = doc["metrics"].get(metric, {"by_tags": []})["by_tags"]
    return [entry["sink"] for entry in entries
            if all(entry["tags"].get(key) == value for key, value in tags.items())]


def count(doc: dict[str, Any], metric: str, **tags: str) -> float:
    """A counter's total (a trend's sample count) over the matching tag sets."""
    return sum(sink["count"] for sink in sinks(doc, metric, **tags))
