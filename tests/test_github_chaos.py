"""What a step shows for a chaos run: an error at the plan line of each
recovery budget that failed and of each fault left in place, and step
outputs that agree with them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loadaction.errors import ExitCode
from loadaction.github.annotations import chaos_errors
from loadaction.github.environment import Environment
from loadaction.github.step import GitHubOptions, GitHubStep
from tests.test_github_outputs import parse_outputs
from tests.test_report_chaos import chaos_doc, recovered_doc
from tests.test_report_fixtures import make_doc


def test_each_failed_recovery_and_rollback_is_an_error_at_its_source_line() -> None:
    lines = chaos_errors(chaos_doc(), lambda path: f"repo/{path}")
    at = "::error file=repo/scenarios/chaos.yml,line={},title={}::"
    recovery = "Recovery budget exceeded"
    p95 = "http_req_duration{scenario:purchase} p(95)<500"
    assert lines == [
        at.format(44, recovery)
        + "recovery after kill-db: http_req_failed rate<0.01 within 10s: not recovered",
        at.format(45, recovery)
        + f"recovery after kill-db: {p95} within 5s: recovered in 8.2s, too late",
        at.format(48, recovery) + f"recovery after late: {p95} within 30s: no data",
        at.format(36, "Fault not rolled back")
        + "fault kill-db (toxiproxy) was not rolled back: HTTP 503 from toxiproxy; "
        + "the target may still be degraded",
    ]
    assert chaos_errors(recovered_doc(), str) == []
    assert chaos_errors(make_doc(), str) == []


def test_annotation_text_cannot_inject_a_command() -> None:
    doc = chaos_doc()
    doc["chaos"]["faults"][1]["rollback"] = "failed: boom\n::add-mask::x 100%"
    doc["chaos"]["faults"][1]["source"] = {"file": "a,b:c.yml", "line": "36"}
    [*_, rollback] = chaos_errors(doc, str)
    assert rollback == ("::error file=a%2Cb%3Ac.yml,title=Fault not rolled back::fault kill-db "
                        "(toxiproxy) was not rolled back: boom%0A::add-mask::x 100%25; "
                        "the target may still be degraded")


def _after_run(tmp_path: Path, doc: dict, code: ExitCode) -> tuple[list[str], dict[str, str]]:
    output = tmp_path / "output.txt"
    env = Environment.from_env({"GITHUB_EVENT_NAME": "push", "GITHUB_WORKSPACE": str(tmp_path),
                                "GITHUB_OUTPUT": str(output)})
    lines: list[str] = []
    step = GitHubStep(GitHubOptions(summary=False), env, token=None, write=lines.append)
    asyncio.run(step.after_run(doc, code))
    return lines, parse_outputs(output.read_text(encoding="utf-8"))


def test_the_step_prints_the_errors_and_does_not_pass(tmp_path: Path) -> None:
    # ExitCode.OK here stands for a verdict that overlooked the chaos section:
    # the outputs still follow the document.
    lines, outputs = _after_run(tmp_path, chaos_doc(), ExitCode.OK)
    errors = [line for line in lines if line.startswith("::error")]
    titles = [line.split("title=")[1].split("::")[0] for line in errors]
    # The most important first: the fault left in place, then the budgets
    # furthest over (the error rate, 233% over its bound, before the p95 at
    # 42%; `no data` last), then the recoveries (not recovered first).
    assert titles == ["Fault not rolled back"] + ["Budget exceeded"] * 3 + [
        "Recovery budget exceeded"] * 3
    assert [line.split("::", 2)[2].rsplit(": ", 1)[0] for line in errors[1:4]] == [
        "http_req_failed rate<0.01", "http_req_duration{scenario:purchase} p(95)<500",
        "http_reqs{scenario:ghost} count>0"]
    assert errors[4].endswith("within 10s: not recovered")
    assert errors[5].endswith("recovered in 8.2s, too late")
    assert errors[6].endswith("within 30s: no data")
    assert outputs["passed"] == "false"
    assert outputs["violations"] == "6"


def test_a_chaos_run_that_held_passes(tmp_path: Path) -> None:
    lines, outputs = _after_run(tmp_path, recovered_doc(), ExitCode.OK)
    assert not [line for line in lines if line.startswith("::error")]
    assert (outputs["passed"], outputs["violations"]) == ("true", "0")
