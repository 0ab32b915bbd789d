"""Chaos with `--workers 2`: the parent runs each fault once; the workers
play the client-side faults on their own requests and tag every sample with
the phase it was sent in, from the parent's windows.

Real worker processes against a loopback target that records every request
(with the wall time it was rendered at) and every fault call; bounded by the
scenario's duration (2.5 s at 40 requests/s).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from loadaction.plan import load_plan
from loadaction.results.build import build_results
from loadaction.session import build_run
from loadaction.workers.launch import LoadArgs
from loadaction.workers.pool import WorkerPool
from tests.target import Target
from tests.test_chaos_attribution import Recorder, assert_attributed, phase_counts

EDGE_S = 0.05

PLAN = """
target: "{{ env.TARGET }}"
scenarios:
  s:
    executor: constant-arrival-rate
    rate: 40
    timeUnit: 1s
    duration: 2500ms
    preAllocatedVUs: 10
    maxVUs: 40
    exec: hit
flows:
  hit:
    - request: {name: hit, url: /hit, headers: {X-Sent: "{{ now() }}"}}
    - request: {name: poke, url: /ok}
thresholds:
  "http_reqs{phase:during:srv}": ["count>0"]
  "chaos_aborted{phase:during:cut}": ["count>0"]
chaos:
  - {name: srv, kind: http, from: s, at: 500ms, duration: 1s,
     start: {method: POST, url: "{{ env.TARGET }}/fault/srv/start"},
     stop: {method: POST, url: "{{ env.TARGET }}/fault/srv/stop"}}
  - {name: cut, kind: abort, from: s, at: 1700ms, duration: 500ms, requests: [poke]}
"""


def test_faults_run_once_in_the_parent_and_every_worker_sample_has_its_phase(
        tmp_path: Path, monkeypatch: Any) -> None:
    recorder = Recorder()
    target = Target()
    recorder.install(target.app)
    target.start()
    try:
        path = tmp_path / "plan.yml"
        path.write_text(PLAN)
        monkeypatch.setenv("TARGET", target.url)  # the workers inherit it
        plan = load_plan(path)
        pool = WorkerPool(2, LoadArgs(str(path)))
        run = build_run(plan, workers=pool)
        outcome = asyncio.run(run.execute())
        wall_minus_mono = time.time() - time.monotonic()
    finally:
        target.stop()
    doc = build_results(outcome)
    assert doc["status"] == "complete", doc["status_reason"]
    assert [t["verdict"] for t in doc["thresholds"]] == ["pass", "pass"]
    assert doc["execution"]["workers"] == 2
    # the server-side fault ran once, in the parent: one start, one stop
    assert set(recorder.calls) == {"srv/start", "srv/stop"}
    faults = {f["name"]: f for f in doc["chaos"]["faults"]}
    assert faults["srv"]["rollback"] == "ok"
    assert faults["srv"]["ended_at_s"] == faults["srv"]["planned_end_s"]
    t0_wall = run.state.clock.t0 + wall_minus_mono  # the workers' run clock too
    start_call = recorder.calls["srv/start"] - t0_wall
    assert faults["srv"]["started_at_s"] >= start_call + 0.02  # opened once answered

    # the client-side fault was played by both workers: every `poke` sent in
    # its half-second window was cut (40/s: about 20), none outside it
    aborted = phase_counts(doc, "chaos_aborted", "poke")
    assert set(aborted) == {"during:cut"}
    failed = {row["tags"]["phase"]: row["sink"]
              for row in doc["metrics"]["http_req_failed"]["by_tags"]
              if row["tags"].get("name") == "poke"}
    assert failed["before"]["passes"] == failed["during:srv"]["passes"] == 0
    assert failed["during:cut"]["fails"] == 0  # failed: every one
    assert failed["during:cut"]["passes"] == aborted["during:cut"]
    assert aborted["during:cut"] >= 14  # one worker alone would cut about half of 20

    # every `hit` carries the phase of its send time by the parent's windows;
    # one sent within EDGE_S of a window's edge may fall either side (a worker
    # hears of a server-side window when its event loop reads the parent's
    # message; a client-side fault's edges are each worker's own, which the
    # parent's record matches to its own timer's wake-up)
    windows = {name: (f["started_at_s"], f["ended_at_s"]) for name, f in faults.items()}
    hits = phase_counts(doc, "http_reqs", "hit")
    assert sum(hits.values()) == 100  # 40/s for 2.5 s over the two workers, exactly
    assert_attributed(hits, [sent - t0_wall for sent in recorder.sent], windows, EDGE_S)
    assert {"before", "during:srv", "after:srv", "during:cut", "after:cut"} <= set(hits)
    assert hits["during:srv"] >= 30  # 40 in the 1 s window, edges aside
