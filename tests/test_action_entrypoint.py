"""entrypoint.py as the runner starts it: a subprocess with a GitHub-shaped
environment (INPUT_*, a real pull_request event payload, GITHUB_OUTPUT,
GITHUB_STEP_SUMMARY, GITHUB_API_URL pointing at a fake API on 127.0.0.1),
against the demo target."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadaction.demo import DemoTarget, serve_in_thread
from tests.github_api import TOKEN, FakeGitHub, pull_request_event, serve
from tests.test_github_outputs import parse_outputs

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "tests" / "plans" / "action" / "events.yml"
PR = 7
VIOLATED_LINE = 26  # `checks: ["rate==1"]` in events.yml


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoTarget]:
    with serve_in_thread() as target:
        yield target


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve() as fake:
        yield fake


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    summary: str
    outputs: dict[str, str]
    workspace: Path

    def lines(self) -> list[str]:
        return (self.stdout + self.stderr).splitlines()

    def everything(self, github: FakeGitHub | None = None) -> str:
        """All the step shows or leaves behind, but the add-mask lines."""
        files = [p.read_text() for p in self.workspace.rglob("*") if p.is_file()]
        bodies = [c["body"] for c in github.comments.values()] if github else []
        calls = [json.dumps(c.json) for c in github.calls] if github else []
        text = "\n".join([self.stdout, self.stderr, self.summary, *files, *bodies, *calls])
        return "\n".join(line for line in text.splitlines() if not line.startswith("::add-mask::"))


def run_entrypoint(tmp_path: Path, demo: DemoTarget, github: FakeGitHub | None,
                   inputs: Mapping[str, str], event: str = "pull_request",
                   extra_env: Mapping[str, str] | None = None,
                   entrypoint: Path = ROOT / "entrypoint.py",
                   python: str = sys.executable, hyphens: bool = True) -> Result:
    workspace = tmp_path / "workspace"
    (workspace / "plans").mkdir(parents=True, exist_ok=True)
    shutil.copy(PLAN, workspace / "plans" / "events.yml")
    runner = tmp_path / "runner"
    runner.mkdir(exist_ok=True)
    event_path = runner / "event.json"
    event_path.write_text(json.dumps(pull_request_event(PR)))
    summary, output = runner / "summary.md", runner / "output"
    summary.touch()
    output.touch()
    env = {
        "PATH": os.environ.get("PATH", ""),
        # one process, as the rest of the suite (conftest); the installed
        # image's test (test_action_docker_install) runs the default, auto
        "LOADACTION_WORKERS": "1",
        **demo.env,
        "CI": "true", "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": github.repo if github else "octo-org/shop",
        "GITHUB_API_URL": github.url if github else "http://127.0.0.1:9",
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "4242",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output),
        **(extra_env or {}),
    }
    defaults = {"plan": "plans/events.yml", "target": demo.url, "github-token": TOKEN}
    for name, value in {**defaults, **inputs}.items():
        key = name.upper() if hyphens else name.upper().replace("-", "_")
        env[f"INPUT_{key}"] = value
    proc = subprocess.run([python, str(entrypoint)], cwd=workspace, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr, summary.read_text(),
                  parse_outputs(output.read_text()), workspace)


@pytest.fixture
def action(tmp_path: Path, demo: DemoTarget, github: FakeGitHub) -> Callable[..., Result]:
    def run(**inputs: str) -> Result:
        return run_entrypoint(tmp_path, demo, github, {k.replace("_", "-"): v
                                                       for k, v in inputs.items()})
    return run


def test_first_run_comments_and_the_second_updates_the_same_comment(action, github):
    first = action()
    assert first.code == 0, first.stderr
    [comment] = github.on_pr(PR)
    assert comment["body"].startswith("<!-- loadaction:default -->\n")
    assert first.outputs["comment-url"] == comment["html_url"]

    second = action()
    assert second.code == 0, second.stderr
    assert len(github.on_pr(PR)) == 1
    assert [c.method for c in github.writes()] == ["POST", "PATCH"]
    assert second.outputs == {
        "passed": "true", "violations": "0",
        "results-json": "loadaction-results/results.json",
        "report-md": "loadaction-results/report.md",
        "comment-url": comment["html_url"],
    }
    results = json.loads((second.workspace / "loadaction-results" / "results.json").read_text())
    assert results["status"] == "complete"
    assert (second.workspace / "loadaction-results" / "report.md").read_text().strip()
    assert second.summary.count("loadaction") >= 1
    assert "::group::Scenario events: shared-iterations, 20 iterations" in second.stdout
    assert "::endgroup::" in second.stdout


def test_masks_come_first_and_the_token_shows_nowhere(action, github, demo):
    result = action(vars="path=/nope")
    out = result.stdout.splitlines()
    assert out[0] == f"::add-mask::{TOKEN}"
    assert out[1] == f"::add-mask::{demo.keys.service_role_key}"
    everything = result.everything(github)
    assert TOKEN not in everything
    assert demo.keys.service_role_key not in everything


def test_a_violation_exits_99_with_an_error_at_the_budgets_line(action, github):
    result = action(vars="path=/nope", comment_key="matrix py3.11")
    assert result.code == 99
    errors = [line for line in result.lines() if line.startswith("::error ")]
    assert errors == [(f"::error file=plans/events.yml,line={VIOLATED_LINE},title=Budget exceeded"
                       "::checks rate==1: observed 0.00%25")]
    assert result.outputs["passed"] == "false" and result.outputs["violations"] == "1"
    [comment] = github.on_pr(PR)
    assert comment["body"].startswith("<!-- loadaction:matrix py3.11 -->")


def test_fail_on_violation_false_exits_0_but_reports(action):
    result = action(vars="path=/nope", fail_on_violation="false", comment="never")
    assert result.code == 0
    assert result.outputs["passed"] == "false"
    assert any(line.startswith("::error file=plans/events.yml") for line in result.lines())


def test_a_fork_token_warns_and_keeps_the_runs_verdict(action, github):
    github.read_only = True
    passing = action()
    assert passing.code == 0
    warnings = [line for line in passing.lines() if line.startswith("::warning")]
    assert len(warnings) == 1 and "HTTP 403" in warnings[0] and "fork" in warnings[0]
    assert passing.outputs["comment-url"] == ""
    failing = action(vars="path=/nope")
    assert failing.code == 99


def test_a_502_is_retried_and_posts_one_comment(action, github):
    github.fail("POST", r".*/comments", 502, headers={"Retry-After": "0"})
    result = action()
    assert result.code == 0, result.stderr
    assert [c.status for c in github.writes()] == [502, 201]
    assert len(github.on_pr(PR)) == 1
    assert not any(line.startswith("::warning") for line in result.lines())


def test_on_failure_does_not_comment_on_a_passing_run(action, github):
    result = action(comment="on-failure")
    assert result.code == 0
    assert github.writes() == [] and github.on_pr(PR) == []


def test_no_comment_outside_pull_requests(tmp_path, demo, github):
    result = run_entrypoint(tmp_path, demo, github, {}, event="push")
    assert result.code == 0
    assert github.calls == []
    assert result.summary.strip()


def test_underscore_inputs_alone_are_enough(tmp_path, demo, github):
    """What a runner that drops hyphenated names leaves: runs.env's spellings."""
    inputs = {"comment-key": "dropped", "results-dir": "out"}
    result = run_entrypoint(tmp_path, demo, github, inputs, hyphens=False)
    assert result.code == 0, result.stderr
    assert result.outputs["results-json"] == "out/results.json"
    [comment] = github.on_pr(PR)
    assert comment["body"].startswith("<!-- loadaction:dropped -->")


