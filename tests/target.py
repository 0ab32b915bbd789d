"""A small aiohttp target for the engine's tests: real sockets on 127.0.0.1.

Each endpoint is built to hold or to break a budget: `/slow` breaks latency
budgets, `/every` fails one request in N, `/json` feeds checks and extracts.
`hits` counts requests per path so tests can assert exact request counts.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web


HITS = web.AppKey("hits", collections.Counter)
SCANS = web.AppKey("scans", set)


def make_app() -> web.Application:
    app = web.Application()
    hits: collections.Counter[str] = collections.Counter()
    app[HITS] = hits
    app[SCANS] = set()

    @web.middleware
    async def count(request: web.Request, handler):  # type: ignore[no-untyped-def]
        hits[request.path] += 1
        return await handler(request)

    app.middlewares.append(count)

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(int(request.query.get("ms", "100")) / 1000)
        return web.Response(text="slow")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status")

    async def every(request: web.Request) -> web.Response:
        n = int(request.query.get("n", "10"))
        return web.Response(status=500 if hits[request.path] % n == 0 else 200, text="every")

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({
            "method": request.method, "query": dict(request.query),
            "headers": dict(request.headers), "body": body.decode(),
        })

    async def json_doc(request: web.Request) -> web.Response:
        return web.json_response({"result": request.query.get("result", "valid"), "id": 7,
                                  "items": [{"name": "a"}, {"name": "b"}]})

    async def scan(request: web.Request) -> web.Response:
        """First scan of a ticket is valid, later ones are already_scanned."""
        ticket = (await request.json())["ticket"]
        if request.query.get("racy"):  # a deliberately non-atomic check-then-set
            seen = ticket in app[SCANS]
            await asyncio.sleep(0.05)
            app[SCANS].add(ticket)
            return web.json_response({"result": "already_scanned" if seen else "valid"})
        if ticket in app[SCANS]:
            return web.json_response({"result": "already_scanned"})
        app[SCANS].add(ticket)
        return web.json_response({"result": "valid"})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"x" * 65536
        for _ in range(int(request.query.get("chunks", "64"))):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def hits_view(request: web.Request) -> web.Response:
        return web.json_response(dict(hits))

    app.router.add_route("*", "/ok", ok)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/every", every)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/json", json_doc)
    app.router.add_post("/scan", scan)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/big", big)
    app.router.add_get("/_hits", hits_view)
    return app


class Target:
    """The app served from a thread with its own loop, so tests can call the
    CLI (which runs its own event loop) in the test's thread."""

    def __init__(self) -> None:
        self.app = make_app()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def hits(self) -> collections.Counter[str]:
        return self.app[HITS]

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> Target:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextmanager
def serve() -> Iterator[Target]:
    target = Target().start()
    try:
        yield target
    finally:
        target.stop()


if __name__ == "__main__":  # by hand: print the URL, serve until killed
    t = Target().start()
    print(t.url, flush=True)
    import time
    while True:
        time.sleep(3600)
