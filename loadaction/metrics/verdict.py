"""Thresholds judged against the run's metrics.

k6 silently passes a threshold whose metric got no samples; we report it as
`no data` and fail it unless the plan marked it optional, because a budget
that measured nothing has not been held. Likewise a budget judged on fewer
samples than it needs — a p(95) over 5 samples is just their maximum — is
`insufficient data`, not a pass or a fail (and fails unless optional).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from loadaction.metrics.registry import Registry
from loadaction.metrics.sinks import GaugeSink, RateSink, Sink, TrendSink
from loadaction.metrics.thresholds import aggregate, evaluate
from loadaction.plan.model import Threshold


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no data"
    INSUFFICIENT = "insufficient data"


def samples_needed(threshold: Threshold) -> int:
    """`minSamples`, else what the aggregate needs: a percentile p needs
    100 / (100 - p) samples before it is more than the maximum (p(95): 20,
    p(99): 100, the median: 2), a gauge's slope 2; everything else needs one."""
    if threshold.min_samples is not None:
        return threshold.min_samples
    if threshold.expr.aggregation == "slope":
        return 2  # a line through one point has no slope
    pct = threshold.expr.percentile if threshold.expr.aggregation == "p" else (
        50.0 if threshold.expr.aggregation == "med" else None)
    if pct is None or pct >= 100:
        return 1
    return math.ceil(100 / (100 - pct) - 1e-9)


def sample_count(sink: Sink | None) -> int | None:
    """How many samples a sink holds; None for a counter (its count is its value)."""
    if sink is None:
        return 0
    if isinstance(sink, RateSink):
        return sink.total
    if isinstance(sink, TrendSink | GaugeSink):
        return sink.count
    return None


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    threshold: Threshold
    verdict: Verdict
    observed: float | None
    samples: int | None = 0  # None for a counter
    needed: int = 1

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.FAIL or (
            self.verdict in (Verdict.NO_DATA, Verdict.INSUFFICIENT) and not self.threshold.optional)


def judge(threshold: Threshold, registry: Registry, duration_s: float) -> ThresholdResult:
    metric = registry[threshold.metric]
    sink = registry.select(threshold.metric, threshold.tags)
    observed = aggregate(threshold.expr, metric.info.kind, sink, duration_s)
    result = evaluate(threshold.expr, observed)
    count, needed = sample_count(sink), samples_needed(threshold)
    if result.passed is None:
        return ThresholdResult(threshold, Verdict.NO_DATA, None, count, needed)
    if count is not None and count < needed:
        return ThresholdResult(threshold, Verdict.INSUFFICIENT, observed, count, needed)
    return ThresholdResult(threshold, Verdict.PASS if result.passed else Verdict.FAIL, observed,
                           count, needed)


def judge_all(thresholds: tuple[Threshold, ...], registry: Registry,
              duration_s: float) -> list[ThresholdResult]:
    return [judge(t, registry, duration_s) for t in thresholds]