@pytest.mark.parametrize("inputs, message", [
    ({"comment": "sometimes"}, "input 'comment' must be always, on-failure, never; got 'some"),
    ({"max-rps": "fast"}, "input 'max-rps' must be a positive number; got 'fast'"),
    ({"target": ""}, "input 'target' is required"),
    ({"summary": "maybe"}, "input 'summary' must be true or false; got 'maybe'"),
    ({"vars": "ok=1\nsk_test_not_a_pair"}, "input 'vars', line 2: expected KEY=VALUE"),
    ({"profile": "huge"}, "unknown profile 'huge'"),
])
def test_bad_inputs_exit_2_with_one_line(tmp_path, demo, github, inputs, message):
    result = run_entrypoint(tmp_path, demo, github, inputs)
    assert result.code == 2
    lines = [line for line in result.lines() if not line.startswith("::add-mask::")]
    assert len(lines) == 1 and lines[0].startswith("::error ") and message in lines[0], lines
    assert "sk_test_not_a_pair" not in result.stdout + result.stderr
    assert github.calls == []


def test_an_unreachable_target_exits_3_even_without_fail_on_violation(tmp_path, demo, github):
    result = run_entrypoint(tmp_path, demo, github,
                            {"target": "http://127.0.0.1:9", "fail-on-violation": "false",
                             "comment": "on-failure"})
    assert result.code == 3
    assert any(line.startswith("::error title=Run not carried out::") for line in result.lines())
    assert result.outputs["passed"] == "false"
    assert len(github.on_pr(PR)) == 1  # on-failure: the PR learns the gate could not run
