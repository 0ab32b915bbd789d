"""k6 threshold grammar and its evaluation.

Plans are written in k6's syntax (`p(95)<500` on `http_req_duration{scenario:a}`)
so budgets can move between the two tools unchanged; this module is the one
place that reads that syntax, turns a metric sink into the number a threshold
talks about, and decides pass / fail / no data.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, Protocol

Aggregation = Literal["avg", "min", "med", "max", "p", "rate", "count", "value", "last", "slope"]
Operator = Literal["<", "<=", ">", ">=", "==", "!="]


@dataclass(frozen=True, slots=True)
class ThresholdExpr:
    """`p(95)<500` is ThresholdExpr("p", 95.0, "<", 500.0, "p(95)<500")."""

    aggregation: Aggregation
    percentile: float | None
    op: Operator
    value: float
    text: str


# ------------------------------------------------------------------ grammar

# Digits are spelt [0-9]: `\d` would admit other scripts' digits, which
# float() happily converts, making plans that k6 itself would reject.
_NUMBER_SRC = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER = re.compile(_NUMBER_SRC)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PERCENTILE = re.compile(rf"\(\s*({_NUMBER_SRC})\s*\)")
# Longest first, so `<=` is not read as `<` followed by `=`.
_OPERATOR = re.compile(r"===|==|!=|<=|>=|<|>")
_SPACE = re.compile(r"\s*")
_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_PLAIN_AGGREGATIONS: frozenset[str] = frozenset(
    {"avg", "min", "med", "max", "rate", "count", "value", "last", "slope"}
)
_EXPECTED_AGGREGATION = "expected avg, min, med, max, p(N), rate, count, value, last or slope"
_EXPECTED_OPERATOR = "expected an operator (<, <=, >, >=, ==, !=)"

VALID_AGGREGATIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "trend": frozenset({"avg", "min", "med", "max", "p"}),
        "rate": frozenset({"rate"}),
        "counter": frozenset({"count", "rate"}),
        # `value` is k6's (the last value); `slope` is growth per minute
        "gauge": frozenset({"value", "last", "min", "max", "avg", "slope"}),
    }
)
"""Which aggregations make sense per metric kind, so plans fail at load time
rather than silently evaluating e.g. `p(95)` on a counter."""


def _threshold_error(text: str, detail: str) -> ValueError:
    # repr() keeps the message on one line even if the plan value had newlines.
    return ValueError(f"invalid threshold {text!r}: {detail}")


def _skip_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    assert match is not None  # `\s*` always matches
    return match.end()


def parse_threshold(text: str) -> ThresholdExpr:
    """Parse a k6 threshold such as `p(95)<500`.

    Errors are ValueErrors with one line naming the first thing that is wrong,
    so the plan loader can attach a source location and show it as is.
    """
    stripped = text.strip()
    if not stripped:
        raise _threshold_error(stripped, "empty expression")

    word = _WORD.match(stripped)
    if word is None or (word.group() != "p" and word.group() not in _PLAIN_AGGREGATIONS):
        raise _threshold_error(stripped, _EXPECTED_AGGREGATION)
    name, pos = word.group(), word.end()
    percentile: float | None = None
    if name == "p":
        found = _PERCENTILE.match(stripped, _skip_space(stripped, pos))
        if found is None:
            raise _threshold_error(stripped, "expected p(N) with N a number, e.g. p(95)")
        percentile = float(found.group(1))
        if not 0 < percentile <= 100:
            raise _threshold_error(stripped, "percentile must be between 0 and 100")
        pos = found.end()

    op_match = _OPERATOR.match(stripped, _skip_space(stripped, pos))
    if op_match is None:
        raise _threshold_error(stripped, _EXPECTED_OPERATOR)
    written_op = op_match.group()

    number = _NUMBER.fullmatch(stripped, _skip_space(stripped, op_match.end()))
    if number is None:
        raise _threshold_error(stripped, f"expected a number after {written_op!r}")
    value = float(number.group())
    if not math.isfinite(value):
        raise _threshold_error(stripped, f"number {number.group()} is out of range")

    op: Operator = "==" if written_op == "===" else written_op  # type: ignore[assignment]
    return ThresholdExpr(name, percentile, op, value, stripped)  # type: ignore[arg-type]


def _selector_error(text: str, detail: str) -> ValueError:
    return ValueError(f"invalid metric selector {text!r}: {detail}")


def format_selector(metric: str, tags: Iterable[tuple[str, str]]) -> str:
    """The inverse of `parse_selector`: `http_req_duration{scenario:a,name:b}`."""
    pairs = ",".join(f"{k}:{v}" for k, v in tags)
    return f"{metric}{{{pairs}}}" if pairs else metric


def parse_selector(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Split k6's `metric{key:value,...}` into the metric and its tag filter.

    Tags come back sorted by key so that two spellings of the same sub-metric
    compare (and hash) equal. Values keep everything but `,` and `}`, since k6
    users filter on URLs and `group:::name` paths.
    """
    stripped = text.strip()
    brace = stripped.find("{")
    name = (stripped if brace < 0 else stripped[:brace]).rstrip()
    if not name:
        raise _selector_error(stripped, "missing metric name")
    if _METRIC_NAME.fullmatch(name) is None:
        raise _selector_error(
            stripped,
            f"metric name {name!r} must start with a letter or '_' "
            "and contain only letters, digits and '_'",
        )
    if brace < 0:
        return name, ()

    rest = stripped[brace + 1 :]
    close = rest.find("}")
    if close < 0:
        raise _selector_error(stripped, "missing closing '}'")
    if close != len(rest) - 1:
        raise _selector_error(stripped, "unexpected text after '}'")
    body = rest[:close]
    if not body.strip():
        raise _selector_error(stripped, "empty tag filter '{}'")

    tags: dict[str, str] = {}
    for pair in body.split(","):
        if not pair.strip():
            raise _selector_error(stripped, "empty tag (stray ',')")
        key, colon, value = pair.partition(":")
        key, value = key.strip(), value.strip()
        if not colon:
            raise _selector_error(stripped, f"expected key:value, got {pair.strip()!r}")
        if not key:
            raise _selector_error(stripped, f"empty tag key in {pair.strip()!r}")
        if not value:
            raise _selector_error(stripped, f"empty value for tag {key!r}")
        if key in tags:
            raise _selector_error(stripped, f"duplicate tag {key!r}")
        tags[key] = value
    return name, tuple(sorted(tags.items()))


