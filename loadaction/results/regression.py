"""Regression budgets judged against earlier runs: the `regressions` section
of the results document, from this run's document and the baselines'.

Everything here reads results documents only, so a PR run, `loadaction
report` and `loadaction merge` judge alike. The statistics live in
metrics/comparison.py; this module decides what the samples are:

- the run-level value: the budget's aggregate over the whole run, from the
  merged (exact, HDR) sinks of every tag set its selector matches;
- the windows: the same aggregate over consecutive windows of the per-second
  series, for the selectors the series can answer (`http_req_duration`,
  `http_req_failed`, `http_reqs`, `iterations`, on the whole run or one
  scenario). Window length follows the scenario's length so that even a
  `smoke` run has a handful: 5 s once it runs 25 s or more, else a fifth of
  it (at least 1 s); baselines are cut the same way.

Baselines count only when they ran the same plan at the same profile and
completed; the rest are left out and said so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadaction.metrics.comparison import Comparison, RegressionVerdict, RunSample, compare
from loadaction.metrics.registry import matches
from loadaction.metrics.sinks import SINK_TYPES, RateSink, Sink, TrendSink
from loadaction.metrics.thresholds import ThresholdExpr, aggregate
from loadaction.plan.model import RegressionBudget

SERIES_METRICS: Mapping[str, str] = {
    "http_req_duration": "trend", "http_req_failed": "rate",
    "http_reqs": "counter", "iterations": "counter",
}
LONG_WINDOW_S = 5
MIN_WINDOWS = 5


@dataclass(frozen=True, slots=True)
class Baselines:
    """The documents a run is compared with, and why others were left out."""

    documents: tuple[Mapping[str, Any], ...]
    skipped: tuple[str, ...]


def usable_baselines(doc: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]]) -> Baselines:
    plan = doc["plan"]
    kept, skipped = [], []
    for candidate in candidates:
        other = candidate["plan"]
        label = f"baseline from {candidate.get('started_at', '?')}"
        if other.get("name") != plan.get("name"):
            skipped.append(f"{label}: another plan ({other.get('name')!r})")
        elif other.get("profile") != plan.get("profile"):
            skipped.append(f"{label}: profile {other.get('profile')!r}, not {plan.get('profile')!r}")
        elif candidate.get("status") != "complete":
            skipped.append(f"{label}: the run did not complete ({candidate.get('status')})")
        else:
            kept.append(candidate)
    return Baselines(tuple(kept), tuple(skipped))


def _expr(budget: RegressionBudget) -> ThresholdExpr:
    """The budget's aggregate as the thresholds' aggregation understands it."""
    e = budget.expr
    return ThresholdExpr(e.aggregation, e.percentile, "<", 0.0, e.text)


def run_value(doc: Mapping[str, Any], budget: RegressionBudget) -> float | None:
    """The aggregate over the whole run, from every matching tag set, merged exactly."""
    entry = doc["metrics"].get(budget.metric)
    if entry is None:
        return None
    merged: Sink | None = None
    for row in entry["by_tags"]:
        tags = tuple(sorted(row["tags"].items()))
        if matches(tags, budget.tags):
            sink = SINK_TYPES[entry["type"]].from_summary(row["sink"])
            if merged is None:
                merged = sink
            else:
                merged.merge(sink)  # type: ignore[arg-type]
    return aggregate(_expr(budget), entry["type"], merged, float(doc["duration_s"]))


def windowable(budget: RegressionBudget) -> bool:
    return budget.metric in SERIES_METRICS and all(key == "scenario" for key, _ in budget.tags)


def window_seconds(doc: Mapping[str, Any], budget: RegressionBudget) -> int:
    points = _points(doc, budget)
    span = len({p["t"] for p in points if p["reqs"] or p["iterations"]})
    if span >= LONG_WINDOW_S * MIN_WINDOWS:
        return LONG_WINDOW_S
    return max(1, span // MIN_WINDOWS)


def _points(doc: Mapping[str, Any], budget: RegressionBudget) -> list[Mapping[str, Any]]:
    scenarios: Mapping[str, list[Mapping[str, Any]]] = doc["series"]["scenarios"]
    wanted = dict(budget.tags).get("scenario")
    return [p for name, points in scenarios.items() if wanted in (None, name) for p in points]


def windows(doc: Mapping[str, Any], budget: RegressionBudget, seconds: int) -> tuple[float, ...]:
    """The aggregate per window of `seconds` consecutive seconds, from the
    first second with samples; a last, shorter window is left out (a count
    over it would not be comparable), and so are windows without samples."""
    by_second: dict[int, list[Mapping[str, Any]]] = {}
    for point in _points(doc, budget):
        by_second.setdefault(math.ceil(point["t"] - 1e-6), []).append(point)
    active = sorted(t for t, ps in by_second.items() if any(p["reqs"] or p["iterations"] for p in ps))
    if not active:
        return ()
    first, last = active[0], active[-1]
    kind = SERIES_METRICS[budget.metric]
    values = []
    for start in range(first, last - seconds + 2, seconds):
        group = [p for t in range(start, start + seconds) for p in by_second.get(t, ())]
        value = _window_value(budget, kind, group, seconds)
        if value is not None:
            values.append(value)
    return tuple(values)


def _window_value(budget: RegressionBudget, kind: str, points: Sequence[Mapping[str, Any]],
                  seconds: int) -> float | None:
    if kind == "trend":
        sink: Sink = TrendSink()
        for p in points:
            if p.get("hdr"):
                sink.merge(TrendSink.from_summary({"hdr": p["hdr"]}))  # type: ignore[arg-type]
    elif kind == "rate":
        sink = RateSink()
        sink.passes = sum(p["failed"] for p in points)  # a failed request is a `true` sample
        sink.total = sum(p["reqs"] for p in points)
    else:
        counter = SINK_TYPES["counter"]()
        counter.count = sum(p["reqs" if budget.metric == "http_reqs" else "iterations"]
                            for p in points)  # type: ignore[attr-defined]
        if not counter.count:  # type: ignore[attr-defined]
            return None
        sink = counter
    return aggregate(_expr(budget), kind, sink, float(seconds))


def sample(doc: Mapping[str, Any], budget: RegressionBudget, seconds: int | None) -> RunSample:
    value = run_value(doc, budget)
    return RunSample(value, windows(doc, budget, seconds) if seconds else ())


def judge_regression(budget: RegressionBudget, doc: Mapping[str, Any],
                     baselines: Sequence[Mapping[str, Any]], seconds: int | None) -> Comparison:
    """`seconds`: the window length (None: run-level values only)."""
    expr = budget.expr
    return compare(
        sample(doc, budget, seconds), [sample(b, budget, seconds) for b in baselines],
        floor=0.0 if expr.absolute else expr.floor,
        floor_abs=expr.floor if expr.absolute else None,
        higher_is_worse=expr.higher_is_worse)


def regression_failed(verdict: RegressionVerdict, required: bool) -> bool:
    return verdict is RegressionVerdict.REGRESSED or (
        verdict is RegressionVerdict.INSUFFICIENT and required)


def regression_section(doc: Mapping[str, Any], budgets: Sequence[RegressionBudget],
                       candidates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`baselines` and `regressions` for the document: each budget judged
    against the usable baselines."""
    usable = usable_baselines(doc, candidates)
    refs = sorted({b.get("environment", {}).get("ref") for b in usable.documents} - {None})
    rows = []
    for budget in budgets:
        seconds = window_seconds(doc, budget) if windowable(budget) else None
        result = judge_regression(budget, doc, usable.documents, seconds)
        rows.append({
            "metric": budget.selector, "expression": budget.expr.text,
            "verdict": result.verdict.value,
            "failed": regression_failed(result.verdict, budget.required),
            "required": budget.required,
            "baseline_value": result.baseline_value, "value": result.value,
            "change": result.change, "p_value": result.p_value,
            "interval": list(result.interval) if result.interval is not None else None,
            "baseline_runs": result.baseline_runs, "windows": result.windows,
            "baseline_windows": result.baseline_windows, "window_s": seconds,
            "reason": result.reason,
            "source": {"file": budget.source.file, "line": budget.source.line},
        })
    return {
        "baselines": {"runs": len(usable.documents), "ref": refs[0] if len(refs) == 1 else None,
                      "started_at": [b.get("started_at", "") for b in usable.documents],
                      "skipped": list(usable.skipped)},
        "regressions": rows,
    }
