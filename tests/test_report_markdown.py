from __future__ import annotations

import copy
import random
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from loadaction.errors import PlanError
from loadaction.metrics.sinks import TrendSink
from loadaction.report import render
from loadaction.report.chart import MAX_POINTS, downsample, mermaid_text
from loadaction.report.format import format_duration
from loadaction.report.markdown import render_markdown
from loadaction.report.markdown.context import MAX_ERROR_ROWS
from loadaction.report.markdown.escape import SPLIT, md_escape
from loadaction.report.markdown.fit import TRUNCATION_NOTE
from tests.test_report_fixtures import _threshold, make_doc, passing_doc, rate, trend

ESCAPED_HOSTILE = f"&lt;script&gt;alert(1)&lt;/script&gt; cc @{SPLIT}octocat"


def test_md_escape_neutralises_html_markdown_and_mentions() -> None:
    assert md_escape("<b>a & b</b>") == "&lt;b&gt;a &amp; b&lt;/b&gt;"
    assert md_escape("*x* _y_ `z` [l](u) a|b \\ ~~s~~") == (
        "\\*x\\* \\_y\\_ \\`z\\` \\[l\\](u) a\\|b \\\\ \\~\\~s\\~\\~"
    )
    assert md_escape("hi @team") == "hi @<!-- -->team" == f"hi @{SPLIT}team"
    assert md_escape("see acme/shop#12") == "see acme/shop#<!-- -->12"
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
    start = text.index("<details><summary>Errors")
    details = text[start : text.index("</details>", start)]
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
    assert (
        "<details><summary>Notices (1)</summary>\n\n"
        "- ⚠️ data 'tickets' exhausted after 100 rows: VU stopped\n\n</details>"
    ) in text
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
    text = render_markdown(make_doc(), template=template)
    assert text.startswith("### ❌ loadaction: 3 of 6 budgets violated\n")
    assert text.endswith("custom footer for ticketing\n")


