"""A scenario's `::group::` in the step's log covers the scenario's own
window (its first to its last second with samples), not a line for every
second of the run."""

from __future__ import annotations

from typing import Any

from loadaction.github.scenario_log import MAX_LINES, scenario_groups
from tests.test_report_fixtures import make_doc


def _point(t: int, reqs: int) -> dict[str, Any]:
    return {"t": float(t), "reqs": reqs, "failed": 0, "iterations": reqs,
            "vus": 3 if reqs else 0, "p50": 1.0 if reqs else None,
            "p95": float(t) if reqs else None, "p99": None, "max": None, "hdr": None}


def _groups(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Each scenario's per-second lines (`t=…`), by scenario name."""
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in scenario_groups(doc):
        if line.startswith("::group::Scenario "):
            current = groups.setdefault(line.removeprefix("::group::Scenario ").split(":")[0], [])
        elif line == "::endgroup::":
            current = None
        elif current is not None and line.startswith("t="):
            current.append(line)
    return groups


def _seconds(lines: list[str]) -> list[int]:
    return [int(float(line.split("s ", 1)[0].removeprefix("t="))) for line in lines]


def test_a_scenario_that_starts_at_30s_logs_from_30s() -> None:
    doc = make_doc()
    doc["series"]["scenarios"] = {
        "purchase": [_point(t, 10) for t in range(1, 61)],
        # starts at 30 s and ends at 50 s of a 60 s run, with a hole at 40 s
        "scanner": [_point(t, 5 if 30 < t <= 50 and t != 40 else 0) for t in range(1, 61)],
    }
    groups = _groups(doc)
    assert _seconds(groups["purchase"]) == list(range(1, 61))
    assert _seconds(groups["scanner"]) == list(range(31, 51))
    # the hole is inside the window, so it stays, showing that nothing was measured
    [hole] = [line for line in groups["scanner"] if line.startswith("t=40s ")]
    assert hole == "t=40s  reqs=0  failed=0  iterations=0  vus=0  p95=-"


def test_a_long_run_folds_only_the_scenarios_window() -> None:
    """A 600 s run, the scenario busy from 500 s: its 100 seconds fold into
    50 lines of two seconds, instead of 60 lines of ten seconds of the run."""
    doc = make_doc()
    doc["series"]["scenarios"] = {
        "purchase": [_point(t, 2 if t > 500 else 0) for t in range(1, 601)],
        "scanner": [_point(t, 1) for t in range(1, 601)],
    }
    groups = _groups(doc)
    assert _seconds(groups["purchase"]) == list(range(502, 601, 2))
    assert all("reqs=4 " in line for line in groups["purchase"])
    assert len(groups["scanner"]) == MAX_LINES


def test_a_scenario_that_never_ran_says_so() -> None:
    doc = make_doc()
    doc["series"]["scenarios"] = {"purchase": [_point(t, 0) for t in range(1, 61)]}
    lines = scenario_groups(doc)
    start = lines.index(next(line for line in lines if line.startswith("::group::Scenario purchase")))
    assert lines[start + 1] == "t=-  no per-second samples"
    assert _groups(doc)["purchase"] == ["t=-  no per-second samples"]  # not 60 empty seconds
