"""Steady-state verdicts per chaos phase.

While a plan has faults, every sample carries a `phase` tag fixed when its
request was sent: `during:<fault>` for every fault whose window was open then
(comma-joined when several overlap), else `after:<fault>` (the one that ended
last) or `before`. Each plan threshold is judged again within every phase that
got samples, so the report shows whether the steady state held before, during
and after each fault. These per-phase verdicts are informational; a budget
that must gate a phase names it (`{phase:during:x}` matches every sample sent
while `x` was active, whatever else was).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from loadaction.metrics.registry import Registry
from loadaction.metrics.verdict import Verdict, judge
from loadaction.plan.model import Fault, Threshold


@dataclass(frozen=True, slots=True)
class PhaseVerdict:
    metric: str  # the threshold's selector
    expression: str
    phase: str
    verdict: Verdict
    observed: float | None


def phase_names(faults: Iterable[Fault]) -> list[str]:
    names = ["before"]
    for fault in faults:
        names += [f"during:{fault.name}", f"after:{fault.name}"]
    return names


def judge_phases(thresholds: Iterable[Threshold], faults: Iterable[Fault], registry: Registry,
                 duration_s: float) -> list[PhaseVerdict]:
    rows = []
    phases = phase_names(faults)
    for threshold in thresholds:
        if any(k == "phase" for k, _ in threshold.tags):
            continue
        for phase in phases:
            scoped = Threshold(threshold.metric, tuple(sorted((*threshold.tags, ("phase", phase)))),
                               threshold.expr, threshold.source, optional=True)
            result = judge(scoped, registry, duration_s)
            rows.append(PhaseVerdict(threshold.selector, threshold.expr.text, phase,
                                     result.verdict, result.observed))
    return rows
