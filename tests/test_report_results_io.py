from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.test_report_fixtures import make_doc

from loadaction.errors import ExitCode, PlanError
from loadaction.report.document import select_sink, tally_budgets
from loadaction.results.io import load_results, write_results


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path so messages show the short relative name users type."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _load_error(text: str) -> str:
    Path("results.json").write_text(text, encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_results(Path("results.json"))
    assert caught.value.exit_code == ExitCode.INVALID
    return str(caught.value)


def _with(**changes: Any) -> str:
    doc = make_doc()
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not ...})


def test_write_round_trips_and_leaves_no_temp_file(tmp_path: Path) -> None:
    doc = make_doc()
    path = tmp_path / "out" / "results.json"
    write_results(path, doc)
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]
    loaded = load_results(path)
    assert loaded == doc
    assert list(loaded) == list(doc)


def test_write_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("old", encoding="utf-8")
    doc = make_doc()
    doc["status"] = "cancelled"
    write_results(path, doc)
    assert load_results(path)["status"] == "cancelled"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_unwritable_document_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results(path, make_doc())
    before = path.read_bytes()
    doc = make_doc()
    doc["duration_s"] = float("nan")
    with pytest.raises(ValueError):
        write_results(path, doc)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


@pytest.mark.invalid_results
def test_invalid_json_names_the_line(in_tmp: Path) -> None:
    message = _load_error('{\n  "schema": 1,\n  "plan": }\n')
    assert message == "results.json:3: invalid JSON: Expecting value (column 11)"


@pytest.mark.invalid_results
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", "results.json: not a loadaction results document (expected a JSON object, got array)"),
        ('{"status": "complete"}', "results.json: not a loadaction results document (missing 'schema')"),
        ('{"schema": 2}', "results.json: unsupported results schema 2 (this loadaction reads schema 1)"),
        (
            '{"schema": true}',
            "results.json: unsupported results schema true (this loadaction reads schema 1)",
        ),
        (_with(metrics=...), "results.json: $: 'metrics' is a required property"),
        (_with(thresholds={}), "results.json: $.thresholds: {} is not of type 'array'"),
        (_with(duration_s="60"), "results.json: $.duration_s: '60' is not of type 'number'"),
        (
            _with(errors=[{"message": "boom"}]),
            "results.json: $.errors[0]: 'count' is a required property",
        ),
        (
            _with(thresholds=[{"metric": "vus", "expression": "value<1", "verdict": "maybe"}]),
            "results.json: $.thresholds[0].verdict: 'maybe' is not one of "
            "['pass', 'fail', 'no data', 'insufficient data']",
        ),
        (
            _with(metrics={"vus": {"type": "histogram", "total": {}}}),
            "results.json: $.metrics.vus.type: 'histogram' is not one of "
            "['counter', 'rate', 'gauge', 'trend']",
        ),
        (
            _with(metrics={"t": {"type": "trend", "total": {"count": 2, "avg": 1}}}),
            "results.json: $.metrics.t.total: 'min' is a required property",
        ),
        (
            _with(metrics={"r": {"type": "rate", "total": {"passes": 1, "fails": 0},
                                 "by_tags": [{"tags": {}, "sink": {"passes": 1}}]}}),
            "results.json: $.metrics.r.by_tags[0].sink: 'fails' is a required property",
        ),
        (
            _with(status="paused"),
            "results.json: $.status: 'paused' is not one of "
            "['complete', 'aborted', 'cancelled', 'capped', 'failed', 'crashed']",
        ),
    ],
)
def test_load_errors_name_the_file_and_the_problem(in_tmp: Path, text: str, expected: str) -> None:
    assert _load_error(text) == expected


def test_missing_file(in_tmp: Path) -> None:
    with pytest.raises(PlanError) as caught:
        load_results(Path("nope.json"))
    assert str(caught.value) == "nope.json: cannot read results: No such file or directory"


@pytest.mark.invalid_results
def test_binary_file(in_tmp: Path) -> None:
    Path("results.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PlanError) as caught:
        load_results(Path("results.json"))
    assert str(caught.value) == "results.json: not a loadaction results document (not UTF-8 text)"


def test_select_sink_merges_histograms_exactly() -> None:
    doc = make_doc()
    purchase = select_sink(doc, "http_req_duration", {"scenario": "purchase"})
    assert purchase is not None and purchase.count == 100
    scan = select_sink(doc, "http_req_duration", {"scenario": "scanner", "name": "scan"})
    assert scan is not None and scan.count == 200
    assert select_sink(doc, "http_req_duration", {"scenario": "ghost"}) is None
    assert select_sink(doc, "no_such_metric", {}) is None


def test_tally_counts_required_no_data_as_violations() -> None:
    budgets = tally_budgets(make_doc())
    assert (budgets.total, budgets.violated, budgets.no_data) == (6, 3, 1)
