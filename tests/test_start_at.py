"""--start-at: the load of every shard begins at one wall-clock instant, after
setup. The wait is tested on an injected clock (no sleeps racing deadlines);
one short real run shows no load request reaches the server before the
instant, and a real subprocess shows SIGINT while waiting exits 3 with
nothing sent."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from loadaction.argtypes import rfc3339, start_at_problem
from loadaction.cli import main
from loadaction.engine.runner import Run
from loadaction.engine.start_at import RECHECK_S, StartAt, StartOutcome, wait_for_start
from loadaction.engine.status import RunStatus
from loadaction.plan import load_plan
from loadaction.results.build import build_results
from loadaction.results.schema import results_problem
from loadaction.session import exit_code

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)


class FakeClock:
    """A wall clock that moves only when waited on (and when `step` says)."""

    def __init__(self, now: datetime, *, stop_after: int | None = None,
                 step: timedelta = timedelta()) -> None:
        self.t = now
        self.waits: list[float] = []
        self._stop_after = stop_after
        self._step = step  # an NTP step, added on the first wait

    def now(self) -> datetime:
        return self.t

    async def wait(self, stop: asyncio.Event, seconds: float) -> bool:
        await asyncio.sleep(0)  # let the loop turn, as a real wait would
        self.waits.append(seconds)
        if self._stop_after is not None and len(self.waits) >= self._stop_after:
            stop.set()
            return True
        self.t += timedelta(seconds=seconds) + (self._step if len(self.waits) == 1 else timedelta())
        return False


def _wait(start: StartAt, clock: FakeClock):
    async def go():
        return await wait_for_start(start, clock, asyncio.Event())
    return asyncio.run(go())


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("text, expected", [
    ("2026-12-01T19:00:00Z", T0),
    ("2026-12-01t19:00:00z", T0),
    ("2026-12-01T21:00:00+02:00", T0),
    ("2026-12-01 19:00:00.250Z", T0 + timedelta(milliseconds=250)),
])
def test_rfc3339_times_with_an_offset_are_read(text, expected):
    assert rfc3339(text) == expected


@pytest.mark.parametrize("text, why", [
    ("2026-12-01T19:00:00", "has no timezone"),
    ("2026-12-01", "expected an RFC 3339 time"),
    ("20261201T190000Z", "expected an RFC 3339 time"),
    ("in 5 minutes", "expected an RFC 3339 time"),
])
def test_a_time_without_timezone_or_not_rfc3339_is_refused(text, why):
    with pytest.raises(ValueError, match=why):
        rfc3339(text)


def test_too_far_past_or_ahead_is_a_problem_before_anything_runs():
    assert start_at_problem(T0, 10.0, now=T0 + timedelta(seconds=10)) is None  # at the tolerance
    assert "more than the --start-at-tolerance of 10s" in start_at_problem(
        T0, 10.0, now=T0 + timedelta(seconds=11))
    assert start_at_problem(T0, 10.0, now=T0 - timedelta(hours=24)) is None
    assert "more than 24 h ahead" in start_at_problem(
        T0, 10.0, now=T0 - timedelta(hours=24, seconds=1))


@pytest.mark.parametrize("value, message", [
    ("2026-12-01T19:00:00", "has no timezone"),
    ("2000-01-01T00:00:00Z", "passed"),
    ("2999-01-01T00:00:00Z", "more than 24 h ahead"),
])
@pytest.mark.parametrize("command", ["run", "demo"])
def test_the_cli_refuses_them_with_one_line_and_exit_2(tmp_path, capsys, value, message, command):
    """Before anything starts: no plan is read, no demo target started."""
    plan = tmp_path / "plan.yml"
    plan.write_text("target: http://127.0.0.1:9\nscenarios:\n"
                    "  s: {executor: shared-iterations, iterations: 1, exec: f}\n"
                    "flows:\n  f: [{request: {url: /ok}}]\n")
    try:
        code = main([command, *([str(plan)] if command == "run" else []), "--start-at", value])
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err
    assert "--start-at" in err


# ---------------------------------------------------------------- the wait


def test_a_future_time_is_waited_for_rereading_the_wall_clock():
    clock = FakeClock(T0 - timedelta(seconds=3.5))
    record = _wait(StartAt(T0, 10.0), clock)
    assert record.outcome is StartOutcome.ON_TIME and record.begins
    assert record.waited_s == 3.5 and record.late_s == 0.0
    assert clock.waits == [RECHECK_S] * 3 + [0.5]  # never one long sleep: NTP may step the clock


def test_a_clock_stepped_forward_while_waiting_is_followed():
    clock = FakeClock(T0 - timedelta(seconds=60), step=timedelta(seconds=58.5))
    record = _wait(StartAt(T0, 10.0), clock)
    assert record.outcome is StartOutcome.ON_TIME
    assert len(clock.waits) == 2 and clock.now() == T0


def test_a_time_just_past_starts_at_once_and_the_lateness_is_recorded():
    clock = FakeClock(T0 + timedelta(seconds=4))
    record = _wait(StartAt(T0, 10.0), clock)
    assert (record.outcome, record.late_s, record.waited_s, clock.waits) == (
        StartOutcome.LATE, 4.0, 0.0, [])
    assert record.begins


def test_a_time_past_beyond_the_tolerance_is_not_begun():
    record = _wait(StartAt(T0, 10.0), FakeClock(T0 + timedelta(seconds=10.5)))
    assert record.outcome is StartOutcome.TOO_LATE and not record.begins
    assert record.late_s == 10.5


def test_a_wait_that_overshoots_beyond_the_tolerance_is_not_begun():
    """A host suspended mid-wait (a frozen VM) wakes 20 s past the instant."""
    clock = FakeClock(T0 - timedelta(seconds=0.5), step=timedelta(seconds=20))
    record = _wait(StartAt(T0, 10.0), clock)
    assert record.outcome is StartOutcome.TOO_LATE and record.late_s == 20.0


def test_a_stop_while_waiting_ends_the_wait():
    clock = FakeClock(T0 - timedelta(hours=1), stop_after=3)
    record = _wait(StartAt(T0, 10.0), clock)
    assert record.outcome is StartOutcome.STOPPED and not record.begins
    assert record.late_s is None and record.waited_s == 2 * RECHECK_S


# ---------------------------------------------------------------- in a run


class Recorder:
    """A loopback aiohttp server that notes each request's path and wall time."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, datetime]] = []
        self.url = ""

    async def __aenter__(self) -> Recorder:
        async def handle(request: web.Request) -> web.Response:
            self.seen.append((request.path, datetime.now(UTC)))
            return web.json_response({"id": 1})
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]


