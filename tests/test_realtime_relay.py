"""Realtime update matching across worker processes: two real UpdateMatchers
stand for two processes, wired by a relay that calls the other's
remote_responded (at once, queued for later, or after a real asyncio delay).

Deadlines are a minute, far beyond anything these tests wait for, and are
judged by calling expire() with explicit times; message arrival times are
given explicitly too, so every latency is exact arithmetic, not a race."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from loadaction.engine.realtime import UpdateMatcher, UpdateWatch
from loadaction.engine.vu import field_text
from loadaction.errors import Source
from loadaction.metrics.sinks import CounterSink, TrendSink
from loadaction.plan import load_plan
from loadaction.plan.jsonpath import compile_path
from loadaction.plan.model import UpdatesSpec

DEADLINE = 60.0
SOURCE = Source("plan.yml", 1)
ID, OTHER = compile_path("$.id", SOURCE), compile_path("$.other", SOURCE)
SPEC = UpdatesSpec(SOURCE, write="write", write_key=ID, key=ID, deadline=DEADLINE)

Relayed = tuple[str, Mapping[str, str], float]


class Sinks:
    """One subscription's realtime_update_latency and realtime_updates_missed."""

    def __init__(self) -> None:
        self.latency, self.missed = TrendSink(), CounterSink()

    def __call__(self, metric: str) -> TrendSink | CounterSink:
        return {"realtime_update_latency": self.latency,
                "realtime_updates_missed": self.missed}[metric]


def _matcher(paths: tuple = (ID,)) -> UpdateMatcher:
    return UpdateMatcher({"write": paths}, field_text, lambda notice: None)


def _watch(matcher: UpdateMatcher) -> tuple[UpdateWatch, Sinks]:
    sinks = Sinks()
    return matcher.watch(SPEC, sinks), sinks


def _queue(into: list[Relayed]) -> Callable[[str, Mapping[str, str], float], None]:
    return lambda write, keys, at: into.append((write, dict(keys), at))


def _deliver(queued: list[Relayed], to: UpdateMatcher) -> None:
    """The parent's relay: every queued write to the other process."""
    for write, keys, at in queued:
        to.remote_responded(write, keys, at)
    queued.clear()


def test_a_write_in_one_process_is_an_update_for_a_subscriber_in_another() -> None:
    async def scenario() -> None:
        a, b = _matcher(), _matcher()
        delivered = asyncio.Event()
        relayed: list[Relayed] = []

        def relay(write: str, keys: Mapping[str, str], at: float) -> None:
            relayed.append((write, dict(keys), at))

            def deliver() -> None:
                b.remote_responded(write, keys, at)
                delivered.set()
            asyncio.get_running_loop().call_later(0.01, deliver)  # through the parent's pipes

        a.relay = relay
        watch, sinks = _watch(b)
        a.responded("write", {"id": 42})
        await delivered.wait()
        [(write, keys, written)] = relayed
        assert (write, keys) == ("write", {"$.id": "42"})
        assert written >= watch.opened
        assert watch.pending == {"42": written}  # its deadline counts from the write
        watch.arrived(42, written + 0.25)
        watch.end(count_missed=True)
        assert (sinks.latency.count, sinks.latency.min(), sinks.missed.count) == (1, 250.0, 0)
        assert a.outstanding == b.outstanding == 0

    asyncio.run(scenario())


def test_a_message_that_arrived_before_the_relay_keeps_its_real_latency() -> None:
    async def scenario() -> None:
        a, b = _matcher(), _matcher()
        queued: list[Relayed] = []
        a.relay = _queue(queued)
        watch, sinks = _watch(b)
        a.responded("write", {"id": "k"})
        [(_, _, written)] = queued
        watch.arrived("k", written + 0.1)  # B has not heard of the write yet
        assert watch.early == {"k": written + 0.1} and not watch.pending
        watch.expire(written + 0.1 + DEADLINE - 0.001)  # not yet past its deadline: kept
        assert "k" in watch.early
        _deliver(queued, b)
        assert not watch.early and not watch.pending
        watch.end(count_missed=True)
        assert (sinks.latency.count, sinks.latency.min(), sinks.missed.count) == (1, 100.0, 0)
        assert b.outstanding == 0

    asyncio.run(scenario())


def test_deadlines_count_from_the_write_and_early_arrivals_are_forgotten_after_theirs() -> None:
    async def scenario() -> None:
        b = _matcher()
        watch, sinks = _watch(b)
        written = watch.opened + 1
        b.remote_responded("write", {"$.id": "late"}, written)
        watch.expire(written + DEADLINE - 0.001)
        assert sinks.missed.count == 0 and "late" in watch.pending
        watch.expire(written + DEADLINE)  # from the write's time, not the relay's
        assert sinks.missed.count == 1 and not watch.pending

        watch.arrived("lost", written)  # nobody's write, here or elsewhere
        watch.expire(written + DEADLINE - 0.001)
        assert "lost" in watch.early
        watch.expire(written + DEADLINE)
        assert not watch.early and b.outstanding == 0
        assert sinks.latency.count == 0

        b.remote_responded("write", {"$.id": "before"}, watch.opened - 1)  # not open yet then
        assert not watch.pending
        watch.end(count_missed=True)

    asyncio.run(scenario())


