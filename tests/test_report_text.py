from __future__ import annotations

import pytest
from tests.test_report_fixtures import HOSTILE, make_doc, passing_doc

from loadaction.metrics.sinks import TrendSink
from loadaction.report.format import format_bytes, format_duration, format_percent
from loadaction.report.text import render_text


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (0, "0s"),
        (0.0005, "0.5µs"),
        (0.42, "420µs"),
        (0.999996, "1ms"),
        (712.31, "712.31ms"),
        (712.3149, "712.31ms"),
        (2.0, "2ms"),
        (999.999, "1s"),
        (1200, "1.2s"),
        (61_234.5, "61.23s"),
    ],
)
def test_durations_use_k6_units(ms: float, expected: str) -> None:
    assert format_duration(ms) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"), (999, "999 B"), (1000, "1 kB"), (1_234_567, "1.23 MB"),
        (999_999, "1 MB"), (5e15, "5000 TB"),
    ],
)
def test_bytes_use_decimal_units(n: float, expected: str) -> None:
    assert format_bytes(n) == expected


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0, "0.00%"), (0.1, "10.00%"), (1, "100.00%"), (0.000012, "0.0012%"), (0.0001, "0.01%")],
)
def test_percentages_never_hide_a_small_rate(fraction: float, expected: str) -> None:
    assert format_percent(fraction) == expected


def test_header_and_scenarios() -> None:
    lines = _lines(render_text(make_doc()))
    assert lines[0] == "loadaction 0.1.0"
    assert "plan......: ticketing (scenarios/ticketing.yml)" in lines
    assert "profile...: pr" in lines
    assert "target....: http://127.0.0.1:8080" in lines
    assert "status....: complete" in lines
    assert "purchase  ramping-vus            100 iterations  3 interrupted  0 dropped  100 max VUs" in lines
    assert "scanner   constant-arrival-rate  200 iterations  0 interrupted  4 dropped  20 max VUs" in lines


def test_status_reason_shown_when_not_complete() -> None:
    doc = make_doc()
    doc["status"], doc["status_reason"] = "cancelled", "SIGINT"
    assert "status....: cancelled: SIGINT" in _lines(render_text(doc))


def test_thresholds_block() -> None:
    lines = _lines(render_text(make_doc()))
    block = lines[lines.index("THRESHOLDS") + 2 : lines.index("CHECKS") - 1]
    assert block == [
        "✗ http_req_duration{scenario:purchase}  p(95)<500  observed p(95)=712.31ms",
        "✓ http_req_duration{scenario:scanner,name:scan}  p(95)<200  observed p(95)=85.5ms",
        "✗ http_req_failed  rate<0.01  observed rate=3.33%",
        "✓ checks  rate>0.9  observed rate=95.00%",
        "- successful_scans  count==1  no data (optional)",
        "✗ http_reqs{scenario:ghost}  count>0  no data",
    ]


def test_checks_block_is_k6_style() -> None:
    lines = _lines(render_text(make_doc()))
    assert "✓ status in [200, 409]  100% — ✓ 10 ✗ 0" in lines
    assert f"✗ body ok {HOSTILE}  94.44% — ✓ 85 ✗ 5  {{ group:::pay }}" in lines


def _metric_rows(text: str) -> list[tuple[str, str]]:
    """(label, values with runs of spaces collapsed) per line of the METRICS block."""
    block = text.split("  METRICS\n\n")[1].split("\n\n")[0]
    rows = []
    for line in block.splitlines():
        label, _, values = line.strip().partition(": ")
        rows.append((label.rstrip("."), " ".join(values.split())))
    return rows


def test_metric_lines_are_dotted_sorted_and_unit_aware() -> None:
    text = render_text(make_doc())
    rows = dict(_metric_rows(text))
    names = [label for label, _ in _metric_rows(text) if not label.startswith("{")]
    assert names == sorted(names)
    assert "dropped_iterations" not in names  # never counted, as k6 leaves it out
    assert rows["http_reqs"] == "300 5/s"
    assert rows["data_received"] == "1.23 MB 20.58 kB/s"
    assert rows["vus"] == "0 min=0 max=100"
    assert rows["checks"] == "95.00% ✓ 95 ✗ 5"
    assert rows["checkout_duration"] == "avg=2s min=1.5s med=1.5s max=2.5s p(90)=2.5s p(95)=2.5s"
    assert rows["checkout_errors"] == "25.00% ✓ 1 ✗ 3"

    block = text.split("  METRICS\n\n")[1].split("\n\n")[0].splitlines()
    assert len({line.index(": ") for line in block}) == 1  # one dotted column


def test_sub_metrics_per_scenario() -> None:
    doc = make_doc()
    merged = TrendSink()
    for part in doc["metrics"]["http_req_duration"]["by_tags"]:
        if part["tags"]["scenario"] == "purchase":
            merged.merge(TrendSink.from_summary(part["sink"]))
    rows = _metric_rows(render_text(doc))
    duration = [label for label, _ in rows].index("http_req_duration")
    assert rows[duration + 1][0] == "{ scenario:purchase }"
    assert rows[duration + 1][1].endswith(f"p(95)={format_duration(merged.percentile(95))}")
    failed = [label for label, _ in rows].index("http_req_failed")
    assert rows[failed + 1 : failed + 3] == [
        ("{ scenario:purchase }", "10.00% ✓ 10 ✗ 90"),
        ("{ scenario:scanner }", "0.00% ✓ 0 ✗ 200"),
    ]


def test_errors_most_frequent_first_and_control_characters_escaped() -> None:
    lines = _lines(render_text(make_doc()))
    errors = lines[lines.index("ERRORS") + 2 : lines.index("NOTICES") - 1]
    assert errors == [
        f"7  HTTP 500: {HOSTILE}\\nsecond line  (purchase, first at 12s)",
        "3  connection refused: 127.0.0.1:1  (purchase, first at 400ms)",
    ]
    doc = make_doc()
    doc["errors"][0]["message"] = "\x1b[2Jgone"
    assert "\x1b" not in render_text(doc)


@pytest.mark.parametrize(
    ("doc", "verdict"),
    [
        (make_doc(), "✗ 3 budget(s) violated (1 with no data)"),
        (passing_doc(), "✓ all budgets held"),
        ({**make_doc(), "thresholds": []}, "no budgets defined"),
        (
            {**make_doc(), "thresholds": [t for t in make_doc()["thresholds"] if t["verdict"] == "no data"]},
            "✗ 1 budget(s) violated (no data)",
        ),
    ],
)
def test_final_verdict_line(doc: dict, verdict: str) -> None:
    assert _lines(render_text(doc))[-1] == verdict


def test_colour_only_when_asked() -> None:
    assert "\x1b[" not in render_text(make_doc())
    coloured = render_text(make_doc(), color=True)
    assert "\x1b[31m✗\x1b[0m http_req_failed" in coloured
    assert "\x1b[32m✓ all budgets held\x1b[0m" in render_text(passing_doc(), color=True)
