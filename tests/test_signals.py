"""The engine never stops hearing signals: with as many VUs as one process
may start (more are refused when the plan loads), with iterations that never wait on anything, and with an
arrival-rate schedule far ahead of what the VUs can do, SIGINT still ends
the run within 2 s, with exit 3 and results.json written (status cancelled)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadaction.plan.limits import MAX_VUS

ROOT = Path(__file__).resolve().parents[1]
SIGNAL_TO_EXIT_S = 2.0


def _interrupt(plan: Path, out: Path) -> tuple[float, int]:
    """Start the run, wait for its first progress line, SIGINT it: (seconds
    from the signal to the exit, exit code)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadaction", "run", str(plan), "--out", str(out),
         "--progress-interval", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stderr.readline()  # a progress line: the run is under way and ticking
        assert "req/s" in line, line + proc.stderr.read()
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        return time.monotonic() - sent, proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _cancelled(out: Path, seconds: float, returncode: int) -> dict:
    assert returncode == 3
    assert seconds < SIGNAL_TO_EXIT_S, f"{seconds:.2f}s from SIGINT to exit"
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "cancelled"
    return doc


@pytest.mark.parametrize("executor", [
    f"{{executor: constant-vus, vus: {MAX_VUS}, duration: 10m, exec: f}}",
    f"{{executor: per-vu-iterations, vus: {MAX_VUS}, iterations: 1000, maxDuration: 10m, exec: f}}",
])
def test_sigint_with_as_many_vus_as_a_process_may_start(target, tmp_path, executor):
    plan = tmp_path / "plan.yml"
    plan.write_text(f"""
target: {target.url}
scenarios:
  s: {executor}
flows:
  f: [{{think: 500ms}}]
""")
    out = tmp_path / "out"
    seconds, code = _interrupt(plan, out)
    doc = _cancelled(out, seconds, code)
    assert doc["scenarios"][0]["vus_max"] > 0


def test_sigint_with_iterations_that_never_wait(target, tmp_path):
    """A flow of `set` steps only: no step ever suspends, yet the loop is given turns."""
    plan = tmp_path / "plan.yml"
    plan.write_text(f"""
target: {target.url}
scenarios:
  s: {{executor: constant-vus, vus: 2, duration: 10m, exec: f}}
flows:
  f: [{{set: {{x: "{{{{ iter * 2 }}}}"}}}}]
""")
    out = tmp_path / "out"
    seconds, code = _interrupt(plan, out)
    doc = _cancelled(out, seconds, code)
    assert doc["scenarios"][0]["iterations"] > 1000


def test_sigint_with_an_arrival_rate_far_ahead_of_its_vus(target, tmp_path):
    plan = tmp_path / "plan.yml"
    plan.write_text(f"""
target: {target.url}
scenarios:
  s: {{executor: constant-arrival-rate, rate: 100000, timeUnit: 1s, duration: 10m,
      preAllocatedVUs: 10, maxVUs: 10, exec: f}}
flows:
  f: [{{think: 1s}}]
""")
    out = tmp_path / "out"
    seconds, code = _interrupt(plan, out)
    doc = _cancelled(out, seconds, code)
    assert doc["scenarios"][0]["dropped_iterations"] > 1000
