from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loadaction.cli import main
from loadaction.report import render
from loadaction.report.junit import render_junit
from loadaction.results.io import write_results
from tests.test_report_fixtures import HOSTILE, make_doc, passing_doc


def _parse(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return ET.fromstring(text.encode("utf-8"))


def _cases(root: ET.Element, suite: str) -> dict[str, ET.Element]:
    [element] = [s for s in root.findall("testsuite") if s.get("name") == suite]
    return {case.get("name", ""): case for case in element.findall("testcase")}


def test_one_suite_per_scenario_then_plan_wide_then_checks() -> None:
    root = _parse(render_junit(make_doc()))
    assert [s.get("name") for s in root.findall("testsuite")] == [
        "purchase", "scanner", "ghost", "all", "checks",
    ]
    assert _cases(root, "scanner").keys() == {
        "http_req_duration{scenario:scanner,name:scan} p(95)<200",
    }
    assert _cases(root, "all").keys() == {
        "http_req_failed rate<0.01", "checks rate>0.9", "successful_scans count==1",
    }


def test_threshold_verdicts_become_failures_and_skips() -> None:
    root = _parse(render_junit(make_doc()))
    failed = _cases(root, "purchase")["http_req_duration{scenario:purchase} p(95)<500"]
    assert failed.get("classname") == "loadaction.purchase"
    assert (failed.get("file"), failed.get("line")) == ("scenarios/ticketing.yml", "14")
    failure = failed.find("failure")
    assert failure is not None and failure.get("message") == "observed p(95)=712.31ms"

    plan_wide = _cases(root, "all")
    rate = plan_wide["http_req_failed rate<0.01"].find("failure")
    assert rate is not None and rate.get("message") == "observed rate=3.33%"
    assert plan_wide["checks rate>0.9"].find("failure") is None
    optional = plan_wide["successful_scans count==1"]
    assert optional.find("failure") is None
    skipped = optional.find("skipped")
    assert skipped is not None and skipped.get("message") == "no data (optional)"

    no_data = _cases(root, "ghost")["http_reqs{scenario:ghost} count>0"].find("failure")
    assert no_data is not None and no_data.get("message") == "no data"


def test_counts_add_up() -> None:
    root = _parse(render_junit(make_doc()))
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "8", "4", "0", "1",
    )
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        assert suite.get("tests") == str(len(cases))
        assert suite.get("failures") == str(sum(c.find("failure") is not None for c in cases))


def test_checks_fail_when_any_check_failed() -> None:
    root = _parse(render_junit(make_doc()))
    checks = _cases(root, "checks")
    assert checks["status in [200, 409]"].find("failure") is None
    hostile = checks[f"::pay::body ok {HOSTILE}"]
    assert hostile.get("classname") == "loadaction.purchase"
    failure = hostile.find("failure")
    assert failure is not None and failure.get("message") == "5 of 90 failed (5.56%)"


def test_a_run_that_did_not_complete_is_a_failing_case() -> None:
    doc = passing_doc()
    assert "run completed" not in _cases(_parse(render_junit(doc)), "all")
    doc["status"], doc["status_reason"] = "cancelled", "SIGINT"
    case = _cases(_parse(render_junit(doc)), "all")["run completed"]
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == "run cancelled: SIGINT"


def test_markup_and_control_characters_survive_as_text() -> None:
    doc = make_doc()
    doc["checks"][0]["name"] = 'a "quoted" <b>&amp;</b>\x00\x07\x1b[31m end'
    doc["thresholds"][0]["source"]["file"] = "plans/<odd>&.yml"
    text = render_junit(doc)
    assert "<b>" not in text
    root = _parse(text)
    assert 'a "quoted" <b>&amp;</b>\ufffd\ufffd\ufffd[31m end' in _cases(root, "checks")
    assert root.find("testsuite/testcase[@file='plans/<odd>&.yml']") is not None


def test_scenarios_without_thresholds_get_no_empty_suite() -> None:
    doc = passing_doc()
    doc["thresholds"] = [t for t in doc["thresholds"] if "scenario:" not in t["metric"]]
    doc["checks"] = []
    root = _parse(render_junit(doc))
    assert [s.get("name") for s in root.findall("testsuite")] == ["all"]


def test_render_and_cli_offer_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = make_doc()
    assert render(doc, "junit") == render_junit(doc)
    results = tmp_path / "results.json"
    write_results(results, json.loads(json.dumps(doc)))
    assert main(["report", str(results), "--format", "junit"]) == 0
    assert capsys.readouterr().out == render_junit(doc)
