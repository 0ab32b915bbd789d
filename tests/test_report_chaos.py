"""The chaos section in every report: faults with their windows and rollback,
recovery budgets counted as budgets, thresholds by phase, the fault-marked
p95 chart, and the section's place in the Markdown size limits."""

from __future__ import annotations

import copy
import json
import random
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from loadaction.errors import PlanError
from loadaction.metrics.sinks import TrendSink
from loadaction.report import render
from loadaction.report.chart import fault_chart
from loadaction.report.document import tally_budgets
from loadaction.report.markdown import render_markdown
from loadaction.report.markdown.escape import SPLIT
from loadaction.report.markdown.fit import TRUNCATION_NOTE
from loadaction.report.text import render_text
from loadaction.results.schema import validate_results
from tests.test_report_fixtures import HOSTILE, make_doc

CHAOS_PLAN = "scenarios/chaos.yml"


def _source(line: int) -> dict[str, Any]:
    return {"file": CHAOS_PLAN, "line": line}


def _fault(name: str, kind: str, at: float, duration: float, started: float | None,
           ended: float | None, rollback: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "kind": kind, "anchor": None, "at_s": at, "duration_s": duration,
        "source": _source(30), "planned_at_s": at, "started_at_s": started,
        "ended_at_s": ended, "start_error": None, "rollback": rollback, **extra,
    }


def _phases(metric: str, expression: str,
            verdicts: dict[str, tuple[str, float | None]]) -> list[dict[str, Any]]:
    return [{"metric": metric, "expression": expression, "phase": phase, "verdict": verdict,
             "observed": observed} for phase, (verdict, observed) in verdicts.items()]


def _recovery(fault: str, metric: str, expression: str, within: float, verdict: str,
              recovered: float | None, line: int) -> dict[str, Any]:
    return {"fault": fault, "metric": metric, "expression": expression, "within_s": within,
            "stable_s": 3.0, "verdict": verdict, "time_to_recover_s": recovered,
            "source": _source(line)}


def _series(seed: int, seconds: int, slow: tuple[float, float]) -> list[dict[str, Any]]:
    """Per-second points as the engine writes them, slower inside `slow`."""
    rng = random.Random(seed)
    points = []
    for t in range(1, seconds + 1):
        sink = TrendSink()
        high = 900 if slow[0] < t <= slow[1] else 200
        for _ in range(20):
            sink.add(rng.uniform(50, high))
        p50, p95, p99 = sink.percentiles((50, 95, 99))
        points.append({"t": float(t), "reqs": 20, "failed": 0, "iterations": 20, "vus": 5,
                       "p50": p50, "p95": p95, "p99": p99, "max": sink.max(),
                       "hdr": sink.encode()})
    return points


def chaos_doc() -> dict[str, Any]:
    """The fixture run with three faults: one that went well and recovered,
    one whose rollback failed and that recovered too late or never, one the
    run ended before; thresholds judged per phase; per-second series."""
    doc = make_doc()
    doc["plan"]["file"] = CHAOS_PLAN
    p95 = "http_req_duration{scenario:purchase}"
    doc["chaos"] = {
        "faults": [
            _fault("slow-target", "http", 20.0, 15.0, 20.01, 35.02, "ok"),
            _fault("kill-db", "toxiproxy", 5.0, 10.0, 45.1, 55.2,
                   "failed: HTTP 503 from toxiproxy", anchor="purchase", planned_at_s=45.0,
                   source=_source(36)),
            _fault("late", "abort", 70.0, 10.0, None, None, "not needed"),
        ],
        "phases": [
            *_phases(p95, "p(95)<500", {
                "before": ("pass", 180.5), "during:slow-target": ("fail", 712.3),
                "after:slow-target": ("pass", 190.0), "during:kill-db": ("fail", 2400.0),
                "after:kill-db": ("no data", None), "during:late": ("no data", None),
                "after:late": ("no data", None)}),
            *_phases("http_req_failed", "rate<0.01", {
                "before": ("pass", 0.0), "during:slow-target": ("pass", 0.004),
                "after:slow-target": ("pass", 0.0), "during:kill-db": ("fail", 0.5),
                "after:kill-db": ("no data", None), "during:late": ("no data", None),
                "after:late": ("no data", None)}),
        ],
        "recovery": [
            _recovery("slow-target", p95, "p(95)<500", 30.0, "pass", 1.7, 41),
            _recovery("kill-db", "http_req_failed", "rate<0.01", 10.0, "fail", None, 44),
            _recovery("kill-db", p95, "p(95)<500", 5.0, "fail", 8.2, 45),
            _recovery("late", p95, "p(95)<500", 30.0, "no data", None, 48),
        ],
    }
    doc["series"]["scenarios"] = {
        "purchase": _series(1, 60, (20, 35)),
        "scanner": _series(2, 60, (45, 55)),
    }
    return doc


