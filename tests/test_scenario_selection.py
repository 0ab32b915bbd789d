"""`--scenario` subsets start at once: the earliest selected scenario starts
at 0, the others keep their offsets from it, and faults timed from the run's
start move with them (anchored faults move with their scenario already)."""

from __future__ import annotations

import time

import pytest

from loadaction.cli import main
from loadaction.errors import ExitCode, PlanError
from loadaction.plan import load_plan
from loadaction.plan.model import Limits, Plan
from loadaction.plan.timeline import describe

# startTimes 0, 30 s, 45 s and 50 s; faults timed from the run's start (`at`
# alone) and from a scenario (`from`).
PLAN = """
    target: http://localhost:8080
    thresholds:
      "http_req_duration{phase:during:early-fault}": ["p(95)<500"]
      "http_req_duration{phase:during:open-fault}": ["p(95)<500"]
      "http_req_duration{phase:after:late-fault}": ["p(95)<500"]
    chaos:
      - {name: early-fault, kind: abort, at: 10s, duration: 20s, requests: [hit]}
      - name: open-fault
        kind: abort
        at: 25s
        duration: 10s
        requests: [hit]
        recovery: [{metric: http_req_failed, threshold: "rate<0.01", within: 5s}]
      - {name: late-fault, kind: abort, at: 40s, duration: 5s, requests: [hit]}
      - {name: on-checkout, kind: abort, from: checkout, at: 5s, duration: 5s, requests: [hit]}
      - {name: on-warmup, kind: abort, from: warmup, at: 1s, duration: 5s, requests: [hit]}
    flows:
      f: [{request: {name: hit, url: /ok}}]
    scenarios:
      warmup: {executor: constant-vus, duration: 20s, exec: f}
      checkout: {executor: constant-vus, duration: 10s, gracefulStop: 2s, startTime: 30s, exec: f}
      scan: {executor: constant-vus, duration: 10s, gracefulStop: 2s, startTime: 45s, exec: f}
      webhooks: {executor: constant-vus, duration: 10s, startTime: 50s, exec: f}
"""


@pytest.fixture
def plan_file(write_plan):
    return write_plan(PLAN)


def load(path, *scenarios: str, **options) -> Plan:
    return load_plan(path, env={}, scenarios=scenarios, **options)


def starts(plan: Plan) -> dict[str, float]:
    return {s.name: s.start_time for s in plan.scenarios}


def windows(plan: Plan) -> dict[str, tuple[str | None, float, float]]:
    return {f.name: (f.anchor, f.at, f.duration) for f in plan.chaos}


def test_the_earliest_selected_scenario_starts_at_0_and_offsets_are_kept(plan_file) -> None:
    assert starts(load(plan_file)) == {"warmup": 0.0, "checkout": 30.0, "scan": 45.0,
                                       "webhooks": 50.0}
    assert starts(load(plan_file, "checkout", "scan")) == {"checkout": 0.0, "scan": 15.0}
    assert starts(load(plan_file, "scan", "checkout")) == {"checkout": 0.0, "scan": 15.0}
    assert starts(load(plan_file, "webhooks")) == {"webhooks": 0.0}
    # a selection that keeps a scenario starting at 0 moves nothing
    assert starts(load(plan_file, "warmup", "scan")) == {"warmup": 0.0, "scan": 45.0}


