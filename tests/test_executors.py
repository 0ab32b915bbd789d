"""Each executor's schedule, against a real loopback server."""

from __future__ import annotations



def test_per_vu_iterations_runs_exactly_vus_times_iterations(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 3, iterations: 4, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert target.hits["/ok"] == 12
    assert doc["scenarios"][0]["iterations"] == 12
    assert doc["scenarios"][0]["vus_max"] == 3


def test_shared_iterations_runs_exactly_the_pool(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: shared-iterations, vus: 5, iterations: 17, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert target.hits["/ok"] == 17
    assert doc["metrics"]["iterations"]["total"]["count"] == 17


def test_constant_arrival_rate_is_within_2_percent_at_500_per_second(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: constant-arrival-rate, rate: 500, timeUnit: 1s, duration: 2s,
              preAllocatedVUs: 50, maxVUs: 200, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert abs(target.hits["/ok"] - 1000) <= 20
    assert doc["scenarios"][0]["dropped_iterations"] == 0
    assert doc["metrics"]["iteration_start_lateness"]["total"]["count"] == target.hits["/ok"]


def test_ramping_arrival_rate_follows_its_stages(target, write_plan, run_plan):
    # 0 -> 100/s over 2 s (100 iterations), then 100/s for 1 s (100 more)
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s:
            executor: ramping-arrival-rate
            startRate: 0
            stages: [{{duration: 2s, target: 100}}, {{duration: 1s, target: 100}}]
            preAllocatedVUs: 20
            exec: f
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert abs(target.hits["/ok"] - 200) <= 4
    series = doc["series"]["scenarios"]["s"]
    # the rate ramps: the first second carries about a quarter of the first stage
    assert series[0]["reqs"] < series[2]["reqs"]


def test_arrival_rate_drops_iterations_when_max_vus_are_busy(target, write_plan, run_plan):
    # 20 iterations/s for 2 s, but only 2 VUs and each iteration takes 500 ms:
    # at most ~2 VUs x 2 iterations/s can run, the rest are dropped.
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: constant-arrival-rate, rate: 20, duration: 2s,
              preAllocatedVUs: 1, maxVUs: 2, exec: f}}
        flows:
          f: [{{request: {{url: "/slow?ms=500"}}}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    s = doc["scenarios"][0]
    assert s["vus_max"] == 2
    assert s["dropped_iterations"] >= 25
    assert s["dropped_iterations"] == doc["metrics"]["dropped_iterations"]["total"]["count"]
    assert target.hits["/slow"] + s["dropped_iterations"] == 40


def test_constant_vus_holds_its_vus_for_the_duration(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: constant-vus, vus: 4, duration: 2s, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}, {{think: 100ms}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    series = doc["series"]["scenarios"]["s"]
    assert [p["vus"] for p in series[:1]] == [4]
    # 4 VUs looping for 2 s: as many iterations as fit, by the iteration time
    # this run measured (100 ms of think plus the request, however busy the machine)
    per_iteration_s = doc["metrics"]["iteration_duration"]["total"]["avg"] / 1000
    assert per_iteration_s >= 0.1
    expected = 4 * 2.0 / per_iteration_s
    assert expected * 0.85 - 4 <= doc["scenarios"][0]["iterations"] <= expected * 1.15 + 4


def test_ramping_vus_follows_the_stages(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s:
            executor: ramping-vus
            startVUs: 0
            stages: [{{duration: 2s, target: 10}}, {{duration: 1s, target: 10}}, {{duration: 2s, target: 0}}]
            gracefulRampDown: 1s
            exec: f
        flows:
          f: [{{request: {{url: /ok}}}}, {{think: 50ms}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    points = doc["series"]["scenarios"]["s"]

    def planned(t: float) -> float:  # the stages' VU target at run time t
        return 5 * t if t < 2 else 10 if t < 3 else max(0.0, 10 - 5 * (t - 3))

    # each point is read at its own (possibly late) time t: compare with the plan then;
    # ramping down, a VU finishes its 50 ms iteration before it leaves
    for p in points[:4]:
        assert planned(p["t"]) - 1.5 <= p["vus"] <= planned(p["t"]) + 1.5, (p["t"], p["vus"])
    assert max(p["vus"] for p in points) == 10
    assert points[-1]["vus"] <= 1
    assert doc["scenarios"][0]["vus_max"] == 10


def test_scenarios_with_overlapping_start_times_run_concurrently(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          a: {{executor: constant-vus, vus: 1, duration: 2s, exec: f}}
          b: {{executor: constant-vus, vus: 1, duration: 1s, startTime: 500ms, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}, {{think: 50ms}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    a, b = doc["series"]["scenarios"]["a"], doc["series"]["scenarios"]["b"]
    assert a[0]["vus"] == 1 and b[0]["vus"] == 1   # both running at t=1s
    assert b[0]["reqs"] < a[0]["reqs"]             # b started half a second late


def test_graceful_stop_interrupts_iterations_that_overrun_it(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: constant-vus, vus: 2, duration: 1s, gracefulStop: 500ms, exec: f}}
        flows:
          f: [{{request: {{url: "/slow?ms=3000", timeout: 10s}}}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    s = doc["scenarios"][0]
    assert s["interrupted_iterations"] == 2  # cut at 1.5 s, not waited for (3 s)
    assert s["iterations"] == 0
    assert doc["timing"]["load_s"] < 3.0