def recovered_doc() -> dict[str, Any]:
    """A chaos run where every budget held and every fault was rolled back."""
    doc = chaos_doc()
    doc["thresholds"] = [t for t in doc["thresholds"] if t["verdict"] == "pass"]
    doc["chaos"]["faults"][1]["rollback"] = "ok"
    doc["chaos"]["recovery"] = doc["chaos"]["recovery"][:1]
    return doc


def test_fixtures_are_valid_documents() -> None:
    validate_results(chaos_doc(), "results.json")
    validate_results(recovered_doc(), "results.json")


# ---------------------------------------------------------------- schema


def _problem(change: Any) -> str:
    doc = chaos_doc()
    change(doc["chaos"])
    with pytest.raises(PlanError) as caught:
        validate_results(json.loads(json.dumps(doc)), "results.json")
    return str(caught.value).removeprefix("results.json: ")


def test_documents_without_chaos_stay_valid() -> None:
    doc = make_doc()
    validate_results(doc, "results.json")
    validate_results({**doc, "chaos": None}, "results.json")


@pytest.mark.parametrize(("change", "problem"), [
    (lambda c: c.pop("recovery"), "$.chaos: 'recovery' is a required property"),
    (lambda c: c.update(faults={}), "$.chaos.faults: {} is not of type 'array'"),
    (lambda c: c["faults"][0].pop("rollback"), "$.chaos.faults[0]: 'rollback' is a required property"),
    (lambda c: c["faults"][2].update(started_at_s="soon"),
     "$.chaos.faults[2].started_at_s: 'soon' is not of type 'number', 'null'"),
    (lambda c: c["faults"][0].update(duration_s=None),
     "$.chaos.faults[0].duration_s: null is not of type 'number'"),
    (lambda c: c["faults"][1].update(rollback="maybe"),
     "$.chaos.faults[1].rollback: 'maybe' does not match '^(ok|not needed)$|^failed:'"),
    (lambda c: c["faults"][0].update(planned_end_s="later"),
     "$.chaos.faults[0].planned_end_s: 'later' is not of type 'number', 'null'"),
    (lambda c: c["phases"][3].update(verdict="flaky"),
     "$.chaos.phases[3].verdict: 'flaky' is not one of ['pass', 'fail', 'no data', 'insufficient data']"),
    (lambda c: c["recovery"][1].update(time_to_recover_s=True),
     "$.chaos.recovery[1].time_to_recover_s: true is not of type 'number', 'null'"),
])
def test_the_chaos_section_is_validated(change: Any, problem: str) -> None:
    assert _problem(change) == problem


def test_recovery_budgets_are_budgets() -> None:
    budgets = tally_budgets(chaos_doc())
    assert (budgets.total, budgets.violated, budgets.no_data) == (6 + 4, 3 + 3, 1 + 1)
    budgets = tally_budgets(recovered_doc())
    assert (budgets.total, budgets.violated, budgets.no_data) == (3, 0, 0)


# ------------------------------------------------------------------- text


def _block(text: str, title: str) -> list[str]:
    """The lines of one summary block, from its title to the next one."""
    lines = text.splitlines()
    start = lines.index(f"  {title}") + 1
    end = next(i for i in range(start, len(lines)) if re.fullmatch(r"  [A-Z]+", lines[i]))
    return [line for line in lines[start:end] if line]


def test_the_chaos_block_follows_the_thresholds() -> None:
    text = render_text(chaos_doc())
    titles = re.findall(r"^  ([A-Z]+)$", text, flags=re.MULTILINE)
    assert titles[:4] == ["SCENARIOS", "THRESHOLDS", "CHAOS", "CHECKS"]
    assert "CHAOS" not in render_text(make_doc())


