"""GitHub shows only 10 error annotations per step (and 10 warnings): a run
with 40 violated budgets shows the most important 9, then one annotation
counting the other 31 and saying where they all are; those 31 are in a
collapsed group of the log, and every one is in report.md."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from loadaction.errors import ExitCode
from loadaction.github.annotations import (
    MAX_ANNOTATIONS,
    Annotation,
    AnnotationCap,
    overshoot,
    run_errors,
)
from loadaction.github.environment import Environment
from loadaction.github.step import GitHubOptions, GitHubStep
from tests.test_report_chaos import chaos_doc
from tests.test_report_fixtures import _threshold, make_doc

BUDGETS = 40


def _many_budgets_doc(base: dict[str, Any] | None = None) -> dict[str, Any]:
    """40 violated p(95) budgets, each on its own plan line (line = 100 + i),
    bounds and observed values shuffled so that the furthest over in
    absolute terms is not the furthest over relative to its bound; the last
    four were violated for want of data."""
    doc = base if base is not None else make_doc()
    rng = random.Random(40)
    thresholds = []
    for i in range(BUDGETS):
        bound = rng.choice([50, 200, 500, 2000])
        no_data = i >= BUDGETS - 4
        observed = None if no_data else bound * (1 + rng.uniform(0.01, 3.0))
        t = _threshold(f"http_req_duration{{scenario:purchase,name:ep{i}}}", f"p(95)<{bound}",
                       "no data" if no_data else "fail", observed)
        t["source"] = {"file": "scenarios/ticketing.yml", "line": 100 + i}
        thresholds.append(t)
    doc["thresholds"] = thresholds
    return doc


def _errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("::error")]


def _line_of(error: str) -> int:
    return int(error.split("line=")[1].split(",")[0])


def _after_run(tmp_path: Path, doc: dict[str, Any]) -> tuple[list[str], Path]:
    out = tmp_path / "out"
    out.mkdir()
    summary = tmp_path / "summary.md"
    env = Environment.from_env({"GITHUB_EVENT_NAME": "push", "GITHUB_WORKSPACE": str(tmp_path),
                                "GITHUB_STEP_SUMMARY": str(summary)})
    lines: list[str] = []
    step = GitHubStep(GitHubOptions(out=out), env, token=None, write=lines.append)
    asyncio.run(step.after_run(doc, ExitCode.THRESHOLDS_FAILED))
    return lines, out


def test_forty_violated_budgets_make_ten_errors_the_worst_first(tmp_path: Path) -> None:
    doc = _many_budgets_doc()
    lines, out = _after_run(tmp_path, doc)
    errors = _errors(lines)
    assert len(errors) == MAX_ANNOTATIONS

    # The 9 shown are the 9 furthest over their bound relative to it, worst first.
    by_overshoot = sorted(doc["thresholds"], key=lambda t: -overshoot(t))
    expected = [t["source"]["line"] for t in by_overshoot[:9]]
    assert [_line_of(e) for e in errors[:9]] == expected
    ratios = [overshoot(t) for t in by_overshoot[:9]]
    assert ratios == sorted(ratios, reverse=True) and ratios[-1] > 0
    worst_absolute = max(doc["thresholds"][:-4], key=lambda t: t["observed"] - float(
        t["expression"].split("<")[1]))
    assert by_overshoot[0] is not worst_absolute  # relative, not absolute

    # The tenth counts the rest and says where they all are.
    more = errors[9]
    assert more.startswith("::error title=31 more errors::31 more errors not shown as annotations")
    assert "31 × Budget exceeded" in more
    assert "job summary" in more
    assert "out/report.md" in more and "out/results.json" in more
    assert "file=" not in more

    # The other 31 are plain lines of a collapsed group, nothing a runner reads as a command.
    start = lines.index("::group::More errors (31)")
    group = lines[start + 1 : lines.index("::endgroup::", start)]
    assert len(group) == 31 and all(line.startswith("error: Budget exceeded: ") for line in group)
    shown = {_line_of(e) for e in errors[:9]}
    in_group = {int(line.rsplit(":", 1)[1].rstrip(")")) for line in group}
    assert shown | in_group == {t["source"]["line"] for t in doc["thresholds"]}
    assert not shown & in_group
    # `no data` comes after every budget that was measured.
    assert [int(line.rsplit(":", 1)[1].rstrip(")")) for line in group[-4:]] == [136, 137, 138, 139]

    # ...and every budget is in the report the annotation points to.
    report = (out / "report.md").read_text(encoding="utf-8")
    for i in range(BUDGETS):
        assert f"name:ep{i}}}" in report
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "ep39" in summary


def test_verdict_changing_errors_come_before_budgets(tmp_path: Path) -> None:
    """A fault left in place and a run not carried out head the list; the
    failed recoveries follow the budgets, so with 40 budgets they are counted
    in the last annotation and listed in the group."""
    doc = _many_budgets_doc(chaos_doc())
    doc["status"], doc["status_reason"] = "failed", "setup failed"
    ranked = run_errors(doc, str)
    assert [a.title for a in ranked[:2]] == ["Fault not rolled back", "Run not carried out"]
    assert {a.title for a in ranked[2:2 + BUDGETS]} == {"Budget exceeded"}
    assert [a.title for a in ranked[2 + BUDGETS:]] == ["Recovery budget exceeded"] * 3

    errors = _errors(_after_run(tmp_path, doc)[0])
    assert len(errors) == MAX_ANNOTATIONS
    assert "title=Fault not rolled back" in errors[0]
    assert "title=Run not carried out" in errors[1]
    assert errors[9].startswith("::error title=36 more errors::")
    assert "33 × Budget exceeded, 3 × Recovery budget exceeded" in errors[9]


def test_up_to_ten_errors_are_all_shown_with_no_count(tmp_path: Path) -> None:
    doc = _many_budgets_doc()
    doc["thresholds"] = doc["thresholds"][:MAX_ANNOTATIONS]
    lines, _ = _after_run(tmp_path, doc)
    errors = _errors(lines)
    assert len(errors) == MAX_ANNOTATIONS
    assert all("title=Budget exceeded" in e for e in errors)
    assert not any(line.startswith("::group::More") for line in lines)


def test_eleven_errors_show_nine_and_count_two() -> None:
    cap = AnnotationCap("error", ["report.md"])
    printed = []
    for i in range(11):
        printed += cap.add(Annotation("error", f"budget {i}", "Budget exceeded", "plan.yml", i + 1))
    assert len(printed) == 9
    printed += cap.finish()
    errors = _errors(printed)
    assert len(errors) == 10
    assert errors[-1].startswith("::error title=2 more errors::2 more errors")
    assert errors[-1].endswith('are in the "More errors" group of this step\'s log and report.md.')
    assert printed[-4:] == ["::group::More errors (2)",
                            "error: Budget exceeded: budget 9 (plan.yml:10)",
                            "error: Budget exceeded: budget 10 (plan.yml:11)", "::endgroup::"]


def test_warnings_have_the_same_cap(tmp_path: Path) -> None:
    env = Environment.from_env({"GITHUB_EVENT_NAME": "push", "GITHUB_WORKSPACE": str(tmp_path)})
    lines: list[str] = []
    step = GitHubStep(GitHubOptions(summary=False), env, token=None, write=lines.append)
    for i in range(14):
        step.warn(f"problem {i}\n::error::injected")
    assert len(lines) == 9  # the rest wait for the end of the step
    asyncio.run(step.after_run(make_doc(), ExitCode.OK))
    warnings = [line for line in lines if line.startswith("::warning")]
    assert len(warnings) == MAX_ANNOTATIONS
    assert warnings[-1].startswith("::warning title=5 more warnings::5 more warnings")
    start = lines.index("::group::More warnings (5)")
    assert lines[start + 1 : start + 6] == [
        f"warning: loadaction: problem {i}\\n::error::injected" for i in range(9, 14)]


def test_a_step_with_few_warnings_prints_them_as_they_come(tmp_path: Path) -> None:
    env = Environment.from_env({"GITHUB_EVENT_NAME": "push", "GITHUB_WORKSPACE": str(tmp_path)})
    lines: list[str] = []
    step = GitHubStep(GitHubOptions(summary=False), env, token=None, write=lines.append)
    for i in range(10):
        step.warn(f"problem {i}")
    asyncio.run(step.after_run(make_doc(), ExitCode.OK))
    warnings = [line for line in lines if line.startswith("::warning")]
    assert warnings == [f"::warning title=loadaction::problem {i}" for i in range(10)]