def test_user_template_errors_are_plan_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.j2"
    broken.write_text("line one\n{% if %}\n", encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        render_markdown(make_doc(), template=broken)
    assert caught.value.source is not None and caught.value.source.line == 2
    assert str(caught.value).startswith(f"{broken}:2: invalid template: ")

    undefined = tmp_path / "undefined.j2"
    undefined.write_text("{{ nope }}", encoding="utf-8")
    with pytest.raises(PlanError, match="'nope' is undefined"):
        render_markdown(make_doc(), template=undefined)

    with pytest.raises(PlanError, match="template not found"):
        render_markdown(make_doc(), template=tmp_path / "missing.j2")


def test_user_template_is_sandboxed(tmp_path: Path) -> None:
    template = tmp_path / "evil.j2"
    template.write_text("{{ doc.__class__.__mro__ }}", encoding="utf-8")
    with pytest.raises(PlanError):
        render_markdown(make_doc(), template=template)


# ------------------------------------------------------------------ baseline


def _sink_part(doc: dict[str, Any], metric: str, scenario: str, sink: dict[str, Any]) -> None:
    """Replace `metric`'s tag sets for `scenario` by one tag set holding `sink`."""
    entry = doc["metrics"][metric]
    others = [p for p in entry["by_tags"] if p["tags"].get("scenario") != scenario]
    tags = {"scenario": scenario, "name": "checkout", "method": "POST", "status": "200",
            "expected_response": "true", "group": ""}
    entry["by_tags"] = [*others, {"tags": tags, "sink": sink}]


def _baseline() -> dict[str, Any]:
    """The fixture run as it was a day earlier: faster and with fewer errors
    in `purchase`, one budget spelt differently, one not there yet."""
    base = make_doc()
    base["started_at"] = "2026-11-20T23:00:00+00:00"
    base["environment"]["github_run_url"] = "https://github.com/acme/shop/actions/runs/0"
    by_metric = {t["metric"]: t for t in base["thresholds"]}
    by_metric["http_req_duration{scenario:purchase}"]["observed"] = 650.0
    by_metric["http_req_failed"]["observed"] = 0.01
    scan = by_metric["http_req_duration{scenario:scanner,name:scan}"]
    scan["metric"] = "http_req_duration{ name:scan , scenario:scanner }"
    scan["expression"] = "p(95) < 200"
    scan["observed"] = 90.0
    base["thresholds"].remove(by_metric["checks"])
    _sink_part(base, "http_req_duration", "purchase", trend([100.0 + i for i in range(100)]))
    _sink_part(base, "http_req_failed", "purchase", rate(5, 95))  # 5% failed
    return base


def _row(text: str, prefix: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(prefix)]
    return line


def test_threshold_rows_show_the_baseline_and_the_change() -> None:
    text = render_markdown(make_doc(), baseline=_baseline())
    assert "| scenario | metric | budget | observed | baseline | Δ | result |" in text
    assert _row(text, "| purchase | http\\_req\\_duration |") == (
        "| purchase | http\\_req\\_duration | p(95)&lt;500 | 712.31ms"
        " | 650ms | +62.31ms (+9.6%) | ❌ fail |"
    )
    # Same budget, spelt with other tag order and spaces: still compared.
    assert _row(text, "| scanner | http").endswith("| 85.5ms | 90ms | -4.5ms (-5.0%) | ✅ pass |")
    # Rates move in percentage points.
    failed = _row(text, "| all | http\\_req\\_failed |")
    assert failed.endswith("| 3.33% | 1.00% | +2.33 pp | ❌ fail |")
    # Not in the baseline; no data in both.
    assert _row(text, "| all | checks |").endswith("| 95.00% | — | — | ✅ pass |")
    assert _row(text, "| ghost |").endswith("| — | no data | — | ❌ no data |")


def test_scenario_rows_show_p95_and_error_rate_changes() -> None:
    doc, base = make_doc(), _baseline()
    now = TrendSink()
    for part in doc["metrics"]["http_req_duration"]["by_tags"]:
        if part["tags"]["scenario"] == "purchase":
            now.merge(TrendSink.from_summary(part["sink"]))
    before = TrendSink.from_summary(trend([100.0 + i for i in range(100)])).percentile(95)
    after = now.percentile(95)
    p95_delta = f"+{format_duration(after - before)} ({(after - before) / before * 100:+.1f}%)"
    text = render_markdown(doc, baseline=base)
    assert "| p95 Δ | error rate Δ |" in text
    assert _row(text, "| purchase | 100 |").endswith(f"| {p95_delta} | +5 pp |")
    assert _row(text, "| scanner | 200 |").endswith("| ±0 | ±0 |")


def test_headline_names_the_baseline_run() -> None:
    text = render_markdown(make_doc(), baseline=_baseline())
    assert text.splitlines()[2].endswith(
        " · **baseline** [run of 2026-11-20 23:00 UTC](https://github.com/acme/shop/actions/runs/0)"
    )
    plain = render_markdown(make_doc())
    assert "baseline" not in plain and "Δ" not in plain


def test_render_passes_baseline_and_limit_through() -> None:
    doc, base = make_doc(), _baseline()
    assert render(doc, "md", baseline=base) == render_markdown(doc, baseline=base)
    assert len(render(doc, "md", max_chars=1500)) <= 1500


# -------------------------------------------------------------------- charts


def _series(rng: random.Random, seconds: int) -> tuple[list[dict[str, Any]], list[list[float]]]:
    """Per-second points as the engine writes them, and each second's samples;
    every 7th second has no requests."""
    points, samples = [], []
    for t in range(1, seconds + 1):
        values = [] if t % 7 == 0 else [rng.uniform(1, 400) for _ in range(rng.randint(1, 30))]
        sink = TrendSink()
        for value in values:
            sink.add(value)
        has = sink.count > 0
        p50, p95, p99 = sink.percentiles((50, 95, 99)) if has else (None, None, None)
        points.append({"t": t + 0.001 * rng.random(), "reqs": len(values), "failed": 0,
                       "iterations": len(values), "vus": 5, "p50": p50, "p95": p95, "p99": p99,
                       "max": sink.max() if has else None, "hdr": sink.encode() if has else None})
        samples.append(values)
    return points, samples


def test_downsampling_merges_histograms_so_p95_stays_exact() -> None:
    points, samples = _series(random.Random(5), 200)
    merged = downsample(points, 1.0)
    size = 4  # ceil(200 / 60)
    assert len(merged) == 50 <= MAX_POINTS
    for index, point in enumerate(merged):
        group = samples[index * size : (index + 1) * size]
        exact = TrendSink()
        for values in group:
            for value in values:
                exact.add(value)
        assert point.p95_ms == exact.percentile(95)
        assert point.t == points[(index + 1) * size - 1]["t"]
        span = point.t - (points[index * size - 1]["t"] if index else 0.0)
        assert point.req_per_s == pytest.approx(sum(map(len, group)) / span)


def test_short_series_are_not_merged() -> None:
    points, _ = _series(random.Random(6), 45)
    merged = downsample(points, 1.0)
    assert [p.p95_ms for p in merged] == [p["p95"] for p in points]


@pytest.mark.parametrize("seconds", [1, 59, 60, 61, 600, 3601])
def test_downsampling_never_exceeds_the_point_budget(seconds: int) -> None:
    points = [{"t": float(t), "reqs": 1, "p95": 1.0, "hdr": None} for t in range(1, seconds + 1)]
    merged = downsample(points, 1.0)
    assert 1 <= len(merged) <= MAX_POINTS
    assert merged[-1].t == seconds


def _mermaid_blocks(text: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)\n```", text, flags=re.DOTALL)


def test_each_scenario_gets_latency_and_throughput_charts() -> None:
    doc = make_doc()
    doc["series"]["scenarios"]["purchase"], _ = _series(random.Random(7), 180)
    doc["series"]["scenarios"]["scanner"], _ = _series(random.Random(8), 30)
    text = render_markdown(doc)
    assert "<details><summary>Charts: purchase</summary>" in text
    blocks = _mermaid_blocks(text)
    assert len(blocks) == 4
    latency, throughput = blocks[0].splitlines(), blocks[1].splitlines()
    assert latency[:3] == ["xychart-beta", '    title "purchase: p95 latency"',
                           '    x-axis "time (s)" 3 --> 180']
    assert throughput[:3] == ["xychart-beta", '    title "purchase: throughput"',
                              '    x-axis "time (s)" 3 --> 180']
    # p95 is drawn as bars, so a point without requests can be a gap (no bar);
    # both y-axes start at 0, so the lowest bar that was measured still shows.
    values = re.fullmatch(r"    bar \[(.*)\]", latency[4])
    bars = re.fullmatch(r"    bar \[(.*)\]", throughput[4])
    assert values and bars
    numbers = [float(v) for v in values[1].split(", ")]
    assert len(numbers) == 60 and all(v >= 0 for v in numbers)
    assert latency[3].startswith('    y-axis "ms" 0 --> ')
    assert float(latency[3].rsplit(" ", 1)[1]) == max(numbers)
    assert re.fullmatch(r'    y-axis "req/s" 0 --> \d+(\.\d+)?', throughput[3])
    assert all(re.fullmatch(r"\d+(\.\d+)?", v) for v in bars[1].split(", "))
    assert _mermaid_blocks(text)[2].splitlines()[2] == '    x-axis "time (s)" 1 --> 30'


def test_no_series_no_charts() -> None:
    assert "mermaid" not in render_markdown(make_doc())


def test_chart_text_is_inert_for_mermaid_and_markdown() -> None:
    hostile = 'x"\n```\n%%{init}%% <b>@octocat</b>; `y`'
    assert mermaid_text(hostile) == "x init b octocat /b y"
    doc = make_doc()
    doc["scenarios"][0]["name"] = hostile
    doc["series"]["scenarios"][hostile], _ = _series(random.Random(9), 10)
    text = render_markdown(doc)
    [latency, _] = _mermaid_blocks(text)
    assert latency.splitlines()[1] == '    title "x init b octocat /b y : p95 latency"'
    assert text.count("```") == 4


# ---------------------------------------------------------------- escaping


def test_every_document_string_is_escaped() -> None:
    doc = make_doc()
    evil = "a|b <script>x</script> @octocat"
    doc["plan"]["name"] = evil
    doc["scenarios"][0]["name"] = evil
    doc["checks"][0]["scenario"] = evil
    doc["thresholds"][0]["metric"] = "http_req_duration{scenario:a|b,name:<img src=x>}"
    doc["notices"] = [f"notice {evil}"]
    doc["errors"][0]["scenario"] = evil
    doc["status"], doc["status_reason"] = "failed", f"setup failed: {evil}"
    for part in doc["metrics"]["http_reqs"]["by_tags"]:
        part["tags"]["name"] = evil
    text = render_markdown(doc, baseline=_baseline())
    escaped = f"a\\|b &lt;script&gt;x&lt;/script&gt; @{SPLIT}octocat"
    assert "<script>" not in text and "<img" not in text
    assert re.search(r"@(?!<!-- -->)", text) is None
    assert f"**plan** {escaped}" in text
    assert f"<summary>Scenario {escaped}</summary>" in text
    assert f"| {escaped} | 100 | 0 |" in text  # scenario table
    assert "| a\\|b | http\\_req\\_duration{name:&lt;img src=x&gt;} |" in text
    assert f"- ⚠️ notice {escaped}" in text
    assert f"(setup failed: {escaped})" in text
    # Every row of every table has its header's column count: no `|` broke a cell.
    for table in re.findall(r"(?:^\|.*\n)+", text, flags=re.MULTILINE):
        assert len({len(re.findall(r"(?<!\\)\|", row)) for row in table.splitlines()}) == 1


SERVER_SAYS = "HTTP 503: ask @user about #12 and acme/shop#12, or mail ops@example.com"


def _mention_doc() -> dict[str, Any]:
    """The server-provided string wherever the report puts document strings:
    a table cell, a paragraph and a `<summary>` line (an HTML block)."""
    doc = make_doc()
    doc["errors"][0]["message"] = SERVER_SAYS
    doc["status"], doc["status_reason"] = "failed", SERVER_SAYS
    doc["scenarios"][0]["name"] = "@user #12"
    return doc


def _outside_code(markdown: str) -> str:
    """The Markdown with fenced blocks and code spans cut out (mentions do not
    fire in code); escaped backticks (\\`) open no span."""
    text = re.sub(r"^```.*?^```$", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(?<!\\)`[^`]*(?<!\\)`", "", text)


def test_mentions_are_escaped_with_nothing_invisible_to_copy() -> None:
    text = render_markdown(_mention_doc())
    # No zero-width or other format character (U+200B–U+200F, U+2060, U+FEFF,
    # U+00AD, ...: Unicode category Cf) for a reader to copy with the text.
    assert [hex(ord(c)) for c in text if unicodedata.category(c) == "Cf"] == []
    # ...and still nothing that can be a mention or a reference.
    prose = _outside_code(text)
    assert "@user" not in prose and "#12" not in prose and "ops@example" not in prose
    assert re.search(r"@(?!<!-- -->)|#\d", prose) is None
    assert "| HTTP 503: ask @<!-- -->user about #<!-- -->12 and acme/shop#<!-- -->12, or mail " \
           "ops@<!-- -->example.com | purchase |" in text


class _TextNodes(HTMLParser):
    """The text nodes of rendered HTML, as GitHub's mention filter sees them
    (each node on its own; none inside code, pre or a link), and the text a
    reader copies (all of them joined)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[str] = []
        self.copied = ""
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("code", "pre", "a")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("code", "pre", "a")

    def handle_data(self, data: str) -> None:
        self.copied += data
        if not self._skip:
            self.nodes.append(data)


def _html_text(markdown: str) -> _TextNodes:
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(markdown)
    parser = _TextNodes()
    parser.feed(html)
    parser.close()
    return parser


MENTION = re.compile(r"(?:^|[^\w`])@[A-Za-z0-9]|#\d")