def test_faults_show_their_windows_and_rollback() -> None:
    text = render_text(chaos_doc())
    assert [line for line in text.splitlines() if "planned" in line] == [
        "    slow-target  http       planned 20.0s–35.0s  ran 20.0s–35.0s  rollback ok",
        ("    kill-db      toxiproxy  planned 45.0s–55.0s  ran 45.1s–55.2s  "
         "rollback FAILED: HTTP 503 from toxiproxy"),
        "    late         abort      planned 70.0s–80.0s  not started      rollback not needed",
    ]


def test_recovery_budgets_show_the_time_to_recover() -> None:
    text = render_text(chaos_doc())
    assert [line.strip() for line in text.splitlines() if "recovery after" in line] == [
        ("✓ recovery after slow-target: http_req_duration{scenario:purchase} p(95)<500 "
         "within 30s — recovered in 1.7s"),
        "✗ recovery after kill-db: http_req_failed rate<0.01 within 10s — not recovered",
        ("✗ recovery after kill-db: http_req_duration{scenario:purchase} p(95)<500 "
         "within 5s — recovered in 8.2s, too late"),
        ("✗ recovery after late: http_req_duration{scenario:purchase} p(95)<500 "
         "within 30s — no data"),
    ]


def test_thresholds_by_phase_are_a_compact_table() -> None:
    lines = _block(render_text(chaos_doc()), "CHAOS")
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("threshold"))
    table = [line.split("  ") for line in lines[start:]]
    cells = [[cell.strip() for cell in row if cell.strip()] for row in table]
    assert cells == [
        ["threshold", "before", "during:slow-target", "after:slow-target", "during:kill-db",
         "after:kill-db", "during:late", "after:late"],
        ["http_req_duration{scenario:purchase} p(95)<500", "✓ 180.5ms", "✗ 712.3ms",
         "✓ 190ms", "✗ 2.4s", "–", "–", "–"],
        ["http_req_failed rate<0.01", "✓ 0.00%", "✓ 0.40%", "✓ 0.00%", "✗ 50.00%",
         "–", "–", "–"],
    ]
    # Aligned: every column starts at the same offset on every row.
    assert len({line.index("during:slow-target") for line in lines[start:start + 1]}) == 1
    assert lines[start + 1].index("✗ 712.3ms") == lines[start].index("during:slow-target")


def test_the_verdict_counts_recoveries_and_names_faults_left_in_place() -> None:
    lines = render_text(chaos_doc()).splitlines()
    assert lines[-2:] == [
        "  ✗ 6 budget(s) violated (2 with no data)",
        "  ✗ fault kill-db NOT rolled back: the target may still be degraded",
    ]
    assert render_text(recovered_doc()).splitlines()[-1] == "  ✓ all budgets held"


def test_a_failed_rollback_is_bold_red_on_a_terminal() -> None:
    text = render_text(chaos_doc(), color=True)
    assert "\x1b[1m\x1b[31mrollback FAILED: HTTP 503 from toxiproxy\x1b[0m" in text


def test_unscheduled_and_half_started_faults() -> None:
    doc = chaos_doc()
    late = doc["chaos"]["faults"][2]
    late.update(anchor="scanner", at_s=5.0, planned_at_s=None)
    broken = doc["chaos"]["faults"][0]
    broken.update(start_error="connection refused", ended_at_s=None,
                  rollback="failed: rollback did not finish within 6s")
    lines = [line.strip() for line in render_text(doc).splitlines()]
    assert ("late         abort      planned 5.0s–15.0s after scanner started  not started"
            "             rollback not needed") in lines
    assert ("slow-target  http       planned 20.0s–35.0s                       "
            "ran 20.0s–still active  start failed: connection refused; "
            "rollback FAILED: rollback did not finish within 6s") in lines


def test_control_characters_in_chaos_strings_cannot_reach_the_terminal() -> None:
    doc = chaos_doc()
    doc["chaos"]["faults"][1]["rollback"] = "failed: \x1b[2J\nfake line"
    doc["chaos"]["recovery"][0]["fault"] = "x\x1b[31m"
    text = render_text(doc)
    assert "\x1b" not in text
    assert "rollback FAILED: \\x1b[2J\\nfake line" in text
    assert "recovery after x\\x1b[31m:" in text


# --------------------------------------------------------------- markdown


