"""What a step shows for a results document: scenario groups that untrusted
strings cannot break out of, annotations at budget lines, and
`loadaction comment` posting the same sticky comment from a results.json."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from loadaction.cli import main
from loadaction.github.annotations import budget_errors, run_error
from loadaction.github.scenario_log import fold, scenario_groups
from tests.github_api import TOKEN, serve
from tests.test_report_fixtures import make_doc, passing_doc

PR = 12


def test_each_violated_budget_is_one_error_at_its_source_line():
    lines = budget_errors(make_doc(), lambda path: f"repo/{path}")
    at = "::error file=repo/scenarios/ticketing.yml,line=14,title=Budget exceeded::"
    assert lines == [
        at + "http_req_duration{scenario:purchase} p(95)<500: observed 712.31ms",
        at + "http_req_failed rate<0.01: observed 3.33%25",
        at + "http_reqs{scenario:ghost} count>0: no data",
    ]
    assert budget_errors(passing_doc(), str) == []


def test_a_run_not_carried_out_is_an_error():
    doc = passing_doc()
    assert run_error(doc) is None
    doc.update(status="failed", status_reason="target unreachable\n::add-mask::x")
    assert run_error(doc) == ("::error title=Run not carried out::run failed: "
                              "target unreachable%0A::add-mask::x")


def test_scenario_groups_keep_hostile_strings_inside_their_lines():
    doc = make_doc()
    doc["errors"].append({"message": "oops\n::error::injected", "count": 1, "scenario": "scanner"})
    doc["series"]["scenarios"]["purchase"] = [
        {"t": float(t), "reqs": 10, "failed": 1, "iterations": 9, "vus": t, "p50": 1.0,
         "p95": float(t), "p99": 3.0, "max": 4.0, "hdr": None} for t in range(1, 301)]
    lines = scenario_groups(doc)
    commands = [line for line in lines if line.startswith("::")]
    assert commands == [
        "::group::Scenario purchase: ramping-vus, 100 iterations, 3 interrupted, 0 dropped, "
        + "100 max VUs",
        "::endgroup::",
        "::group::Scenario scanner: constant-arrival-rate, 200 iterations, 0 interrupted, "
        + "4 dropped, 20 max VUs",
        "::endgroup::",
    ]
    assert "error 1x oops\\n::error::injected" in lines
    assert sum(line.startswith("t=") for line in lines) == 60 + 1  # folded; scanner has none
    assert "budget ✗ http_req_duration{scenario:purchase} p(95)<500: observed 712.31ms" in lines


def test_fold_keeps_totals_and_the_worst_second():
    points = [{"t": float(t), "reqs": 1, "failed": t % 2, "iterations": 1, "vus": t,
               "p95": None if t == 3 else float(t)} for t in range(1, 8)]
    windows = fold(points, 3)
    assert [w["t"] for w in windows] == [3.0, 6.0, 7.0]
    assert [w["reqs"] for w in windows] == [3, 3, 1]
    assert [w["p95"] for w in windows] == [2.0, 6.0, 7.0]
    assert [w["vus"] for w in windows] == [3, 6, 7]


# ------------------------------------------------------ loadaction comment


@pytest.fixture
def results(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(make_doc()))
    return path


def test_comment_command_posts_then_updates(results, monkeypatch, capsys):
    with serve() as github:
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_API_URL", github.url)
        args = ["comment", "--results", str(results), "--pr", str(PR), "--repo", github.repo]
        assert main(args) == 0
        assert main([*args, "--head-sha", github.head_sha]) == 0
        [comment] = github.on_pr(PR)
    out = capsys.readouterr().out
    assert "PR comment posted" in out and "PR comment updated" in out
    body = comment["body"]
    assert body.startswith("<!-- loadaction:default -->\n")
    assert "<script>" not in body and "@octocat" not in body  # escaped by the report
    assert TOKEN not in out + body


def test_comment_command_refuses_results_for_another_head(results, monkeypatch, capsys):
    with serve() as github:
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_API_URL", github.url)
        code = main(["comment", "--results", str(results), "--pr", str(PR), "--repo", github.repo,
                     "--head-sha", "f" * 40])
        assert code == 3
        assert github.writes() == []
    assert "not for its current head" in capsys.readouterr().err


def test_comment_command_baseline_and_key(results, tmp_path, monkeypatch):
    baseline = tmp_path / "baseline.json"
    doc = copy.deepcopy(passing_doc())
    baseline.write_text(json.dumps(doc))
    with serve() as github:
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_API_URL", github.url)
        monkeypatch.setenv("GITHUB_REPOSITORY", github.repo)
        assert main(["comment", "--results", str(results), "--pr", str(PR),
                     "--comment-key", "nightly", "--baseline", str(baseline)]) == 0
        [comment] = github.on_pr(PR)
    assert comment["body"].startswith("<!-- loadaction:nightly -->\n")


@pytest.mark.parametrize("args, env, message", [
    (["--pr", "12"], {}, "GITHUB_TOKEN is not set"),
    (["--pr", "x"], {"GITHUB_TOKEN": TOKEN}, "expected a pull request number"),
    (["--pr", "12", "--repo", "nope"], {"GITHUB_TOKEN": TOKEN}, "expected OWNER/NAME"),
    (["--pr", "12", "--comment-key", "a--b"], {"GITHUB_TOKEN": TOKEN}, "may not contain"),
])
def test_comment_command_bad_arguments_exit_2(results, monkeypatch, capsys, args, env, message):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo-org/shop")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        code = main(["comment", "--results", str(results), *args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# ------------------------------------------- the fork-safe comment workflow

FORK_SAFE = Path(__file__).resolve().parents[1] / "examples" / "workflows" / "fork-safe-comment.yml"
CONCLUSIONS = ("success", "failure", "cancelled", "skipped", "timed_out", "neutral",
               "action_required", "stale")


def _fork_safe_job() -> dict[str, Any]:
    workflow = YAML(typ="safe").load(FORK_SAFE.read_text(encoding="utf-8"))
    [job] = workflow["jobs"].values()
    return job


def _evaluate(condition: str, workflow_run: dict[str, Any]) -> bool:
    """The job's `if:` for one `workflow_run` event: the expression uses only
    `github.event.workflow_run.*`, string literals, ==, &&, || and parentheses."""
    expression = re.sub(r"github\.event\.workflow_run\.([\w.]+)",
                        lambda m: f"run({m[1]!r})", condition)
    expression = expression.replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[\s\w()'.=]+", expression.replace(" and ", " ").replace(" or ", " "))

    def run(path: str) -> Any:
        value: Any = workflow_run
        for key in path.split("."):
            value = value[key]
        return value

    return bool(eval(expression, {"__builtins__": {}}, {"run": run}))


@pytest.mark.parametrize("conclusion", CONCLUSIONS)
def test_fork_safe_comment_runs_only_for_a_gate_that_reached_a_verdict(conclusion):
    condition = _fork_safe_job()["if"]
    fork_pr = {"event": "pull_request", "conclusion": conclusion,
               "head_repository": {"fork": True}}
    # A cancelled or superseded gate (`cancelled`), or any other that did not
    # reach a verdict, is skipped: a skipped job is not a red mark.
    assert _evaluate(condition, fork_pr) is (conclusion in ("success", "failure"))
    same_repo = {**fork_pr, "head_repository": {"fork": False}}
    assert _evaluate(condition, same_repo) is False
    push = {**fork_pr, "event": "push"}
    assert _evaluate(condition, push) is False


def test_fork_safe_comment_ends_green_without_an_artifact(tmp_path):
    steps = _fork_safe_job()["steps"]
    [download] = [s for s in steps if str(s.get("uses", "")).startswith("actions/download-artifact")]
    # A failed download does not fail the job...
    assert download["continue-on-error"] is True
    outcome = f"steps.{download['id']}.outcome"
    after = steps[steps.index(download) + 1:]
    # ...one step says why in a notice...
    [notice] = [s for s in after if s.get("if") == f"{outcome} != 'success'"]
    result = subprocess.run(["bash", "-ec", notice["run"]], env={"RUN_URL": "https://x/run/1"},
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("::notice title=No performance comment::the gate run "
                                    "https://x/run/1 uploaded no loadaction-pr artifact")
    # ...and nothing else runs.
    rest = [s for s in after if s is not notice]
    assert rest and all(s.get("if") == f"{outcome} == 'success'" for s in rest)


def test_fork_safe_comment_ends_green_when_the_artifact_has_no_results(tmp_path):
    """A gate whose run stopped before writing results.json still uploads the PR number."""
    [post] = [s for s in _fork_safe_job()["steps"] if s.get("name") == "Post the sticky comment"]
    (tmp_path / "pr").mkdir()
    (tmp_path / "pr" / "number").write_text("12\n")
    result = subprocess.run(["bash", "-ec", post["run"]], cwd=tmp_path, capture_output=True, check=False,
                            text=True, env={"PATH": "/usr/bin:/bin", "HEAD_SHA": "a" * 40})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("::notice title=No performance comment::")
    assert "loadaction" not in result.stderr  # the comment command never ran