def test_rendered_html_has_no_mention_yet_copies_as_the_server_wrote() -> None:
    """Rendered by a CommonMark renderer, as GitHub renders comments: no text
    node holds `@user` or `#12`, and the text a reader selects and copies
    is the server's string, character for character."""
    parsed = _html_text(render_markdown(_mention_doc()))
    assert [node for node in parsed.nodes if MENTION.search(node)] == []
    assert parsed.copied.count(SERVER_SAYS) == 2  # the errors table and the status line
    assert "Scenario @user #12" in parsed.copied  # the <summary> line


def test_an_html_entity_would_not_have_hidden_the_mention() -> None:
    """Why the escape is a comment and not `&#64;`: the Markdown renderer
    decodes the entity, and the mention is back in the HTML's text."""
    assert any(MENTION.search(node) for node in _html_text("ask &#64;user about &#35;12").nodes)
    assert not any(MENTION.search(node) for node in _html_text(md_escape("ask @user #12")).nodes)


# -------------------------------------------------------------- size limits


def _huge_doc() -> dict[str, Any]:
    """A pathological run: thousands of distinct errors, 80 scenarios with a
    minute of series each, 300 budgets, 400 checks."""
    doc = make_doc()
    rng = random.Random(11)
    points, _ = _series(rng, 60)
    template = doc["scenarios"][0]
    for i in range(80):
        name = f"scenario-{i:02d}"
        doc["scenarios"].append({**template, "name": name})
        doc["series"]["scenarios"][name] = points
    doc["thresholds"] += [
        _threshold(f"http_req_duration{{scenario:scenario-{i % 80:02d},name:n{i}}}", "p(95)<500",
                   "fail" if i % 50 == 7 else "pass", 100.0 + i)
        for i in range(300)
    ]
    doc["checks"] += [{"name": f"check {i}", "scenario": "purchase", "group": "",
                       "passes": 10, "fails": i % 3} for i in range(400)]
    doc["errors"] = [{"message": f"HTTP 500 <b>{i}</b> " + "x" * 500, "count": i + 1,
                      "scenario": "purchase", "first_seen_s": 1.0} for i in range(5000)]
    doc["notices"] = [f"notice {i}" for i in range(200)]
    return doc


