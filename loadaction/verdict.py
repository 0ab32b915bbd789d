"""Thresholds judged against the run's metrics.

k6 silently passes a threshold whose metric got no samples; we report it as
`no data` and fail it unless the plan marked it optional, because a budget
that measured nothing has not been held.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadaction.metrics.registry import Registry
from loadaction.metrics.thresholds import aggregate, evaluate
from loadaction.plan.model import Threshold


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    threshold: Threshold
    verdict: str  # pass | fail | no data
    observed: float | None

    @property
    def failed(self) -> bool:
        return self.verdict == "fail" or (self.verdict == "no data" and not self.threshold.optional)

    def as_dict(self) -> dict[str, object]:
        t = self.threshold
        return {
            "metric": t.selector,
            "expression": t.expr.text,
            "verdict": self.verdict,
            "observed": self.observed,
            "optional": t.optional,
            "abort_on_fail": t.abort_on_fail,
            "source": t.source.as_dict(),
        }


def judge(threshold: Threshold, registry: Registry, duration_s: float) -> ThresholdResult:
    metric = registry[threshold.metric]
    sink = registry.select(threshold.metric, threshold.tags)
    observed = aggregate(threshold.expr, metric.info.kind, sink, duration_s)
    result = evaluate(threshold.expr, observed)
    if result.passed is None:
        return ThresholdResult(threshold, "no data", None)
    return ThresholdResult(threshold, "pass" if result.passed else "fail", observed)


def judge_all(thresholds: tuple[Threshold, ...], registry: Registry,
              duration_s: float) -> list[ThresholdResult]:
    return [judge(t, registry, duration_s) for t in thresholds]
