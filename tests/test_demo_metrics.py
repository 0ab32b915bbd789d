"""The demo target's /metrics and its leak and pool faults, over real sockets
on 127.0.0.1: SQLite always, PostgreSQL when LOADACTION_TEST_DATABASE_URL is
set (never skipped in CI)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadaction.demo import DemoTarget, Faults, running_target
from loadaction.demo.auth import DemoKeys
from loadaction.demo.child import child_target
from loadaction.demo.faults import Leak, parse_flags, parse_update
from loadaction.demo.pool import DEFAULT_POOL_SIZE, Pool, PoolExhausted

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Demo:
    def __init__(self, session: aiohttp.ClientSession, target: DemoTarget) -> None:
        self.session, self.target = session, target
        self.service = {"apikey": target.keys.service_role_key}

    async def call(self, method: str, path: str, body: Any = None,
                   key: bool = True) -> tuple[int, Any]:
        async with self.session.request(
                method, self.target.url + path, headers=self.service if key else {},
                data=None if body is None else json.dumps(body)) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    async def scrape(self) -> Samples:
        async with self.session.get(self.target.url + "/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=")
            text = await resp.text()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@asynccontextmanager
async def demo(database_url: str | None = None, faults: Faults = Faults(),
               **kwargs: Any) -> AsyncIterator[Demo]:
    async with running_target(database_url=database_url, faults=faults, **kwargs) as target, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield Demo(session, target)  # no connection limit: a scrape never queues behind a burst


def test_metrics_parse_and_move_with_requests() -> None:
    async def main() -> None:
        async with demo() as d:
            before = await d.scrape()
            assert value(before, "process_resident_memory_bytes") > 0
            assert value(before, "demo_db_pool_size") == DEFAULT_POOL_SIZE
            assert value(before, "demo_db_pool_in_use") == 0
            for _ in range(3):
                assert (await d.call("GET", "/rest/v1/events"))[0] == 200
            assert (await d.call("GET", "/rest/v1/events", key=False))[0] == 401
            assert (await d.call("GET", "/no/such/route"))[0] == 404
            status, seeded = await d.call("POST", "/test-data/events", {"tickets": 1})
            assert status == 201
            assert (await d.call("GET", f"/test-data/events/{seeded['event_id']}/stats"))[0] == 200
            after = await d.scrape()
            ok = {"route": "/rest/v1/events", "method": "GET"}
            assert value(after, "demo_http_requests_total", **ok, status="200") == 3
            assert value(after, "demo_http_requests_total", **ok, status="401") == 1
            assert value(after, "demo_http_requests_total", route="unmatched", method="GET",
                         status="404") == 1
            # routes by pattern, never by raw path
            assert value(after, "demo_http_requests_total", route="/test-data/events/{event_id}/stats",
                         method="GET", status="200") == 1
            assert value(after, "demo_http_request_duration_seconds_count",
                         route="/rest/v1/events") == 4
            # scraping is not counted: two scrapes and no /metrics series
            assert not any(labels and dict(labels).get("route") == "/metrics"
                           for _, labels in after)
            # the requests above never overlapped: the pool was never more than one slot full
            assert value(after, "demo_db_pool_saturation") == 1 / DEFAULT_POOL_SIZE
            assert value(await d.scrape(), "demo_db_pool_saturation") == 0  # nothing since
            assert value(after, "demo_db_pool_waits_total") == 0
    asyncio.run(main())


def test_realtime_gauges_count_sockets_channels_and_bindings() -> None:
    async def main() -> None:
        async with demo() as d:
            url = (d.target.url.replace("http", "ws") + "/realtime/v1/websocket?vsn=1.0.0&apikey="
                   + d.target.keys.anon_key)
            async with d.session.ws_connect(url) as ws:
                await ws.send_str(json.dumps({
                    "topic": "realtime:sales", "event": "phx_join", "ref": "1", "join_ref": "1",
                    "payload": {"config": {"postgres_changes": [
                        {"event": "INSERT", "schema": "public", "table": "orders"},
                        {"event": "UPDATE", "schema": "public", "table": "tickets"}]}}}))
                for _ in range(2):  # the reply, then the system message: the join stands
                    await ws.receive_str(timeout=15)
                joined = await d.scrape()
                assert value(joined, "demo_realtime_sockets") == 1
                assert value(joined, "demo_realtime_channels") == 1
                assert value(joined, "demo_realtime_subscriptions") == 2
            for _ in range(200):  # the server notices the close on its own loop turn
                if value(await d.scrape(), "demo_realtime_sockets") == 0:
                    break
                await asyncio.sleep(0.01)
            assert value(await d.scrape(), "demo_realtime_sockets") == 0
    asyncio.run(main())


LEAK_KB = 1024
LEAK_REQUESTS = 64  # 64 MiB kept: far above the test process's own noise


def test_leak_grows_rss_by_what_it_keeps() -> None:
    async def burst(d: Demo) -> float:
        start = value(await d.scrape(), "process_resident_memory_bytes")
        for _ in range(LEAK_REQUESTS):
            assert (await d.call("GET", "/rest/v1/events"))[0] == 200
        return value(await d.scrape(), "process_resident_memory_bytes") - start

    async def main() -> None:
        # in a process of its own, as `loadaction demo` runs it: in the test
        # process, memory earlier tests freed would absorb part of the leak
        keys = DemoKeys.generate()
        async with child_target(None, Faults(), keys) as (url, _store), \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            d = Demo(session, SimpleNamespace(url=url, keys=keys))  # type: ignore[arg-type]
            baseline = await burst(d)  # the same requests, healthy
            assert (await d.call("PUT", "/_control/faults", {"leak_kb": LEAK_KB}))[0] == 200
            grown = await burst(d)
            leaked = value(await d.scrape(), "demo_leaked_bytes")
        expected = LEAK_KB * 1024 * LEAK_REQUESTS
        assert leaked == expected
        # RSS moves by the kept bytes, give or take what the healthy burst moved it
        # and a tenth for the allocator's pages
        margin = abs(baseline) + expected * 0.1
        assert expected - margin <= grown <= expected + margin, (grown, baseline)
    asyncio.run(main())


def test_leak_stops_at_its_cap() -> None:
    leak = Leak(cap_bytes=3 * 1024 + 512)
    for _ in range(5):
        leak.keep(1)
    assert leak.held_bytes == 3 * 1024 + 512


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_tiny_pool_queues_then_answers_503(backend: str) -> None:
    """One slot, racy scans that hold it 20 ms each (the race fault's window),
    and a 0.5 s acquire timeout: 100 scans at once must queue (waiting > 0 is
    seen while they do), some get through, and the rest are 503s, each
    counted as a timeout."""
    from tests.conftest import postgres_url
    url = None if backend == "sqlite" else postgres_url()

    async def main() -> None:
        async with demo(url, parse_flags(["pool=1", "race"]), pool_timeout_s=0.5) as d:  # type: ignore[arg-type]
            _, seeded = await d.call("POST", "/test-data/events", {"tickets": 100})
            scans = [asyncio.create_task(d.call("POST", "/rest/v1/rpc/scan_ticket_atomic",
                                                {"p_ticket_id": ticket}))
                     for ticket in seeded["ticket_ids"]]
            waiting_seen = 0.0
            while not all(task.done() for task in scans) and not waiting_seen:
                waiting_seen = value(await d.scrape(), "demo_db_pool_waiting")
            answers = await asyncio.gather(*scans)
            final = await d.scrape()
        assert waiting_seen > 0
        refused = [body for status, body in answers if status == 503]
        served = [body for status, body in answers if status == 200]
        assert refused and served, answers
        assert all(body == {"result": "valid"} for body in served)
        assert len(refused) + len(served) == len(answers)
        assert all(body == {"message": "connection pool exhausted"} for body in refused)
        assert value(final, "demo_db_pool_timeouts_total") == len(refused)
        assert value(final, "demo_db_pool_waits_total") >= len(refused)
        assert value(final, "demo_db_pool_size") == 1
        assert value(final, "demo_db_pool_in_use") == 0
        assert value(final, "demo_http_requests_total", route="/rest/v1/rpc/scan_ticket_atomic",
                     method="POST", status="503") == len(refused)
    asyncio.run(main())


def test_pool_hands_slots_over_in_order_and_shrinks() -> None:
    async def main() -> None:
        size = [2]
        pool = Pool(lambda: size[0], acquire_timeout_s=5.0)
        order: list[int] = []
        release = asyncio.Event()

        async def user(n: int) -> None:
            async with pool.connection():
                order.append(n)
                await release.wait()

        async with asyncio.TaskGroup() as group:
            for n in range(5):
                group.create_task(user(n))
                await asyncio.sleep(0)  # each reaches the pool in turn
            stats = pool.take_stats()
            assert (stats.in_use, stats.waiting, stats.waits) == (2, 3, 3)
            size[0] = 1  # shrink while full: the next releases retire slots
            release.set()
        assert order == [0, 1, 2, 3, 4]
        assert pool.take_stats().in_use == 0

        blocker = asyncio.Event()
        quick = Pool(lambda: 1, acquire_timeout_s=0.05)

        async def hold() -> None:
            async with quick.connection():
                await blocker.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        with pytest.raises(PoolExhausted):
            async with quick.connection():
                pass
        blocker.set()
        await holder
        assert (quick.take_stats().timeouts, quick.take_stats().in_use) == (1, 0)
    asyncio.run(main())


def test_leak_and_pool_flags_and_control_keys() -> None:
    faults = parse_flags(["leak=64", "pool=2"])
    assert isinstance(faults, Faults) and (faults.leak_kb, faults.pool_size) == (64, 2)
    for bad in ("pool=0", "pool=101", "leak=-1", "leak=x", "pool"):
        assert not isinstance(parse_flags([bad]), Faults), bad
    update = parse_update({"leak_kb": 8, "pool_size": 3})
    assert not hasattr(update, "message") and dict(update.values) == {"leak_kb": 8, "pool_size": 3}  # type: ignore[union-attr]
    assert hasattr(parse_update({"pool_size": 0}), "message")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_ticket_list_written_by_the_database_reads_as_before(backend: str) -> None:
    """The JSON the store writes (no dict per row) and sends in chunks: order,
    filters, limit, an empty list, and scanned_at in `store.iso`'s format."""
    import re
    from datetime import datetime

    from tests.conftest import postgres_url
    url = None if backend == "sqlite" else postgres_url()

    async def main() -> None:
        async with demo(url) as d:
            _, seeded = await d.call("POST", "/test-data/events", {"tickets": 1500})
            event, tickets = seeded["event_id"], seeded["ticket_ids"]
            assert (await d.call("POST", "/rest/v1/rpc/scan_ticket_atomic",
                                 {"p_ticket_id": tickets[3], "p_scanner_id": "gate-1"}))[0] == 200
            async with d.session.get(f"{d.target.url}/rest/v1/tickets?event_id=eq.{event}",
                                     headers=d.service) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("application/json")
                body = await resp.read()
                assert int(resp.headers["Content-Length"]) == len(body) > 16 * 1024 * 10
            rows = json.loads(body)
            assert [row["id"] for row in rows] == tickets
            scanned = rows[3]
            assert (scanned["status"], scanned["scanned_by"]) == ("scanned", "gate-1")
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00",
                                scanned["scanned_at"]), scanned
            assert datetime.fromisoformat(scanned["scanned_at"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
            assert all(row["scanned_at"] is None for i, row in enumerate(rows) if i != 3)
            assert set(rows[0]) == {"id", "event_id", "status", "scanned_at", "scanned_by"}
            status, page = await d.call("GET", f"/rest/v1/tickets?event_id=eq.{event}"
                                               "&status=eq.issued&limit=2&offset=3")
            assert status == 200 and [row["id"] for row in page] == tickets[4:6]
            assert await d.call("GET", "/rest/v1/tickets?event_id=eq.none") == (200, [])
    asyncio.run(main())


def test_child_target_serves_with_its_faults_and_reports_why_it_cannot() -> None:
    """`loadaction demo`'s target in its own process: the faults and keys reach
    it over stdin, and a refusal comes back as the exception running_target
    raises (exit 2 or 3 in the CLI, never a traceback)."""
    from loadaction.demo.auth import DemoKeys
    from loadaction.demo.child import child_target
    from loadaction.demo.serve import StoreUnavailable

    async def main() -> None:
        keys = DemoKeys.generate()
        async with child_target(None, parse_flags(["leak=8", "pool=3"]), keys) as (url, store), \
                aiohttp.ClientSession() as session:
            assert store == "sqlite (in memory)"
            async with session.get(url + "/rest/v1/events", headers={"apikey": keys.service_role_key}) as resp:
                assert resp.status == 200
            async with session.get(url + "/metrics") as resp:
                samples = {s.name: s.value for f in text_string_to_metric_families(await resp.text())
                           for s in f.samples if not s.labels}
        assert samples["demo_leaked_bytes"] == 8 * 1024
        assert samples["demo_db_pool_size"] == 3
        with pytest.raises(ValueError, match="must start with postgresql://"):
            async with child_target("mysql://u:pw@db/x", Faults(), keys):
                pass
        with pytest.raises(StoreUnavailable):
            async with child_target("postgresql://u:pw@127.0.0.1:1/x", Faults(), keys):
                pass
    asyncio.run(main())
