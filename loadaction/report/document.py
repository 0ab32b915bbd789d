"""The questions every report asks of a results document: which budgets
were violated, the chaos section's faults and recovery budgets, a metric's
samples merged over the tag sets that match. Every renderer (terminal,
Markdown, JUnit, GitHub) answers them here, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadaction.metrics.sinks import SINK_TYPES, Sink

ROLLBACK_OK, ROLLBACK_NOT_NEEDED, ROLLBACK_FAILED = "ok", "not needed", "failed:"


def select_sink(doc: Mapping[str, Any], metric: str, tags: Mapping[str, str]) -> Sink | None:
    """Merge the tag sets of `metric` matching every pair in `tags`, as the
    engine does for sub-metric thresholds; trends merge their histograms, so
    percentiles are exact rather than averages of percentiles. None when the
    metric or no matching tag set exists."""
    entry = doc["metrics"].get(metric)
    if entry is None:
        return None
    sink_type = SINK_TYPES[entry["type"]]
    merged: Sink | None = None
    for part in entry.get("by_tags", ()):
        if all(part["tags"].get(key) == value for key, value in tags.items()):
            sink = sink_type.from_summary(part["sink"])
            if merged is None:
                merged = sink
            else:
                merged.merge(sink)  # type: ignore[arg-type]
    return merged


UNMEASURED = ("no data", "insufficient data")


def is_violation(threshold: Mapping[str, Any]) -> bool:
    """`no data` and `insufficient data` fail the run unless the threshold is
    optional (see the schema); a regression budget says itself (`failed`)."""
    if "failed" in threshold:
        return bool(threshold["failed"])
    verdict = threshold["verdict"]
    return verdict == "fail" or (verdict in UNMEASURED and not threshold.get("optional", False))


def partial_merge(doc: Mapping[str, Any]) -> str | None:
    """The verdict's caveat for a merge that lacks segments (`merge --allow-partial`):
    its budgets were judged on part of the load."""
    merge = doc.get("merge") or {}
    if not merge.get("partial"):
        return None
    return f"partial merge: segments {', '.join(merge['missing'])} of {merge['sequence']} missing"


def chaos_faults(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The chaos faults, in the plan's order; none for a run without chaos."""
    return list((doc.get("chaos") or {}).get("faults", ()))


def recovery_budgets(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Recovery budgets gate the run like thresholds, and have no `optional`,
    so `is_violation` reads them as it reads a required threshold."""
    return list((doc.get("chaos") or {}).get("recovery", ()))


def rollback_failure(fault: Mapping[str, Any]) -> str | None:
    """Why the fault's rollback failed, None when it did not fail."""
    rollback: str = fault["rollback"]
    if not rollback.startswith(ROLLBACK_FAILED):
        return None
    return rollback.removeprefix(ROLLBACK_FAILED).strip()


def failed_rollbacks(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [f for f in chaos_faults(doc) if rollback_failure(f) is not None]


@dataclass(frozen=True, slots=True)
class Budgets:
    """How the thresholds and recovery budgets came out; `no_data` counts the
    violations that are violations only because nothing was measured."""

    total: int
    violated: int
    no_data: int
    insufficient: int = 0  # violated because they had too few samples


def tally_budgets(doc: Mapping[str, Any]) -> Budgets:
    """One count for every place that states it (headline, the `violations`
    output, JUnit failures), so recovery and regression budgets are budgets too."""
    budgets = [*doc["thresholds"], *recovery_budgets(doc), *(doc.get("regressions") or ())]
    violated = [b for b in budgets if is_violation(b)]
    no_data = sum(1 for b in violated if b["verdict"] == "no data")
    insufficient = sum(1 for b in violated if b["verdict"] == "insufficient data")
    return Budgets(len(budgets), len(violated), no_data, insufficient)
