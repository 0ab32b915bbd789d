from __future__ import annotations

from pathlib import Path

import pytest
from tests.test_report_fixtures import make_doc, passing_doc

from loadaction.errors import PlanError
from loadaction.metrics.sinks import TrendSink
from loadaction.report.markdown import MAX_ERROR_ROWS, md_escape, render_markdown
from loadaction.report.text import format_duration

ZWJ = "\u200d"
ESCAPED_HOSTILE = f"&lt;script&gt;alert(1)&lt;/script&gt; cc @{ZWJ}octocat"


def test_md_escape_neutralises_html_markdown_and_mentions() -> None:
    assert md_escape("<b>a & b</b>") == "&lt;b&gt;a &amp; b&lt;/b&gt;"
    assert md_escape("*x* _y_ `z` [l](u) a|b \\ ~~s~~") == (
        "\\*x\\* \\_y\\_ \\`z\\` \\[l\\](u) a\\|b \\\\ \\~\\~s\\~\\~"
    )
    assert md_escape("hi @team") == f"hi @{ZWJ}team"
    assert md_escape("one\ntwo\r\tthree\x07") == "one two  three"
    assert md_escape(None) == ""
    assert md_escape(3) == "3"


def test_headline_when_budgets_are_violated() -> None:
    lines = render_markdown(make_doc()).splitlines()
    assert lines[0] == "### ❌ loadaction: 3 of 6 budgets violated"
    assert lines[2] == (
        "**plan** ticketing · **profile** pr · **target** http://127.0.0.1:8080"
        " · **status** complete · **duration** 60s"
    )


def test_headline_when_all_budgets_hold() -> None:
    assert render_markdown(passing_doc()).startswith("### ✅ loadaction: all 2 budgets held\n")
    doc = passing_doc()
    doc["thresholds"] = doc["thresholds"][:1]
    assert render_markdown(doc).startswith("### ✅ loadaction: 1 budget held\n")
    doc["thresholds"] = []
    assert render_markdown(doc).startswith("### ⚪ loadaction: no budgets defined\n")


def test_unfinished_run_is_flagged_with_its_reason() -> None:
    doc = passing_doc()
    doc["status"], doc["status_reason"] = "aborted", "threshold http_req_duration p(95)<500 crossed"
    expected = "**status** ⚠️ aborted (threshold http\\_req\\_duration p(95)&lt;500 crossed)"
    assert expected in render_markdown(doc)


def test_threshold_rows() -> None:
    lines = render_markdown(make_doc()).splitlines()
    assert "| purchase | http\\_req\\_duration | p(95)&lt;500 | 712.31ms | ❌ fail |" in lines
    assert "| scanner | http\\_req\\_duration{name:scan} | p(95)&lt;200 | 85.5ms | ✅ pass |" in lines
    assert "| all | http\\_req\\_failed | rate&lt;0.01 | 3.33% | ❌ fail |" in lines
    assert "| all | successful\\_scans | count==1 | — | ⚪ no data (optional) |" in lines
    assert "| ghost | http\\_reqs | count&gt;0 | — | ❌ no data |" in lines


def test_scenario_stats_come_from_merged_histograms() -> None:
    doc = make_doc()
    merged = TrendSink()
    for part in doc["metrics"]["http_req_duration"]["by_tags"]:
        if part["tags"]["scenario"] == "purchase":
            merged.merge(TrendSink.from_summary(part["sink"]))
    p = [format_duration(merged.percentile(q)) for q in (50, 90, 95, 99)]
    expected = f"| purchase | 100 | 100 | 1.67 | 10.00% | {' | '.join(p)} | {format_duration(merged.max())} |"
    assert expected in render_markdown(doc).splitlines()


def test_hostile_strings_are_escaped_in_checks_and_errors() -> None:
    text = render_markdown(make_doc())
    assert "<script>" not in text
    assert "@octocat" not in text
    assert f"| body ok {ESCAPED_HOSTILE} | purchase | ::pay | 85 | 5 | 94.44% | ❌ |" in text
    assert f"| 7 | HTTP 500: {ESCAPED_HOSTILE} second line | purchase | 12s |" in text


def test_errors_sit_in_a_details_block() -> None:
    text = render_markdown(make_doc())
    details = text[text.index("<details>") : text.index("</details>")]
    assert details.startswith("<details><summary>Errors (10)</summary>\n\n| count | message |")
    assert "| 3 | connection refused: 127.0.0.1:1 | purchase | 400ms |" in details


def test_errors_are_capped_for_github_comment_limits() -> None:
    doc = make_doc()
    doc["errors"] = [{"message": f"e{i} " + "x" * 1000, "count": 1} for i in range(MAX_ERROR_ROWS + 5)]
    text = render_markdown(doc)
    assert text.count("| 1 | e") == MAX_ERROR_ROWS
    assert "…and 5 more kinds of error, listed in results.json." in text
    assert "x" * 400 not in text


def test_custom_metrics_exclude_builtins() -> None:
    text = render_markdown(make_doc())
    table = text[text.index("#### Custom metrics") : text.index("<details>")]
    trend = "avg=2s min=1.5s med=1.5s max=2.5s p(90)=2.5s p(95)=2.5s"
    assert f"| checkout\\_duration | trend | {trend} |" in table
    assert "| successful\\_scans | counter | no data |" in table
    assert "| checkout\\_errors | rate | 25.00% ✓ 1 ✗ 3 |" in table
    assert "http\\_reqs" not in table and "checks" not in table


def test_notices_and_footer() -> None:
    text = render_markdown(make_doc())
    assert "- ⚠️ data 'tickets' exhausted after 100 rows: VU stopped" in text
    assert text.endswith(
        "<sub>loadaction 0.1.0 · scenarios/ticketing.yml"
        " · [workflow run](https://github.com/acme/shop/actions/runs/1)</sub>\n"
    )


def test_unsafe_run_url_is_dropped() -> None:
    doc = make_doc()
    doc["environment"]["github_run_url"] = "javascript:alert(1)"
    assert "workflow run" not in render_markdown(doc)


def test_user_template_can_extend_the_bundled_one(tmp_path: Path) -> None:
    template = tmp_path / "report.md.j2"
    template.write_text(
        '{% extends "loadaction/report.md.j2" %}'
        "{% block footer %}custom footer for {{ plan.name | md_escape }}\n{% endblock %}",
        encoding="utf-8",
    )
    text = render_markdown(make_doc(), template)
    assert text.startswith("### ❌ loadaction: 3 of 6 budgets violated\n")
    assert text.endswith("custom footer for ticketing\n")


def test_user_template_errors_are_plan_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.j2"
    broken.write_text("line one\n{% if %}\n", encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        render_markdown(make_doc(), broken)
    assert caught.value.source is not None and caught.value.source.line == 2
    assert str(caught.value).startswith(f"{broken}:2: invalid template: ")

    undefined = tmp_path / "undefined.j2"
    undefined.write_text("{{ nope }}", encoding="utf-8")
    with pytest.raises(PlanError, match="'nope' is undefined"):
        render_markdown(make_doc(), undefined)

    with pytest.raises(PlanError, match="template not found"):
        render_markdown(make_doc(), tmp_path / "missing.j2")


def test_user_template_is_sandboxed(tmp_path: Path) -> None:
    template = tmp_path / "evil.j2"
    template.write_text("{{ doc.__class__.__mro__ }}", encoding="utf-8")
    with pytest.raises(PlanError):
        render_markdown(make_doc(), template)