def _section(text: str, title: str) -> str:
    start = text.index(f"\n#### {title}\n")
    end = text.find("\n#### ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_the_chaos_section_follows_the_budgets() -> None:
    text = render_markdown(chaos_doc())
    headers = re.findall(r"^#### (.+)$", text, flags=re.MULTILINE)
    assert headers[:3] == ["Budgets", "Chaos", "Scenarios"]
    assert "#### Chaos" not in render_markdown(make_doc())


def test_the_headline_puts_a_fault_left_in_place_first() -> None:
    assert render_markdown(chaos_doc()).startswith(
        "### ❌ loadaction: 1 fault not rolled back · 6 of 10 budgets violated\n")
    assert render_markdown(recovered_doc()).startswith("### ✅ loadaction: all 3 budgets held\n")


def test_the_fault_timeline_table() -> None:
    section = _section(render_markdown(chaos_doc()), "Chaos")
    assert (
        "| fault | kind | planned | ran | rollback |\n"
        "|---|---|---|---|---|\n"
        "| slow-target | http | 20.0s–35.0s | 20.0s–35.0s | ✅ ok |\n"
        "| kill-db | toxiproxy | 45.0s–55.0s | 45.1s–55.2s | ❌ **FAILED**: HTTP 503 from toxiproxy |\n"
        "| late | abort | 70.0s–80.0s | not started | not needed |\n"
    ) in section


def test_the_recovery_table() -> None:
    section = _section(render_markdown(chaos_doc()), "Chaos")
    p95 = "http\\_req\\_duration{scenario:purchase} | p(95)&lt;500"
    assert (
        "| recovery after | metric | budget | within | recovered in | result |\n"
        "|---|---|---|---:|---:|---|\n"
        f"| slow-target | {p95} | 30s | 1.7s | ✅ pass |\n"
        "| kill-db | http\\_req\\_failed | rate&lt;0.01 | 10s | — | ❌ not recovered |\n"
        f"| kill-db | {p95} | 5s | 8.2s | ❌ too late |\n"
        f"| late | {p95} | 30s | — | ❌ no data |\n"
    ) in section


def test_the_phase_table() -> None:
    section = _section(render_markdown(chaos_doc()), "Chaos")
    assert (
        "| threshold | before | during:slow-target | after:slow-target | during:kill-db "
        "| after:kill-db | during:late | after:late |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        "| http\\_req\\_duration{scenario:purchase} p(95)&lt;500 | ✅ 180.5ms | ❌ 712.3ms "
        "| ✅ 190ms | ❌ 2.4s | — | — | — |\n"
        "| http\\_req\\_failed rate&lt;0.01 | ✅ 0.00% | ✅ 0.40% | ✅ 0.00% | ❌ 50.00% "
        "| — | — | — |\n"
    ) in section


def test_every_chaos_string_is_escaped() -> None:
    doc = chaos_doc()
    evil = "a|b <script>x</script> @octocat"
    escaped = f"a\\|b &lt;script&gt;x&lt;/script&gt; @{SPLIT}octocat"
    kill = doc["chaos"]["faults"][1]
    kill.update(name=evil, kind=evil, rollback=f"failed: {evil}", start_error=evil,
                anchor=evil, planned_at_s=None)
    for budget in doc["chaos"]["recovery"][1:3]:
        budget.update(fault=evil, metric=f"http_req_failed{{scenario:{evil}}}")
    for entry in doc["chaos"]["phases"]:
        entry["phase"] = entry["phase"].replace("kill-db", evil)
    text = render_markdown(doc)
    section = _section(text, "Chaos")
    assert "<script>" not in text and re.search(r"@(?!<!-- -->)", text) is None
    assert (f"| {escaped} | {escaped} | 5.0s–15.0s after {escaped} started "
            f"| 45.1s–55.2s · start failed: {escaped} | ❌ **FAILED**: {escaped} |") in section
    assert f"| {escaped} | http\\_req\\_failed{{scenario:{escaped}}} |" in section
    assert f"| during:{escaped} | after:{escaped} |" in section
    for table in re.findall(r"(?:^\|.*\n)+", section, flags=re.MULTILINE):
        assert len({len(re.findall(r"(?<!\\)\|", row)) for row in table.splitlines()}) == 1


# ------------------------------------------------------------------ chart


def _mermaid_blocks(text: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)\n```", text, flags=re.DOTALL)


def _values(line: str) -> list[float]:
    return [float(v) for v in line[line.index("[") + 1 : -1].split(", ")]


def test_the_p95_chart_marks_when_faults_were_in_force() -> None:
    text = render_markdown(chaos_doc())
    section = _section(text, "Chaos")
    assert "<details><summary>Chart: p95 latency and faults</summary>" in section
    [chart] = _mermaid_blocks(section)
    lines = chart.splitlines()
    assert lines[:3] == ["xychart-beta",
                         '    title "p95 latency, all scenarios (bars: fault active)"',
                         '    x-axis "time (s)" 1 --> 60']
    assert lines[4].startswith('    bar "fault active" [')
    assert lines[5].startswith('    bar "p95" [')  # bars, so a second without requests is a gap
    bars, p95 = _values(lines[4]), _values(lines[5])
    assert lines[3].startswith('    y-axis "ms" 0 --> ')
    assert float(lines[3].rsplit(" ", 1)[1]) == max(p95) == max(bars)
    assert len(bars) == len(p95) == 60
    # Second t covers (t-1, t]: slow-target ran 20.01–35.02, kill-db 45.1–55.2.
    active = {t for t, bar in zip(range(1, 61), bars) if bar}
    assert active == set(range(21, 37)) | set(range(46, 57))
    assert {bar for bar in bars if bar} == {max(p95)}


def test_the_chart_merges_every_scenario_each_second() -> None:
    doc = chaos_doc()
    [chart] = _mermaid_blocks(_section(render_markdown(doc), "Chaos"))
    p95 = _values(chart.splitlines()[5])
    points = doc["series"]["scenarios"]
    exact = TrendSink()
    for scenario in points.values():
        exact.merge(TrendSink.from_summary(scenario[29]))
    assert p95[29] == pytest.approx(exact.percentile(95), abs=0.01)


def test_long_runs_mark_a_fault_shorter_than_a_merged_point() -> None:
    doc = chaos_doc()
    doc["duration_s"] = 600.0
    doc["series"]["scenarios"] = {"purchase": _series(3, 600, (300, 302))}
    doc["chaos"]["faults"] = [_fault("blip", "http", 300.0, 2.0, 300.2, 300.9, "ok")]
    chart = fault_chart(doc)
    assert chart is not None
    bars = _values(chart.splitlines()[4])
    assert len(bars) == 60 and sum(1 for bar in bars if bar) == 1
    assert '    x-axis "time (s)" 10 --> 600' in chart


def test_no_chart_without_series_or_without_a_fault_that_started() -> None:
    doc = chaos_doc()
    for fault in doc["chaos"]["faults"]:
        fault.update(started_at_s=None, ended_at_s=None, rollback="not needed")
    assert fault_chart(doc) is None
    doc = chaos_doc()
    doc["series"]["scenarios"] = {}
    assert fault_chart(doc) is None
    assert "Chart: p95 latency and faults" not in render_markdown(doc)


# ----------------------------------------------------------- size limits


def _huge_chaos_doc() -> dict[str, Any]:
    """A chaos run with much to say: thousands of errors, 40 faults (one not
    rolled back), 80 recovery budgets and 30 thresholds judged in 81 phases."""
    doc = chaos_doc()
    faults = [_fault(f"fault-{i:02d}", "http", 1.0 * i, 1.0, i + 0.01, i + 1.0, "ok")
              for i in range(40)]
    faults[33]["rollback"] = "failed: connection reset"
    recovery = [_recovery(f"fault-{i % 40:02d}", "http_req_failed", f"rate<0.0{i % 9 + 1}",
                          10.0, *(("fail", None) if i % 20 == 3 else ("pass", 1.0)), 50 + i)
                for i in range(80)]
    phases = ["before", *(f"{when}:fault-{i:02d}" for i in range(40) for when in
                          ("during", "after"))]
    doc["chaos"] = {
        "faults": faults,
        "phases": [{"metric": f"http_req_duration{{name:n{i}}}", "expression": "p(95)<500",
                    "phase": phase, "verdict": "pass", "observed": 120.0}
                   for i in range(30) for phase in phases],
        "recovery": recovery,
    }
    doc["errors"] = [{"message": f"HTTP 500 {i} " + "x" * 400, "count": i + 1,
                      "scenario": "purchase", "first_seen_s": 1.0} for i in range(3000)]
    return doc


def test_chaos_details_go_before_any_table_row() -> None:
    doc = _huge_chaos_doc()
    full = render_markdown(doc)
    for max_chars in range(8_000, len(full), 4_000):
        text = render_markdown(doc, max_chars=max_chars)
        assert len(text) <= max_chars
        if "left out to fit" in text:
            assert "Thresholds by phase" not in text and "```mermaid" not in text


def test_the_timeline_and_recoveries_shrink_with_the_budgets_keeping_failures() -> None:
    doc = _huge_chaos_doc()
    text = render_markdown(doc, max_chars=5_000)
    assert len(text) <= 5_000 and TRUNCATION_NOTE in text
    assert text.startswith("### ❌ loadaction: 1 fault not rolled back · 7 of 86 budgets violated\n")
    assert "#### Budgets" in text and "#### Chaos" in text
    assert "| fault-33 | http | 33.0s–34.0s | 33.0s–34.0s | ❌ **FAILED**: connection reset |" in text
    assert "scenarios left out" in text
    shown = re.findall(r"^\| fault-\d\d \| http \| ", text, flags=re.MULTILINE)
    omitted = re.search(r"…and (\d+) more faults left out", text)
    assert omitted and len(shown) + int(omitted[1]) == 40
    assert text.count("❌ not recovered") == 4  # every failed recovery kept


def test_problem_rows_of_the_three_tables_outlive_every_row_that_held() -> None:
    text = render_markdown(_huge_chaos_doc(), max_chars=2_500)
    assert len(text) <= 2_500
    assert "❌ **FAILED**: connection reset" in text
    assert text.count("❌ not recovered") == 4
    assert text.count("❌ fail |") == 2 and text.count("❌ no data |") == 1
    assert "…and 39 more faults left out" in text


@pytest.mark.parametrize("max_chars", [0, 100, 300, 2_000, 5_000, 20_000, 65_536])
def test_never_longer_than_the_limit_with_chaos(max_chars: int) -> None:
    doc = _huge_chaos_doc()
    text = render_markdown(doc, max_chars=max_chars)
    assert len(text) <= max_chars
    assert text.count("<details>") == text.count("</details>") and text.count("```") % 2 == 0


def test_rendering_does_not_change_the_document() -> None:
    doc = _huge_chaos_doc()
    before = copy.deepcopy(doc)
    for fmt in ("text", "md", "junit"):
        render(doc, fmt, max_chars=5_000)
    assert doc == before


# ------------------------------------------------------------------ junit


def _chaos_suite(doc: dict[str, Any]) -> ET.Element:
    root = ET.fromstring(render(doc, "junit").encode("utf-8"))
    assert [s.get("name") for s in root.findall("testsuite")][-2:] == ["chaos", "checks"]
    [suite] = [s for s in root.findall("testsuite") if s.get("name") == "chaos"]
    return suite


def test_recoveries_and_rollbacks_are_test_cases() -> None:
    suite = _chaos_suite(chaos_doc())
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    p95 = "http_req_duration{scenario:purchase} p(95)<500"
    assert list(cases) == [
        f"recovery after slow-target: {p95} within 30s",
        "recovery after kill-db: http_req_failed rate<0.01 within 10s",
        f"recovery after kill-db: {p95} within 5s",
        f"recovery after late: {p95} within 30s",
        "rollback slow-target",
        "rollback kill-db",
    ]
    assert {c.get("classname") for c in cases.values()} == {"loadaction.chaos"}
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "4", "0")
    failures = {name: c.find("failure") for name, c in cases.items()}
    assert failures[f"recovery after slow-target: {p95} within 30s"] is None
    late = failures[f"recovery after kill-db: {p95} within 5s"]
    assert late is not None and late.get("message") == "recovered in 8.2s, too late"
    assert late.get("type") == "recovery" and (late.text or "").endswith("(scenarios/chaos.yml:45)")
    rollback = failures["rollback kill-db"]
    assert rollback is not None and rollback.get("type") == "rollback"
    assert rollback.get("message") == "not rolled back: HTTP 503 from toxiproxy"
    case = cases["rollback kill-db"]
    assert (case.get("file"), case.get("line")) == (CHAOS_PLAN, "36")