def _balanced(text: str) -> bool:
    return text.count("<details>") == text.count("</details>") and text.count("```") % 2 == 0


def test_a_report_that_fits_is_left_whole() -> None:
    full = render_markdown(make_doc())
    assert render_markdown(make_doc(), max_chars=len(full)) == full
    assert TRUNCATION_NOTE not in full


def test_a_huge_report_fits_a_comment_with_headline_and_budgets_intact() -> None:
    doc = _huge_doc()
    full = render_markdown(doc)
    assert len(full) > 150_000
    text = render_markdown(doc, max_chars=65_536)
    assert len(text) <= 65_536
    assert text.startswith("### ❌ loadaction: 9 of 306 budgets violated\n")
    budgets = full[full.index("#### Budgets") : full.index("#### Scenarios")]
    assert budgets in text
    assert TRUNCATION_NOTE in text
    assert "<summary>Errors" not in text  # details went first
    assert _balanced(text)
    assert text.endswith("</sub>\n")


def test_details_go_in_order_errors_charts_scenarios_notices() -> None:
    doc = _huge_doc()
    full = render_markdown(doc)
    errors = full.index("<details><summary>Notices") - full.index("<details><summary>Errors")
    without_errors = len(full) - errors
    text = render_markdown(doc, max_chars=without_errors + len(TRUNCATION_NOTE) + 2)
    assert "<summary>Errors" not in text
    for kept in ("<summary>Charts:", "<summary>Scenario ", "<summary>Notices"):
        assert kept in text
    summaries = [
        ("<summary>Charts:", "<summary>Scenario "),
        ("<summary>Scenario ", "<summary>Notices"),
    ]
    for gone, kept in summaries:
        text = render_markdown(doc, max_chars=len(text) - 1)
        assert gone not in text and kept in text
        assert len(text) < without_errors