# --------------------------------------------------------------- aggregation


class TrendSink(Protocol):
    """Samples in milliseconds; percentile takes 0 < p <= 100."""

    @property
    def count(self) -> int: ...
    def avg(self) -> float: ...
    def min(self) -> float: ...
    def max(self) -> float: ...
    def percentile(self, p: float) -> float: ...


class RateSink(Protocol):
    @property
    def total(self) -> int: ...
    @property
    def passes(self) -> int: ...


class CounterSink(Protocol):
    @property
    def count(self) -> float: ...


class GaugeSink(Protocol):
    @property
    def value(self) -> float: ...
    @property
    def count(self) -> int: ...
    @property
    def lo(self) -> float: ...
    @property
    def hi(self) -> float: ...
    def avg(self) -> float | None: ...
    def slope(self) -> float | None: ...


Sink = TrendSink | RateSink | CounterSink | GaugeSink


def aggregate(
    expr: ThresholdExpr, kind: str, sink: Sink | None, duration_s: float
) -> float | None:
    """The number `expr` is compared against, or None when there is no data.

    None rather than 0 keeps "nothing was measured" distinguishable from
    "measured and zero", which k6 reports differently. A counter that exists
    has data even at zero: the caller passes None for one never touched.
    `duration_s` is the run length, only used for a counter's per-second rate.
    """
    allowed = VALID_AGGREGATIONS.get(kind)
    if allowed is None:
        raise ValueError(f"unknown metric kind {kind!r}: expected counter, rate, trend or gauge")
    if expr.aggregation not in allowed:
        raise ValueError(
            f"threshold {expr.text!r} uses {expr.aggregation!r}, "
            f"which a {kind} metric does not have ({', '.join(sorted(allowed))})"
        )
    if sink is None:
        return None

    if kind == "trend":
        trend: TrendSink = sink  # type: ignore[assignment]
        if trend.count == 0:
            return None
        if expr.aggregation == "p":
            assert expr.percentile is not None
            return float(trend.percentile(expr.percentile))
        if expr.aggregation == "med":
            return float(trend.percentile(50.0))
        return float(getattr(trend, expr.aggregation)())
    if kind == "rate":
        rate: RateSink = sink  # type: ignore[assignment]
        return None if rate.total == 0 else rate.passes / rate.total
    if kind == "counter":
        counter: CounterSink = sink  # type: ignore[assignment]
        if expr.aggregation == "count":
            return float(counter.count)
        return float(counter.count) / duration_s if duration_s > 0 else None
    gauge: GaugeSink = sink  # type: ignore[assignment]
    if gauge.count == 0:
        return None
    if expr.aggregation == "min":
        return float(gauge.lo)
    if expr.aggregation == "max":
        return float(gauge.hi)
    if expr.aggregation == "avg":
        return gauge.avg()
    if expr.aggregation == "slope":
        return gauge.slope()  # None (no data) below two timed samples
    return float(gauge.value)


# ---------------------------------------------------------------- evaluation

_COMPARE: Mapping[str, Callable[[float, float], bool]] = MappingProxyType(
    {
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
        "==": operator.eq,
        "!=": operator.ne,
    }
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """`passed` is None for no data, which the caller turns into a pass only
    for thresholds marked optional."""

    passed: bool | None
    observed: float | None


def evaluate(expr: ThresholdExpr, observed: float | None) -> Verdict:
    """Compare with plain float semantics (exact `==`), like k6 does, so the
    same plan gives the same verdict in both tools."""
    if observed is None:
        return Verdict(None, None)
    return Verdict(bool(_COMPARE[expr.op](observed, expr.value)), observed)


# ---------------------------------------------------------------- formatting


def format_value(x: float) -> str:
    """Render a number for humans: reports compare values by eye, so drop noise
    digits but never round a small error rate like 0.0012 down to 0."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x.is_integer():
        return f"{x:.0f}" if x else "0"  # not "-0"
    if abs(x) >= 0.01:
        text = f"{x:.2f}"
    else:
        # Two significant digits, written positionally (0.000012, not 1.2e-05)
        # unless a run of zeros would be harder to read than 1.2e-09.
        two_digits = f"{x:.2g}"
        if abs(float(two_digits)) < 1e-6:
            return two_digits
        text = format(Decimal(two_digits), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
