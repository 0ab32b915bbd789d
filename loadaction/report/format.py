"""How values read in every report (terminal, Markdown, JUnit, the GitHub
step log and annotations), so a number, a duration or a verdict mark reads
the same wherever one looks. Units follow k6's end-of-test summary."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loadaction.metrics.thresholds import format_value, parse_selector, parse_threshold

PASS, FAIL, NOT_JUDGED = "✓", "✗", "–"
# k6's default summaryTrendStats: (summary field, label).
_TREND_STATS = (
    ("avg", "avg"), ("min", "min"), ("med", "med"),
    ("max", "max"), ("p90", "p(90)"), ("p95", "p(95)"),
)
_BYTE_UNITS = ("kB", "MB", "GB", "TB")

Formatter = Callable[[float], str]


def _trim(x: float) -> str:
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_duration(ms: float) -> str:
    """k6's units: µs below 1 ms, ms below 1 s, else s; the unit is chosen
    after rounding so 999.999 ms reads 1s, not 1000ms."""
    if ms == 0:
        return "0s"
    if abs(round(ms * 1000, 2)) < 1000:
        return f"{_trim(ms * 1000)}µs"
    if abs(round(ms, 2)) < 1000:
        return f"{_trim(ms)}ms"
    return f"{_trim(ms / 1000)}s"


def format_bytes(n: float) -> str:
    """Decimal units (kB = 1000 B) as k6 prints data_sent / data_received."""
    unit = "B"
    for bigger in _BYTE_UNITS:
        if abs(round(n, 2)) < 1000:
            break
        n, unit = n / 1000, bigger
    return f"{_trim(n)} {unit}"


def format_percent(fraction: float) -> str:
    """Two decimals like k6, except that a tiny non-zero error rate keeps two
    significant digits instead of reading as a reassuring 0.00%."""
    pct = fraction * 100
    if pct != 0 and abs(pct) < 0.005:
        return f"{format_value(pct)}%"
    return f"{pct:.2f}%"


def value_formatter(metric: Mapping[str, Any] | None) -> Formatter:
    """How a metric's raw values read: durations, bytes or plain numbers."""
    contains = metric.get("contains") if metric else None
    if contains == "time":
        return format_duration
    if contains == "data":
        return format_bytes
    return format_value


def _per_second(fmt: Formatter) -> Formatter:
    return lambda x: f"{fmt(x)}/s"


def threshold_metric(selector: str) -> tuple[str, dict[str, str]]:
    """Split a threshold's `metric{tag:value}`; a selector this version cannot
    parse is shown whole rather than failing the report."""
    try:
        name, tags = parse_selector(selector)
    except ValueError:
        return selector, {}
    return name, dict(tags)


def aggregation_label(expression: str) -> str:
    """`p(95)` for `p(95)<500`: the name of what `observed` measured."""
    try:
        expr = parse_threshold(expression)
    except ValueError:
        return "value"
    return expr.text.partition(expr.op)[0].strip()


def observed_value(doc: Mapping[str, Any], threshold: Mapping[str, Any]) -> str | None:
    """A threshold's observed value in the unit of what it compared (ms for a
    time trend's p(95), % for a rate, B for a data counter), None for no data."""
    observed = threshold.get("observed")
    if observed is None:
        return None
    name, _ = threshold_metric(threshold["metric"])
    metric = doc["metrics"].get(name)
    fmt = value_formatter(metric)
    try:
        aggregation = parse_threshold(threshold["expression"]).aggregation
    except ValueError:
        return format_value(observed)
    kind = metric["type"] if metric else None
    if kind == "rate":
        return format_percent(observed)
    if kind == "counter" and aggregation == "rate":
        return _per_second(fmt)(observed)
    return fmt(observed)


def metric_columns(
    metric: Mapping[str, Any], summary: Mapping[str, Any], duration_s: float
) -> list[str] | None:
    """The values of one metric line, None when the metric saw no data."""
    kind, fmt = metric["type"], value_formatter(metric)
    if kind == "trend":
        if not summary["count"]:
            return None
        return [f"{label}={fmt(summary[key])}" for key, label in _TREND_STATS]
    if kind == "rate":
        passes, fails = summary["passes"], summary["fails"]
        if not passes + fails:
            return None
        share = format_percent(passes / (passes + fails))
        return [share, f"{PASS} {format_value(passes)}", f"{FAIL} {format_value(fails)}"]
    if kind == "counter":
        if not summary["count"] and not metric.get("by_tags"):
            return None
        rate = summary["count"] / duration_s if duration_s > 0 else 0.0
        return [fmt(summary["count"]), _per_second(fmt)(rate)]
    if not summary["count"]:
        return None
    return [fmt(summary["value"]), f"min={fmt(summary['min'])}", f"max={fmt(summary['max'])}"]


def clean(text: object) -> str:
    """Escape control characters in document strings (server error messages,
    check names), so nothing they contain can move the cursor, recolour a
    terminal or fake a line of a log."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text)
    )


def tags_label(tags: Mapping[str, str]) -> str:
    return "{ " + ", ".join(f"{clean(k)}:{clean(v)}" for k, v in tags.items()) + " }"
