"""The action's `mode: capacity`: its inputs mapped to `loadaction capacity`,
and the command line they make is one the CLI accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadaction.cli import build_parser
from loadaction.github.action import InputError, invocation

BUNDLED = Path("/app/scenarios/ticketing.yml")


def test_mode_capacity_maps_scenario_and_min_rate() -> None:
    call = invocation({"INPUT_TARGET": "https://x.test", "INPUT_MODE": "Capacity",
                       "INPUT_SCENARIO": "checkout", "INPUT_MIN-RATE": "50",
                       "INPUT_MAX_RPS": "400", "INPUT_FAIL_ON_VIOLATION": "false"}, BUNDLED)
    assert call.argv == [
        "capacity", str(BUNDLED), "--github", "--target", "https://x.test",
        "--out", "loadaction-results", "--profile", "pr", "--scenario", "checkout",
        "--min-rate", "50", "--comment", "always", "--comment-key", "default",
        "--no-fail-on-violation", "--max-rps", "400",
    ]
    args = build_parser().parse_args(call.argv)
    assert (args.command, args.scenario, args.min_rate, args.max_rps) == (
        "capacity", "checkout", 50.0, 400.0)
    assert args.github and not args.fail_on_violation


def test_mode_run_is_the_default_and_unchanged() -> None:
    call = invocation({"INPUT_TARGET": "https://x.test", "INPUT_MODE": "run"}, BUNDLED)
    assert call.argv[0] == "run" and "--min-rate" not in call.argv


@pytest.mark.parametrize(("env", "message"), [
    ({"INPUT_MODE": "stress"}, "input 'mode' must be run, capacity or merge; got 'stress'"),
    ({"INPUT_MODE": "capacity"}, "input 'scenario' is required with mode capacity"),
    ({"INPUT_MODE": "capacity", "INPUT_SCENARIO": "a", "INPUT_SCENARIOS": "a,b"},
     "input 'scenarios' is for mode run"),
    ({"INPUT_MODE": "capacity", "INPUT_SCENARIO": "a", "INPUT_MIN_RATE": "lots"},
     "input 'min-rate' must be a positive number"),
    ({"INPUT_MODE": "capacity", "INPUT_SCENARIO": "a", "INPUT_BASELINE": "auto"},
     "input 'baseline' is for mode run"),
    ({"INPUT_SCENARIO": "a"}, "inputs 'scenario' and 'min-rate' are for mode capacity"),
    ({"INPUT_MIN_RATE": "5"}, "inputs 'scenario' and 'min-rate' are for mode capacity"),
])
def test_bad_capacity_inputs_name_the_input(env: dict[str, str], message: str) -> None:
    with pytest.raises(InputError) as exc_info:
        invocation({"INPUT_TARGET": "https://x.test", **env}, BUNDLED)
    assert message in str(exc_info.value)
