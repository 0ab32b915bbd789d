"""k6's quick overrides (--vus, --duration, --stage, --iterations): each flag
combination plans the scenario k6 would derive, checked on the loaded Plan; a
real short run does what the flags say; bad values are one line, exit 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loadaction.cli import build_parser, main
from loadaction.errors import PlanError
from loadaction.github.cli import error_line
from loadaction.plan import load_plan
from loadaction.plan.model import (
    ConstantVUs, ExecutorSpec, Plan, RampingVUs, SharedIterations, Stage,
)
from loadaction.plan.overrides import QuickOverrides, overrides_from_args

ONE = """
    target: http://127.0.0.1:9
    profiles:
      half:
        scale: {duration: 0.5, vus: 0.5}
        scenarios:
          buy: {stages: [{duration: 8s, target: 4}], startTime: 3s}
      quarter:
        scale: {duration: 0.5, vus: 0.25}
    scenarios:
      buy:
        executor: ramping-vus
        startVUs: 0
        stages: [{duration: 10s, target: 8}, {duration: 20s, target: 8}]
        gracefulRampDown: 5s
        gracefulStop: 7s
        startTime: 2s
        exec: purchase
        tags: {team: tickets}
        thresholds:
          http_req_duration: ["p(95)<500"]
    flows:
      purchase: [{request: {url: /ok}}]
"""

TWO = """
    target: http://127.0.0.1:9
    scenarios:
      browse: {executor: constant-vus, vus: 2, duration: 5s, exec: f}
      buy: {executor: per-vu-iterations, vus: 3, iterations: 2, exec: f, startTime: 9s}
    flows:
      f: [{request: {url: /ok}}]