def test_tables_shrink_last_keeping_failures() -> None:
    doc = _huge_doc()
    text = render_markdown(doc, max_chars=12_000)
    assert len(text) <= 12_000
    assert "#### Budgets" in text
    assert re.search(r"\n…and (\d+) more budgets left out to fit GitHub's limit\.\n", text)
    # Every violated budget is kept, in the table's order.
    assert text.count("❌ fail") + text.count("❌ no data") == 9
    assert "scenarios left out to fit GitHub's limit." in text
    assert _balanced(text)


def test_threshold_rows_omitted_are_counted() -> None:
    doc = _huge_doc()
    text = render_markdown(doc, max_chars=6_000)
    shown = len(re.findall(r"^\| .* \| (✅|❌|⚪) ", text, flags=re.MULTILINE))
    omitted = int(re.search(r"…and (\d+) more budgets", text)[1])  # type: ignore[index]
    assert shown + omitted == len(doc["thresholds"])
    assert len(text) <= 6_000 and TRUNCATION_NOTE in text


@pytest.mark.parametrize("max_chars", [0, 1, 40, 100, 300, 800, 2_000, 20_000, 65_536, 1_048_576])
def test_never_longer_than_the_limit(max_chars: int) -> None:
    doc = _huge_doc()
    text = render_markdown(doc, max_chars=max_chars)
    assert len(text) <= max_chars
    if len(render_markdown(doc)) <= max_chars:
        assert TRUNCATION_NOTE not in text
    elif max_chars >= 300:
        assert text.startswith("### ❌ loadaction: 9 of 306 budgets violated\n")
        assert TRUNCATION_NOTE in text


