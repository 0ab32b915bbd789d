"""`--workers N`: the load in N processes, merged exactly in the parent.

Real worker processes against the loopback target; the runs are short and
bounded by iterations or by a signal sent once the test has seen load.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from loadaction.cli import main
from loadaction.engine.runner import Run
from loadaction.metrics.registry import MetricInfo, Registry
from loadaction.plan.model import Limits
from loadaction.report import render
from loadaction.workers.launch import (
    available_cores, resolve_workers, split_limits,
)
from loadaction.workers.wire import Snapshotter, apply_metrics

ROOT = Path(__file__).resolve().parents[1]

COUNTED_PLAN = """
    target: {url}
    thresholds:
      http_req_failed: ["rate<0.01"]
      # 20 requests in all; 10 in each of two workers: crossed only on the merged data
      "http_reqs{{scenario:pervu}}": ["count<15"]
    scenarios:
      pervu: {{executor: per-vu-iterations, vus: 4, iterations: 5, exec: f}}
      shared: {{executor: shared-iterations, vus: 3, iterations: 13, exec: f}}
      car: {{executor: constant-arrival-rate, rate: 20, timeUnit: 1s, duration: 1s,
            preAllocatedVUs: 4, maxVUs: 8, exec: f}}
    flows:
      f: [{{request: {{url: /ok}}}}, {{check: {{status: 200}}}}]
"""

HELD_PLAN = """
    target: {url}
    scenarios:
      hold: {{executor: constant-vus, vus: 4, duration: {duration}, exec: f}}
    flows:
      f: [{{request: {{url: /ok}}}}, {{think: 0.05}}]
