"""Profiles scale a plan's size; overrides set individual scenario keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadaction.errors import PlanError, Source
from loadaction.plan import load_plan
from loadaction.plan.executors import executor_length
from loadaction.plan.model import (
    ConstantArrivalRate, ConstantVUs, Limits, RampingVUs, Scenario, SharedIterations, Stage,
)
from loadaction.plan.profiles import Profile, scale_options

FULL = Path(__file__).parent / "plans" / "full" / "plan.yml"
ENV = {"SUPABASE_URL": "http://localhost", "SUPABASE_ANON_KEY": "k",
       "STRIPE_WEBHOOK_SECRET": "w"}
SMOKE = Profile("smoke", Source("plan.yml", 1), duration=0.05, vus=0.1, rate=0.1,
                iterations=0.1)


def test_the_smoke_profile_shrinks_the_full_plan() -> None:
    plan = load_plan(FULL, env=ENV, profile="smoke")
    purchase, scanner = plan.scenarios
    assert plan.profile == "smoke"
    assert purchase.executor == RampingVUs(
        stages=(Stage(pytest.approx(1.5), 10.0), Stage(pytest.approx(6.0), 10.0),
                Stage(pytest.approx(1.5), 0.0)),
        start_vus=2,  # overridden, so not scaled
        graceful_ramp_down=30.0)
    assert purchase.graceful_stop == 30.0  # grace periods are not scaled
    assert scanner.executor == ConstantArrivalRate(
        rate=pytest.approx(5.0), duration=pytest.approx(3.0), pre_allocated_vus=1, max_vus=5,
        time_unit=1.0)
    assert scanner.start_time == pytest.approx(0.5)  # keeps its place relative to the others


def test_the_max_duration_cap_applies_to_the_scaled_plan() -> None:
    with pytest.raises(PlanError, match="needs 210s but --max-duration is 60s"):
        load_plan(FULL, env=ENV, limits=Limits(max_duration=60))
    load_plan(FULL, env=ENV, profile="smoke", limits=Limits(max_duration=60))


@pytest.mark.parametrize(("key", "value", "scaled"), [
    ("vus", 10, 1),
    ("vus", 3, 1),  # never below 1 ...
    ("startVUs", 0, 0),  # ... but 0 stays 0
    ("preAllocatedVUs", 15, 2),  # halves round up
    ("maxVUs", 100, 10),
    ("iterations", 5, 1),
    ("iterations", 250, 25),
    ("rate", 0.5, pytest.approx(0.05)),  # rates stay positive, unrounded
    ("startRate", 20.0, pytest.approx(2.0)),
    ("duration", 60.0, pytest.approx(3.0)),
    ("maxDuration", 600.0, pytest.approx(30.0)),
    ("startTime", 20.0, pytest.approx(1.0)),
    ("gracefulStop", 30.0, 30.0),
    ("gracefulRampDown", 30.0, 30.0),
    ("timeUnit", 1.0, 1.0),
])
def test_scaling_rules(key: str, value: float, scaled: object) -> None:
    assert scale_options({key: value}, "constant-vus", SMOKE, frozen=())[key] == scaled


def test_stage_targets_scale_with_vus_or_rate() -> None:
    stages = (Stage(100.0, 5.0), Stage(20.0, 0.0))
    vus = scale_options({"stages": stages}, "ramping-vus", SMOKE, frozen=())["stages"]
    assert vus == (Stage(pytest.approx(5.0), 1.0), Stage(pytest.approx(1.0), 0.0))
    rate = scale_options({"stages": stages}, "ramping-arrival-rate", SMOKE, frozen=())["stages"]
    assert rate == (Stage(pytest.approx(5.0), pytest.approx(0.5)), Stage(pytest.approx(1.0), 0.0))


def test_frozen_keys_and_no_profile_leave_values_alone() -> None:
    options = {"vus": 10, "duration": 60.0}
    assert scale_options(options, "constant-vus", SMOKE, frozen={"vus"}) == {
        "vus": 10, "duration": pytest.approx(3.0)}
    assert scale_options(options, "constant-vus", None, frozen=()) == options


def test_overrides_are_checked_against_the_scaled_numbers(tmp_path: Path) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(
        "target: http://localhost\n"
        "flows: {f: [{request: {url: /}}]}\n"
        "profiles:\n"
        "  small:\n"
        "    scale: {vus: 0.1}\n"
        "    scenarios:\n"
        "      s: {preAllocatedVUs: 50}\n"
        "scenarios:\n"
        "  s:\n"
        "    executor: constant-arrival-rate\n"
        "    exec: f\n"
        "    rate: 10\n"
        "    duration: 1m\n"
        "    preAllocatedVUs: 10\n"
        "    maxVUs: 100\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path, env={}, profile="small")
    assert str(caught.value) == (
        f"{path}:15: maxVUs (10) must not be less than preAllocatedVUs (50)")
    assert load_plan(path, env={}).scenarios[0].executor.max_vus == 100  # type: ignore[union-attr]


# ---------------------------------------------------------------- the ticketing plan's stress and soak

TICKETING = Path(__file__).parents[1] / "scenarios" / "ticketing.yml"
TICKETING_ENV = {"SUPABASE_URL": "http://localhost", "SUPABASE_ANON_KEY": "a",
                 "SUPABASE_SERVICE_ROLE_KEY": "s", "STRIPE_WEBHOOK_SECRET": "w"}


def _ticketing(profile: str) -> dict[str, Scenario]:
    plan = load_plan(TICKETING, env=TICKETING_ENV, profile=profile)
    return {scenario.name: scenario for scenario in plan.scenarios}


def _end(scenario: Scenario) -> float:
    return scenario.start_time + executor_length(scenario.executor)


def test_stress_steps_ticket_purchase_up_to_five_times_full() -> None:
    full, stress = _ticketing("full"), _ticketing("stress")
    purchase = stress["ticket-purchase"].executor
    assert isinstance(purchase, RampingVUs)
    peak_full = max(stage.target for stage in full["ticket-purchase"].executor.stages)  # type: ignore[union-attr]
    assert peak_full == 100
    # steps of 100 VUs to 5x full, 30 s ramping to each and 30 s held there, then down
    assert [stage.target for stage in purchase.stages] == [
        100, 100, 200, 200, 300, 300, 400, 400, 500, 500, 0]
    assert {stage.duration for stage in purchase.stages} == {30.0}
    assert executor_length(purchase) == 330.0
    # the rest at 5x full too (VUs and rates), except the race: ten scanners, one ticket
    assert stress["scanner-burst"].executor == ConstantVUs(duration=20.0, vus=50)
    assert stress["scanner-race"].executor == full["scanner-race"].executor
    assert stress["dashboard-load"].executor == ConstantVUs(duration=60.0, vus=100)
    assert stress["dashboard-sales"].executor == ConstantArrivalRate(
        rate=10.0, duration=55.0, pre_allocated_vus=10, max_vus=50, time_unit=1.0)
    assert stress["webhook-burst"].executor == ConstantArrivalRate(
        rate=25.0, duration=10.0, pre_allocated_vus=50, max_vus=100, time_unit=1.0)
    assert stress["webhook-redelivery"].executor == SharedIterations(
        vus=50, iterations=250, max_duration=30.0)  # all 250 burst events, delivered again
    # one after another, as at full: nothing overlaps the longer purchase scenario
    assert stress["scanner-burst"].start_time >= _end(stress["ticket-purchase"]) + 30
    # the budgets still judge: the same ones as at full
    assert len(load_plan(TICKETING, env=TICKETING_ENV, profile="stress").thresholds) == len(
        load_plan(TICKETING, env=TICKETING_ENV, profile="full").thresholds)


def test_soak_holds_ticket_purchase_thirty_minutes_at_the_pr_load() -> None:
    pr, soak = _ticketing("pr"), _ticketing("soak")
    purchase = soak["ticket-purchase"].executor
    assert isinstance(purchase, RampingVUs)
    pr_vus = max(stage.target for stage in pr["ticket-purchase"].executor.stages)  # type: ignore[union-attr]
    assert pr_vus == 30
    # the seed's shape: 2 min up, 30 min held, 2 min down
    assert purchase.stages == (Stage(120.0, pr_vus), Stage(1800.0, pr_vus), Stage(120.0, 0.0))
    assert _end(soak["ticket-purchase"]) == 34 * 60
    # the other scenarios as at pr, in pr's order, after the soak
    others = [name for name in pr if name != "ticket-purchase"]
    assert [name for name in soak if name != "ticket-purchase"] == others
    for name in others:
        assert soak[name].executor == pr[name].executor, name
        assert soak[name].start_time > _end(soak["ticket-purchase"])
    assert sorted(others, key=lambda n: soak[n].start_time) == sorted(
        others, key=lambda n: pr[n].start_time)
    # pr's gaps, to within a second (the soak's start times are rounded)
    for name in others:
        pr_gap = pr[name].start_time - _end(pr["ticket-purchase"])
        soak_gap = soak[name].start_time - _end(soak["ticket-purchase"])
        assert abs(soak_gap - pr_gap) <= 1.0, name
