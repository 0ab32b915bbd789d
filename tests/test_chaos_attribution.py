"""Faults attributed by send time, against a target that records every request.

Two overlapping faults (a, b) and one that starts right when b ends (c), while
an arrival-rate scenario sends a request every 25 ms, and the event loop is
stalled for 200 ms just before a's planned end. Each request carries the wall
time it was rendered at (the same event-loop step as its phase is fixed, so
it is its send time); the test maps those onto the run clock and checks that
the phase counts in the results are exactly what the send times and the fault
windows say, that windows open only once their start call was answered, and
that no window's end drifts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from loadaction.engine.hooks import FinishedLoad, LoadContext
from loadaction.engine.runner import Run
from loadaction.metrics.registry import MetricInfo, Registry
from loadaction.plan import load_plan
from loadaction.results.build import build_results
from loadaction.session import plugins_for
from tests.target import Target

STALL_AT_S = 1.4
STALL_S = 0.2
EDGE_S = 0.001  # a request sent this close to a window edge may fall either side

PLAN = """
target: "{{ env.TARGET }}"
scenarios:
  s:
    executor: constant-arrival-rate
    rate: 40
    timeUnit: 1s
    duration: 3s
    preAllocatedVUs: 20
    maxVUs: 60
    exec: hit
flows:
  hit:
    - request: {name: hit, url: /hit, headers: {X-Sent: "{{ now() }}"}}
thresholds:
  "http_reqs{phase:during:b}": ["count>0"]
chaos:
  - {name: a, kind: http, at: 513ms, duration: 1s,
     start: {method: POST, url: "{{ env.TARGET }}/fault/a/start"},
     stop: {method: POST, url: "{{ env.TARGET }}/fault/a/stop"}}
  - {name: b, kind: http, at: 1013ms, duration: 1s,
     start: {method: POST, url: "{{ env.TARGET }}/fault/b/start"},
     stop: {method: POST, url: "{{ env.TARGET }}/fault/b/stop"}}
  - {name: c, kind: http, at: 2013ms, duration: 500ms,
     start: {method: POST, url: "{{ env.TARGET }}/fault/c/start"},
     stop: {method: POST, url: "{{ env.TARGET }}/fault/c/stop"}}
"""


class Recorder:
    def __init__(self) -> None:
        self.sent: list[float] = []  # X-Sent of each request, wall clock
        self.calls: dict[str, float] = {}  # "a/start" -> wall time it arrived
        self.lock = threading.Lock()

    def install(self, app: web.Application) -> None:
        async def hit(request: web.Request) -> web.Response:
            with self.lock:
                self.sent.append(float(request.headers["X-Sent"]))
            return web.Response(text="ok")

        async def fault(request: web.Request) -> web.Response:
            self.calls[f"{request.match_info['name']}/{request.match_info['op']}"] = time.time()
            await asyncio.sleep(0.03)  # the start "takes" 30 ms: the window opens after it
            return web.Response(text="ok")

        app.router.add_get("/hit", hit)
        app.router.add_post("/fault/{name}/{op}", fault)


class Staller:
    """A plugin that blocks the event loop once, as a busy runner would."""

    name = "staller"
    metrics: Mapping[str, MetricInfo] = {}
    layers = ()
    attribution = None

    def attach(self, registry: Registry) -> None:
        pass

    def load_started(self, ctx: LoadContext) -> None:
        asyncio.get_running_loop().call_later(STALL_AT_S, time.sleep, STALL_S)

    async def scenario_started(self, name: str) -> None:
        pass

    def scenario_ended(self, name: str) -> None:
        pass

    async def close(self) -> None:
        pass

    def contribute(self, finished: FinishedLoad) -> Any:
        return None


def _label(t: float, windows: Mapping[str, tuple[float, float]]) -> str:
    active = [name for name, (start, end) in windows.items() if start <= t < end]
    if active:
        return ",".join(f"during:{name}" for name in active)
    ended = [(end, name) for name, (_, end) in windows.items() if end <= t]
    return f"after:{max(ended)[1]}" if ended else "before"


def phase_counts(doc: Mapping[str, Any], metric: str, name: str) -> dict[str, int]:
    """A metric's sample counts by phase, for the request `name`."""
    out: dict[str, int] = {}
    for row in doc["metrics"][metric]["by_tags"]:
        if row["tags"].get("name") == name:
            phase = row["tags"]["phase"]
            out[phase] = out.get(phase, 0) + row["sink"]["count"]
    return out


