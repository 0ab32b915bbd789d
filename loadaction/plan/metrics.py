"""Custom metric declarations, and the budgets over all metrics: thresholds
and regression budgets (how much worse than the baseline runs).

A threshold on a misspelt metric would otherwise evaluate to `no data`
after a full run; checking names and aggregations here makes it fail in
the first second instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from types import MappingProxyType
from typing import TypeVar, cast, get_args

from loadaction.errors import PlanError, Source, did_you_mean
from loadaction.metrics.registry import CHAOS_METRICS
from loadaction.metrics.thresholds import (
    VALID_AGGREGATIONS,
    ThresholdExpr,
    parse_selector,
    parse_threshold,
)
from loadaction.metrics.regressions import RegressionExpr, parse_regression
from loadaction.plan.fields import (
    check_keys, expect_bool, expect_choice, expect_duration, expect_int, expect_str, required,
)
from loadaction.plan.model import MetricDecl, MetricKind, RegressionBudget, Threshold
from loadaction.plan.source import Entry, Map, Node, Seq

BUILTIN_METRICS: Mapping[str, MetricKind] = MappingProxyType({
    "http_reqs": "counter",
    "http_req_duration": "trend",
    "http_req_blocked": "trend",
    "http_req_connecting": "trend",
    "http_req_tls_handshaking": "trend",
    "http_req_sending": "trend",
    "http_req_waiting": "trend",
    "http_req_receiving": "trend",
    "http_req_failed": "rate",
    "iterations": "counter",
    "iteration_duration": "trend",
    "dropped_iterations": "counter",
    "vus": "gauge",
    "vus_max": "gauge",
    "checks": "rate",
    "data_sent": "counter",
    "data_received": "counter",
    "group_duration": "trend",
    "iteration_start_lateness": "trend",
    "ws_connecting": "trend",
    "ws_sessions": "counter",
    "ws_session_duration": "trend",
    "ws_msgs_sent": "counter",
    "ws_msgs_received": "counter",
    "ws_ping": "trend",
    "ws_heartbeat_duration": "trend",
    "ws_errors": "counter",
    "realtime_update_latency": "trend",
    "realtime_updates_missed": "counter",
})

METRIC_KINDS: tuple[str, ...] = get_args(MetricKind)
_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_THRESHOLD_KEYS = ("threshold", "abortOnFail", "delayAbortEval", "optional", "minSamples")
_REGRESSION_KEYS = ("regression", "required")
_Expr = TypeVar("_Expr", ThresholdExpr, RegressionExpr)


def parse_metrics(entries: Mapping[str, Entry]) -> dict[str, MetricDecl]:
    """`name: counter` or `name: {type: trend, time: true}`."""
    metrics = {}
    for name, entry in entries.items():
        if name in BUILTIN_METRICS:
            raise PlanError(f"metric '{name}' is built in; choose another name",
                            entry.key_source)
        if not _METRIC_NAME.fullmatch(name):
            raise PlanError(f"metric name '{name}' must start with a letter or '_' and "
                            "contain only letters, digits and '_'", entry.key_source)
        metrics[name] = _declaration(name, entry)
    return metrics


def _declaration(name: str, entry: Entry) -> MetricDecl:
    node = entry.value
    if not isinstance(node, Map):
        kind = cast(MetricKind, expect_choice(node, f"metric '{name}'", METRIC_KINDS))
        return MetricDecl(name, kind, entry.key_source)
    check_keys(node, ("type", "time"), f"in metric '{name}'")
    type_node = required(node, "type", f"in metric '{name}'")
    kind = cast(MetricKind, expect_choice(type_node, "type", METRIC_KINDS))
    is_time = _option_bool(node, "time")
    if is_time and kind != "trend":
        raise PlanError(f"time: only trends hold durations, and '{name}' is a {kind}",
                        node.key_source("time"))
    return MetricDecl(name, kind, entry.key_source, is_time)


def parse_thresholds(entries: Iterable[tuple[str, Entry]], metrics: Mapping[str, MetricDecl],
                     scenarios: Collection[str], scenario: str | None = None,
                     phases: Collection[str] | None = None) -> list[Threshold]:
    """`selector: [expr, {threshold: expr, abortOnFail: true}, ...]`; under a
    scenario, every selector gets `scenario:<name>` added. A `scenario` tag
    must name one of `scenarios`, and a `phase` tag one of `phases` (None:
    the plan has no chaos, so no sample has a phase): a typo there would
    only show as `no data`."""
    thresholds = []
    for metric, tags, kind, entry in _budget_selectors(entries, metrics, scenarios, scenario,
                                                       phases, "thresholds"):
        items = entry.value.items if isinstance(entry.value, Seq) else (entry.value,)
        for item in items:
            thresholds.append(_threshold(item, metric, tags, kind))
    return thresholds


def parse_regressions(entries: Iterable[tuple[str, Entry]], metrics: Mapping[str, MetricDecl],
                      scenarios: Collection[str], scenario: str | None = None,
                      phases: Collection[str] | None = None) -> list[RegressionBudget]:
    """`selector: ["p(95) <= +10%", {regression: "rate <= +0.005", required: true}]`,
    selectors as for thresholds."""
    budgets = []
    for metric, tags, kind, entry in _budget_selectors(entries, metrics, scenarios, scenario,
                                                       phases, "regressions"):
        items = entry.value.items if isinstance(entry.value, Seq) else (entry.value,)
        for item in items:
            budgets.append(_regression(item, metric, tags, kind))
    return budgets


def _budget_selectors(entries: Iterable[tuple[str, Entry]], metrics: Mapping[str, MetricDecl],
                      scenarios: Collection[str], scenario: str | None,
                      phases: Collection[str] | None, section: str
                      ) -> Iterable[tuple[str, tuple[tuple[str, str], ...], MetricKind, Entry]]:
    kinds = {**BUILTIN_METRICS, **{name: decl.kind for name, decl in metrics.items()}}
    if phases is not None:  # the plan has faults: their own counters exist
        kinds.update({name: info.kind for name, info in CHAOS_METRICS.items()})
    for selector, entry in entries:
        try:
            metric, tags = parse_selector(selector)
        except ValueError as exc:
            raise PlanError(str(exc), entry.key_source) from None
        if metric not in kinds:
            raise PlanError(f"unknown metric '{metric}' in {section}", entry.key_source,
                            did_you_mean(metric, kinds))
        if scenario is not None:
            if any(key == "scenario" for key, _ in tags):
                raise PlanError(f"'{selector}': {section} under a scenario already get "
                                f"scenario:{scenario}; remove the scenario tag",
                                entry.key_source)
            tags = tuple(sorted((*tags, ("scenario", scenario))))
        for key, value in tags:
            if key == "scenario" and value not in scenarios:
                raise PlanError(f"unknown scenario '{value}' in {section}", entry.key_source,
                                did_you_mean(value, scenarios))
            if key == "phase":
                _check_phase(value, phases, entry)
        yield metric, tags, kinds[metric], entry


def _check_phase(value: str, phases: Collection[str] | None, entry: Entry) -> None:
    if phases is None:
        raise PlanError(f"tag 'phase:{value}' in thresholds: the plan has no chaos faults",
                        entry.key_source, "samples get a phase (before, during:<fault>, "
                        "after:<fault>) only when the plan has a chaos section")
    if value not in phases:
        raise PlanError(f"unknown phase '{value}' in thresholds", entry.key_source,
                        did_you_mean(value, phases)
                        or f"phases: {', '.join(phases)}")


def _threshold(node: Node, metric: str, tags: tuple[tuple[str, str], ...],
               kind: MetricKind) -> Threshold:
    options, source, expr = _budget(node, "threshold", _THRESHOLD_KEYS, parse_threshold,
                                    metric, kind)
    delay = options.get("delayAbortEval")
    min_samples = options.get("minSamples")
    return Threshold(
        metric, tags, expr, source,
        abort_on_fail=_option_bool(options, "abortOnFail"),
        delay_abort_eval=expect_duration(delay, "delayAbortEval") if delay is not None else 0.0,
        optional=_option_bool(options, "optional"),
        min_samples=expect_int(min_samples, "minSamples", 1) if min_samples is not None else None,
    )


def _regression(node: Node, metric: str, tags: tuple[tuple[str, str], ...],
                kind: MetricKind) -> RegressionBudget:
    options, source, expr = _budget(node, "regression", _REGRESSION_KEYS, parse_regression,
                                    metric, kind)
    return RegressionBudget(metric, tags, expr, source, required=_option_bool(options, "required"))


def _budget(node: Node, key: str, keys: tuple[str, ...], parse: Callable[[str], _Expr],
            metric: str, kind: MetricKind) -> tuple[Map, Source, _Expr]:
    """A budget written as its expression, or as a mapping with the expression
    under `key` and options beside it; the aggregation must suit the metric."""
    what = "regression budget" if key == "regression" else key
    if isinstance(node, Map):
        options = node
        check_keys(options, keys, f"in {what}")
        text_node = required(options, key, f"in {what}")
    else:
        options, text_node = Map({}, node.source), node
    try:
        expr = parse(expect_str(text_node, key))
    except ValueError as exc:
        raise PlanError(str(exc), text_node.source) from None
    if expr.aggregation not in VALID_AGGREGATIONS[kind]:
        allowed = ", ".join(sorted(_aggregation_text(a) for a in VALID_AGGREGATIONS[kind]))
        raise PlanError(f"{what} '{expr.text}': {kind} metric '{metric}' has no "
                        f"'{_aggregation_text(expr.aggregation)}' (use {allowed})",
                        text_node.source)
    return options, text_node.source, expr


def _option_bool(options: Map, key: str) -> bool:
    value = options.get(key)
    return expect_bool(value, key) if value is not None else False


def _aggregation_text(aggregation: str) -> str:
    return "p(N)" if aggregation == "p" else aggregation
