"""How runs end: unreachable targets, cancellation, bad plans, reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from loadaction.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_unreachable_target_exits_3_with_a_clear_message(write_plan, run_plan, capsys):
    plan = write_plan("""
        target: http://127.0.0.1:1
        scenarios:
          s: {executor: per-vu-iterations, exec: f}
        flows:
          f: [{request: {url: /ok}}]
    """)
    code, doc = run_plan(plan)
    assert code == 3
    assert "target http://127.0.0.1:1 is unreachable" in capsys.readouterr().err
    assert doc["status"] == "failed"


def _start(plan: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadaction", "run", str(plan), "--out", str(out), "--progress-interval", "1", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _wait_for_progress(proc: subprocess.Popen[str]) -> None:
    line = proc.stderr.readline()  # the first progress line: the run is under way
    assert "req/s" in line, line


def test_sigint_stops_gracefully_and_writes_partial_results(target, write_plan, tmp_path):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: constant-vus, vus: 3, duration: 60s, exec: f}}
        flows:
          f: [{{request: {{url: "/slow?ms=20"}}}}]
    """)
    proc = _start(plan, tmp_path / "out")
    _wait_for_progress(proc)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert time.monotonic() - start < 5
    assert proc.returncode == 3
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["status"] == "cancelled" and doc["status_reason"] == "SIGINT"
    assert doc["metrics"]["http_reqs"]["total"]["count"] > 0


def test_second_sigterm_interrupts_in_flight_iterations(target, write_plan, tmp_path):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: constant-vus, vus: 2, duration: 60s, gracefulStop: 60s, exec: f}}
        flows:
          f: [{{request: {{url: "/slow?ms=700"}}}}, {{request: {{url: "/slow?ms=30000", timeout: 60s}}}}]
    """)
    proc = _start(plan, tmp_path / "out")
    _wait_for_progress(proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 3
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["status"] == "cancelled"
    assert doc["scenarios"][0]["interrupted_iterations"] == 2


def test_report_renders_saved_results_in_each_format(target, write_plan, run_plan, tmp_path, capsys):
    plan = write_plan(f"""
        target: {target.url}
        thresholds: {{http_req_duration: ["avg<5000"]}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    assert run_plan(plan)[0] == 0
    capsys.readouterr()
    results = tmp_path / "out" / "results.json"
    for fmt in ("text", "json", "md", "junit"):
        assert main(["report", str(results), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "avg" in out and "5000" in out
    assert main(["report", str(results), "--format", "md", "--baseline", str(results)]) == 0
    assert "±0" in capsys.readouterr().out  # the same run as its own baseline: no change


def test_validate_prints_the_timeline_and_sends_nothing(target, write_plan, capsys):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: constant-vus, vus: 2, duration: 30s, startTime: 5s, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    assert main(["validate", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "5.0s -    35.0s  s  constant-vus: 2 VUs for 30s" in out
    assert target.hits["/ok"] == 0


def test_plan_mistakes_exit_2_with_one_line_and_send_nothing(target, write_plan, capsys):
    cases = {
        "executer: constant-vus": "plan.yml:4: unknown key 'executer' in scenario 's' (did you mean 'executor'?)",
        "vus: ten": "plan.yml:4: vus: expected an integer, got 'ten'",
    }
    for mistake, message in cases.items():
        plan = write_plan(f"""
            target: {target.url}
            scenarios:
              s:
                {mistake}
                executor: constant-vus
                duration: 1s
                exec: f
            flows:
              f: [{{request: {{url: /ok}}}}]
        """)
        for command in ("run", "validate"):
            assert main([command, str(plan)]) == 2
            err = capsys.readouterr().err
            assert err == f"loadaction: {message}\n".replace("plan.yml", str(plan)), err
    assert target.hits["/ok"] == 0


def test_an_engine_crash_still_reports_what_was_measured(target, write_plan):
    """A bug in the engine (here: a transport that breaks after 5 requests) ends the
    run as `crashed`, with the samples so far in the results and exit code 1."""
    import asyncio

    from loadaction.engine.transports.aiohttp import AiohttpTransport
    from loadaction.plan import load_plan
    from loadaction.results.build import build_results
    from loadaction.session import build_run, exit_code

    class BreaksAfterFive(AiohttpTransport):
        sent = 0

        async def send(self, req):
            self.sent += 1
            if self.sent > 5:
                raise RuntimeError("transport bug")
            return await super().send(req)

    plan = load_plan(write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: constant-vus, vus: 1, duration: 10s, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """))
    outcome = asyncio.run(build_run(plan, transport=BreaksAfterFive()).execute())
    assert outcome.status == "crashed"
    assert "RuntimeError: transport bug" in outcome.reason
    assert exit_code(outcome.status, 0) == 1
    assert build_results(outcome)["metrics"]["http_reqs"]["total"]["count"] == 5