PLAN = """
target: {url}
setup: [{{request: {{url: /setup}}}}]
teardown: [{{request: {{url: /teardown}}}}]
scenarios:
  s: {{executor: per-vu-iterations, vus: 2, iterations: 2, exec: f}}
flows:
  f: [{{request: {{url: /load}}}}]
"""


def _run(tmp_path: Path, url: str, start: StartAt, clock=None):
    path = tmp_path / "plan.yml"
    path.write_text(PLAN.format(url=url))
    return Run(load_plan(path), start_at=start, wall_clock=clock)


def test_the_load_begins_at_the_instant_after_setup(tmp_path):
    """A real run on the system clock: setup's request before the instant,
    every load request at or after it, the record in the results."""
    async def go():
        async with Recorder() as server:
            at = datetime.now(UTC) + timedelta(seconds=1)
            outcome = await _run(tmp_path, server.url, StartAt(at, 10.0)).execute()
            return server, at, outcome
    server, at, outcome = asyncio.run(go())
    assert server.paths() == ["/setup"] + ["/load"] * 4 + ["/teardown"]
    setup_time = server.seen[0][1]
    load_times = [t for path, t in server.seen if path == "/load"]
    assert setup_time <= min(load_times) and at <= min(load_times)
    assert outcome.status is RunStatus.COMPLETE
    doc = build_results(outcome)
    assert results_problem(doc) is None
    record = doc["execution"]["start_at"]
    assert record["at"] == at.isoformat()
    if record["outcome"] == "on_time":  # the usual case: setup took less than the second
        assert setup_time < at and record["waited_s"] > 0
    else:  # a busy machine: setup ran past the instant, so the load began at once
        assert record["outcome"] == "late" and record["waited_s"] == 0
    assert datetime.fromisoformat(record["began_at"]) >= at
    assert 0.0 <= record["late_s"] <= min(load_times).timestamp() - at.timestamp()