"""


def _iterations(doc: dict[str, Any]) -> dict[str, int]:
    return {s["name"]: s["iterations"] for s in doc["scenarios"]}


def _verdicts(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(t["metric"], t["expression"], t["verdict"]) for t in doc["thresholds"]]


def test_snapshots_merge_to_exactly_what_the_worker_recorded(write_plan: Any) -> None:
    """Deltas (trends, counters, rates reset in place; a gauge's fit sums as
    changes) applied in turn, through the wire format, equal the worker's
    whole record."""
    from loadaction.plan import load_plan
    run = Run(load_plan(write_plan(HELD_PLAN.format(url="http://127.0.0.1:1", duration="1s"))))
    custom = {"mem": MetricInfo("gauge")}
    worker = run.state.registry = Registry(custom)
    whole, parent = Registry(custom), Registry(custom)
    snap = Snapshotter(run)
    tags = (("scenario", "s"),)
    for batch in range(3):
        for reg in (worker, whole):
            for i in range(50):
                reg.add("http_req_duration", 0.1 + i * 0.37 + batch, tags)
                reg.add("http_reqs", 1, tags)
                reg.add("checks", i % 3 != 0, tags)
                reg.sink("mem", ()).add(100.0 + i * batch, t=batch + i / 50)  # type: ignore[call-arg]
            reg.sink("ws_ping", tags)  # empty: sent once, so a budget on it has data
            reg.add("vus", 4, ())  # the parent records the workers' sums itself
        apply_metrics(parent, json.loads(json.dumps(snap.snapshot()))["metrics"])
    for name in ("http_req_duration", "http_reqs", "checks"):
        assert parent.select(name).summary(3.0) == whole.select(name).summary(3.0), name
    merged, expected = parent.select("mem").summary(3.0), whole.select("mem").summary(3.0)
    assert {k: merged[k] for k in ("value", "min", "max", "count")} == \
        {k: expected[k] for k in ("value", "min", "max", "count")}
    assert merged["avg"] == pytest.approx(expected["avg"])
    assert merged["slope"] == pytest.approx(expected["slope"])
    assert worker.select("http_reqs").count == 0  # sent, then zeroed in place
    assert parent.select("vus") is None
    assert parent.select("ws_ping", tags).count == 0  # type: ignore[union-attr]


def test_caps_are_split_by_the_workers_parts_of_the_vus_and_sum_to_the_whole(
        write_plan: Any) -> None:
    from loadaction.plan import load_plan
    limits = Limits(max_rps=30.0, max_requests=101, max_duration=90.0)
    plan = load_plan(write_plan(HELD_PLAN.format(url="http://127.0.0.1:1", duration="1s")),
                     limits=limits)  # 4 VUs
    for count, vus in ((3, [2, 1, 1]), (2, [2, 2])):
        shares = [split_limits(plan, i, count) for i in range(count)]
        assert sum(s.max_requests or 0 for s in shares) == 101
        assert sum(s.max_rps or 0 for s in shares) == pytest.approx(30.0)
        assert [s.max_rps for s in shares] == pytest.approx([30.0 * v / 4 for v in vus])
        assert {s.max_duration for s in shares} == {90.0}
    three = load_plan(write_plan(HELD_PLAN.replace("vus: 4", "vus: 3").format(
        url="http://127.0.0.1:1", duration="1s")), limits=limits)
    # two VUs and one: two thirds and one third, not halves that would throttle the first
    assert [split_limits(three, i, 2).max_requests for i in range(2)] == [67, 34]
    assert [split_limits(three, i, 2).max_rps for i in range(2)] == pytest.approx([20.0, 10.0])
    # parts sum to the cap exactly; a cap too small to share by weight still lets
    # every worker with VUs send one (with 0 its first request would cap the run)
    from fractions import Fraction

    from loadaction.workers.launch import _apportion
    assert _apportion(3, [Fraction(98, 100), Fraction(1, 100), Fraction(1, 100)]) == [1, 1, 1]
    assert _apportion(10, [Fraction(98, 100), Fraction(1, 100), Fraction(1, 100)]) == [8, 1, 1]
    assert _apportion(7, [Fraction(1, 2), Fraction(0), Fraction(1, 2)]) == [4, 0, 3]


def test_auto_is_one_per_usable_cpu_where_workers_can_run_the_plan(write_plan: Any) -> None:
    from loadaction.plan import load_plan
    from loadaction.plan.segments import ExecutionTuple, shard
    path = write_plan(HELD_PLAN.format(url="http://127.0.0.1:1", duration="1s"))
    cores = available_cores()
    assert resolve_workers(load_plan(path), "auto") == cores
    assert resolve_workers(load_plan(path), 3) == 3
    assert resolve_workers(load_plan(path, limits=Limits(max_requests=1)), "auto") == 1
    segmented = load_plan(path, execution=ExecutionTuple(*shard(1, 2)))
    assert resolve_workers(segmented, "auto") == cores  # its workers split the shard


def test_two_workers_count_and_judge_what_one_process_does(
        target: Any, write_plan: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(COUNTED_PLAN.format(url=target.url))
    docs = {}
    for workers in ("1", "2"):
        target.hits.clear()
        out = tmp_path / workers
        assert main(["run", str(plan), "--out", str(out), "--quiet", "--workers", workers]) == 99
        docs[workers] = json.loads((out / "results.json").read_text())
        assert docs[workers]["metrics"]["http_reqs"]["total"]["count"] == target.hits["/ok"]
    assert "2 workers started" in capsys.readouterr().err
    assert (docs["1"]["execution"]["workers"], docs["2"]["execution"]["workers"]) == (1, 2)
    # the reports say how many processes sent the load
    assert "**2 processes**, merged exactly" in render(docs["2"], "md")
    assert "processes" not in render(docs["1"], "md")
    assert re.search(r"processes\.*: 2, their samples merged exactly",
                     render(docs["2"], "text", color=False))
    one, two = _iterations(docs["1"]), _iterations(docs["2"])
    assert (one["pervu"], one["shared"]) == (two["pervu"], two["shared"]) == (20, 13)
    assert abs(one["car"] - two["car"]) <= 2  # arrival rate: within 1 per worker
    assert _verdicts(docs["1"]) == _verdicts(docs["2"])
    crossed = {t["metric"]: t["verdict"] for t in docs["2"]["thresholds"]}
    assert crossed == {"http_req_failed": "pass", "http_reqs{scenario:pervu}": "fail"}
    assert [s["vus_max"] for s in docs["2"]["scenarios"]] == [s["vus_max"] for s in
                                                              docs["1"]["scenarios"]]
    series = docs["2"]["series"]["scenarios"]
    assert sum(p["iterations"] for name in series for p in series[name]) == sum(two.values())


def _start(plan: Path, out: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """`loadaction run --workers 2` in a process of its own; returns once a
    progress line shows the workers' requests (they have sent snapshots)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadaction", "run", str(plan), "--out", str(out),
         "--workers", "2", "--progress-interval", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    pids: list[int] = []
    for line in proc.stderr:
        if match := re.search(r"workers started \(pids (\d+), (\d+)\)", line):
            pids = [int(match[1]), int(match[2])]
        if re.search(r"hold .* vus=4 +[1-9][0-9.]* req/s", line):
            return proc, pids
    raise AssertionError(f"no progress line with requests (exit {proc.wait()})")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigint_stops_every_worker_and_writes_the_merged_partial_results(
        target: Any, write_plan: Any, tmp_path: Path) -> None:
    plan = write_plan(HELD_PLAN.format(url=target.url, duration="60s"))
    proc, pids = _start(plan, tmp_path / "out")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["status"] == "cancelled" and doc["status_reason"] == "SIGINT"
    assert doc["timing"]["load_s"] < 30
    # graceful: every request sent reached the parent, from both workers
    assert doc["metrics"]["http_reqs"]["total"]["count"] == target.hits["/ok"] > 0
    assert doc["scenarios"][0]["vus_max"] == 4
    assert not doc.get("notices")  # no worker was lost
    assert all(_gone(pid) for pid in pids)


