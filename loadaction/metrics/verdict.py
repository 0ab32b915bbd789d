"""Thresholds judged against the run's metrics.

k6 silently passes a threshold whose metric got no samples; we report it as
`no data` and fail it unless the plan marked it optional, because a budget
that measured nothing has not been held.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from loadaction.metrics.registry import Registry
from loadaction.metrics.thresholds import aggregate, evaluate
from loadaction.plan.model import Threshold


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no data"


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    threshold: Threshold
    verdict: Verdict
    observed: float | None

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.FAIL or (
            self.verdict is Verdict.NO_DATA and not self.threshold.optional)


def judge(threshold: Threshold, registry: Registry, duration_s: float) -> ThresholdResult:
    metric = registry[threshold.metric]
    sink = registry.select(threshold.metric, threshold.tags)
    observed = aggregate(threshold.expr, metric.info.kind, sink, duration_s)
    result = evaluate(threshold.expr, observed)
    if result.passed is None:
        return ThresholdResult(threshold, Verdict.NO_DATA, None)
    return ThresholdResult(threshold, Verdict.PASS if result.passed else Verdict.FAIL, observed)


def judge_all(thresholds: tuple[Threshold, ...], registry: Registry,
              duration_s: float) -> list[ThresholdResult]:
    return [judge(t, registry, duration_s) for t in thresholds]
