"""Probes in the reports: the Markdown "Probes" block (each probe, the probe
metrics with last/min/max/avg/slope, a line chart per series on the run's
time axis), the text report's line per probe, and the block shrinking
before the scenarios table when the report must fit GitHub's limit."""

from __future__ import annotations

import time

from loadaction.report import render
from tests.probe_servers import serve_metrics


def _probe_doc(write_plan, run_plan) -> dict:
    with serve_metrics() as metrics:
        start = time.monotonic()
        metrics.on_scrape = lambda now: metrics.memory.set(1000 + 600 * (now - start))
        plan = write_plan(f"""
target: {metrics.url}
probes:
  app:
    prometheus: {{url: /metrics}}
    interval: 100ms
    metrics:
      memory: process_resident_memory_bytes
      missing: 'nothing_here{{a="b"}}'
thresholds:
  memory: ["slope<100000"]
scenarios:
  s: {{executor: constant-vus, vus: 1, duration: 1s, exec: f}}
flows:
  f: [{{request: {{url: /ok}}}}, {{think: 50ms}}]
""")
        code, doc = run_plan(plan)
    assert code == 0, doc["thresholds"]
    return doc


def test_markdown_and_text_show_the_probes(write_plan, run_plan):
    doc = _probe_doc(write_plan, run_plan)
    md = render(doc, "md")
    assert "#### Probes" in md
    assert "| app | prometheus | 100ms |" in md
    assert r"no\_series" in md and r"nothing\_here" in md  # the failing selector, named
    row = next(line for line in md.splitlines() if line.startswith("| memory{probe:app}"))
    assert row.count("|") == 7 and "—" not in row  # last, min, max, avg and slope all known
    assert "Chart: memory probe=app" in md and "line [" in md
    chart = md.split("Chart: memory probe=app", 1)[1]
    assert 'x-axis "time (s)" 0 -->' in chart
    assert "#### Custom metrics" not in md  # probe metrics are in the Probes block, not there

    text = render(doc, "text")
    line = next(line for line in text.splitlines() if " app  prometheus" in line)
    assert "samples" in line and "no_series" in line and "errors" in line


def test_the_probes_block_shrinks_before_the_scenarios_table(write_plan, run_plan):
    doc = _probe_doc(write_plan, run_plan)
    full = render(doc, "md")
    limit = full.index("#### Probes") + 800  # the probes must give way, not the scenarios
    md = render(doc, "md", max_chars=limit)
    assert len(md) <= limit
    assert "#### Scenarios" in md and "| s |" in md
    assert "Chart: memory" not in md  # the charts went first
