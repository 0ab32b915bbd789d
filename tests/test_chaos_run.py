"""Chaos on the load timeline, end to end against the demo target: a latency
fault through the http adapter shows in the `during` phase and not `after`;
a target that stays slow fails the recovery budget; and every way a run can
end (its end, SIGINT, SIGTERM, a crash) leaves the fault rolled back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loadaction.cli import main
from loadaction.demo import Faults, serve_in_thread

ROOT = Path(__file__).resolve().parent.parent

PLAN = """
target: "{{{{ env.SUPABASE_URL }}}}"
secrets: [SUPABASE_SERVICE_ROLE_KEY]
defaults:
  headers: &service
    apikey: "{{{{ secrets.SUPABASE_SERVICE_ROLE_KEY }}}}"
    Authorization: "Bearer {{{{ secrets.SUPABASE_SERVICE_ROLE_KEY }}}}"
thresholds:
  http_req_failed: ["rate<0.01"]
  "http_req_duration{{phase:during:slow}}": ["p(95)>150"]
  "http_req_duration{{phase:after:slow}}": ["p(95)<100"]
scenarios:
  # 4 VUs: 20+ requests inside the 2 s fault even at 200 ms each, enough for a p(95)
  read: {{executor: constant-vus, vus: 4, duration: {duration}, gracefulStop: {grace}, exec: read}}
flows:
  read:
    - request: {{name: events, url: /rest/v1/events}}
    - think: 50ms
chaos:
  - name: slow
    kind: http
    at: 1s
    duration: {fault}
    start:
      method: PUT
      url: "{{{{ env.SUPABASE_URL }}}}/_control/faults"
      headers: *service
      json: {{latency_ms: 200, expires_in_s: 300}}
    stop:
      method: DELETE
      url: "{{{{ env.SUPABASE_URL }}}}/_control/faults"
      headers: *service
    recovery:
      - metric: http_req_duration
        threshold: "p(95)<100"
        within: 2s
        stable: 1s
