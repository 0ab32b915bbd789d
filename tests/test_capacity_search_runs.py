"""Capacity search end to end against a target of known capacity.

The target (its own process, so this process's CPU is the generator's
alone) serves `/hold` through a fixed pool of W workers, each holding a
request for H seconds: it completes at most W / H requests per second, and
requests beyond that queue, so latency climbs without bound past the knee.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

import pytest

from loadaction.cli import main

ROOT = Path(__file__).resolve().parents[1]

SERVER = textwrap.dedent('''
    import asyncio, collections, sys
    from aiohttp import web

    W, H = int(sys.argv[1]), float(sys.argv[2])
    QUEUE = int(sys.argv[3]) if len(sys.argv) > 3 else None  # beyond it: 503 at once

    async def main():
        pool = asyncio.Semaphore(W)
        counts = collections.Counter()
        waiting = 0

        async def hold(request):
            nonlocal waiting
            counts["hold"] += 1
            if request.query.get("token") == "seeded":
                counts["hold_with_token"] += 1
            if QUEUE is not None and pool.locked() and waiting >= QUEUE:
                return web.Response(status=503, text="busy")
            waiting += 1
            try:
                async with pool:
                    waiting -= 1
                    await asyncio.sleep(H)
            except BaseException:
                waiting -= 1
                raise
            return web.Response(text="ok")

        async def setup(request):
            counts["setup"] += 1
            return web.json_response({"token": "seeded"})

        async def teardown(request):
            counts["teardown"] += 1
            return web.Response(text="bye")

        async def report(request):
            return web.json_response(counts)

        app = web.Application()
        app.router.add_get("/hold", hold)
        app.router.add_post("/setup", setup)
        app.router.add_post("/teardown", teardown)
        app.router.add_get("/counts", report)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
''')


@dataclass(frozen=True)
class Pool:
    url: str
    workers: int
    hold_s: float

    @property
    def capacity(self) -> float:
        return self.workers / self.hold_s

    def counts(self) -> dict[str, int]:
        with urlopen(f"{self.url}/counts", timeout=5) as response:
            return json.loads(response.read())


@contextmanager
def serve_pool(workers: int, hold_s: float, queue: int | None = None) -> Iterator[Pool]:
    argv = [sys.executable, "-c", SERVER, str(workers), str(hold_s)]
    proc = subprocess.Popen(argv + ([str(queue)] if queue is not None else []),
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        yield Pool(f"http://127.0.0.1:{port}", workers, hold_s)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def pool() -> Iterator[Pool]:
    with serve_pool(30, 0.1) as p:  # 300 requests per second
        yield p


def plan_for(pool: Pool, path: Path, *, with_hooks: bool = False, budget: bool = True) -> Path:
    """Its own rate and VUs are not what the search drives; its budget is."""
    hooks = textwrap.dedent('''
        setup:
          - request: {name: setup, method: POST, url: /setup}
          - extract: {json: {token: "$.token"}}
        teardown:
          - request: {name: teardown, method: POST, url: /teardown}
    ''') if with_hooks else ""
    query = ", query: {token: \"{{ vars.token }}\"}" if with_hooks else ""
    path.write_text(textwrap.dedent(f'''
        name: known capacity
        target: {pool.url}
        flows:
          hold:
            - request: {{name: hold, method: GET, url: /hold{query}}}
        scenarios:
          hold:
            executor: constant-vus
            exec: hold
            vus: 2
            duration: 5s
    ''') + (textwrap.dedent(f'''
        thresholds:
          http_req_duration: ["p(95)<{2.5 * pool.hold_s * 1000:g}"]
    ''') if budget else "") + hooks)
    return path


def capacity(plan: Path, out: Path, *args: str) -> tuple[int, dict]:
    code = main(["capacity", str(plan), "--scenario", "hold", "--out", str(out), *args])
    doc = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    return code, doc


def test_the_capacity_found_is_the_pools_within_ten_percent(pool: Pool, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = capacity(plan_for(pool, tmp_path / "plan.yml"), tmp_path / "out",
                         "--start-rate", f"{pool.capacity * 2 / 3:g}", "--step-duration", "4s",
                         "--warmup", "1s", "--precision", "5%")
    found = doc["capacity"]
    steps = found["steps"]
    table = capsys.readouterr().out
    if found["limited_by"] == "generator":  # a runner too busy to drive 300/s: no false pass
        assert all(s["verdict"] != "pass" or s["rate"] < 1.1 * pool.capacity for s in steps)
        pytest.skip(f"generator-limited on this machine: {found['steps'][-1]['reasons']}")
    assert code == 0, table
    assert found["limited_by"] == "target"
    assert 0.9 * pool.capacity <= found["rate"] <= 1.1 * pool.capacity, table
    low, high = found["bracket"]
    assert low == found["rate"] and (high - low) / low <= 0.05
    # the knee: passes below hold the budget, the fails past it blow through it
    budget_ms = 2.5 * pool.hold_s * 1000
    for step in steps:
        assert step["verdict"] in ("pass", "fail")
        assert step["achieved_rate"] == pytest.approx(step["rate"], rel=0.05)
        if step["verdict"] == "pass":
            assert step["p95_ms"] < budget_ms and step["rate"] <= 1.1 * pool.capacity
        else:
            assert step["p95_ms"] >= budget_ms and step["rate"] >= 0.9 * pool.capacity
            assert any("p(95)<" in reason for reason in step["reasons"])
    doubled = [s for s in steps if s["rate"] >= 1.3 * pool.capacity]
    assert doubled and doubled[0]["p95_ms"] > 4 * budget_ms  # far past the knee
    assert doc["status"] == "complete" and doc["capacity"]["status"] == "complete"
    # results.json is the highest passing step's own document
    assert doc["scenarios"][0]["executor"] == "constant-arrival-rate"
    judged = [t for t in doc["thresholds"] if t["metric"].startswith("http_req_duration")]
    assert judged[0]["verdict"] == "pass"
    # the terminal table, a row per step, and the result
    assert table.count(" pass") + table.count(" fail") >= len(steps)
    assert f"capacity of hold: {found['rate']:g}/s, bracket [" in table


def test_a_generator_capped_below_the_capacity_reports_unknown(pool: Pool, tmp_path: Path) -> None:
    cap = pool.capacity / 3  # 100 requests per second
    code, doc = capacity(plan_for(pool, tmp_path / "plan.yml"), tmp_path / "out",
                         "--start-rate", f"{cap / 2:g}", "--step-duration", "3s", "--warmup", "1s",
                         "--max-rps", f"{cap:g}", "--min-rate", f"{cap:g}")
    found = doc["capacity"]
    assert found["limited_by"] == "generator"
    assert code == 99  # what it could show (50/s) is below --min-rate
    assert found["rate"] is not None and found["rate"] < cap
    assert all(s["rate"] < cap for s in found["steps"] if s["verdict"] == "pass")
    last = found["steps"][-1]
    assert last["verdict"] == "unknown" and last["rate"] >= cap
    assert any("--max-rps" in reason for reason in last["reasons"])
    assert found["unknown_rate"] == last["rate"] and found["bracket"][1] is None


def test_setup_once_teardown_once_and_the_github_step_shows_the_capacity(
        pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    code, doc = capacity(plan_for(pool, tmp_path / "plan.yml", with_hooks=True), tmp_path / "out",
                         "--start-rate", "20", "--max-rate", "40", "--step-duration", "2s",
                         "--warmup", "0.5s", "--github", "--min-rate", "30")
    assert code == 0, doc.get("capacity")
    steps = doc["capacity"]["steps"]
    assert [s["rate"] for s in steps] == [20, 40] and doc["capacity"]["limited_by"] == "cap"
    counts = pool.counts()
    assert counts["setup"] == 1 and counts["teardown"] == 1
    assert counts["hold"] == counts["hold_with_token"] > 0  # every step had setup's vars
    # the job summary (and report.md, the comment's text) has the Capacity section
    text = summary.read_text()
    assert "#### Capacity: hold" in text and "**40/s** sustained" in text
    assert "| 2 | 40/s |" in text and "x-axis \"rate (iterations/s)\" [\"20\", \"40\"]" in text
    assert (tmp_path / "out" / "report.md").read_text().count("#### Capacity") == 1
    passed = outputs.read_text().split("passed<<", 1)[1].splitlines()
    assert passed[1] == "true"


def test_sigint_stops_the_step_and_writes_the_steps_so_far(pool: Pool, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadaction", "capacity", str(plan_for(pool, tmp_path / "plan.yml")),
         "--scenario", "hold", "--start-rate", "20", "--step-duration", "2s", "--warmup", "0.5s",
         "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        header = proc.stdout.readline()  # type: ignore[union-attr]
        assert "verdict" in header
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert first.split()[0] == "1", first  # step 1 is done; step 2 is running
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, stderr
    assert "SIGINT" in stderr
    doc = json.loads((out / "results.json").read_text())
    found = doc["capacity"]
    assert found["status"] == "cancelled"
    assert found["steps"][0]["verdict"] == "pass" and found["steps"][0]["rate"] == 20
    assert len(found["steps"]) <= 2 and "cancelled" in stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--warmup", "30s"], "--warmup 30s must be shorter than --step-duration 30s"),
    (["--precision", "150%"], "argument --precision: expected a share"),
    (["--max-rate", "0"], "argument --max-rate: expected a positive number"),
    (["--start-rate", "50", "--max-rate", "10"], "--start-rate 50 is above --max-rate 10"),
    (["--max-duration", "10s"], "--max-duration 10s leaves no room for one 30s step"),
])
def test_bad_flags_are_one_line_errors(pool: Pool, tmp_path: Path, args: list[str], message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    plan = plan_for(pool, tmp_path / "plan.yml")
    assert exit_code(["capacity", str(plan), "--scenario", "hold", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert pool.counts().get("hold", 0) == 0  # nothing was sent


def exit_code(argv: list[str]) -> int:
    """main's code, or argparse's (it exits on bad flags)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_an_unknown_scenario_and_a_missing_one_are_exit_2(pool: Pool, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    plan = plan_for(pool, tmp_path / "plan.yml")
    assert exit_code(["capacity", str(plan), "--scenario", "nope"]) == 2
    assert "unknown scenario 'nope'" in capsys.readouterr().err
    assert exit_code(["capacity", str(plan)]) == 2
    assert "--scenario" in capsys.readouterr().err


def test_an_unreachable_target_is_exit_3_with_a_failed_document(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    dead = Pool("http://127.0.0.1:1", 1, 1.0)  # nothing listens on port 1
    code, doc = capacity(plan_for(dead, tmp_path / "plan.yml"), tmp_path / "out")
    assert code == 3
    assert "unreachable: connection refused" in capsys.readouterr().err
    assert doc["status"] == "failed" and doc["capacity"]["status"] == "failed"
    assert doc["capacity"]["steps"] == [] and doc["capacity"]["rate"] is None


def test_errors_past_the_knee_fail_by_max_error_rate(tmp_path: Path) -> None:
    """A pool that turns requests away (503) once 10 wait, and no error budget:
    past the knee the step fails on --max-error-rate (1%)."""
    with serve_pool(30, 0.1, queue=10) as busy:
        code, doc = capacity(plan_for(busy, tmp_path / "plan.yml", budget=False), tmp_path / "out",
                             "--start-rate", "450", "--step-duration", "3s", "--warmup", "1s",
                             "--max-steps", "1")
    (step,) = doc["capacity"]["steps"]
    assert step["verdict"] == "fail" and step["error_rate"] > 0.2  # a third is turned away
    assert step["reasons"][0].startswith("error rate") and "> 1.00%" in step["reasons"][0]
    assert code == 99 and doc["capacity"]["limited_by"] == "steps"


def test_iterations_dropped_past_the_knee_fail_the_step(pool: Pool, tmp_path: Path) -> None:
    """No latency budget: past the knee the queue holds every VU, --max-vus
    runs out, and the dropped iterations fail the step (not unknown: at the
    pool's own 100 ms, 450/s needs 45 VUs of the 100 allowed)."""
    code, doc = capacity(plan_for(pool, tmp_path / "plan.yml", budget=False), tmp_path / "out",
                         "--start-rate", "450", "--step-duration", "3s", "--warmup", "1s",
                         "--max-steps", "1", "--max-vus", "100")
    (step,) = doc["capacity"]["steps"]
    assert step["verdict"] == "fail", step
    assert step["dropped_iterations"] > 0
    assert any("dropped iterations" in r for r in step["reasons"])
    assert code == 99


def test_max_requests_ends_the_search_as_a_cap(pool: Pool, tmp_path: Path) -> None:
    code, doc = capacity(plan_for(pool, tmp_path / "plan.yml"), tmp_path / "out",
                         "--start-rate", "20", "--step-duration", "2s", "--warmup", "0.5s",
                         "--max-requests", "60")
    found = doc["capacity"]
    assert found["limited_by"] == "cap" and found["rate"] == 20
    last = found["steps"][-1]
    assert last["verdict"] == "unknown" and "max-requests" in last["reasons"][0]
    assert pool.counts()["hold"] <= 60
    assert code == 0  # 20/s was found


def test_max_duration_bounds_the_whole_search(pool: Pool, tmp_path: Path) -> None:
    code, doc = capacity(plan_for(pool, tmp_path / "plan.yml"), tmp_path / "out",
                         "--start-rate", "20", "--step-duration", "2s", "--warmup", "0.5s",
                         "--max-duration", "5s")
    found = doc["capacity"]
    assert found["limited_by"] == "cap"
    assert 1 <= len(found["steps"]) <= 2 and all(s["verdict"] == "pass" for s in found["steps"])
    assert code == 0


def test_start_lateness_over_its_limit_is_unknown_not_a_pass(pool: Pool, tmp_path: Path) -> None:
    """Every iteration starts some microseconds after it was due; held to
    1 µs, the generator counts as not keeping up, and the step is unknown."""
    code, doc = capacity(plan_for(pool, tmp_path / "plan.yml"), tmp_path / "out",
                         "--start-rate", "20", "--step-duration", "2s", "--warmup", "0.5s",
                         "--max-lateness", "0.001")
    (step,) = doc["capacity"]["steps"]
    assert step["verdict"] == "unknown"
    assert any(r.startswith("iteration start lateness p(95)") for r in step["reasons"])
    assert doc["capacity"]["rate"] is None and doc["capacity"]["limited_by"] == "generator"
    assert code == 3  # nothing could be shown


def test_a_generator_short_of_cpu_is_unknown_not_a_pass(tmp_path: Path) -> None:
    """The target here runs on the generator's own event loop and burns 20 ms
    of CPU per request; 100 a second need two cores of it. The loop saturates,
    iterations start late and this process's CPU nears a core: whatever the
    latencies say, the step is unknown, never a pass (and on a runner too busy
    to give it that core, the lateness alone says so)."""
    import asyncio
    import time

    from aiohttp import web

    from loadaction.capacity.command import CapacitySearch, Options
    from loadaction.capacity.search import SearchConfig
    from loadaction.capacity.step import StepConfig
    from loadaction.plan import load_plan
    from loadaction.plan.model import Limits

    async def burn(request: web.Request) -> web.Response:
        end = time.process_time() + 0.02
        while time.process_time() < end:
            pass
        return web.Response(text="ok")

    rows: list[str] = []

    async def search() -> int:
        app = web.Application()
        app.router.add_get("/hold", burn)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            plan = load_plan(plan_for(Pool(f"http://127.0.0.1:{port}", 1, 1.0),
                                      tmp_path / "plan.yml", budget=False), scenarios=["hold"])
            options = Options(
                scenario="hold",
                search=SearchConfig(start_rate=100, max_rate=100, max_steps=1),
                step=StepConfig(duration_s=3, warmup_s=1, max_vus=1000, max_error_rate=0.01,
                                max_lateness_ms=100),
                limits=Limits(), min_rate=None, out=tmp_path / "out")
            return await CapacitySearch(plan, options, print_line=rows.append).execute()
        finally:
            await runner.cleanup()

    code = asyncio.run(search())
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    (step,) = doc["capacity"]["steps"]
    assert step["verdict"] == "unknown", rows
    generator = ("generator CPU", "iteration start lateness", "generator started")
    assert any(r.startswith(generator) for r in step["reasons"]), step["reasons"]
    assert doc["capacity"]["rate"] is None and code == 3