def test_past_the_tolerance_after_setup_runs_no_load_and_exits_3(tmp_path):
    """Setup made the shard late: no load, teardown still cleans up, exit 3."""
    async def go():
        async with Recorder() as server:
            clock = FakeClock(T0 + timedelta(seconds=30))
            outcome = await _run(tmp_path, server.url, StartAt(T0, 10.0), clock).execute()
            return server, outcome
    server, outcome = asyncio.run(go())
    assert server.paths() == ["/setup", "/teardown"]
    assert outcome.status is RunStatus.FAILED and "tolerance" in outcome.reason
    assert exit_code(outcome.status, len(outcome.violations)) == 3
    doc = build_results(outcome)
    assert results_problem(doc) is None
    assert doc["execution"]["start_at"]["outcome"] == "too_late"
    assert doc["execution"]["start_at"]["began_at"] is None
    assert doc["duration_s"] == 0.0 and doc["scenarios"][0]["iterations"] == 0
    assert any("tolerance" in n for n in doc["notices"])


def test_a_late_start_within_the_tolerance_runs_and_says_so(tmp_path):
    async def go():
        async with Recorder() as server:
            clock = FakeClock(T0 + timedelta(seconds=2))
            outcome = await _run(tmp_path, server.url, StartAt(T0, 10.0), clock).execute()
            return server, outcome
    server, outcome = asyncio.run(go())
    assert server.paths().count("/load") == 4 and outcome.status is RunStatus.COMPLETE
    doc = build_results(outcome)
    assert doc["execution"]["start_at"]["outcome"] == "late"
    assert doc["execution"]["start_at"]["late_s"] == 2.0
    assert any("2.000s late" in n for n in doc["notices"])


def _stderr_until(proc: subprocess.Popen[str], text: str, said: str = "",
                  timeout_s: float = 60.0) -> str:
    """What the process wrote on stderr, once it holds `text` (read from the
    pipe itself, so a line never printed fails the test instead of hanging it)."""
    fd = proc.stderr.fileno()  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout_s
    while text not in said:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"no {text!r} in {said!r}"
        chunk = os.read(fd, 65536)
        assert chunk, f"stderr closed before {text!r}: {said!r}"
        said += chunk.decode()
    return said


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigint_while_waiting_exits_3_and_sends_nothing(target, tmp_path, workers):
    """A real process with a start an hour away: SIGINT ends the wait at
    once; results say cancelled and stopped, and the server saw no request.
    Workers are started before the wait (so the load is not late by their
    start-up) and end with the run, having sent nothing."""
    plan = tmp_path / "plan.yml"
    plan.write_text(f"target: {target.url}\nscenarios:\n"
                    "  s: {executor: constant-vus, vus: 2, duration: 10s, exec: f}\n"
                    "flows:\n  f: [{request: {url: /ok}}]\n")
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadaction", "run", str(plan), "--out", str(out), "--quiet",
         "--start-at", at, "--workers", workers],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    pids: list[int] = []
    try:
        said = _stderr_until(proc, "the load waits for")
        if workers != "1":  # started during the wait (an hour before the instant), not after it
            said = _stderr_until(proc, "workers started (pids", said)
            line = said.split("workers started (pids ", 1)[1].split(")", 1)[0]
            pids = [int(p) for p in line.split(", ")]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, err
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "cancelled" and doc["status_reason"] == "SIGINT"
    assert doc["execution"]["start_at"]["outcome"] == "stopped"
    assert doc["duration_s"] == 0.0
    for pid in pids:  # gone (or a zombie left for init to reap), never still loading
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split(") ", 1)[1][0] in "ZX", pid
    assert sum(target.hits.values()) == 0
