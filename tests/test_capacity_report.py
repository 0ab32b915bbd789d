"""The Capacity section of the Markdown report: a pure function of the
results document, fitted to GitHub's limits like the rest."""

from __future__ import annotations

from typing import Any

from loadaction.report.markdown import render_markdown
from loadaction.results.schema import validate_results
from tests.test_report_fixtures import passing_doc


def step(rate: float, verdict: str, p95: float, errors: float, *reasons: str) -> dict[str, Any]:
    return {"rate": rate, "achieved_rate": rate, "duration_s": 24.0, "verdict": verdict,
            "reasons": list(reasons), "p95_ms": p95, "error_rate": errors,
            "dropped_iterations": 0, "request_rate": rate, "start_lateness_p95_ms": 0.4,
            "cpu_share": 0.2, "budgets": []}


def capacity_doc(**overrides: Any) -> dict[str, Any]:
    doc = passing_doc()
    doc["capacity"] = {
        "scenario": "purchase", "rate": 300.0, "bracket": [300.0, 312.5],
        "limited_by": "target", "unknown_rate": None, "status": "complete",
        "steps": [step(200, "pass", 102.2, 0), step(400, "fail", 1427.5, 0.031,
                                                    "http_req_duration p(95)<250 (fail: 1427.5)"),
                  step(300, "pass", 137.9, 0), step(312.5, "fail", 297.5, 0.0,
                                                    "error rate 3.10% > 1.00%")],
        **overrides,
    }
    validate_results(doc, "results.json")
    return doc


def test_the_section_has_the_capacity_the_steps_and_charts_in_rate_order() -> None:
    text = render_markdown(capacity_doc())
    assert "#### Capacity: purchase" in text
    assert "**300/s** sustained within every budget · bracket [300/s, 312.5/s)" in text
    assert "| 2 | 400/s | 400/s | 1427.5 ms | 3.10% | 0 | ❌ fail |" in text
    assert 'x-axis "rate (iterations/s)" ["200", "300", "312.5", "400"]' in text
    assert "bar [102.2, 137.9, 297.5, 1427.5]" in text  # p95, by rising rate
    assert "bar [0, 0, 0, 3.1]" in text  # error rate, in percent
    assert text.index("#### Capacity") < text.index("#### Budgets")


def test_generator_limited_and_cancelled_say_so() -> None:
    doc = capacity_doc(rate=200.0, bracket=[200.0, None], limited_by="generator",
                       unknown_rate=400.0, status="cancelled",
                       steps=[step(200, "pass", 102.2, 0),
                              step(400, "unknown", 103.0, 0, "generator CPU 97% of a core")])
    text = render_markdown(doc)
    assert "bracket [200/s, —)" in text and "⚠️ unknown from 400/s" in text
    assert "⚠️ search cancelled" in text and "⚪ unknown | generator CPU 97% of a core |" in text


def test_a_plain_run_has_no_capacity_section() -> None:
    assert "Capacity" not in render_markdown(passing_doc())


def test_charts_go_before_the_step_table_when_the_report_must_shrink() -> None:
    doc = capacity_doc()
    full = render_markdown(doc)
    assert full.count("by rate</summary>") == 2
    limit = len(full)
    while "by rate</summary>" in (fitted := render_markdown(doc, max_chars=limit)):
        limit -= 100
    assert len(fitted) <= limit
    assert "#### Capacity: purchase" in fitted
    assert all(f"| {n} | " in fitted for n in range(1, 5))  # every step is still there


def test_the_text_report_has_the_capacity_and_every_step() -> None:
    """`loadaction report` on a capacity document says what the search found,
    with the same step table `loadaction capacity` printed."""
    from loadaction.report import render

    text = render(capacity_doc(), "text")
    lines = text.splitlines()
    assert "capacity of purchase: 300/s, bracket [300, 312.5)" in lines
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("step"))
    assert lines[header + 2].split() == [
        "2", "400.0", "400.0", "1427.5", "3.10%", "0", "fail", "http_req_duration", "p(95)<250",
        "(fail:", "1427.5)"]
    assert len([line for line in lines[header + 1:header + 5] if line.split()[0].isdigit()]) == 4
    assert "capacity" not in render(passing_doc(), "text")