"""


def planned(plan_file: Path, *flags: str) -> Plan:
    """The plan as `loadaction validate PLAN FLAGS` loads it (the CLI's own parser)."""
    args = build_parser().parse_args(["validate", str(plan_file), *flags])
    return load_plan(args.plan, profile=args.profile, scenarios=args.scenario, env={},
                     overrides=overrides_from_args(args))


@pytest.mark.parametrize(("flags", "executor"), [
    # k6: duration (with vus) -> constant-vus; vus defaults to 1
    (["--vus", "3", "--duration", "10s"], ConstantVUs(duration=10.0, vus=3)),
    (["--duration", "1m30s"], ConstantVUs(duration=90.0, vus=1)),
    (["--duration", "45"], ConstantVUs(duration=45.0, vus=1)),  # bare seconds, as in plans
    # k6: stages -> ramping-vus; --vus is startVUs (else k6's default, 1); the plan's
    # gracefulRampDown goes with its executor (k6 builds a fresh scenario)
    (["--stage", "30s:100", "--stage", "1m:100", "--stage", "10s:0"],
     RampingVUs(stages=(Stage(30.0, 100.0), Stage(60.0, 100.0), Stage(10.0, 0.0)),
                start_vus=1, graceful_ramp_down=30.0)),
    (["--vus", "5", "--stage", "5s:10"],
     RampingVUs(stages=(Stage(5.0, 10.0),), start_vus=5, graceful_ramp_down=30.0)),
    # k6: iterations (with vus, duration) -> shared-iterations, duration as maxDuration
    (["--iterations", "20"], SharedIterations(vus=1, iterations=20, max_duration=600.0)),
    (["--iterations", "20", "--vus", "4"], SharedIterations(vus=4, iterations=20, max_duration=600.0)),
    (["--iterations", "20", "--vus", "4", "--duration", "30s"],
     SharedIterations(vus=4, iterations=20, max_duration=30.0)),
])
def test_each_flag_combination_plans_what_k6_derives(
        write_plan: Callable[[str], Path], flags: list[str], executor: ExecutorSpec) -> None:
    plan = planned(write_plan(ONE), *flags)
    (buy,) = plan.scenarios
    assert buy.executor == executor
    # what the scenario is about stays: its flow, timing, tags and budgets
    assert (buy.exec, buy.start_time, buy.graceful_stop, buy.tags) == (
        "purchase", 2.0, 7.0, (("team", "tickets"),))
    assert [(t.selector, t.source.line) for t in plan.thresholds] == [
        ("http_req_duration{scenario:buy}", 20)]


def test_without_flags_the_scenario_is_as_written(write_plan: Callable[[str], Path]) -> None:
    (buy,) = planned(write_plan(ONE)).scenarios
    assert buy.executor == RampingVUs(stages=(Stage(10.0, 8.0), Stage(20.0, 8.0)), start_vus=0,
                                      graceful_ramp_down=5.0)


def test_a_profile_scales_what_the_flags_leave_never_their_numbers(
        write_plan: Callable[[str], Path]) -> None:
    plan = planned(write_plan(ONE), "--profile", "half", "--vus", "6", "--duration", "10s")
    (buy,) = plan.scenarios
    # the profile's own stages for `buy` are an executor option: replaced with the rest
    assert buy.executor == ConstantVUs(duration=10.0, vus=6)
    assert buy.start_time == 3.0  # the profile's startTime override stays, unscaled
    assert plan.profile == "half"


def test_a_profile_without_an_override_still_leaves_the_flags_unscaled(
        write_plan: Callable[[str], Path]) -> None:
    (buy,) = planned(write_plan(ONE), "--profile", "quarter", "--vus", "8", "--duration", "4s").scenarios
    assert buy.executor == ConstantVUs(duration=4.0, vus=8)
    assert buy.start_time == 1.0  # the scenario's own 2 s, scaled by the profile


def test_the_flags_apply_to_the_scenario_named_with_scenario(
        write_plan: Callable[[str], Path]) -> None:
    plan = planned(write_plan(TWO), "--scenario", "buy", "--vus", "2", "--duration", "3s")
    (buy,) = plan.scenarios
    assert buy.executor == ConstantVUs(duration=3.0, vus=2)
    assert buy.start_time == 0.0  # a chosen scenario starts at once, flags or not


def test_load_plan_takes_the_overrides_directly(write_plan: Callable[[str], Path]) -> None:
    plan = load_plan(write_plan(TWO), scenarios=["browse"], env={},
                     overrides=QuickOverrides(stages=("2s:4", "1s:0"), vus="0"))
    assert plan.scenarios[0].executor == RampingVUs(
        stages=(Stage(2.0, 4.0), Stage(1.0, 0.0)), start_vus=0, graceful_ramp_down=30.0)


@pytest.mark.parametrize(("plan_text", "flags", "message"), [
    (ONE, ["--stage", "30s"], "loadaction: --stage 30s: expected DURATION:TARGET, e.g. 30s:100"),
    (ONE, ["--stage", "x:1"], "loadaction: --stage x:1: duration: invalid duration 'x'"),
    (ONE, ["--stage", "10s:many"], "loadaction: --stage 10s:many: target: expected an integer, got 'many'"),
    (ONE, ["--stage", "10s:2.5"], "loadaction: --stage 10s:2.5: target: expected an integer, got 2.5"),
    (ONE, ["--vus", "0", "--duration", "1s"], "loadaction: --vus 0: vus: must be at least 1, got 0"),
    (ONE, ["--vus", "x", "--duration", "1s"], "loadaction: --vus x: vus: expected an integer"),
    (ONE, ["--duration=-1s"], "loadaction: --duration -1s: duration: invalid duration '-1s'"),
    (ONE, ["--duration", "0s"], "loadaction: --duration 0s: duration: must be longer than 0s"),
    (ONE, ["--iterations", "0"], "loadaction: --iterations 0: iterations: must be at least 1"),
    (ONE, ["--iterations", "1e12"], "loadaction: --iterations 1e12: iterations: 1,000,000,000,000 iterations"),
    (ONE, ["--vus", "200000", "--duration", "1s"], "loadaction: --vus 200000: vus: 200,000 VUs are more"),
    (ONE, ["--vus", "3"], "loadaction: --vus 3 needs --duration, --iterations or --stage"),
    (ONE, ["--iterations", "5", "--stage", "1s:1"], "loadaction: --iterations and --stage cannot be used together"),
    (ONE, ["--duration", "5s", "--stage", "1s:1"], "loadaction: --duration and --stage cannot be used together"),
    (TWO, ["--vus", "2", "--duration", "1s"],
     "loadaction: --vus, --duration size one scenario; the plan has 2 (browse, buy) "
     "(choose one with --scenario NAME)"),
    (TWO, ["--scenario", "buy", "--scenario", "browse", "--stage", "1s:1"],
     "loadaction: --stage size one scenario; --scenario names 2 (buy, browse)"),
])
def test_bad_flags_are_one_line_exit_2_naming_the_flag(
        write_plan: Callable[[str], Path], capsys: pytest.CaptureFixture[str],
        plan_text: str, flags: list[str], message: str) -> None:
    code = main(["validate", str(write_plan(plan_text)), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_value_like_an_option_is_argparse_s_one_line(
        write_plan: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    """`--duration -1s` reads as a flag `-1s`, before loadaction sees it; still one line."""
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(write_plan(ONE)), "--duration", "-1s"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "loadaction validate: error: argument --duration: expected one argument\n")


def test_a_bad_flag_on_github_is_an_annotation_without_a_file(
        write_plan: Callable[[str], Path]) -> None:
    with pytest.raises(PlanError) as raised:
        load_plan(write_plan(ONE), env={}, overrides=QuickOverrides(vus="0", duration="1s"))
    assert error_line(raised.value, {}) == (
        "::error title=loadaction::--vus 0: vus: must be at least 1, got 0")


def test_a_real_run_with_vus_and_duration_does_what_it_says(target, write_plan, run_plan) -> None:
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 1, iterations: 1, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}, {{think: 100ms}}]
    """)
    code, doc = run_plan(plan, "--vus", "2", "--duration", "1s")
    assert code == 0
    (scenario,) = doc["scenarios"]
    assert (scenario["executor"], scenario["vus_max"], scenario["planned_duration_s"]) == (
        "constant-vus", 2, 1.0)
    # 2 VUs looping for 1 s: as many iterations as fit, by the iteration time this
    # run measured (100 ms of think plus the request, however busy the machine)
    per_iteration_s = doc["metrics"]["iteration_duration"]["total"]["avg"] / 1000
    assert per_iteration_s >= 0.1
    expected = 2 * 1.0 / per_iteration_s
    assert expected * 0.8 - 2 <= scenario["iterations"] <= expected * 1.2 + 2
    assert target.hits["/ok"] == scenario["iterations"]  # one request per iteration, none lost


def test_a_real_run_with_iterations_runs_exactly_that_many(target, write_plan, run_plan) -> None:
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: constant-vus, vus: 1, duration: 1h, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    code, doc = run_plan(plan, "--iterations", "7", "--vus", "3")
    assert code == 0
    assert target.hits["/ok"] == 7
    assert (doc["scenarios"][0]["executor"], doc["scenarios"][0]["vus_max"]) == (
        "shared-iterations", 3)


def test_demo_takes_the_stress_and_soak_profiles_and_the_flags() -> None:
    args = build_parser().parse_args(["demo", "--profile", "soak", "--scenario", "ticket-purchase",
                                      "--vus", "2", "--stage", "5s:2", "--stage", "1s:0"])
    assert args.profile == "soak"
    assert overrides_from_args(args) == QuickOverrides(vus="2", stages=("5s:2", "1s:0"))
    assert build_parser().parse_args(["demo", "--profile", "stress"]).profile == "stress"