"""


def _plan(tmp_path: Path, duration: str = "6s", fault: str = "2s", grace: str = "30s") -> Path:
    path = tmp_path / "chaos.yml"
    path.write_text(textwrap.dedent(PLAN.format(duration=duration, fault=fault, grace=grace)))
    return path


def _env(target) -> dict[str, str]:
    return {**os.environ, **target.env}


def _latency_now(target) -> int:
    return target.faults.current().latency_ms


def _run(tmp_path, target, monkeypatch, plan: Path) -> tuple[int, dict]:
    for k, v in target.env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "out"
    code = main(["run", str(plan), "--out", str(out), "--quiet"])
    return code, json.loads((out / "results.json").read_text())


def test_latency_fault_shows_during_and_not_after_and_recovers(tmp_path, monkeypatch):
    with serve_in_thread() as target:
        code, doc = _run(tmp_path, target, monkeypatch, _plan(tmp_path))
        assert _latency_now(target) == 0
    verdicts = {t["metric"]: t for t in doc["thresholds"]}
    assert verdicts["http_req_duration{phase:during:slow}"]["verdict"] == "pass"
    assert verdicts["http_req_duration{phase:during:slow}"]["observed"] >= 200
    assert verdicts["http_req_duration{phase:after:slow}"]["verdict"] == "pass"
    fault = doc["chaos"]["faults"][0]
    assert fault["rollback"] == "ok"
    # the window opens once the start call is answered and closes at the planned end
    assert fault["planned_at_s"] <= fault["started_at_s"] < fault["planned_end_s"]
    assert fault["ended_at_s"] == fault["planned_end_s"]
    assert fault["rolled_back_at_s"] >= fault["ended_at_s"]
    recovery = doc["chaos"]["recovery"][0]
    assert recovery["verdict"] == "pass" and recovery["time_to_recover_s"] <= 2
    # the plan-wide budget judged again within each phase
    phases = {r["phase"]: r["verdict"] for r in doc["chaos"]["phases"] if r["metric"] == "http_req_failed"}
    assert phases == {"before": "pass", "during:slow": "pass", "after:slow": "pass"}
    assert code == 0


def test_a_target_that_stays_slow_fails_the_recovery_budget(tmp_path, monkeypatch):
    with serve_in_thread(faults=Faults(latency_ms=150)) as target:
        code, doc = _run(tmp_path, target, monkeypatch, _plan(tmp_path))
        assert _latency_now(target) == 150  # the rollback removed only what the fault added
    assert code == 99
    recovery = doc["chaos"]["recovery"][0]
    assert recovery["verdict"] == "fail" and recovery["time_to_recover_s"] is None
    verdicts = {t["metric"]: t["verdict"] for t in doc["thresholds"]}
    assert verdicts["http_req_duration{phase:after:slow}"] == "fail"


@pytest.mark.parametrize("signum, workers", [
    (signal.SIGINT, "1"), (signal.SIGTERM, "1"), (signal.SIGINT, "2"),
])
def test_a_signal_mid_fault_rolls_it_back_at_once(tmp_path, signum, workers):
    """GitHub cancels with SIGINT, then SIGTERM 7.5 s later: the fault must be
    gone well before, even though in-flight iterations get a long gracefulStop.
    With workers the parent runs the fault and hears the signal."""
    with serve_in_thread() as target:
        plan = _plan(tmp_path, duration="60s", fault="50s", grace="30s")
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadaction", "run", str(plan), "--out", str(tmp_path / "out"),
             "--progress-interval", "1", "--workers", workers],
            cwd=ROOT, env={**_env(target), "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        while _latency_now(target) == 0:
            assert time.monotonic() < deadline, "the fault never started"
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signum)
        while _latency_now(target) != 0:
            assert time.monotonic() - sent < 7, "the fault was not rolled back within 7 s"
            time.sleep(0.05)
        proc.communicate(timeout=30)
    assert proc.returncode == 3
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["status"] == "cancelled"
    assert doc["chaos"]["faults"][0]["rollback"] == "ok"
    assert doc["execution"]["workers"] == int(workers)


def test_an_engine_crash_mid_fault_still_rolls_it_back(tmp_path, monkeypatch):
    from loadaction.engine.transports.aiohttp import AiohttpTransport
    from loadaction.plan import load_plan
    from loadaction.results.build import build_results
    from loadaction.session import build_run

    class BreaksLater(AiohttpTransport):
        async def send(self, req):
            if self._fault_seen(req):
                raise RuntimeError("transport bug")
            return await super().send(req)

        def _fault_seen(self, req) -> bool:
            return target.faults.current().latency_ms > 0

    with serve_in_thread() as target:
        for k, v in target.env.items():
            monkeypatch.setenv(k, v)
        plan = load_plan(_plan(tmp_path, duration="30s", fault="20s"))
        outcome = asyncio.run(build_run(plan, transport=BreaksLater()).execute())
        assert _latency_now(target) == 0
    assert outcome.status == "crashed"
    doc = build_results(outcome)
    assert doc["chaos"]["faults"][0]["rollback"] == "ok"
    assert doc["status"] == "crashed"


def test_a_rollback_that_keeps_failing_exits_3_loudly(tmp_path, monkeypatch, capsys):
    """The stop call is refused (a wrong key): staging may be broken, so say so."""
    with serve_in_thread() as target:
        plan = _plan(tmp_path, duration="4s", fault="1s")
        text = plan.read_text().replace(
            '''    stop:
      method: DELETE
      url: "{{ env.SUPABASE_URL }}/_control/faults"
      headers: *service''', '''    stop:
      method: DELETE
      url: "{{ env.SUPABASE_URL }}/_control/faults"
      headers: {apikey: wrong-key}''')
        plan.write_text(text)
        code, doc = _run(tmp_path, target, monkeypatch, plan)
    assert code == 3
    assert doc["chaos"]["faults"][0]["rollback"].startswith("failed: DELETE")
    assert "was NOT rolled back" in capsys.readouterr().err


def test_abort_on_fail_rolls_the_fault_back(tmp_path, monkeypatch):
    """The fault makes a budget cross; abortOnFail stops the run and the fault
    is rolled back at once, though its own window had 50 s to go."""
    with serve_in_thread() as target:
        plan = _plan(tmp_path, duration="60s", fault="50s")
        plan.write_text(plan.read_text().replace('''thresholds:
  http_req_failed: ["rate<0.01"]''', '''thresholds:
  http_req_failed: ["rate<0.01"]
  http_req_duration:
    - threshold: "p(95)<100"
      abortOnFail: true
      delayAbortEval: 2s'''))
        start = time.monotonic()
        code, doc = _run(tmp_path, target, monkeypatch, plan)
        assert _latency_now(target) == 0
    assert time.monotonic() - start < 15
    assert code == 99 and doc["status"] == "aborted"
    assert doc["chaos"]["faults"][0]["rollback"] == "ok"
