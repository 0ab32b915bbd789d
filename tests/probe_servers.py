"""A target with a Prometheus /metrics endpoint whose values a test sets
(a prometheus_client CollectorRegistry behind `generate_latest`), over real
sockets on 127.0.0.1. `mode` breaks it on purpose: a 500, garbage, text
with none of the series a probe asks for, or an answer too slow; `stop()` kills it mid-run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class MetricsTarget:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.memory = Gauge("process_resident_memory_bytes", "rss", registry=self.registry)
        self.pool = Gauge("demo_db_pool_in_use", "in use", ["pool"], registry=self.registry)
        self.requests = Counter("demo_http_requests", "requests", ["status"],
                                registry=self.registry)
        self.mode = "ok"
        # called at each scrape, before the exposition text is made: sets values
        self.on_scrape: Callable[[float], None] | None = None
        self.scrapes: list[float] = []  # monotonic time of each scrape
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()

        async def ok(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def metrics(request: web.Request) -> web.Response:
            now = time.monotonic()
            self.scrapes.append(now)
            if self.mode == "slow":  # longer than any probe timeout the tests set
                await asyncio.sleep(2)
            if self.mode == "500":
                return web.Response(status=500, text="boom")
            if self.mode == "garbage":
                return web.Response(text="<html>not metrics</html>\n")
            if self.mode == "none":
                return web.Response(text="other_metric 1\n")
            if self.mode == "nan":
                return web.Response(text="process_resident_memory_bytes NaN\n")
            if self.on_scrape is not None:
                self.on_scrape(now)
            return web.Response(body=generate_latest(self.registry),
                                content_type="text/plain")

        app.router.add_get("/ok", ok)
        app.router.add_get("/metrics", metrics)
        return app

    def stop(self) -> None:
        """The target dies: the listening socket closes; later scrapes are refused."""
        assert self._loop is not None and self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)


@contextmanager
def serve_metrics() -> Iterator[MetricsTarget]:
    target = MetricsTarget()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def start() -> None:
        runner = web.AppRunner(target.app(), shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        target.url, target._runner, target._loop = f"http://127.0.0.1:{port}", runner, loop
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield target
    finally:
        async def stop() -> None:
            if target._runner is not None:
                await target._runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
