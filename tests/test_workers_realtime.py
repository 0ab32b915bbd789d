"""Realtime update latency with `--workers 2`: the writer and a subscriber
run in different worker processes, and the matching is still run-wide (each
watched write is relayed through the parent to the other workers).

The server is tests/ws_servers.py's, which makes every outcome certain: a
write is answered only once every subscriber has subscribed, and each
update is published 150 ms after the writer acknowledged its answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.test_realtime_updates import SUBSCRIBERS, WRITES, updates_plan
from tests.ws_servers import WsServer, count, serve, sinks


@pytest.fixture
def ws_server() -> Iterator[WsServer]:
    with serve() as server:
        yield server


def test_a_write_in_one_worker_is_expected_by_subscribers_in_the_other(
        ws_server, write_plan, run_plan):
    # 2 viewers and 1 writer over 2 workers: one viewer shares no process with the writer
    code, doc = run_plan(write_plan(updates_plan(ws_server, "delay_ms=150")), "--workers", "2")
    assert code == 0, doc["errors"]
    assert doc["execution"]["workers"] == 2
    [latency] = sinks(doc, "realtime_update_latency", scenario="viewers", name="changes",
                      write="write")
    assert latency["count"] == SUBSCRIBERS * WRITES  # without the relay: WRITES (one viewer's)
    assert latency["min"] >= 150  # measured from the write's own answer, in the other process
    assert count(doc, "realtime_updates_missed") == 0