def test_a_killed_worker_is_reported_and_the_rest_of_the_run_is_kept(
        target: Any, write_plan: Any, tmp_path: Path) -> None:
    plan = write_plan(HELD_PLAN.format(url=target.url, duration="4s"))
    proc, pids = _start(plan, tmp_path / "out")
    os.kill(pids[1], signal.SIGKILL)
    killed_at = time.monotonic()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["status"] == "complete"
    [notice] = doc["notices"]
    assert notice.startswith(f"worker 2 (segment 1/2:1, pid {pids[1]}) died (killed by SIGKILL)")
    assert notice in stdout  # the text report
    sent = doc["metrics"]["http_reqs"]["total"]["count"]
    assert 0 < sent <= target.hits["/ok"]  # what worker 2 sent after its last snapshot is lost
    points = doc["series"]["scenarios"]["hold"]
    assert max(p["vus"] for p in points) == 4  # worker 2's seconds before it died are kept
    assert points[-1]["t"] >= 3.5 and points[-1]["vus"] <= 2  # worker 1 went on to the end
    assert time.monotonic() - killed_at < 30


def test_abort_on_fail_on_the_merged_data_stops_every_worker(
        target: Any, write_plan: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(HELD_PLAN.format(url=target.url, duration="60s") + """
    thresholds:
      http_reqs: [{threshold: "count<40", abortOnFail: true}]
    """)
    out = tmp_path / "out"
    began = time.monotonic()
    assert main(["run", str(plan), "--out", str(out), "--quiet", "--workers", "2"]) == 99
    assert time.monotonic() - began < 30  # not the 60 s planned
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "aborted" and "abortOnFail" in doc["status_reason"]
    assert doc["metrics"]["http_reqs"]["total"]["count"] == target.hits["/ok"] >= 40
    pids = re.search(r"pids (\d+), (\d+)", capsys.readouterr().err)
    assert pids is not None and all(_gone(int(pid)) for pid in pids.groups())


def test_max_requests_holds_for_the_whole_run_not_per_worker(
        target: Any, write_plan: Any, tmp_path: Path) -> None:
    plan = write_plan(HELD_PLAN.format(url=target.url, duration="60s"))
    out = tmp_path / "out"
    assert main(["run", str(plan), "--out", str(out), "--quiet", "--workers", "2",
                 "--max-requests", "30"]) == 3
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "capped" and "max-requests" in doc["status_reason"]
    assert 0 < target.hits["/ok"] <= 30  # each worker capped at its share: 15 + 15
    assert doc["metrics"]["http_reqs"]["total"]["count"] == target.hits["/ok"]


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "expected a number of workers"),
    (["--workers", "3", "--max-requests", "2"], "--max-requests 2 is below --workers 3"),
])
def test_workers_flags_that_cannot_work_exit_2_with_one_line(
        flags: list[str], message: str, write_plan: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(HELD_PLAN.format(url="http://127.0.0.1:1", duration="1s"))
    try:
        code = main(["run", str(plan), "--quiet", *flags])
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


CUT_OFF_WORKER = """
import json, os, signal, sys
json.loads(sys.stdin.readline())  # the spec
print(json.dumps({"type": "ready", "pid": os.getpid()}), flush=True)
json.loads(sys.stdin.readline())  # go
print(json.dumps({"type": "snapshot", "metrics": [], "series": {}, "scenarios": [],
                  "errors": [], "errors_dropped": 0, "notices": []}), flush=True)
sys.stdout.write('{"type": "snapshot", "metrics": [["http_re')  # cut off mid-line
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_worker_killed_while_writing_a_message_is_a_lost_worker_not_a_crash(
        target: Any, write_plan: Any, tmp_path: Path) -> None:
    import asyncio

    from loadaction.plan import load_plan
    from loadaction.results.build import build_results
    from loadaction.session import build_run
    from loadaction.workers.launch import LoadArgs
    from loadaction.workers.pool import WorkerPool

    stand_in = tmp_path / "worker.py"
    stand_in.write_text(CUT_OFF_WORKER)
    path = write_plan(HELD_PLAN.format(url=target.url, duration="1s"))
    pool = WorkerPool(2, LoadArgs(str(path)), program=[str(stand_in)])
    run = build_run(load_plan(path), workers=pool)
    outcome = asyncio.run(run.execute())
    doc = build_results(outcome)
    assert doc["status"] != "crashed", doc["status_reason"]
    assert sorted(n.split(") ", 1)[1][:28] for n in doc["notices"]) == [
        "died (killed by SIGKILL) at ", "died (killed by SIGKILL) at "]


def _driven_worker(path: Path) -> subprocess.Popen[str]:
    """The real worker, driven by hand as its parent would: spec, `ready`,
    `go`, and its first snapshot (it is sending load)."""
    from loadaction.workers.launch import LoadArgs

    proc = subprocess.Popen([sys.executable, "-m", "loadaction.workers.child"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    spec = {"index": 0, "count": 1, "within": None, "load": LoadArgs(str(path)).to_json(),
            "vars": {}, "http_client": None, "interval_s": 1.0}
    proc.stdin.write(json.dumps(spec) + "\n")
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["type"] == "ready"
    proc.stdin.write(json.dumps({"type": "go", "t0": time.monotonic()}) + "\n")
    proc.stdin.flush()
    while json.loads(proc.stdout.readline())["type"] != "snapshot":
        pass
    return proc


def _last_message(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.stdin = None  # closed: communicate() only reads
    try:
        stdout, _ = proc.communicate(timeout=timeout_s)
    finally:
        proc.kill()  # never leave load running behind a failed test
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("last_line, status", [
    ('{"type": "wind', "cancelled"),  # cut off: the parent died writing it
    ('{"no type": 1}\n', "crashed"),  # a command it cannot follow: ends its load, says so
])
def test_a_worker_stops_its_load_when_its_parent_is_gone_or_makes_no_sense(
        target: Any, write_plan: Any, last_line: str, status: str) -> None:
    """Either way it stops promptly (not after the plan's 60 s), instead of
    running its schedule on deaf to the parent."""
    path = write_plan(HELD_PLAN.format(url=target.url, duration="60s"))
    proc = _driven_worker(path)
    assert proc.stdin is not None
    proc.stdin.write(last_line)
    proc.stdin.flush()
    done = _last_message(proc, timeout_s=30)
    assert (done["type"], done["status"]) == ("done", status)
    assert target.hits["/ok"] > 0
