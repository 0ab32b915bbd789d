"""End-to-end realtime update latency: writers POST to an HTTP endpoint that
answers with a key and publishes a message with that key to every
subscriber; the subscribers' `updates` match the two.

The servers make every outcome certain rather than likely (tests/ws_servers.py):
a write is answered only once every subscriber has subscribed; a writer
acknowledges each response on a socket of its own once it has counted it,
and subscribers are told they are done only after every write was
acknowledged and published (or dropped), so no expectation is ever raced.
A delayed update is published `delay_ms` after that acknowledgement, so its
latency is at least the delay however busy the machine is; an early one is
published, and the write answered only after each subscriber has read it
(a ping behind it came back)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from loadaction.engine.realtime import UpdateMatcher, timestamp_seconds
from loadaction.engine.vu import field_text
from loadaction.errors import Source
from loadaction.metrics.sinks import CounterSink, TrendSink
from loadaction.plan.jsonpath import compile_path
from loadaction.plan.model import UpdatesSpec
from tests.ws_servers import WsServer, count, serve, sinks

SUBSCRIBERS = 2
WRITES = 10
WRITE_MODE = 'updates: {write: write, write_key: "$.id", key: "$.record.id", deadline: 1s}'


@pytest.fixture
def ws_server() -> Iterator[WsServer]:
    with serve() as server:
        yield server


def updates_plan(server: WsServer, knobs: str, *, updates: str = WRITE_MODE,
                 thresholds: str = "") -> str:
    return f"""
        target: {server.url}
        thresholds: {{{thresholds}}}
        scenarios:
          viewers: {{executor: per-vu-iterations, vus: {SUBSCRIBERS}, iterations: 1, exec: viewer}}
          writers: {{executor: per-vu-iterations, vus: 1, iterations: {WRITES}, exec: writer}}
        flows:
          viewer:
            - websocket:
                name: updates
                url: /updates
                on_open:
                  - ws_subscribe:
                      name: changes
                      where: {{"$.event": change}}
                      {updates}
                  - ws_send: {{text: ready}}
            - ws_receive: {{until: {{"$.done": true}}, timeout: 30s}}
          writer:
            - websocket: {{name: acks, url: /acks, keep: vu}}
            - request:
                name: write
                method: POST
                url: "/write?subs={SUBSCRIBERS}&total={WRITES}&{knobs}"
            - ws_send: {{text: "ack {{{{ response.json.id }}}}"}}
    """


def test_latency_is_at_least_the_injected_delay(ws_server, write_plan, run_plan):
    code, doc = run_plan(write_plan(updates_plan(ws_server, "delay_ms=150")))
    assert code == 0, doc["errors"]
    [latency] = sinks(doc, "realtime_update_latency", scenario="viewers", name="changes",
                      write="write")
    assert latency["count"] == SUBSCRIBERS * WRITES
    assert latency["min"] >= 150  # published 150 ms after the writer had its answer
    assert count(doc, "realtime_updates_missed") == 0
    assert sinks(doc, "realtime_updates_missed")  # judged on data: one 0 per update received


@pytest.mark.parametrize("drop, received, missed", [
    ("none", SUBSCRIBERS * WRITES, 0),
    ("all", 0, SUBSCRIBERS * WRITES),
    ("every2", SUBSCRIBERS * WRITES // 2, SUBSCRIBERS * WRITES // 2),
])
def test_missed_updates_are_counted_exactly(ws_server, write_plan, run_plan, drop, received,
                                           missed):
    code, doc = run_plan(write_plan(updates_plan(ws_server, f"drop={drop}")))
    assert code == 0, doc["errors"]
    assert ws_server.stats.published == WRITES - missed // SUBSCRIBERS
    assert count(doc, "realtime_update_latency", write="write") == received
    assert count(doc, "realtime_updates_missed", scenario="viewers", name="changes",
                 write="write") == missed
    assert doc["errors"] == []


def test_an_update_published_before_the_answer_is_matched_with_latency_0(ws_server,
                                                                         write_plan, run_plan):
    code, doc = run_plan(write_plan(updates_plan(ws_server, "early=1")))
    assert code == 0, doc["errors"]
    latency = doc["metrics"]["realtime_update_latency"]["total"]
    assert (latency["count"], latency["max"]) == (SUBSCRIBERS * WRITES, 0)
    assert count(doc, "realtime_updates_missed") == 0


@pytest.mark.parametrize("knobs, verdicts, code", [
    ("drop=none", ["pass", "pass"], 0),  # published as soon as the answer is out
    ("delay_ms=250", ["fail", "pass"], 99),
    ("drop=every2", ["pass", "fail"], 99),
])
def test_budgets_on_realtime_metrics(ws_server, write_plan, run_plan, knobs, verdicts, code):
    thresholds = ('realtime_update_latency: [{threshold: "p(95)<150", minSamples: 10}], '
                  'realtime_updates_missed: ["count==0"]')
    plan = updates_plan(ws_server, knobs, thresholds=thresholds)
    exit_code, doc = run_plan(write_plan(plan))
    assert exit_code == code
    assert [t["verdict"] for t in doc["thresholds"]] == verdicts


def test_a_subscriber_that_drops_counts_its_outstanding_updates_as_missed(ws_server, write_plan,
                                                                          run_plan):
    plan = updates_plan(ws_server, "drop=all&close_on_done=1",
                        updates=WRITE_MODE.replace("deadline: 1s", "deadline: 10m"))
    began = time.monotonic()
    code, doc = run_plan(write_plan(plan))
    assert time.monotonic() - began < 300  # not the 10-minute deadline: the drop counted them
    assert code == 0
    assert count(doc, "realtime_updates_missed") == SUBSCRIBERS * WRITES
    assert count(doc, "ws_errors", name="updates", error="closed") == SUBSCRIBERS
    assert any("closed by the server (code 1001: going away)" in e["message"]
               for e in doc["errors"])


def test_writes_before_a_subscription_opened_are_not_expected(ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        thresholds:
          realtime_updates_missed: ["count==0"]
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f:
            - request: {{name: write, method: POST, url: /write}}
            - websocket:
                name: updates
                url: /updates
                on_open:
                  - ws_subscribe:
                      name: changes
                      {WRITE_MODE}
            - request: {{name: write, method: POST, url: /write}}
            - ws_receive: {{until: {{"$.record.id": key-2}}, timeout: 10s}}
    """)
    code, doc = run_plan(plan)
    assert code == 0, doc["errors"]
    assert count(doc, "realtime_update_latency") == 1  # key-2 only
    assert count(doc, "realtime_updates_missed") == 0


