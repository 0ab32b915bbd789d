"""Reports: pure functions of a results document (docs/results-schema.md),
so a report can be re-rendered from an old run's results.json at any time.

    document.py  the questions every report asks of the document (violations, faults)
    format.py    how values read in every report (durations, bytes, rates, marks)
    chaos.py     how every report words the chaos section
    text.py      the terminal summary
    markdown/    the Markdown report (PR comment, job summary)
    junit.py     JUnit XML
    chart.py     Mermaid charts for the Markdown report
    baseline.py  comparing a run with an earlier one
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadaction.errors import PlanError, did_you_mean
from loadaction.report.junit import render_junit
from loadaction.report.markdown import render_markdown
from loadaction.report.text import render_text

FORMATS = ("text", "json", "md", "junit")

__all__ = ["FORMATS", "render"]


def render(
    doc: dict[str, Any],
    fmt: str,
    *,
    color: bool = False,
    template: Path | None = None,
    baseline: Mapping[str, Any] | None = None,
    max_chars: int | None = None,
) -> str:
    """Render `doc` as `fmt`. `color` applies to text; `template`, `baseline`
    and `max_chars` to md (see render_markdown). The json format is the
    document itself, in its own key order, so it diffs cleanly against the
    results.json it came from."""
    if fmt == "text":
        return render_text(doc, color=color)
    if fmt == "md":
        return render_markdown(doc, template=template, baseline=baseline, max_chars=max_chars)
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "junit":
        return render_junit(doc)
    raise PlanError(
        f"unknown report format {fmt!r} (expected {', '.join(FORMATS)})",
        hint=did_you_mean(fmt, FORMATS),
    )
