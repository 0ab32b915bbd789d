"""Results documents for the report tests, built the way the engine builds
them (real sinks, real `hdr` strings), so the tests exercise exact merging
of histograms rather than numbers typed in by hand."""

from __future__ import annotations

import copy
import random
from typing import Any

from loadaction.metrics.sinks import CounterSink, GaugeSink, RateSink, TrendSink
from loadaction.results.schema import validate_results

DURATION_S = 60.0
HOSTILE = "<script>alert(1)</script> cc @octocat"


def trend(values: list[float]) -> dict[str, Any]:
    sink = TrendSink()
    for value in values:
        sink.add(value)
    return sink.summary(DURATION_S)


def counter(count: float) -> dict[str, Any]:
    sink = CounterSink()
    sink.add(count)
    return sink.summary(DURATION_S)


def rate(passes: int, fails: int) -> dict[str, Any]:
    sink = RateSink()
    for i in range(passes + fails):
        sink.add(i < passes)
    return sink.summary(DURATION_S)


def gauge(values: list[float]) -> dict[str, Any]:
    sink = GaugeSink()
    for value in values:
        sink.add(value)
    return sink.summary(DURATION_S)


def _tags(scenario: str, name: str, status: str) -> dict[str, str]:
    return {
        "scenario": scenario,
        "name": name,
        "method": "POST" if name == "checkout" else "GET",
        "status": status,
        "expected_response": "true",
        "group": "",
    }


def _metric(
    kind: str,
    contains: str,
    parts: list[tuple[dict[str, str], dict[str, Any]]],
    total: dict[str, Any],
) -> dict[str, Any]:
    return {
        "type": kind,
        "contains": contains,
        "total": total,
        "by_tags": [{"tags": tags, "sink": sink} for tags, sink in parts],
    }


def make_doc() -> dict[str, Any]:
    """A finished run of two scenarios with budgets that pass, fail, lack data
    optionally and lack data for real, and hostile strings from the server."""
    rng = random.Random(7)
    samples = {
        ("purchase", "checkout", "200"): [rng.uniform(100, 800) for _ in range(90)],
        ("purchase", "checkout", "409"): [rng.uniform(50, 120) for _ in range(10)],
        ("scanner", "scan", "200"): [rng.uniform(0.4, 90) for _ in range(200)],
    }
    all_samples = [v for values in samples.values() for v in values]
    reqs = {key: len(values) for key, values in samples.items()}
    failed = {  # (failed, ok): the 409s are unexpected responses
        ("purchase", "checkout", "200"): (0, 90),
        ("purchase", "checkout", "409"): (10, 0),
        ("scanner", "scan", "200"): (0, 200),
    }

    metrics = {
        "http_req_duration": _metric(
            "trend", "time", [(_tags(*k), trend(v)) for k, v in samples.items()], trend(all_samples)
        ),
        "http_reqs": _metric(
            "counter", "default", [(_tags(*k), counter(n)) for k, n in reqs.items()], counter(300)
        ),
        "http_req_failed": _metric(
            "rate", "default", [(_tags(*k), rate(*pf)) for k, pf in failed.items()], rate(10, 290)
        ),
        "iterations": _metric("counter", "default", [({"scenario": "purchase"}, counter(100))], counter(100)),
        "dropped_iterations": _metric("counter", "default", [], counter(0)),
        "vus": _metric("gauge", "default", [({}, gauge([0, 10, 100, 0]))], gauge([0, 10, 100, 0])),
        "data_received": _metric("counter", "data", [({}, counter(1_234_567))], counter(1_234_567)),
        "checks": _metric("rate", "default", [({"scenario": "purchase"}, rate(95, 5))], rate(95, 5)),
        "checkout_duration": _metric("trend", "time", [], trend([1500.0, 2500.0])),
        "successful_scans": _metric("counter", "default", [], counter(0)),
        "checkout_errors": _metric("rate", "default", [], rate(1, 3)),
    }
    doc: dict[str, Any] = {
        "schema": 1,
        "tool": {"name": "loadaction", "version": "0.1.0"},
        "plan": {
            "name": "ticketing",
            "file": "scenarios/ticketing.yml",
            "sha256": "0" * 64,
            "profile": "pr",
            "target": "http://127.0.0.1:8080",
        },
        "started_at": "2026-11-21T23:00:00.000000+00:00",
        "ended_at": "2026-11-21T23:01:00.000000+00:00",
        "duration_s": DURATION_S,
        "status": "complete",
        "status_reason": None,
        "environment": {"python": "3.11.7", "platform": "Linux", "ci": True,
                        "github_run_url": "https://github.com/acme/shop/actions/runs/1"},
        "scenarios": [
            {"name": "purchase", "executor": "ramping-vus", "exec": "purchase", "start_time_s": 0.0,
             "planned_duration_s": 50.0, "graceful_stop_s": 30.0, "iterations": 100,
             "interrupted_iterations": 3, "dropped_iterations": 0, "vus_max": 100},
            {"name": "scanner", "executor": "constant-arrival-rate", "exec": "scan", "start_time_s": 0.0,
             "planned_duration_s": 60.0, "graceful_stop_s": 30.0, "iterations": 200,
             "interrupted_iterations": 0, "dropped_iterations": 4, "vus_max": 20},
        ],
        "metrics": metrics,
        "series": {"interval_s": 1.0, "scenarios": {}},
        "checks": [
            {"name": "status in [200, 409]", "scenario": "purchase", "group": "", "passes": 10, "fails": 0},
            {"name": f"body ok {HOSTILE}", "scenario": "purchase", "group": "::pay",
             "passes": 85, "fails": 5},
        ],
        "thresholds": [
            _threshold("http_req_duration{scenario:purchase}", "p(95)<500", "fail", 712.31),
            _threshold("http_req_duration{scenario:scanner,name:scan}", "p(95)<200", "pass", 85.5),
            _threshold("http_req_failed", "rate<0.01", "fail", 10 / 300),
            _threshold("checks", "rate>0.9", "pass", 0.95),
            _threshold("successful_scans", "count==1", "no data", None, optional=True),
            _threshold("http_reqs{scenario:ghost}", "count>0", "no data", None),
        ],
        "errors": [
            {"message": "connection refused: 127.0.0.1:1", "count": 3, "scenario": "purchase",
             "first_seen_s": 0.4},
            {"message": f"HTTP 500: {HOSTILE}\nsecond line", "count": 7, "scenario": "purchase",
             "first_seen_s": 12.0},
        ],
        "notices": ["data 'tickets' exhausted after 100 rows: VU stopped"],
    }
    return doc


def _threshold(
    metric: str, expression: str, verdict: str, observed: float | None, optional: bool = False
) -> dict[str, Any]:
    return {
        "metric": metric, "expression": expression, "verdict": verdict, "observed": observed,
        "optional": optional, "abort_on_fail": False,
        "source": {"file": "scenarios/ticketing.yml", "line": 14},
    }


def passing_doc() -> dict[str, Any]:
    """The same run with every budget held: only the passing thresholds."""
    doc = copy.deepcopy(make_doc())
    doc["thresholds"] = [t for t in doc["thresholds"] if t["verdict"] == "pass"]
    return doc


def test_fixtures_are_valid_documents() -> None:
    validate_results(make_doc(), "results.json")
    validate_results(passing_doc(), "results.json")
