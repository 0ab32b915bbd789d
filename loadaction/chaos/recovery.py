"""How fast the system came back after a fault, from the per-second series.

A recovery budget holds when its expression is true for `stable` seconds in a
row, the first of them within `within` seconds of the fault's end. Seconds
without requests carry no evidence either way and are skipped. Time to recover
is the start of the first such stable window minus the fault's end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadaction.metrics.sinks import RateSink, TrendSink
from loadaction.metrics.thresholds import aggregate, evaluate
from loadaction.metrics.verdict import Verdict
from loadaction.plan.model import RecoveryBudget


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    fault: str
    budget: RecoveryBudget
    verdict: Verdict
    time_to_recover_s: float | None


def _second_value(budget: RecoveryBudget, points: Sequence[Mapping[str, Any]]) -> float | None:
    """The budget's aggregate over one second of the selected scenarios'
    points, by the same aggregation thresholds use."""
    reqs = sum(p["reqs"] for p in points)
    if not reqs:
        return None
    if budget.metric == "http_req_failed":
        failed = RateSink()
        failed.passes = sum(p["failed"] for p in points)
        failed.total = reqs
        return aggregate(budget.expr, "rate", failed, 1.0)
    merged = TrendSink()
    for p in points:
        if p.get("hdr"):
            merged.merge(TrendSink.from_summary({"hdr": p["hdr"]}))
    return aggregate(budget.expr, "trend", merged, 1.0)


def judge_recovery(fault: str, ended_at_s: float | None, budget: RecoveryBudget,
                   series: Mapping[str, Sequence[Mapping[str, Any]]]) -> RecoveryResult:
    if ended_at_s is None:
        return RecoveryResult(fault, budget, Verdict.NO_DATA, None)
    scenario = dict(budget.tags).get("scenario")
    names = [scenario] if scenario else list(series)
    by_second: dict[float, list[Mapping[str, Any]]] = {}
    for name in names:
        for point in series.get(name, ()):
            # a point covers the second ending at t: only seconds wholly after the end count
            if point["t"] - 1.0 >= ended_at_s - 1e-9:
                by_second.setdefault(point["t"], []).append(point)
    need = max(1, math.ceil(budget.stable))
    streak_start: float | None = None
    streak = 0
    seen_data = False
    for t in sorted(by_second):
        value = _second_value(budget, by_second[t])
        if value is None:
            continue
        seen_data = True
        if evaluate(budget.expr, value).passed:
            if streak == 0:
                streak_start = t - 1.0
            streak += 1
            if streak >= need:
                ttr = max(0.0, round(streak_start - ended_at_s, 3))  # type: ignore[operator]
                return RecoveryResult(fault, budget, Verdict.PASS if ttr <= budget.within else Verdict.FAIL, ttr)
        else:
            streak, streak_start = 0, None
    return RecoveryResult(fault, budget, Verdict.FAIL if seen_data else Verdict.NO_DATA, None)
