"""The results document's one JSON Schema (docs/results.schema.json, shipped
in the package as loadaction/results/results.schema.json): it is a valid
draft 2020-12 schema, it accepts what loadaction writes (old documents
too), it names the JSON path of the first problem, `loadaction report` and
`loadaction comment` refuse a document that does not fit, and the suite
itself fails a test whose results.json does not fit."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from loadaction.cli import main
from loadaction.demo import serve_in_thread
from loadaction.errors import ExitCode, PlanError
from loadaction.results.schema import (
    json_path,
    results_problem,
    results_schema,
    validate_results,
)
from tests.test_report_chaos import chaos_doc, recovered_doc
from tests.test_report_fixtures import make_doc, passing_doc

ROOT = Path(__file__).resolve().parents[1]
DOCS_SCHEMA = ROOT / "docs" / "results.schema.json"
PACKAGE_SCHEMA = ROOT / "loadaction" / "results" / "results.schema.json"


def current_doc() -> dict[str, Any]:
    """A chaos run's document with every field added since the first
    documents: load/setup/teardown timing, error kinds, planned and actual
    fault windows, a request sent while two faults were active."""
    doc = chaos_doc()
    doc["timing"] = {"setup_s": 0.412, "load_s": doc["duration_s"], "teardown_s": None}
    doc["errors"][0]["kind"] = "connect"
    doc["errors"][1]["kind"] = "flow"
    faults = doc["chaos"]["faults"]
    faults[0].update(planned_end_s=35.0, ended_at_s=35.0, rolled_back_at_s=35.04)
    faults[1].update(planned_end_s=55.0, rolled_back_at_s=None)
    faults[2].update(planned_end_s=None, rolled_back_at_s=None)
    doc["metrics"]["http_req_duration"]["by_tags"][0]["tags"]["phase"] = (
        "during:slow-target,during:kill-db")
    doc["chaos"]["phases"][0]["phase"] = "during:slow-target,during:kill-db"
    return doc


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = results_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema"] == {
        "const": 1, "description": schema["properties"]["schema"]["description"]}


def test_docs_and_the_package_hold_one_and_the_same_schema() -> None:
    assert DOCS_SCHEMA.resolve() == PACKAGE_SCHEMA.resolve(), "docs/ links to the package's file"
    assert json.loads(DOCS_SCHEMA.read_text()) == results_schema()


@pytest.mark.parametrize("build", [make_doc, passing_doc, chaos_doc, recovered_doc, current_doc])
def test_documents_loadaction_writes_are_valid(build: Callable[[], dict[str, Any]]) -> None:
    doc = json.loads(json.dumps(build()))
    assert results_problem(doc) is None
    validate_results(doc, "results.json")


def test_a_document_without_the_newer_fields_is_still_valid() -> None:
    doc = current_doc()
    del doc["timing"]
    for error in doc["errors"]:
        del error["kind"]
    for fault in doc["chaos"]["faults"]:
        del fault["planned_end_s"], fault["rolled_back_at_s"]
    assert results_problem(doc) is None


def test_unknown_keys_are_allowed_so_readers_stay_compatible() -> None:
    doc = make_doc()
    doc["future_section"] = [{"name": "db"}]  # a key a later version adds
    doc["thresholds"][0]["comparison"] = {"p": 0.01}
    assert results_problem(doc) is None


def _broken(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    doc = copy.deepcopy(current_doc())
    change(doc)
    return json.loads(json.dumps(doc))


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d["thresholds"][2].update(verdict="maybe"),
     "$.thresholds[2].verdict: 'maybe' is not one of ['pass', 'fail', 'no data', 'insufficient data']"),
    (lambda d: d.pop("scenarios"), "$: 'scenarios' is a required property"),
    (lambda d: d.update(status="done"),
     "$.status: 'done' is not one of "
     "['complete', 'aborted', 'cancelled', 'capped', 'failed', 'crashed']"),
    (lambda d: d["timing"].update(load_s=None), "$.timing.load_s: null is not of type 'number'"),
    (lambda d: d["timing"].pop("setup_s"), "$.timing: 'setup_s' is a required property"),
    (lambda d: d["errors"][0].update(kind="gremlins"),
     "$.errors[0].kind: 'gremlins' is not one of ['timeout', 'connect', 'tls', 'disconnect', "
     "'protocol', 'refused', 'aborted_by_chaos', 'flow']"),
    (lambda d: d["errors"][1].update(count=2.5), "$.errors[1].count: 2.5 is not of type 'integer'"),
    (lambda d: d["checks"][0].update(passes=-1),
     "$.checks[0].passes: -1 is less than the minimum of 0"),
    (lambda d: d["chaos"]["faults"][0].update(rolled_back_at_s="soon"),
     "$.chaos.faults[0].rolled_back_at_s: 'soon' is not of type 'number', 'null'"),
    (lambda d: d["metrics"]["http_req_duration"]["by_tags"][0]["tags"].update(phase=["before"]),
     "$.metrics.http_req_duration.by_tags[0].tags.phase: ['before'] is not of type 'string'"),
    (lambda d: d["metrics"]["vus"]["total"].pop("max"),
     "$.metrics.vus.total: 'max' is a required property"),
    (lambda d: d["metrics"].update({"my metric": {"type": "counter", "total": {"count": 1}}}),
     "$.metrics['my metric'].total: 'rate' is a required property"),
    (lambda d: d["series"]["scenarios"]["purchase"][3].update(reqs="20"),
     "$.series.scenarios.purchase[3].reqs: '20' is not of type 'integer'"),
])
def test_a_broken_document_is_named_by_the_path_of_its_first_problem(
        change: Callable[[dict[str, Any]], object], problem: str) -> None:
    assert results_problem(_broken(change)) == problem
    with pytest.raises(PlanError) as caught:
        validate_results(_broken(change), "results.json")
    assert str(caught.value) == f"results.json: {problem}"
    assert caught.value.exit_code == ExitCode.INVALID


def test_a_whole_object_in_the_wrong_place_is_shown_shortened() -> None:
    problem = results_problem(_broken(lambda d: d.update(checks={"x" * 500: list(range(100))})))
    assert problem is not None and problem.startswith("$.checks: {'xxx")
    assert problem.endswith("is not of type 'array'") and len(problem) < 200


def test_json_paths_quote_keys_that_are_not_plain_names() -> None:
    assert json_path([]) == "$"
    assert json_path(["metrics", "http_reqs", "by_tags", 0]) == "$.metrics.http_reqs.by_tags[0]"
    assert json_path(["metrics", "a.b", "x y"]) == "$.metrics['a.b']['x y']"


@pytest.fixture
def broken_file(tmp_path: Path) -> Path:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(_broken(lambda d: d["thresholds"][2].update(verdict="maybe"))))
    return path


def test_loadaction_report_exits_2_naming_the_path(broken_file: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in ("text", "md", "json", "junit"):
        assert main(["report", str(broken_file), "--format", fmt]) == ExitCode.INVALID
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == (f"loadaction: {broken_file}: $.thresholds[2].verdict: 'maybe' "
                                "is not one of ['pass', 'fail', 'no data', 'insufficient data']\n")


def test_loadaction_report_checks_the_baseline_too(broken_file: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(make_doc()))
    assert main(["report", str(good), "--format", "md", "--baseline", str(broken_file)]) == 2
    assert f"{broken_file}: $.thresholds[2].verdict" in capsys.readouterr().err


def test_loadaction_comment_exits_2_naming_the_path(broken_file: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_not_used")
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # never called
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    code = main(["comment", "--results", str(broken_file), "--pr", "1", "--repo", "octo/shop"])
    assert code == ExitCode.INVALID
    assert capsys.readouterr().err == (f"loadaction: {broken_file}: $.thresholds[2].verdict: "
                                       "'maybe' is not one of ['pass', 'fail', 'no data', 'insufficient data']\n")


def test_a_real_run_writes_a_valid_document(run_plan: Callable[..., tuple[int, dict[str, Any]]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_in_thread() as demo:
        for key, value in demo.env.items():
            monkeypatch.setenv(key, value)
        code, doc = run_plan(ROOT / "tests" / "plans" / "action" / "events.yml")
    assert code == ExitCode.OK
    assert doc["status"] == "complete"
    assert results_problem(doc) is None


@pytest.mark.invalid_results  # the probe's broken results.json lands under this tmp_path
def test_the_suite_fails_a_test_whose_results_json_does_not_fit(tmp_path: Path) -> None:
    """tests/conftest.py's check, run as a plugin of a separate pytest."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "pytest.ini").write_text("[pytest]\n")
    broken = _broken(lambda d: d["thresholds"][2].update(verdict="maybe"))
    (probe / "test_probe.py").write_text(textwrap.dedent(f"""
        import json

        def test_writes_a_valid_one(tmp_path):
            (tmp_path / "results.json").write_text({json.dumps(make_doc())!r})

        def test_writes_a_broken_one(tmp_path):
            (tmp_path / "out").mkdir()
            (tmp_path / "out" / "results.json").write_text({json.dumps(broken)!r})
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-c", str(probe / "pytest.ini"), "--rootdir", str(probe),
         "--basetemp", str(tmp_path / "basetemp"), "-q", str(probe / "test_probe.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "1 failed, 1 passed" in output
    assert "test_writes_a_broken_one" in output
    assert ("out/results.json: $.thresholds[2].verdict: 'maybe' is not one of "
            "['pass', 'fail', 'no data', 'insufficient data']") in output