def test_timestamp_mode_measures_from_the_message_s_own_time(ws_server, write_plan, run_plan):
    plan = updates_plan(ws_server, "skew_s=-0.3", updates='updates: {timestamp: "$.ts"}')
    code, doc = run_plan(write_plan(plan))
    assert code == 0, doc["errors"]
    [latency] = sinks(doc, "realtime_update_latency", scenario="viewers", name="changes")
    assert latency["count"] == SUBSCRIBERS * WRITES
    assert latency["min"] >= 300  # stamped 0.3 s before it was sent
    assert "realtime_updates_missed" not in doc["metrics"]  # nothing to miss in this mode
    assert doc["notices"] == []


def test_timestamp_mode_counts_a_clock_ahead_as_0_and_says_so(ws_server, write_plan, run_plan):
    plan = updates_plan(ws_server, "skew_s=5", updates='updates: {timestamp: "$.ts"}')
    code, doc = run_plan(write_plan(plan))
    assert code == 0, doc["errors"]
    latency = doc["metrics"]["realtime_update_latency"]["total"]
    assert (latency["count"], latency["max"]) == (SUBSCRIBERS * WRITES, 0)
    [notice] = doc["notices"]
    assert "the server's clock is ahead of this machine's" in notice


@pytest.mark.parametrize("value, seconds", [
    ("2024-05-01T12:00:00.250Z", 1714564800.25),
    ("2024-05-01T12:00:00.250+00:00", 1714564800.25),
    ("2024-05-01 12:00:00.25", 1714564800.25),  # naive: UTC
    (1714564800.25, 1714564800.25),
    (1714564800250, 1714564800.25),  # milliseconds
    ("1714564800", 1714564800.0),
    ("yesterday", None), (True, None), (None, None), (float("nan"), None),
])
def test_timestamps(value, seconds):
    assert timestamp_seconds(value) == seconds


def _matcher(limit: int, notices: list[str]) -> tuple[UpdateMatcher, UpdatesSpec, dict[str, object]]:
    spec = UpdatesSpec(Source("plan.yml", 1), write="write",
                       write_key=compile_path("$.id", Source("plan.yml", 1)),
                       key=compile_path("$.id", Source("plan.yml", 1)), deadline=0.05)
    return UpdateMatcher({"write": (spec.write_key,)}, field_text, notices.append,
                         limit=limit), spec, {
        "realtime_update_latency": TrendSink(), "realtime_updates_missed": CounterSink()}


def test_the_matcher_holds_a_bounded_number_of_updates_and_says_so():
    notices: list[str] = []

    async def scenario() -> None:
        matcher, spec, metrics = _matcher(2, notices)
        watch = matcher.watch(spec, metrics.__getitem__)
        for n in range(3):  # the third does not fit
            matcher.responded("write", {"id": n})
        assert matcher.untracked == 1 and len(watch.pending) == 2
        watch.arrived("0", time.monotonic())  # "0" is the key 0: keys compare as text
        watch.arrived(7, time.monotonic())  # early: nobody wrote 7 yet
        assert watch.early == {"7": pytest.approx(time.monotonic(), abs=1)}
        matcher.responded("write", {"id": 7})  # matched with its early arrival: 0
        await watch.settle(asyncio.Event())  # key 1 passes its deadline
        watch.end(count_missed=True)
        assert matcher.outstanding == 0
        latency, missed = metrics["realtime_update_latency"], metrics["realtime_updates_missed"]
        assert latency.count == 2 and latency.min() == 0  # type: ignore[attr-defined]
        assert missed.count == 1  # type: ignore[attr-defined]
        matcher.finish()

    asyncio.run(scenario())
    [notice] = notices
    assert notice.startswith("realtime updates: 1 were not tracked, because 2 expected updates")