def test_a_user_template_that_ignores_the_context_is_cut_at_a_line(tmp_path: Path) -> None:
    template = tmp_path / "wordy.j2"
    template.write_text("{% for i in range(2000) %}line {{ i }}\n{% endfor %}", encoding="utf-8")
    text = render_markdown(make_doc(), template=template, max_chars=1_000)
    assert len(text) <= 1_000
    assert text.startswith("line 0\nline 1\n")
    assert text.endswith(f"\n{TRUNCATION_NOTE}\n")
    for line in text.splitlines():
        assert re.fullmatch(r"line \d+|", line) or line == TRUNCATION_NOTE


def test_a_user_template_extending_the_bundled_one_shrinks_too(tmp_path: Path) -> None:
    template = tmp_path / "report.md.j2"
    template.write_text(
        '{% extends "loadaction/report.md.j2" %}{% block footer %}custom footer\n{% endblock %}',
        encoding="utf-8",
    )
    doc = _huge_doc()
    text = render_markdown(doc, template=template, max_chars=30_000)
    assert len(text) <= 30_000 and text.endswith(f"{TRUNCATION_NOTE}\ncustom footer\n")
    assert "<summary>Errors" not in text and _balanced(text)


def test_rendering_does_not_change_the_documents() -> None:
    doc, base = _huge_doc(), _baseline()
    before = copy.deepcopy((doc, base))
    render_markdown(doc, baseline=base, max_chars=5_000)
    assert (doc, base) == before


def _ws_doc() -> dict[str, Any]:
    """A run whose dashboard viewers held realtime sessions: one subscription
    missed 2 of 40 updates, and one session dropped once."""
    from tests.test_report_fixtures import _metric, counter

    doc = passing_doc()
    tags = {"scenario": "dashboard", "name": "realtime", "group": ""}
    sub = {"scenario": "dashboard", "name": "changes", "group": "", "write": "checkout"}
    latencies = [float(v) for v in range(10, 48)]  # 38 received, 10..47 ms
    doc["metrics"].update({
        "ws_sessions": _metric("counter", "default", [({**tags, "status": "101"}, counter(20))],
                               counter(20)),
        "ws_errors": _metric("counter", "default", [({**tags, "error": "closed"}, counter(1))],
                             counter(1)),
        "ws_msgs_sent": _metric("counter", "default", [(tags, counter(60))], counter(60)),
        "ws_msgs_received": _metric("counter", "default", [(tags, counter(900))], counter(900)),
        "ws_connecting": _metric("trend", "time", [({**tags, "status": "101"}, trend([2.0] * 20))],
                                 trend([2.0] * 20)),
        "realtime_update_latency": _metric("trend", "time", [(sub, trend(latencies))],
                                           trend(latencies)),
        "realtime_updates_missed": _metric("counter", "default", [(sub, counter(2))], counter(2)),
    })
    return doc


def test_websocket_sessions_and_realtime_subscriptions_get_their_tables() -> None:
    text = render_markdown(_ws_doc())
    assert "#### WebSocket" in text
    session = next(line for line in text.splitlines() if line.startswith("| dashboard | realtime |"))
    assert session == "| dashboard | realtime | 20 | ❌ 1 | 60 | 900 | 2ms | — | — |"
    subscription = next(line for line in text.splitlines() if line.startswith("| dashboard | changes |"))
    cells = [c.strip() for c in subscription.strip("|").split("|")]
    assert cells[2] == "38"  # updates received
    assert cells[4] == format_duration(TrendSink.from_summary(
        _ws_doc()["metrics"]["realtime_update_latency"]["total"]).percentile(95))
    assert cells[7] == "❌ 2 (5.00%)"  # 2 of the 40 expected updates


def test_a_run_without_websocket_sessions_has_no_websocket_section() -> None:
    assert "#### WebSocket" not in render_markdown(passing_doc())


def test_timestamp_matched_subscriptions_show_no_missed_count() -> None:
    doc = _ws_doc()
    del doc["metrics"]["realtime_updates_missed"]
    line = next(line for line in render_markdown(doc).splitlines()
                if line.startswith("| dashboard | changes |"))
    assert line.endswith("| — |")