def test_junit_failures_agree_with_the_headline() -> None:
    doc = chaos_doc()
    root = ET.fromstring(render(doc, "junit").encode("utf-8"))
    budget_failures = sum(
        1 for s in root.findall("testsuite") if s.get("name") != "checks"
        for c in s.findall("testcase")
        if (f := c.find("failure")) is not None and f.get("type") in ("threshold", "no data",
                                                                        "recovery"))
    assert budget_failures == tally_budgets(doc).violated == 6


def test_no_chaos_suite_without_chaos() -> None:
    root = ET.fromstring(render(make_doc(), "junit").encode("utf-8"))
    assert "chaos" not in [s.get("name") for s in root.findall("testsuite")]
    assert HOSTILE  # the fixture's hostile strings are covered by test_report_junit


# ---------------------------------------------------- planned and actual windows


def windowed_doc() -> dict[str, Any]:
    """The chaos fixture with the fields newer documents carry: slow-target's
    window opened late (its start action took 0.3 s) and closed at its planned
    end, then its rollback finished; kill-db was ended early by a stop."""
    doc = chaos_doc()
    slow, kill, late = doc["chaos"]["faults"]
    slow.update(planned_end_s=35.0, started_at_s=20.3, ended_at_s=35.0, rolled_back_at_s=35.04)
    kill.update(planned_end_s=55.0, ended_at_s=50.2, rolled_back_at_s=None)
    late.update(planned_end_s=80.0, rolled_back_at_s=None)
    return doc


