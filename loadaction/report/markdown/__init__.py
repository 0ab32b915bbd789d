"""The Markdown report, meant for PR comments and GitHub job summaries.

    escape.py       document strings made inert (no HTML, links, mentions)
    environment.py  the sandboxed Jinja environment, bundled or user template
    context.py      what the template sees, built from the results document
    scenarios.py    per-scenario rows and details of that context
    chaos.py        the chaos section of that context
    fit.py          shrinking the context until the text fits GitHub's limits
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadaction.report.markdown.context import report_context
from loadaction.report.markdown.environment import renderer
from loadaction.report.markdown.fit import fit


def render_markdown(
    doc: Mapping[str, Any],
    *,
    template: Path | None = None,
    baseline: Mapping[str, Any] | None = None,
    max_chars: int | None = None,
) -> str:
    """Render with the bundled template, or the user's `template` file;
    `baseline` (an earlier run's results document) adds how each budget and
    scenario moved; the result is never longer than `max_chars`.

    Mistakes in a user template are the user's to fix, so they come back as
    PlanError naming the file; the bundled template's would be our bug and
    propagate as such.
    """
    return fit(renderer(template), report_context(doc, baseline), max_chars)
