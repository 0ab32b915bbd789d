"""Steady-state verdicts per chaos phase.

While a plan has faults, every sample carries a `phase` tag: `before` (no
fault has started), `during:<fault>` (the latest-started active fault) or
`after:<fault>` (the last one that ended). Each plan threshold is judged again
within every phase that got samples, so the report shows whether the steady
state held before, during and after each fault. These per-phase verdicts are
informational; a budget that must gate a phase names it (`{phase:during:x}`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loadaction.metrics.registry import Registry
from loadaction.plan.model import Fault, Threshold
from loadaction.verdict import judge


def phase_names(faults: Iterable[Fault]) -> list[str]:
    names = ["before"]
    for fault in faults:
        names += [f"during:{fault.name}", f"after:{fault.name}"]
    return names


def judge_phases(thresholds: Iterable[Threshold], faults: Iterable[Fault], registry: Registry,
                 duration_s: float) -> list[dict[str, Any]]:
    rows = []
    phases = phase_names(faults)
    for threshold in thresholds:
        if any(k == "phase" for k, _ in threshold.tags):
            continue
        for phase in phases:
            scoped = Threshold(threshold.metric, tuple(sorted((*threshold.tags, ("phase", phase)))),
                               threshold.expr, threshold.source, optional=True)
            result = judge(scoped, registry, duration_s)
            rows.append({"metric": threshold.selector, "expression": threshold.expr.text,
                         "phase": phase, "verdict": result.verdict, "observed": result.observed})
    return rows