def test_only_a_rollback_that_happened_gets_a_time() -> None:
    doc = windowed_doc()
    doc["chaos"]["faults"][2].update(kind="abort", started_at_s=70.0, ended_at_s=80.0,
                                     rolled_back_at_s=80.0)  # client faults need none
    [late] = [line for line in render_text(doc).splitlines() if line.startswith("    late")]
    assert late.endswith("rollback not needed")
    assert "| late | abort | 70.0s–80.0s | 70.0s–80.0s | not needed |" in render_markdown(doc)


def test_text_shows_both_windows_the_early_stop_and_the_rollback_time() -> None:
    assert [line for line in render_text(windowed_doc()).splitlines() if "planned" in line] == [
        "    slow-target  http       planned 20.0s–35.0s  ran 20.3s–35.0s                  "
        "rollback ok at 35.0s",
        ("    kill-db      toxiproxy  planned 45.0s–55.0s  ran 45.1s–50.2s (stopped early)  "
         "rollback FAILED: HTTP 503 from toxiproxy"),
        "    late         abort      planned 70.0s–80.0s  not started                      "
        "rollback not needed",
    ]


def test_the_planned_end_comes_from_the_document_when_it_has_one() -> None:
    doc = windowed_doc()
    doc["chaos"]["faults"][0]["planned_end_s"] = 34.5
    assert "planned 20.0s–34.5s" in render_text(doc)


