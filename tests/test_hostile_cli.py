"""Hostile command lines, action inputs and results files: each is refused
with one line and exit 2, bounded in time and memory, and nothing is sent to
the target (outputs, flags and baselines are checked before any request)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile import Outcome, assert_rejected, run_cli

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "entrypoint.py"

PLAN = """
target: {url}
scenarios:
  s: {{executor: shared-iterations, vus: 1, iterations: 2, exec: f}}
flows:
  f: [{{request: {{name: ok, url: /ok}}}}]
"""


@pytest.fixture
def plan(tmp_path: Path, target) -> Path:
    path = tmp_path / "plan.yml"
    path.write_text(PLAN.format(url=target.url))
    return path


def _nothing_sent(target) -> None:
    assert sum(target.hits.values()) == 0, dict(target.hits)


# (extra args, text the error line must contain); all against `run PLAN`
FLAG_CASES = [
    (["--max-rps", "nan"], "--max-rps: expected a positive number"),
    (["--max-rps", "inf"], "--max-rps: expected a positive number"),
    (["--max-rps", "-5"], "--max-rps: expected a positive number"),
    (["--max-rps", "0"], "--max-rps: expected a positive number"),
    (["--max-requests", "0"], "--max-requests: expected a positive number"),
    (["--max-requests", "1.5"], "--max-requests: expected a positive number"),
    (["--progress-interval", "nan"], "--progress-interval: expected a positive number"),
    (["--progress-interval", "-1"], "--progress-interval: expected a positive number"),
    (["--max-duration", "nan"], "--max-duration"),
    (["--max-duration", "-1s"], "--max-duration"),
    (["--var", "novalue"], "expected KEY=VALUE"),
    (["--target", "not a url"], "--target"),
    (["--target", "ftp://127.0.0.1/"], "--target"),
    (["--scenario", "nope"], "unknown scenario 'nope'"),
    (["--profile", "nope"], "profile"),
]


@pytest.mark.parametrize("args, says", FLAG_CASES, ids=[" ".join(a) for a, _ in FLAG_CASES])
def test_a_bad_flag_is_refused_before_anything_is_sent(plan, target, tmp_path, args, says):
    outcome = run_cli(["run", str(plan), "--out", str(tmp_path / "out"), *args], cwd=tmp_path)
    assert_rejected(outcome, says=says)
    assert outcome.seconds < 10
    _nothing_sent(target)
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("port", ["-3", "99999", "http"])
def test_a_bad_demo_target_port_is_refused(tmp_path, port):
    assert_rejected(run_cli(["demo-target", "--port", port], cwd=tmp_path),
                    says="--port: expected a port number")


def _out_is_a_file(tmp: Path) -> Path:
    (tmp / "taken").write_text("not a directory")
    return tmp / "taken"


def _out_under_a_file(tmp: Path) -> Path:
    (tmp / "file").write_text("x")
    return tmp / "file" / "results"


def _results_json_is_a_directory(tmp: Path) -> Path:
    (tmp / "res" / "results.json").mkdir(parents=True)
    return tmp / "res"


OUT_CASES = [
    (_out_is_a_file, "exists and is not a directory"),
    (_out_under_a_file, "cannot write there"),
    (lambda tmp: Path("/proc/loadaction-results"), "cannot write there"),
    (_results_json_is_a_directory, "results.json is a directory"),
]


@pytest.mark.parametrize("make, says", OUT_CASES, ids=["file", "under-a-file", "read-only", "results-dir"])
def test_an_unwritable_out_is_refused_before_the_load_is_sent(plan, target, tmp_path, make, says):
    out = make(tmp_path)
    outcome = run_cli(["run", str(plan), "--out", str(out)], cwd=tmp_path)
    assert_rejected(outcome, says=["--out", says])
    _nothing_sent(target)


def _baseline_missing(tmp: Path) -> Path:
    return tmp / "missing.json"


def _baseline_dir(tmp: Path) -> Path:
    (tmp / "base").mkdir()
    return tmp / "base"


def _write(name: str, content: bytes):
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(content)
        return tmp / name
    return make


RESULTS_CASES = [
    (_baseline_missing, "missing.json"),
    (_write("empty.json", b""), "empty.json"),
    (_write("text.json", b"this is not json"), "invalid JSON"),
    (_write("array.json", b"[1, 2, 3]"), "expected a JSON object"),
    (_write("binary.json", b"\xff\xfe\x00\x01garbage"), "binary.json"),
    (_write("deep.json", b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
    (_write("old.json", json.dumps({"schema": 99}).encode()), "schema"),
    (_write("verdict.json", json.dumps({
        "schema": 1, "plan": {"name": "p", "file": "p.yml", "profile": None, "target": "http://x"},
        "status": "complete", "duration_s": 1, "scenarios": [],
        "metrics": {}, "checks": [], "errors": [],
        "thresholds": [{"metric": "m", "expression": "count>0", "verdict": "maybe"}],
    }).encode()), "$.thresholds[0].verdict"),
]


@pytest.mark.parametrize("make, says", RESULTS_CASES,
                         ids=["missing", "empty", "text", "array", "binary", "deep",
                              "schema-99", "bad-verdict"])
def test_a_bad_results_file_is_refused_by_report_and_as_a_baseline(plan, target, tmp_path, make, says):
    path = make(tmp_path)
    assert_rejected(run_cli(["report", str(path)], cwd=tmp_path), says=says)
    assert_rejected(run_cli(["report", str(path), "--format", "md"], cwd=tmp_path), says=says)
    baseline = run_cli(["run", str(plan), "--baseline", str(path), "--github", "--comment", "never",
                        "--no-summary"], cwd=tmp_path)
    assert baseline.code == 2 and "Traceback" not in baseline.stderr, baseline.stderr
    assert says in baseline.stderr
    _nothing_sent(target)


def test_report_on_a_directory_is_refused(tmp_path):
    assert_rejected(run_cli(["report", str(_baseline_dir(tmp_path))], cwd=tmp_path),
                    says=["base", "Is a directory"])


# ---------------------------------------------------------------- the action

def _action(tmp_path: Path, target_url: str, **inputs: str) -> tuple[Outcome, Path]:
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    (workspace / "plan.yml").write_text(PLAN.format(url=target_url))
    summary = tmp_path / "summary.md"
    summary.touch()
    env = {"GITHUB_WORKSPACE": str(workspace), "GITHUB_STEP_SUMMARY": str(summary),
           "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_EVENT_NAME": "push",
           "GITHUB_REPOSITORY": "octo/shop", "GITHUB_API_URL": "http://127.0.0.1:9",
           "INPUT_PLAN": "plan.yml", "INPUT_TARGET": target_url, "INPUT_PROFILE": "",
           "INPUT_COMMENT": "never"}
    env.update({f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()})
    return run_cli([], cwd=workspace, env=env, program=[str(ENTRYPOINT)]), workspace


ACTION_CASES = [
    ({"results_dir": "plan.yml"}, "input 'results-dir'"),
    ({"max_rps": "nan"}, "input 'max-rps'"),
    ({"max_rps": "-1"}, "input 'max-rps'"),
    ({"comment": "sometimes"}, "input 'comment'"),
    ({"fail_on_violation": "maybe"}, "input 'fail-on-violation'"),
    ({"target": ""}, "input 'target' is required"),
    ({"comment_key": "a b\nc"}, "input 'comment-key'"),
]


@pytest.mark.parametrize("inputs, says", ACTION_CASES, ids=[next(iter(i)) + "=" + next(iter(i.values()))
                                                            for i, _ in ACTION_CASES])
def test_a_bad_action_input_is_one_error_line_and_nothing_is_sent(tmp_path, target, inputs, says):
    outcome, _ = _action(tmp_path, target.url, **inputs)
    assert "Traceback" not in outcome.stderr
    assert outcome.code == 2, outcome.stderr
    errors = [line for line in (outcome.stdout + outcome.stderr).splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and says in errors[0], outcome.stdout + outcome.stderr
    _nothing_sent(target)


def test_a_step_summary_that_cannot_be_written_is_refused_before_the_load(tmp_path, target):
    (tmp_path / "summary-dir").mkdir()
    outcome, _ = _action(tmp_path, target.url)
    assert outcome.code == 0  # the healthy case, for contrast
    target.hits.clear()
    env_summary = tmp_path / "summary-dir"
    outcome = run_cli([], cwd=tmp_path / "workspace", program=[str(ENTRYPOINT)], env={
        "GITHUB_WORKSPACE": str(tmp_path / "workspace"), "GITHUB_STEP_SUMMARY": str(env_summary),
        "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_EVENT_NAME": "push",
        "GITHUB_REPOSITORY": "octo/shop", "INPUT_PLAN": "plan.yml", "INPUT_TARGET": target.url,
        "INPUT_PROFILE": "", "INPUT_COMMENT": "never"})
    assert outcome.code == 2 and "Traceback" not in outcome.stderr, outcome.stderr
    assert "GITHUB_STEP_SUMMARY" in outcome.stdout + outcome.stderr
    _nothing_sent(target)
