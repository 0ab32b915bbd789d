"""Error annotations for violated budgets, failed recoveries and faults left
in place, at the plan line that set them, and the cap GitHub puts on them.

A pull request shows them on the diff when the plan is in the repository,
and every run's summary lists them either way.

GitHub shows only the first MAX_ANNOTATIONS error annotations of a step (and
as many warnings); the rest are dropped without a word. A run with 40
violated budgets would show whichever 10 came first, so `run_errors` ranks
them, most important first:

1. faults whose rollback failed (the target may still be degraded), in plan order;
2. the run not carried out (exit 3: nothing else it measured can be trusted);
3. violated budgets, the furthest over their bound first, relative to the bound
   (`rate<0.01` observed at 3% is 200% over and ranks above `p(95)<500` at
   712 ms, 42% over; a bound of 0 makes any excess infinitely far over), then
   those violated because nothing was measured (`no data`), in plan order;
4. regression budgets that failed (regressed against the baseline runs, or a
   required one without enough data), the largest change first;
5. failed recovery budgets: not recovered at all, then too late (the latest
   first, relative to the time allowed), then `no data`.

`AnnotationCap` then prints at most MAX_ANNOTATIONS of a kind: when there
are more, the last place goes to one annotation saying how many are left
and where they all are, and those left are printed as plain lines in a
collapsed group of the step's log.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from loadaction.github import commands
from loadaction.metrics.thresholds import parse_threshold
from loadaction.report.chaos import recovery_label, recovery_outcome
from loadaction.report.document import (
    failed_rollbacks,
    is_violation,
    recovery_budgets,
    rollback_failure,
)
from loadaction.report.format import clean, observed_value
from loadaction.report.regressions import comparison_label, regression_rows

BUDGET_TITLE = "Budget exceeded"
REGRESSION_TITLE = "Regression"
RECOVERY_TITLE = "Recovery budget exceeded"
ROLLBACK_TITLE = "Fault not rolled back"
RUN_TITLE = "Run not carried out"
# GitHub: "a maximum of 10 warning annotations and 10 error annotations per step".
MAX_ANNOTATIONS = 10

Kind = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Annotation:
    kind: Kind
    message: str
    title: str
    file: str | None = None
    line: int | None = None

    def command(self) -> str:
        return commands.command(self.kind, self.message,
                                {"file": self.file, "line": self.line, "title": self.title})

    def plain(self) -> str:
        """The annotation as an ordinary log line: fixed text first, control
        characters escaped, so it cannot be read as a workflow command."""
        text = f"{self.kind}: {clean(self.title)}: {clean(self.message)}"
        if self.file:
            text += f" ({clean(self.file)}{f':{self.line}' if self.line else ''})"
        return text


def budget_errors(doc: Mapping[str, Any], relative: Callable[[str], str]) -> list[str]:
    """One `::error` line per violated threshold, in plan order; `relative`
    turns the plan file's path into the repository-relative one GitHub wants."""
    return [a.command() for _, a in _budget_annotations(doc, relative)]


def chaos_errors(doc: Mapping[str, Any], relative: Callable[[str], str]) -> list[str]:
    """One `::error` line per violated recovery budget and per fault whose
    rollback failed, each at the plan line of the budget or the fault."""
    return [*(a.command() for _, a in _recovery_annotations(doc, relative)),
            *(a.command() for a in _rollback_annotations(doc, relative))]


def run_error(doc: Mapping[str, Any]) -> str | None:
    """An error for a run that was not carried out to the end (exit 3)."""
    annotation = _run_annotation(doc)
    return annotation.command() if annotation is not None else None


def run_errors(doc: Mapping[str, Any], relative: Callable[[str], str],
               budgets_judged: bool = True) -> list[Annotation]:
    """Every error annotation of the run, the most important first (see the
    module docstring); sorting is stable, so ties keep the plan's order.
    Without `budgets_judged` (a shard: the merge judges them) only faults
    left in place and a run that could not be carried out are annotated."""
    run = _run_annotation(doc)
    if not budgets_judged:
        return [*_rollback_annotations(doc, relative), *([run] if run is not None else [])]
    budgets = sorted(_budget_annotations(doc, relative), key=lambda ranked: -ranked[0])
    regressions = sorted(_regression_annotations(doc, relative), key=lambda ranked: -ranked[0])
    recoveries = sorted(_recovery_annotations(doc, relative), key=lambda ranked: -ranked[0])
    return [*_rollback_annotations(doc, relative), *([run] if run is not None else []),
            *(a for _, a in budgets), *(a for _, a in regressions),
            *(a for _, a in recoveries)]


# ------------------------------------------------------------- the cap