def _spread(relay: bool) -> tuple[int, int]:
    """3 writes in A, 4 in B; 2 subscribers in A, 3 in B; every subscriber
    receives every write's message, some before the relay comes. Returns
    (latency samples, misses)."""
    async def scenario() -> tuple[int, int]:
        a, b = _matcher(), _matcher()
        to_b: list[Relayed] = []
        to_a: list[Relayed] = []
        if relay:
            a.relay, b.relay = _queue(to_b), _queue(to_a)
        watches = [_watch(a) for _ in range(2)] + [_watch(b) for _ in range(3)]
        writes = [(a, n) for n in range(3)] + [(b, n) for n in range(3, 7)]
        for number, (matcher, key) in enumerate(writes):
            matcher.responded("write", {"id": key})
            if number % 2:  # the relay first, then the messages
                _deliver(to_b, b)
                _deliver(to_a, a)
            for watch, _ in watches:
                watch.arrived(key, time.monotonic())
            _deliver(to_b, b)
            _deliver(to_a, a)
        for watch, _ in watches:
            watch.end(count_missed=True)
        assert a.outstanding == b.outstanding == 0
        return _totals(watches)

    return asyncio.run(scenario())


def _totals(watches: list[tuple[UpdateWatch, Sinks]]) -> tuple[int, int]:
    return (sum(sinks.latency.count for _, sinks in watches),
            int(sum(sinks.missed.count for _, sinks in watches)))


def test_writes_and_subscribers_spread_over_two_processes_match_as_in_one() -> None:
    spread = _spread(relay=True)

    async def one_process() -> tuple[int, int]:
        matcher = _matcher()
        watches = [_watch(matcher) for _ in range(5)]
        for key in range(7):
            matcher.responded("write", {"id": key})
            for watch, _ in watches:
                watch.arrived(key, time.monotonic())
        for watch, _ in watches:
            watch.end(count_missed=True)
        return _totals(watches)

    assert spread == asyncio.run(one_process()) == (7 * 5, 0)
    # without it, each process matches only its own writes: sum(w_i * s_i)
    assert _spread(relay=False) == (3 * 2 + 4 * 3, 0)


def test_every_path_the_plan_watches_is_relayed_once_and_nothing_without_a_key() -> None:
    async def scenario() -> list[Relayed]:
        a = _matcher((ID, OTHER))  # no subscription of its own: another process may have some
        relayed: list[Relayed] = []
        a.relay = _queue(relayed)
        a.responded("write", {"id": 1, "other": "x"})
        a.responded("write", {"other": 2})
        a.responded("write", {"neither": 3})  # no key at all: nothing to relay
        a.responded("write", None)
        a.responded("write", [1, 2])
        return relayed

    relayed = asyncio.run(scenario())
    assert [(write, keys) for write, keys, _ in relayed] == [
        ("write", {"$.id": "1", "$.other": "x"}), ("write", {"$.other": "2"})]


def test_without_a_relay_only_local_subscribers_expect_a_write() -> None:
    async def scenario() -> tuple[dict[str, float], dict[str, float]]:
        a, b = _matcher(), _matcher()
        watch_a, _ = _watch(a)
        watch_b, _ = _watch(b)
        a.responded("write", {"id": 5})
        pending = dict(watch_a.pending), dict(watch_b.pending)
        watch_a.end(count_missed=False)
        watch_b.end(count_missed=False)
        return pending

    local, other = asyncio.run(scenario())
    assert list(local) == ["5"] and other == {}


def test_the_plan_lists_every_write_key_path_of_every_watched_write(tmp_path: Path) -> None:
    subscribe = ("- ws_subscribe: {{name: {name}, updates: {{write: create, "
                 "write_key: \"{path}\", key: $.id}}}}")
    steps = "\n".join(
        ["- websocket: {name: rt, url: /ws}"]
        + [subscribe.format(name=f"s{n}", path=path)
           for n, path in enumerate(("$.id", "$.session.id", "$.id"))])
    path = tmp_path / "plan.yml"
    path.write_text(textwrap.dedent("""\
        target: http://127.0.0.1:8080
        scenarios:
          s: {executor: constant-vus, duration: 1s, exec: viewer}
        flows:
          buyer:
            - request: {name: create, method: POST, url: /c}
          viewer:
        """) + textwrap.indent(steps, "    ") + "\n")
    plan = load_plan(path, env={})
    assert {write: [p.text for p in paths] for write, paths in plan.realtime_writes.items()} \
        == {"create": ["$.id", "$.session.id"]}


@pytest.mark.parametrize("relay", [False, True])
def test_a_local_early_arrival_still_counts_0(relay: bool) -> None:
    async def scenario() -> Sinks:
        a = _matcher()
        if relay:
            a.relay = lambda write, keys, at: None
        watch, sinks = _watch(a)
        watch.arrived(9, time.monotonic())  # published before the write's answer came
        a.responded("write", {"id": 9})
        watch.end(count_missed=True)
        return sinks

    sinks = asyncio.run(scenario())
    assert (sinks.latency.count, sinks.latency.max(), sinks.missed.count) == (1, 0.0, 0)