def test_faults_move_with_the_selection_and_those_that_cannot_run_are_dropped(plan_file) -> None:
    assert windows(load(plan_file)) == {
        "early-fault": (None, 10.0, 20.0), "open-fault": (None, 25.0, 10.0),
        "late-fault": (None, 40.0, 5.0), "on-checkout": ("checkout", 5.0, 5.0),
        "on-warmup": ("warmup", 1.0, 5.0)}
    plan = load(plan_file, "checkout", "scan")
    assert windows(plan) == {
        # early-fault ended when checkout starts (30 s): dropped
        "open-fault": (None, 0.0, 5.0),     # active at 30 s: from the start, ending as planned
        "late-fault": (None, 10.0, 5.0),    # 40 s - 30 s
        "on-checkout": ("checkout", 5.0, 5.0),   # relative to its scenario already
        # on-warmup: its scenario does not run
    }
    (open_fault,) = [f for f in plan.chaos if f.name == "open-fault"]
    assert [budget.expr.text for budget in open_fault.recovery] == ["rate<0.01"]
    # budgets on the phases of dropped faults could only report `no data`
    assert [t.selector for t in plan.thresholds] == [
        "http_req_duration{phase:during:open-fault}", "http_req_duration{phase:after:late-fault}"]
    assert load(plan_file, "webhooks").chaos == ()  # everything ended by 50 s, or is anchored away


def test_validate_shows_the_shifted_timeline(plan_file, monkeypatch, capsys) -> None:
    lines = describe(load(plan_file, "checkout", "scan")).splitlines()
    timeline = [line.split("  (")[0].split(":")[0] for line in lines
                if line.startswith("     ") and "s - " in line]
    assert timeline == [
        "      0.0s -    10.0s  checkout  constant-vus",
        "     15.0s -    25.0s  scan  constant-vus",
        "      0.0s -     5.0s  open-fault  abort",
        "      5.0s -    10.0s  on-checkout  abort",
        "     10.0s -    15.0s  late-fault  abort",
    ]
    monkeypatch.chdir(plan_file.parent)
    assert main(["validate", plan_file.name, "--scenario", "scan"]) == ExitCode.OK
    assert "      0.0s -    10.0s  scan  constant-vus" in capsys.readouterr().out


def test_max_duration_judges_the_shifted_schedule(plan_file) -> None:
    # scan alone: 10 s + 2 s gracefulStop from 0, not from 45 s
    assert load(plan_file, "scan", limits=Limits(max_duration=12.0)).scenarios
    with pytest.raises(PlanError, match=r"the plan needs 27s but --max-duration is 26s"):
        load(plan_file, "checkout", "scan", limits=Limits(max_duration=26.0))
    assert load(plan_file, "checkout", "scan", limits=Limits(max_duration=27.0)).scenarios


def test_profiles_scale_before_the_shift(write_plan) -> None:
    profiles = "    profiles:\n      smoke: {scale: {duration: 0.1}}\n"
    path = write_plan(PLAN.replace("    flows:", profiles + "    flows:"))
    plan = load(path, "checkout", "scan", profile="smoke")
    assert starts(plan) == {"checkout": 0.0, "scan": pytest.approx(1.5)}
    assert {name: (at, duration) for name, (_, at, duration) in windows(plan).items()} == {
        "open-fault": (0.0, pytest.approx(0.5)),
        "late-fault": (pytest.approx(1.0), pytest.approx(0.5)),
        "on-checkout": (pytest.approx(0.5), pytest.approx(0.5))}


def test_a_selected_scenario_that_starts_at_30s_runs_at_once(target, write_plan, run_plan) -> None:
    plan = write_plan(f"""
        target: {target.url}
        flows:
          f: [{{request: {{url: /ok}}}}]
        scenarios:
          first: {{executor: constant-vus, vus: 1, duration: 30s, exec: f}}
          later: {{executor: constant-vus, vus: 1, duration: 1s, gracefulStop: 1s,
                   startTime: 30s, exec: f}}
    """)
    began = time.monotonic()
    code, doc = run_plan(plan, "--scenario", "later")
    elapsed = time.monotonic() - began
    assert code == 0
    assert elapsed < 10, f"the run took {elapsed:.1f}s"
    (later,) = doc["scenarios"]
    assert (later["name"], later["start_time_s"]) == ("later", 0.0)
    assert later["iterations"] > 0
    assert target.hits["/ok"] == doc["metrics"]["http_reqs"]["total"]["count"] > 0
