"""The grammar of regression budgets: how much worse than the base branch a
metric may get.

`p(95) <= +10%` reads "the p95 may rise by at most 10%": higher is worse, and
10% is the practical floor below which no change is flagged however
significant. `rate >= -5%` is the mirror for metrics where lower is worse
(a checks rate, a throughput). Without `%` the floor is absolute, in the
metric's own unit (milliseconds for trends, a fraction for rates):
`rate <= +0.005` lets an error rate rise by half a percentage point, which a
relative floor on a rate near 0 cannot express. The aggregations are the
thresholds' (`avg`, `min`, `med`, `max`, `p(N)`, `rate`, `count`, `value`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from loadaction.metrics.thresholds import Aggregation

_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_EXPR = re.compile(
    rf"\s*(?P<agg>avg|min|med|max|rate|count|value|p\(\s*(?P<pct>{_NUMBER})\s*\))"
    rf"\s*(?P<op><=|>=)\s*(?P<sign>[+-]?)\s*(?P<floor>{_NUMBER})\s*(?P<unit>%?)\s*")


@dataclass(frozen=True, slots=True)
class RegressionExpr:
    """`p(95) <= +10%` is RegressionExpr("p", 95.0, True, 0.10, False, text)."""

    aggregation: Aggregation
    percentile: float | None
    higher_is_worse: bool
    floor: float  # a fraction when relative (0.10), else in the metric's unit
    absolute: bool
    text: str

    @property
    def aggregate_text(self) -> str:
        return f"p({self.percentile:g})" if self.aggregation == "p" else self.aggregation


def parse_regression(text: str) -> RegressionExpr:
    """ValueError with one line naming what is wrong."""
    match = _EXPR.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid regression budget {text!r}: expected e.g. 'p(95) <= +10%' "
                         f"(may rise at most 10%), 'rate >= -5%' (may fall at most 5%) or "
                         f"'rate <= +0.005' (an absolute floor)")
    higher_is_worse = match["op"] == "<="
    sign = match["sign"]
    if (higher_is_worse and sign == "-") or (not higher_is_worse and sign == "+"):
        want = "+N (it may rise by at most N)" if higher_is_worse else "-N (it may fall by at most N)"
        raise ValueError(f"invalid regression budget {text!r}: with {match['op']} the floor is {want}")
    floor = float(match["floor"])
    relative = match["unit"] == "%"
    if relative:
        floor /= 100
    if not math.isfinite(floor):
        raise ValueError(f"invalid regression budget {text!r}: the floor is not a finite number")
    pct = match["pct"]
    percentile = float(pct) if pct is not None else None
    if percentile is not None and not 0 <= percentile <= 100:
        raise ValueError(f"invalid regression budget {text!r}: a percentile is between 0 and 100")
    aggregation: Aggregation = "p" if percentile is not None else match["agg"]  # type: ignore[assignment]
    return RegressionExpr(aggregation, percentile, higher_is_worse, floor, not relative, text.strip())