class AnnotationCap:
    """At most `limit` annotations of one kind in a step. The first
    `limit - 1` are printed as they come; any further ones wait for `finish`,
    which prints the last one itself when it is the only one waiting, or else
    one annotation counting them and saying where they are (`where`), and
    then all of them as plain lines in a collapsed group of the log."""

    def __init__(self, kind: Kind, where: Sequence[str] = (),
                 limit: int = MAX_ANNOTATIONS) -> None:
        self._kind: Kind = kind
        self._where = [f'the "More {kind}s" group of this step\'s log', *where]
        self._limit = max(limit, 1)
        self._shown = 0
        self._held: list[Annotation] = []

    def add(self, annotation: Annotation) -> list[str]:
        """The lines to print now (none while annotations are held back)."""
        if self._shown < self._limit - 1 and not self._held:
            self._shown += 1
            return [annotation.command()]
        self._held.append(annotation)
        return []

    def finish(self) -> list[str]:
        held, self._held = self._held, []
        if len(held) <= 1:
            self._shown += len(held)
            return [a.command() for a in held]
        self._shown += 1
        kinds = Counter(a.title for a in held)
        counts = ", ".join(f"{n} × {title}" for title, n in kinds.items())
        message = (f"{len(held)} more {self._kind}s not shown as annotations (GitHub shows "
                   f"{self._limit} per step): {counts}. All of them are in "
                   + _listing(self._where) + ".")
        more = Annotation(self._kind, message, f"{len(held)} more {self._kind}s")
        return [more.command(), commands.group(f"More {self._kind}s ({len(held)})"),
                *(a.plain() for a in held), commands.endgroup()]


def _listing(places: Sequence[str]) -> str:
    return places[0] if len(places) == 1 else ", ".join(places[:-1]) + " and " + places[-1]


# --------------------------------------------------------- the errors


def _at(item: Mapping[str, Any], message: str, title: str,
        relative: Callable[[str], str]) -> Annotation:
    """An error at `item`'s plan line; without a usable source it is still
    an error in the run's summary, just not on the diff."""
    source = item.get("source") or {}
    file, line = source.get("file"), source.get("line")
    return Annotation(
        "error", message, title,
        file=relative(file) if isinstance(file, str) and file else None,
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
    )


def _budget_annotations(doc: Mapping[str, Any],
                        relative: Callable[[str], str]) -> list[tuple[float, Annotation]]:
    ranked = []
    for threshold in doc["thresholds"]:
        if not is_violation(threshold):
            continue
        observed = observed_value(doc, threshold)
        seen = f"observed {observed}" if observed is not None else "no data"
        message = f"{threshold['metric']} {threshold['expression']}: {seen}"
        ranked.append((overshoot(threshold), _at(threshold, message, BUDGET_TITLE, relative)))
    return ranked


def overshoot(threshold: Mapping[str, Any]) -> float:
    """How far a violated threshold's observed value is past its bound,
    relative to the bound (0.5: half as much again); infinite past a bound
    of 0; -1 without an observed value, so `no data` ranks after any miss."""
    observed = threshold.get("observed")
    if not isinstance(observed, int | float) or isinstance(observed, bool):
        return -1.0
    try:
        bound = parse_threshold(threshold["expression"]).value
    except ValueError:
        return 0.0
    excess = abs(observed - bound)
    if bound == 0:
        return math.inf if excess else 0.0
    return excess / abs(bound)


def _regression_annotations(doc: Mapping[str, Any],
                            relative: Callable[[str], str]) -> list[tuple[float, Annotation]]:
    """At the regression budget's plan line: what changed, and the evidence."""
    ranked = []
    for row in regression_rows(doc):
        if not row.failed:
            continue
        change = f" ({row.change})" if row.change else ""
        message = (f"{row.metric} {row.expression}: {row.verdict} against "
                   f"{comparison_label(doc) or 'the baseline'}: {row.baseline or '-'} -> "
                   f"{row.value or '-'}{change}; {row.reason}")
        size = abs(row.change_fraction) if row.change_fraction is not None else 0.0
        ranked.append((size, _at({"source": row.source}, message, REGRESSION_TITLE, relative)))
    return ranked


def _recovery_annotations(doc: Mapping[str, Any],
                          relative: Callable[[str], str]) -> list[tuple[float, Annotation]]:
    return [
        (_lateness(budget),
         _at(budget, f"{recovery_label(budget)}: {recovery_outcome(budget)}",
             RECOVERY_TITLE, relative))
        for budget in recovery_budgets(doc) if is_violation(budget)
    ]


def _lateness(budget: Mapping[str, Any]) -> float:
    """Not recovered ranks first (infinitely late), `no data` last."""
    if budget["verdict"] == "no data":
        return -1.0
    recovered, within = budget.get("time_to_recover_s"), budget.get("within_s") or 0
    if recovered is None:
        return math.inf
    return (recovered - within) / within if within > 0 else math.inf


def _rollback_annotations(doc: Mapping[str, Any],
                          relative: Callable[[str], str]) -> list[Annotation]:
    return [
        _at(fault, f"fault {fault['name']} ({fault['kind']}) was not rolled back: "
            f"{rollback_failure(fault)}; the target may still be degraded",
            ROLLBACK_TITLE, relative)
        for fault in failed_rollbacks(doc)
    ]


def _run_annotation(doc: Mapping[str, Any]) -> Annotation | None:
    if doc["status"] in ("complete", "aborted"):
        return None
    reason = doc.get("status_reason") or "no reason recorded"
    return Annotation("error", f"run {doc['status']}: {reason}", RUN_TITLE)
