"""Fitting the Markdown report to GitHub's size limits.

GitHub caps what it accepts (a comment at 65,536 characters, a job summary
at 1 MiB), and a run with thousands of distinct errors or dozens of
scenarios can exceed that. Cutting the text would leave half a table or an
unclosed <details>, so `fit` shrinks the template's *context* instead,
least important parts first, and renders again until it fits; the headline
and the budgets table go last, with the chaos timeline and the recovery
budgets (budgets too) just before them. A user template that lays out the
same context lists shrinks the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

TRUNCATION_NOTE = "_Details truncated to fit GitHub's limit; the full report is in results.json._"

Context = dict[str, Any]
Renderer = Callable[[Context], str]
Expendable = Callable[[Mapping[str, Any]], bool]


def _rolled_back(row: Mapping[str, Any]) -> bool:
    return row["rollback_error"] is None


def _held(row: Mapping[str, Any]) -> bool:
    return not row["violated"]


# When the report is too long, the <details> blocks and the chaos section's
# per-phase table go first, in this order...
_DETAILS_DROP_ORDER = (
    "errors", "charts", "scenario_details", "fault_charts", "phase_rows", "notices",
    "probe_charts",
    "capacity_charts",
)
# ...then table rows, the least important table first. Within a table, rows
# for which the function is true (nothing wrong there) go before the others;
# a step marked True drops only those. The chaos timeline and the recovery
# budgets rank with the budgets, so the rows that show nothing wrong go from
# all three before any row that shows a problem.
_TABLE_SHRINK_ORDER: tuple[tuple[str, Expendable, bool], ...] = (
    ("custom_metrics", lambda row: True, False),
    ("checks", lambda row: bool(row["ok"]), False),
    ("websockets", lambda row: bool(row["ok"]), False),
    ("realtime", lambda row: bool(row["ok"]), False),
    ("probe_statements", lambda row: True, False),
    ("probe_metrics", lambda row: True, False),
    ("probes", lambda row: bool(row["ok"]), False),
    ("scenarios", lambda row: True, False),
    ("capacity_steps", lambda row: True, False),
    ("faults", _rolled_back, True),
    ("recoveries", _held, True),
    ("regressions", _held, True),
    ("thresholds", _held, True),
    ("faults", _rolled_back, False),
    ("recoveries", _held, False),
    ("regressions", _held, False),
    ("thresholds", _held, False),
)


def fit(render: Renderer, context: Context, max_chars: int | None) -> str:
    """Render `context`, dropping and shortening its parts in priority order
    until the text is at most `max_chars` long (see the module docstring)."""
    text = render(context)
    if max_chars is None or len(text) <= max_chars:
        return text
    context = {**context, "truncation_note": TRUNCATION_NOTE}
    for key in _DETAILS_DROP_ORDER:
        context = {**context, key: []}
        text = render(context)
        if len(text) <= max_chars:
            return text
    for key, expendable, spare_problems in _TABLE_SHRINK_ORDER:
        context, text = _shrink_table(render, context, key, expendable, spare_problems, max_chars)
        if len(text) <= max_chars:
            return text
    return _cut_lines(text, max_chars)


def _shrink_table(
    render: Renderer,
    context: Context,
    key: str,
    expendable: Expendable,
    spare_problems: bool,
    max_chars: int,
) -> tuple[Context, str]:
    """The most rows of table `key` that fit (by bisection: the text grows
    with the rows), keeping the rows that show a problem longest and the
    kept ones in their order; with no rows at all when even that is too long,
    or with just the rows that show a problem when `spare_problems`."""
    rows: list[Mapping[str, Any]] = context[key]
    ranked = sorted(range(len(rows)), key=lambda i: (expendable(rows[i]), i))
    floor = sum(1 for row in rows if not expendable(row)) if spare_problems else 0
    omitted_before = context.get(f"{key}_omitted", 0)

    def attempt(keep: int) -> tuple[Context, str]:
        kept = [rows[i] for i in sorted(ranked[:keep])]
        shrunk = {**context, key: kept, f"{key}_omitted": omitted_before + len(rows) - keep}
        return shrunk, render(shrunk)

    best = attempt(floor)
    if len(best[1]) > max_chars:
        return best
    fits, too_many = floor, len(rows)  # the caller found all rows too long
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        candidate = attempt(middle)
        if len(candidate[1]) <= max_chars:
            fits, best = middle, candidate
        else:
            too_many = middle
    return best


def _cut_lines(text: str, max_chars: int) -> str:
    """The last resort, for a headline that alone is too long (a tiny limit,
    a huge plan name) or a user template that ignores the shrunk context:
    whole lines while they fit, then the note."""
    note = f"\n{TRUNCATION_NOTE}\n"
    budget = max_chars - len(note)
    if budget <= 0:
        return text[:max_chars]
    kept, used = [], 0
    for line in text.splitlines(keepends=True):
        if used + len(line) > budget:
            break
        kept.append(line)
        used += len(line)
    return "".join(kept) + note
