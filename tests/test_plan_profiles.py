"""Profiles scale a plan's size; overrides set individual scenario keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadaction.errors import PlanError, Source
from loadaction.plan import load_plan
from loadaction.plan.model import ConstantArrivalRate, Limits, RampingVUs, Stage
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