def assert_attributed(counted: Mapping[str, int], sent: list[float],
                      windows: Mapping[str, tuple[float, float]], edge_s: float) -> dict[str, int]:
    """Each phase counted as many requests as were sent inside it by the
    windows (send times on the run clock), give or take those sent within
    `edge_s` of an edge, which may fall either side. Returns the certain ones."""
    definite: dict[str, int] = {}
    either: dict[str, int] = {}
    for t in sent:
        labels = {_label(t + d, windows) for d in (-edge_s, 0.0, edge_s)}
        if len(labels) == 1:
            (label,) = labels
            definite[label] = definite.get(label, 0) + 1
        else:
            for label in labels:
                either[label] = either.get(label, 0) + 1
    for label in set(definite) | set(counted):
        assert definite.get(label, 0) <= counted.get(label, 0) <= (
            definite.get(label, 0) + either.get(label, 0)), (label, definite, either, counted)
    return definite


def test_every_request_is_attributed_to_the_faults_active_when_it_was_sent(tmp_path, monkeypatch):
    recorder = Recorder()
    target = Target()
    recorder.install(target.app)
    target.start()
    try:
        plan_file = tmp_path / "plan.yml"
        plan_file.write_text(PLAN)
        monkeypatch.setenv("TARGET", target.url)
        plan = load_plan(plan_file)
        run = Run(plan, plugins=[*plugins_for(plan), Staller()])
        outcome = asyncio.run(run.execute())
        wall_minus_mono = time.time() - time.monotonic()
    finally:
        target.stop()
    doc = build_results(outcome)
    assert doc["status"] == "complete"
    t0_wall = run.state.clock.t0 + wall_minus_mono

    faults = {f["name"]: f for f in doc["chaos"]["faults"]}
    for name, fault in faults.items():
        # the window opens only once the start call was answered...
        start_call = recorder.calls[f"{name}/start"] - t0_wall
        assert fault["started_at_s"] >= start_call + 0.02
        # ...and closes at the planned end, never drifting, not even for `a`,
        # whose end fell inside the 200 ms stall
        assert fault["ended_at_s"] == fault["planned_end_s"]
        assert fault["planned_end_s"] == round(fault["planned_at_s"] + fault["duration_s"], 3)
        assert fault["rollback"] == "ok"
    assert faults["a"]["planned_end_s"] < STALL_AT_S + STALL_S  # the stall did cover a's end
    assert recorder.calls["a/stop"] - t0_wall >= STALL_AT_S + STALL_S  # woken late, yet no drift
    assert faults["c"]["planned_at_s"] == faults["b"]["planned_end_s"]

    windows = {name: (f["started_at_s"], f["ended_at_s"]) for name, f in faults.items()}
    counted = phase_counts(doc, "http_reqs", "hit")
    assert sum(counted.values()) == len(recorder.sent)
    definite = assert_attributed(counted, [sent - t0_wall for sent in recorder.sent], windows,
                                 EDGE_S)
    # the overlap is one phase naming both faults; the stall's late requests are after a
    assert definite["during:a,during:b"] >= 10
    assert {"before", "during:a", "during:b", "during:c", "after:c"} <= set(counted)
    # a `{phase:during:b}` selector counts every request sent while b was active
    (threshold,) = doc["thresholds"]
    assert threshold["observed"] == counted["during:b"] + counted["during:a,during:b"]