def test_markdown_shows_both_windows_the_early_stop_and_the_rollback_time() -> None:
    section = _section(render_markdown(windowed_doc()), "Chaos")
    assert "| slow-target | http | 20.0s–35.0s | 20.3s–35.0s | ✅ ok at 35.0s |\n" in section
    assert ("| kill-db | toxiproxy | 45.0s–55.0s | 45.1s–50.2s (stopped early) | "
            "❌ **FAILED**: HTTP 503 from toxiproxy |\n") in section


def test_junit_rollback_cases_carry_both_windows() -> None:
    cases = {c.get("name"): c for c in _chaos_suite(windowed_doc()).findall("testcase")}
    out = cases["rollback slow-target"].find("system-out")
    assert out is not None and out.text == (
        "fault slow-target (http) rolled back; planned 20.0s–35.0s, ran 20.3s–35.0s")
    failure = cases["rollback kill-db"].find("failure")
    assert failure is not None and failure.text == (
        "fault kill-db (toxiproxy) was not rolled back: HTTP 503 from toxiproxy; "
        "planned 45.0s–55.0s, ran 45.1s–50.2s (stopped early) (scenarios/chaos.yml:36)")


def test_the_windowed_fixture_is_a_valid_document() -> None:
    validate_results(json.loads(json.dumps(windowed_doc())), "results.json")
