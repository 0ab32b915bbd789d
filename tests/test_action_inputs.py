"""The action's inputs mapped to `loadaction run`, and action.yml agreeing
with the code: every input mapped in runs.env under its underscore
spelling, and the same defaults on both sides."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from loadaction.github.action import DEFAULTS, InputError, invocation

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = Path("/app/scenarios/ticketing.yml")


def action_yml() -> dict:
    return YAML(typ="safe").load((ROOT / "action.yml").read_text())


def test_defaults_give_the_bundled_plan_at_profile_pr():
    call = invocation({"INPUT_TARGET": "https://preview.example.com"}, BUNDLED)
    assert call.argv == [
        "run", str(BUNDLED), "--github", "--target", "https://preview.example.com",
        "--out", "loadaction-results", "--profile", "pr", "--comment", "always",
        "--comment-key", "default",
    ]
    assert call.env == {}


def test_every_input_maps_to_its_flag_and_the_token_to_the_environment():
    env = {
        "INPUT_PLAN": "plans/shop.yml", "INPUT_TARGET": "https://x.test", "INPUT_PROFILE": "",
        "INPUT_SCENARIOS": "purchase, scan\nwebhooks", "INPUT_VARS": "a=1\n\n# note\n b = two=2 \n",
        "INPUT_BASELINE": "base/results.json", "INPUT_GITHUB-TOKEN": "ghs_token",
        "INPUT_COMMENT": "On-Failure", "INPUT_COMMENT-KEY": "linux", "INPUT_SUMMARY": "false",
        "INPUT_FAIL-ON-VIOLATION": "False", "INPUT_RESULTS-DIR": "out",
        "INPUT_ALLOWED-HOSTS": "api.stripe.test,hooks.test", "INPUT_MAX-RPS": "50.5",
    }
    call = invocation(env, BUNDLED)
    assert call.argv == [
        "run", "plans/shop.yml", "--github", "--target", "https://x.test", "--out", "out",
        "--scenario", "purchase", "--scenario", "scan", "--scenario", "webhooks",
        "--var", "a=1", "--var", "b=two=2", "--baseline", "base/results.json",
        "--comment", "on-failure", "--comment-key", "linux", "--no-summary",
        "--no-fail-on-violation", "--allow-host", "api.stripe.test", "--allow-host", "hooks.test",
        "--max-rps", "50.5",
    ]
    assert call.env == {"GITHUB_TOKEN": "ghs_token"}
    assert "ghs_token" not in call.argv


def test_baseline_auto_maps_to_the_lookup_flags():
    base = {"INPUT_TARGET": "https://x.test", "INPUT_BASELINE": "Auto"}
    call = invocation(base, BUNDLED)
    at = call.argv.index("--baseline")
    assert call.argv[at:at + 6] == ["--baseline", "auto", "--baseline-artifact",
                                    "loadaction-results", "--baseline-runs", "5"]
    assert "--baseline-workflow" not in call.argv  # the running workflow's, found at run time
    call = invocation({**base, "INPUT_BASELINE-WORKFLOW": ".github/workflows/main-baseline.yml",
                       "INPUT_BASELINE_ARTIFACT": "perf-main", "INPUT_BASELINE_RUNS": "20"},
                      BUNDLED)
    at = call.argv.index("--baseline")
    assert call.argv[at:at + 8] == ["--baseline", "auto", "--baseline-artifact", "perf-main",
                                    "--baseline-runs", "20", "--baseline-workflow",
                                    "main-baseline.yml"]


def test_baseline_paths_one_per_line_and_no_lookup_flags_without_auto():
    call = invocation({"INPUT_TARGET": "https://x.test",
                       "INPUT_BASELINE": "old/results.json\n\n  baselines/  \n./auto",
                       "INPUT_BASELINE_RUNS": "3"}, BUNDLED)
    flags = [a for a in call.argv if a.startswith("--baseline")]
    assert flags == ["--baseline"] * 3
    at = call.argv.index("--baseline")
    assert call.argv[at:at + 6] == ["--baseline", "old/results.json", "--baseline", "baselines/",
                                    "--baseline", "./auto"]


@pytest.mark.parametrize("env, message", [
    ({}, "input 'target' is required"),
    ({"INPUT_BASELINE": "auto\nold.json"}, "input 'baseline' is either auto or paths"),
    ({"INPUT_BASELINE_RUNS": "0"}, "input 'baseline-runs' must be a whole number from 1 to 20"),
    ({"INPUT_BASELINE_RUNS": "21"}, "input 'baseline-runs' must be a whole number from 1 to 20"),
    ({"INPUT_BASELINE-RUNS": "five"}, "input 'baseline-runs' must be a whole number"),
    ({"INPUT_BASELINE_WORKFLOW": "../../etc/passwd"},
     "input 'baseline-workflow' must be a workflow file name"),
    ({"INPUT_BASELINE_WORKFLOW": "Performance gate"}, "input 'baseline-workflow' must be"),
    ({"INPUT_BASELINE_ARTIFACT": "results:main"}, "input 'baseline-artifact' must not contain"),
    ({"INPUT_COMMENT": "sometimes"}, "input 'comment' must be always, on-failure, never"),
    ({"INPUT_MAX_RPS": "fast"}, "input 'max-rps' must be a positive number"),
    ({"INPUT_MAX_RPS": "-1"}, "input 'max-rps' must be a positive number"),
    ({"INPUT_MAX_RPS": "inf"}, "input 'max-rps' must be a positive number"),
    ({"INPUT_FAIL_ON_VIOLATION": "nah"}, "input 'fail-on-violation' must be true or false"),
    ({"INPUT_VARS": "=1"}, "input 'vars', line 1: expected KEY=VALUE"),
    ({"INPUT_COMMENT_KEY": "a-->b"}, "input 'comment-key'"),
    ({"INPUT_WORKERS": "0"}, "input 'workers' must be a number of processes .1 or more. or auto"),
    ({"INPUT_WORKERS": "all"}, "input 'workers' must be a number of processes"),
    ({"INPUT_WORKERS": "2", "INPUT_MODE": "capacity", "INPUT_SCENARIO": "s",
      "INPUT_MIN_RATE": "1"}, "input 'workers' is for mode run"),
])
def test_bad_inputs_name_the_input(env, message):
    if env:
        env = {"INPUT_TARGET": "https://x.test", **env}
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        invocation(env, BUNDLED)


def test_workers_input_maps_to_the_flag_and_empty_leaves_the_cli_default():
    call = invocation({"INPUT_TARGET": "https://x.test", "INPUT_WORKERS": " 3 "}, BUNDLED)
    at = call.argv.index("--workers")
    assert call.argv[at:at + 2] == ["--workers", "3"]
    call = invocation({"INPUT_TARGET": "https://x.test", "INPUT_WORKERS": "auto"}, BUNDLED)
    assert call.argv[call.argv.index("--workers") + 1] == "auto"
    assert "--workers" not in invocation({"INPUT_TARGET": "https://x.test"}, BUNDLED).argv


def test_quick_override_inputs_map_to_k6_s_flags():
    call = invocation({"INPUT_TARGET": "https://x.test", "INPUT_SCENARIOS": "ticket-purchase",
                       "INPUT_VUS": " 30 ", "INPUT_STAGES": "2m:30\n30m:30, 2m : 0\n"}, BUNDLED)
    at = call.argv.index("--vus")
    assert call.argv[at:at + 8] == ["--vus", "30", "--stage", "2m:30", "--stage", "30m:30",
                                    "--stage", "2m:0"]
    call = invocation({"INPUT_TARGET": "https://x.test", "INPUT_ITERATIONS": "100",
                       "INPUT_DURATION": "1m30s"}, BUNDLED)
    at = call.argv.index("--iterations")
    assert call.argv[at:at + 4] == ["--iterations", "100", "--duration", "1m30s"]


@pytest.mark.parametrize("env, message", [
    ({"INPUT_VUS": "0"}, "input 'vus' must be a whole number of at least 1; got '0'"),
    ({"INPUT_VUS": "ten"}, "input 'vus' must be a whole number"),
    ({"INPUT_ITERATIONS": "1.5"}, "input 'iterations' must be a whole number"),
    ({"INPUT_DURATION": "-1s"}, "input 'duration' must be a duration (e.g. 30s, 5m); got '-1s'"),
    ({"INPUT_STAGES": "30s"}, "input 'stages': expected DURATION:TARGET"),
    ({"INPUT_STAGES": "30s:10, x:1"}, "input 'stages': expected DURATION:TARGET (e.g. 30s:100), "
                                      "one per line or comma-separated; got 'x:1'"),
    ({"INPUT_STAGES": "30s:-1"}, "input 'stages': expected DURATION:TARGET"),
    ({"INPUT_MODE": "capacity", "INPUT_SCENARIO": "s", "INPUT_VUS": "2", "INPUT_DURATION": "1s"},
     "inputs 'vus', 'duration', 'stages' and 'iterations' are for mode run"),
])
def test_bad_quick_override_inputs_name_the_input(env, message):
    with pytest.raises(InputError) as raised:
        invocation({"INPUT_TARGET": "https://x.test", **env}, BUNDLED)
    assert str(raised.value).startswith(message)


def test_action_yml_declares_exactly_the_inputs_the_code_reads_with_the_same_defaults():
    inputs = action_yml()["inputs"]
    assert set(inputs) == set(DEFAULTS)
    for name, spec in inputs.items():
        if name == "github-token":
            assert spec["default"] == "${{ github.token }}"
        else:  # target too: required by mode run and capacity only, which say so
            assert str(spec["default"]) == DEFAULTS[name], name


def test_every_input_is_mapped_again_in_runs_env():
    meta = action_yml()
    env = meta["runs"]["env"]
    assert env == {f"INPUT_{name.upper().replace('-', '_')}": f"${{{{ inputs.{name} }}}}"
                   for name in meta["inputs"]}


def test_action_yml_is_a_docker_action_with_branding_and_the_outputs():
    meta = action_yml()
    assert meta["runs"]["using"] == "docker" and meta["runs"]["image"] == "Dockerfile"
    assert set(meta["branding"]) == {"icon", "color"}
    assert set(meta["outputs"]) == {"passed", "violations", "results-json", "report-md",
                                    "comment-url"}
